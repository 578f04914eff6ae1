"""What `crawlproc refilter` saves: re-applying a changed filter threshold to the stored extraction against
extracting the same WARCs again with the new recipe (what --force does), per CPU-second, in one process.

Input: real WARCs (tests/data/warc: the dolma and cmoncrawl samples), and, with --multi, a WARC of the real
multilingual pages of tests/data/html_multilingual (the pre-check removes most of them). Both sides end with
the same docs/ and removed/ (checked here, as tests/test_refilter.py does); the download is not counted on the
extract side (a cached WARC), so the real saving on a crawl is larger.

    python bench/bench_refilter.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from crawlproc.extract.file import extract_fingerprint, process_warc  # noqa: E402
from crawlproc.extract.refilter import refilter_file  # noqa: E402
from crawlproc.recipe import recipe_from_dict  # noqa: E402
from crawlproc.store.fingerprint import file_fingerprint  # noqa: E402
from crawlproc.store.layout import Layout, warc_stem  # noqa: E402

DATA = ROOT / "tests" / "data"
BASE = {"extract": {"timeout_s": 60.0}, "language": {"precheck": True}}  # fineweb-fast: some removals by the pre-check
CHANGED = {**BASE, "gopher_quality": {"min_doc_words": 150}, "c4": {"min_words_per_line": 5}}


def inputs(tmp: Path) -> list[Path]:
    from crawlproc.warc.charset import decode_html
    from warcs import response_record

    files = [p for p in sorted((DATA / "warc").glob("*.warc.gz")) if "dolma" in p.name or "cmoncrawl" in p.name]
    multi = tmp / "multi.warc.gz"
    with open(multi, "wb") as f:
        for i, p in enumerate(sorted((DATA / "html_multilingual").glob("*.gz"))):
            html = decode_html(gzip.decompress(p.read_bytes()), None)[0]
            f.write(gzip.compress(response_record(f"https://site{i}.example.org/p", html.encode(),
                                                  f"<urn:uuid:00000000-0000-4000-8000-{i:012d}>"), mtime=0))
    return [*files, multi]


def extract_all(warcs: list[Path], out: Path, recipe) -> float:
    t = time.process_time()
    for w in warcs:
        stats = process_warc(w, out, recipe, dump="S")
        snap = Layout(str(out)).snapshot("S")
        fp = extract_fingerprint(recipe) + file_fingerprint(snap.storage, str(w))[:8]
        snap.markers.mark_done(warc_stem(str(w)), fp, {"stats": stats, "source": str(w)})
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    old, new = recipe_from_dict(BASE), recipe_from_dict(CHANGED)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        warcs = inputs(tmp)
        extract_all(warcs, tmp / "warm", old)  # models and lists loaded once, as in a worker
        ours, theirs = [], []
        for r in range(args.rounds):
            base = tmp / f"a{r}"
            extract_all(warcs, base, old)
            layout, new8 = Layout(str(base)), extract_fingerprint(new)
            t = time.process_time()
            for stem, fp in sorted(layout.snapshot("S").markers.done().items()):
                refilter_file(stem, fp, new8 + fp[8:], layout, new, "S")
            ours.append(time.process_time() - t)
            theirs.append(extract_all(warcs, tmp / f"b{r}", new))
            for w in warcs:  # the same outputs on both sides
                stem = warc_stem(str(w))
                for kind in ("docs", "removed"):
                    a = pq.read_table(Layout(str(base)).snapshot("S").path(kind, stem)).sort_by("id")
                    b = pq.read_table(Layout(str(tmp / f"b{r}")).snapshot("S").path(kind, stem)).sort_by("id")
                    assert a.equals(b), (stem, kind)
        docs = sum(pq.read_metadata(p).num_rows for kind in ("docs", "removed")
                   for p in (tmp / "b0" / "S" / kind).glob("*.parquet"))
        print(f"input: {len(warcs)} real WARCs, {docs} documents (real pages)")
        for r, (a, b) in enumerate(zip(ours, theirs)):
            print(f"round {r}: refilter {a:.2f} CPU-s, extract again {b:.2f} CPU-s, ratio {b / a:.1f}x")
        best_a, best_b = min(ours), min(theirs)
        print(f"refilter is {best_b / best_a:.1f}x faster than extracting again per CPU-second (best of "
              f"{args.rounds}; same docs/ and removed/ on both sides; no download counted)")


if __name__ == "__main__":
    main()
