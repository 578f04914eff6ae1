"""Real near-duplicates for the dedup bench: every real page in tests/data in two or three versions that a
crawl really produces, and the score of a dedup run on them.

For each page, its versions (one document each, all in the bench's input):
  main   the page's main text as the extract stage gives it (crawlproc's Extractor: trafilatura, the recipe's
         settings);
  full   the page's whole visible text (resiliparse, main_content=False): the same article with its real
         navigation, cookie notices, related links and footer around it, as a boilerplate-heavy extractor
         or a re-crawl under another template gives it;
  gold   for the ScrapingHub pages, the benchmark's hand-made article text (tests/data/html/ground-truth.json):
         the same article without any boilerplate and with the extractor's slips corrected.
Pages: the 181 ScrapingHub news articles (tests/data/html, English), the 126 pages of
tests/data/html_multilingual (many languages and scripts) and the HTML responses of the real WARC files in
tests/data/warc (Common Crawl and other crawls; several pages of one site share its boilerplate, so they are
real different documents with common text, which is what fools a near-duplicate detector).

Nothing here is generated: a pair of versions of one page is a true near-duplicate pair; two versions of
different pages are not duplicates, even when they share a template. The score says, of the real documents
the dedup dropped, how many were dropped in favour of a version of the same page (precision by page), and,
of the pairs of versions whose exact word 5-gram Jaccard is at least 0.8, how many were merged (recall).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crawlproc.schema import conform

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
PREFIX = "real-"  # document ids of the real corpus: <urn:real-PAGE-VERSION>


def pages() -> list[tuple[str, str, str, str | None]]:
    """(page key, source, html, gold text or None) of every real page in tests/data."""
    out = []
    truth = json.loads((DATA / "html" / "ground-truth.json").read_text(encoding="utf-8"))
    for key, item in sorted(truth.items()):
        html = gzip.decompress((DATA / "html" / "html" / f"{key}.html.gz").read_bytes()).decode("utf-8", "replace")
        out.append((f"sh{key[:12]}", "scrapinghub", html, item["articleBody"]))
    for path in sorted((DATA / "html_multilingual").glob("*.html.gz")):
        html = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
        out.append((f"ml{len(out):04d}", "multilingual", html, None))
    from crawlproc.warc.charset import decode_html  # the extract stage's charset handling
    from crawlproc.warc.reader import ReadCounts, iter_html_records

    for path in sorted((DATA / "warc").glob("*.warc.gz")):
        seen = set()
        for rec in iter_html_records(path, ReadCounts()):
            if rec.url in seen:  # the same URL twice in one crawl: one page
                continue
            seen.add(rec.url)
            out.append((f"wa{len(out):04d}", "warc", decode_html(rec.payload, rec.content_type)[0], None))
    return out


def build(cache: Path) -> list[dict]:
    """The real documents, [{"id", "page", "version", "text"}], built once and kept in `cache` (JSON lines)."""
    if cache.is_file():
        return [json.loads(line) for line in cache.read_text(encoding="utf-8").split("\n") if line]
    from resiliparse.extract.html2text import extract_plain_text

    from crawlproc.extract.html import Extractor

    extractor = Extractor()
    docs = []
    for key, _source, html, gold in pages():
        versions = {"main": extractor.extract(html) or "",
                    "full": extract_plain_text(html, main_content=False, preserve_formatting=True) or ""}
        if gold:
            versions["gold"] = gold
        for version, text in versions.items():
            if len(text.split()) >= 20:  # a version with (almost) no text is not a document
                docs.append({"id": f"<urn:{PREFIX}{key}-{version}>", "page": key, "version": version, "text": text})
        extractor.reset()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return docs


def write(folder: Path, docs: list[dict], dump: str = "BENCH") -> None:
    """The real documents as an input file of the dedup stage (document schema)."""
    folder.mkdir(parents=True, exist_ok=True)
    table = conform(pa.table({"text": [d["text"] for d in docs], "id": [d["id"] for d in docs],
                              "dump": [dump] * len(docs), "url": [f"https://real.example/{d['page']}" for d in docs]}))
    pq.write_table(table, folder / "part-zzzzz-real.parquet", compression="zstd")


def score(dedup_dir: Path, docs: list[dict]) -> dict:
    """Precision by page and by exact Jaccard, recall on pairs of versions with exact Jaccard >= 0.8."""
    from dedup_corpus import _jaccard_pairs, lsh_probability

    by_id = {d["id"]: d for d in docs}
    kept_of = {}
    for f in sorted((dedup_dir / "duplicates").glob("*.parquet")):
        t = pq.read_table(f, columns=["id", "kept_id"])
        for i, k in zip(t.column("id").to_pylist(), t.column("kept_id").to_pylist()):
            if i in by_id:
                kept_of[i] = k
    dropped = sorted(kept_of)
    same_page = [by_id[kept_of[i]]["page"] == by_id[i]["page"] for i in dropped]
    j_drop = _jaccard_pairs([by_id[i]["text"] for i in dropped], [by_id[kept_of[i]]["text"] for i in dropped]) \
        if dropped else np.empty(0)
    wrong = [(i, kept_of[i], float(j)) for i, ok, j in zip(dropped, same_page, j_drop) if not ok]
    # pairs of versions of one page
    groups: dict[str, list[str]] = {}
    for d in docs:
        groups.setdefault(d["page"], []).append(d["id"])
    pairs = [(a, b) for ids in groups.values() for n, a in enumerate(ids) for b in ids[n + 1:]]
    j_pairs = _jaccard_pairs([by_id[a]["text"] for a, _ in pairs], [by_id[b]["text"] for _, b in pairs]) \
        if pairs else np.empty(0)

    def survivor(i):
        return kept_of.get(i, i)

    merged = np.array([survivor(a) == survivor(b) for a, b in pairs], dtype=bool)
    high = j_pairs >= 0.8
    return {
        "documents": len(docs), "pages": len(groups),
        "mean_words": round(float(np.mean([len(d["text"].split()) for d in docs])), 1),
        "dropped": len(dropped),
        "precision_same_page": round(float(np.mean(same_page)), 4) if dropped else None,
        "precision_jaccard_0.5": round(float(np.mean(j_drop >= 0.5)), 4) if dropped else None,
        "dropped_for_another_page": [{"dropped": a, "kept": b, "jaccard": round(j, 3)} for a, b, j in wrong[:10]],
        "pairs": len(pairs), "pairs_jaccard_ge_0.8": int(high.sum()),
        "recall_jaccard_ge_0.8": round(float(merged[high].mean()), 4) if high.any() else None,
        "lsh_theory_jaccard_ge_0.8": round(float(lsh_probability(j_pairs[high]).mean()), 4) if high.any() else None,
        "pairs_jaccard_below_0.8_merged": int((merged & ~high).sum()),
    }
