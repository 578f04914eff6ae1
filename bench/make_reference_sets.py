"""Builds the bundled reference text sets (bits per byte) in crawlproc/data/evalsuite/reference/ from their
public sources; crawlproc/data/evalsuite/reference/SOURCES.md names them, their licences and checksums.

    python bench/make_reference_sets.py WIKI_TEST_RAW PG1342_TXT OUT_DIR

- WIKI_TEST_RAW: WikiText-2 (raw) test split as one text file, one non-empty row per line (the file the
  SOURCES.md names). Each article (a line ` = Title = `) becomes one document; WikiText's tokenization is
  undone (` @-@ ` -> `-`, ` , ` -> `, `, spaces inside quotes and brackets, ...) and section headings
  (` = = Name = = `) become their own paragraph, so the text reads as ordinary prose.
- PG1342_TXT: Project Gutenberg's Pride and Prejudice (eBook #1342, the illustrated edition). The novel's
  chapters become documents: illustration captions and the Gutenberg header and footer are dropped, the
  hard-wrapped lines of each paragraph are joined, and _italics_ marks are removed.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

_TITLE = re.compile(r"^ = ([^=].*) = $")
_HEADING = re.compile(r"^ (?:= )+(.*?)(?: =)+ $")


def detokenize_wikitext(line: str) -> str:
    """WikiText's token-separated line -> ordinary text (our own rules, one pass each, in this order)."""
    s = line.strip()
    for a, b in ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), (" , ", ", "), (" . ", ". "), (" ; ", "; "),
                 (" : ", ": "), (" ! ", "! "), (" ? ", "? "), (" 's", "'s"), (" n't", "n't"), (" 're", "'re"),
                 (" 've", "'ve"), (" 'll", "'ll"), (" 'd", "'d"), (" 'm", "'m"), ("( ", "("), (" )", ")"),
                 ("[ ", "["), (" ]", "]"), (" %", "%"), ("$ ", "$")):
        s = s.replace(a, b)
    s = re.sub(r'" ([^"]*?) "', r'"\1"', s)  # spaces inside a pair of quotes
    s = re.sub(r" ([.,;:!?])$", r"\1", s)  # punctuation at the end of the line
    return s


def wikitext_articles(raw: str) -> list[tuple[str, str]]:
    articles: list[tuple[str, list[str]]] = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        m = _TITLE.match(line)
        if m:
            articles.append((detokenize_wikitext(m.group(1)), []))
            continue
        if not articles:
            continue
        h = _HEADING.match(line)
        articles[-1][1].append(detokenize_wikitext(h.group(1)) if h else detokenize_wikitext(line))
    return [(title, "\n\n".join([title, *paras])) for title, paras in articles if paras]


def gutenberg_chapters(raw: str) -> list[tuple[str, str]]:
    text = raw.replace("\r\n", "\n").lstrip("\ufeff")
    end = text.find("*** END OF THE PROJECT GUTENBERG EBOOK")
    text = text[:end] if end >= 0 else text
    text = re.sub(r"\[Illustration[^\]]*\]", "", text, flags=re.S)  # captions, some over several lines
    parts = re.split(r"\n\s*CHAPTER ([IVXLC]+)\.?\s*\n", text, flags=re.I)
    chapters = []
    first = parts[0].find("It is a truth universally acknowledged")  # chapter I has no heading line here
    if first >= 0:
        chapters.append(("I", parts[0][first:]))
    chapters += [(parts[i], parts[i + 1]) for i in range(1, len(parts) - 1, 2)]
    out = []
    for num, body in chapters:
        body = body.split("CHISWICK PRESS")[0]
        paras = [re.sub(r"\s+", " ", p).strip().replace("_", "") for p in re.split(r"\n\s*\n", body)]
        paras = [p for p in paras if p and not re.fullmatch(r"[\W_]*", p)]
        if paras:
            out.append((num, "\n\n".join([f"Chapter {num}", *paras])))
    return out


def write_jsonl(path: Path, prefix: str, docs: list[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i, (_, text) in enumerate(docs):
            f.write(json.dumps({"id": f"{prefix}-{i:04d}", "text": text}, ensure_ascii=False) + "\n")


def main(argv: list[str]) -> int:
    wiki, pg, out = Path(argv[0]), Path(argv[1]), Path(argv[2])
    out.mkdir(parents=True, exist_ok=True)
    articles = wikitext_articles(wiki.read_text(encoding="utf-8"))
    chapters = gutenberg_chapters(pg.read_text(encoding="utf-8"))
    write_jsonl(out / "wikitext2_test.jsonl", "wikitext2-test", articles)
    write_jsonl(out / "pride_and_prejudice.jsonl", "pg1342-chapter", chapters)
    for name, docs in (("wikitext2_test", articles), ("pride_and_prejudice", chapters)):
        print(f"{name}: {len(docs)} documents, {sum(len(t.encode()) for _, t in docs):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
