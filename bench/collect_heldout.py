"""Collect the held-out texts of tests/data/heldout/: real text nobody tuned the filters to.

    python bench/collect_heldout.py            # writes tests/data/heldout/texts.json.gz (+ prints the counts)

Sources (each text keeps where it came from, `source` and `origin`):
- licence, notice and readme files of the Python packages installed in the virtualenv (`*.dist-info` and package
  folders), and their long descriptions (METADATA bodies);
- Debian's /usr/share/doc/<package>/ copyright files, READMEs, NEWS and changelogs (gzipped or not);
- the text trafilatura extracts (FineWeb's settings) from every HTML response of the real WARCs in tests/data/warc;
- the text trafilatura extracts from the real pages of tests/data/html_multilingual (most not in English);
- one document per language of tests/data/langid (its 30 real sentences, one per line).

Identical texts are kept once; each text is cut at 12,000 characters at a line end (the filters' decisions on a
cut text are as valid as on a whole one, and the fixture stays small); texts under 50 characters are left out.
The expected decisions are datatrove's, recorded by tests/data/heldout/make_peer_decisions.py.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "heldout" / "texts.json.gz"
MAX_CHARS = 12_000
MIN_CHARS = 50
DOC_NAMES = ("license", "licence", "copying", "notice", "readme", "authors", "news", "changelog", "copyright")


def _cut(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if len(text) <= MAX_CHARS:
        return text
    cut = text.rfind("\n", 0, MAX_CHARS)
    return text[: cut if cut > MAX_CHARS // 2 else MAX_CHARS]


def _read(path: Path) -> str | None:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    if b"\x00" in raw[:4096]:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _is_doc(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.startswith(DOC_NAMES) and not name.endswith((".py", ".pyc", ".so", ".html"))


def package_texts(site: Path):
    for path in sorted(site.rglob("*")):
        if _is_doc(path):
            yield "package-doc", str(path.relative_to(site)), _read(path)
        elif path.name == "METADATA" and path.parent.name.endswith(".dist-info"):
            text = _read(path)
            if text and "\n\n" in text:  # the long description follows the headers
                yield "package-description", str(path.relative_to(site)), text.split("\n\n", 1)[1]


def debian_texts(root: Path = Path("/usr/share/doc")):
    for path in sorted(root.rglob("*")):
        if _is_doc(path) and not path.name.startswith("changelog.Debian"):  # Debian's own logs: one template
            yield "debian-doc", str(path.relative_to(root)), _read(path)


def _extract(html: str) -> str:
    import trafilatura

    return trafilatura.extract(html, favor_precision=True, include_comments=False, deduplicate=True) or ""


def warc_texts(folder: Path):
    from warcio.archiveiterator import ArchiveIterator

    for path in sorted(folder.glob("*.warc.gz")):
        with open(path, "rb") as f:
            for rec in ArchiveIterator(f):
                if rec.rec_type != "response":
                    continue
                ctype = rec.http_headers.get_header("Content-Type", "") if rec.http_headers else ""
                if "html" not in ctype.lower():
                    continue
                html = rec.content_stream().read().decode("utf-8", "replace")
                yield "warc", f"{path.name} {rec.rec_headers.get_header('WARC-Target-URI')}", _extract(html)


def page_texts(folder: Path):
    for path in sorted(folder.glob("*.html.gz")):
        yield "html-multilingual", path.name, _extract(gzip.decompress(path.read_bytes()).decode("utf-8", "replace"))


def langid_texts(path: Path):
    by_lang: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        code, _, text = line.split("\t", 2)
        by_lang.setdefault(code, []).append(text)
    for code, lines in sorted(by_lang.items()):
        yield "langid-sentences", f"{path.name} {code}", "\n".join(lines)


def collect() -> dict[str, dict]:
    site = Path(sysconfig.get_paths()["purelib"])
    gens = [
        package_texts(site), debian_texts(),
        warc_texts(ROOT / "tests/data/warc"), page_texts(ROOT / "tests/data/html_multilingual"),
        langid_texts(ROOT / "tests/data/langid/lingua_sample_30_per_lang.tsv"),
    ]
    out: dict[str, dict] = {}
    for gen in gens:
        for source, origin, text in gen:
            if not text or len(text.strip()) < MIN_CHARS:
                continue
            text = _cut(text)
            key = hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]
            out.setdefault(key, {"source": source, "origin": origin, "text": text})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    texts = collect()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(gzip.compress(json.dumps(texts, ensure_ascii=False, sort_keys=True).encode("utf-8"),
                                       mtime=0))
    counts: dict[str, int] = {}
    for t in texts.values():
        counts[t["source"]] = counts.get(t["source"], 0) + 1
    print(f"{len(texts)} texts -> {args.out} ({args.out.stat().st_size:,} bytes): {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()
