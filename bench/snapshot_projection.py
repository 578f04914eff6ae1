"""Core-hours, requests and bytes for one Common Crawl snapshot, per input mode (full WARC, index-selected, WET)
and recipe (English FineWeb, all languages), from measured per-file figures.

Measured (read from bench/out/index_select.json, written by bench/bench_index_select.py on the real WARCs of
tests/data/warc): CPU seconds per HTML response of the extract stage reading whole files; the share of the
extract stage's time that is HTML extraction (the part WET input does not pay); requests per selected record
with the default gap merging; bytes fetched per selected record byte. Everything else is an assumption,
named in `Assumptions` and printed with the result: change it there (or with --set name=value), not in the text.

    python bench/snapshot_projection.py [--set english_share=0.46 --set extract_speedup=1.0]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import OUT  # noqa: E402


@dataclass
class Assumptions:
    warc_files: int = 90_000
    html_responses: float = 3.0e9  # responses of subset=warc that are HTML (CC's own statistics: ~3e9 pages)
    index_rows: float = 3.1e9  # one per capture of subset=warc
    warc_gb_per_file: float = 1.0  # gzipped WARC (CC: ~90 TB per snapshot)
    wet_gb_per_file: float = 0.09  # gzipped WET (CC: ~8 TB per snapshot)
    index_gb: float = 250.0  # the snapshot's subset=warc index table, all columns
    index_columns_share: float = 0.45  # the 8 columns read (url dominates) of the table's bytes
    index_parts: int = 300
    record_gb_share: float = 0.80  # of a WARC's bytes, the response records (the rest: requests, metadata)
    english_share: float = 0.46  # pages CLD2 lists English for (CC's language statistics)
    margin_share: float = 0.02  # more pages selected for English by the margin (no CLD2 language, CLD2 2nd/3rd)
    html_share_of_index: float = 0.97  # rows with HTML and status 200
    kept_share_en: float = 0.40  # of English pages, kept by the FineWeb filters (dedup input)
    kept_share_all: float = 0.30  # all languages
    wet_filter_cost: float = 1.7  # WET text is ~1.7x trafilatura's (menus, navigation: measured on one page)
    dedup_core_s_per_mdoc: float = 75.0  # bench_dedup_million.py --docs 1000000: 74.6 CPU-s per million, every process
    tokenize_core_s_per_mdoc: float = 60.0  # ~500 words per doc, tiktoken-speed encoding
    select_core_s_per_mrow: float = 2.0  # index selection: Parquet decode + filters + URL filter per million rows
    extract_speedup: float = 1.0  # a faster extraction (issue 30's 3x goal) divides the HTML-extraction share


def measured() -> dict:
    d = json.loads((OUT / "index_select.json").read_text())
    files = d["files"]
    html = sum(f["html_responses"] for f in files)
    cpu = sum(f["cpu_full_s"] for f in files)
    wall = {k: sum(f["full_seconds"].get(k, 0.0) for f in files) for k in ("extract", "total")}
    sel = sum(f["selected"] for f in files if f["selected"])
    reqs = sum(f["requests"] for f in files)
    fetched = sum(f["bytes_fetched"] for f in files)
    return {"cpu_s_per_html_response": cpu / max(html, 1), "extraction_share": wall["extract"] / wall["total"],
            "requests_per_selected_record": reqs / max(sel, 1),
            "fetched_bytes_per_record_byte": fetched / max(sum(f["record_bytes"] for f in files), 1),
            "html_responses": html, "files": len(files)}


def project(a: Assumptions, m: dict) -> dict:
    per_doc = m["cpu_s_per_html_response"]
    ext = m["extraction_share"]
    per_doc_fast = per_doc * (1 - ext + ext / a.extract_speedup)
    per_doc_wet = per_doc * (1 - ext) * a.wet_filter_cost
    out = {}
    for recipe, share, kept in (("English FineWeb", a.english_share + a.margin_share, a.kept_share_en),
                                ("all languages", a.html_share_of_index, a.kept_share_all)):
        lang_share = a.english_share if recipe.startswith("English") else 1.0
        for mode in ("full WARC", "index-selected", "WET"):
            docs_in = a.html_responses * (share if mode == "index-selected" else 1.0)
            cost = per_doc_wet if mode == "WET" else per_doc_fast
            core_s = docs_in * cost
            kept_docs = a.html_responses * lang_share * kept
            core_s += kept_docs / 1e6 * (a.dedup_core_s_per_mdoc + a.tokenize_core_s_per_mdoc)
            if mode == "index-selected":
                core_s += a.index_rows / 1e6 * a.select_core_s_per_mrow
                # a read starts wherever the capture before was not selected: with selection share s, placed at
                # random, 1 - s reads per selected record (the real files here are mostly one language, so
                # their measured rate is lower; the larger of the two is used)
                per_rec = max(1 - share, m["requests_per_selected_record"])
                requests = a.index_parts + docs_in * per_rec
                gb = a.index_gb * a.index_columns_share + a.warc_files * a.warc_gb_per_file * a.record_gb_share * \
                    share * m["fetched_bytes_per_record_byte"]
            elif mode == "WET":
                requests, gb = a.warc_files, a.warc_files * a.wet_gb_per_file
            else:
                requests, gb = a.warc_files, a.warc_files * a.warc_gb_per_file
            out[(recipe, mode)] = {"core_hours": core_s / 3600, "requests": requests, "gb": gb,
                                   "docs_extracted": docs_in}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", action="append", default=[], help="an assumption, name=value")
    args = ap.parse_args(argv)
    a = Assumptions()
    types = {f.name: f.type for f in fields(a)}
    for item in args.set:
        k, v = item.split("=", 1)
        setattr(a, k, (int if types[k] in (int, "int") else float)(v))
    m = measured()
    print(f"measured on {m['files']} real WARCs ({m['html_responses']} HTML responses; bench/bench_index_select.py): "
          f"{m['cpu_s_per_html_response'] * 1000:.1f} CPU-ms per HTML response (whole-file read, FineWeb recipe), "
          f"HTML extraction {m['extraction_share']:.0%} of the stage's time, "
          f"{m['requests_per_selected_record']:.2f} ranged requests per selected record, "
          f"{m['fetched_bytes_per_record_byte']:.2f} bytes fetched per selected byte")
    print("assumptions: " + ", ".join(f"{k}={v}" for k, v in asdict(a).items()))
    rows = project(a, m)
    print(f"\n{'recipe':16} {'input mode':15} {'core-hours':>11} {'requests':>14} {'GB read':>10} {'pages extracted':>16}")
    for (recipe, mode), r in rows.items():
        print(f"{recipe:16} {mode:15} {r['core_hours']:11,.0f} {r['requests']:14,.0f} {r['gb']:10,.0f} "
              f"{r['docs_extracted']:16.2e}")
    target = rows[("English FineWeb", "index-selected")]["core_hours"]
    print(f"\nEnglish FineWeb, index-selected: {target:,.0f} core-hours (target <= 5,000: "
          f"{'met' if target <= 5000 else 'missed'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
