"""Index-selected input vs a full read, on the real WARCs of tests/data/warc, and the CLD2 margin.

1. The margin: on every real page we have (bench/cld2_pages.py: 374 pages), CLD2 run as Common Crawl runs it
   against our trafilatura + lid.176 decision. For each language our pipeline keeps (score > 0.65), how many
   pages a selection by the index's languages would miss: looking at CLD2's main language only, or at any of
   the (up to 3) languages it lists. The emulation is checked against CC's own `languages-cld2` metadata where
   the WARC has it.
2. The real WARCs: an index of each file (CC's own languages where its metadata has them, else the CLD2
   emulation), the FineWeb recipe's selection, the selected records fetched by ranged reads from a server on
   127.0.0.1, then the extract stage; against the extract stage on the whole file: records skipped, bytes
   and requests, kept documents lost (and gained: trafilatura's per-file duplicate cache sees fewer pages),
   CPU seconds of each side.

    python bench/bench_index_select.py          # needs pycld2 (pip install -e .[bench])
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa  # noqa: E402

from bench.cld2_pages import cld2_codes, our_decisions, real_pages  # noqa: E402
from bench.common import OUT, ROOT, measured  # noqa: E402

WARCS = sorted(p for p in (ROOT / "tests" / "data" / "warc").glob("*.warc.gz") if ".wet." not in p.name
               and ".wat." not in p.name)


def margin(pages: list[dict], decisions: list[dict]) -> dict:
    from crawlproc.crawl.cclang import index_codes

    out = {}
    for p, d in zip(pages, decisions):
        lang = d["language"]
        if not lang or d["score"] <= 0.65:
            continue
        codes = index_codes([lang])
        e = out.setdefault(lang, {"pages": 0, "kept": 0, "lost_any": 0, "lost_main": 0, "lost_kept_any": 0,
                                  "lost_kept_main": 0, "no_language": 0})
        e["pages"] += 1
        e["kept"] += d["passed"]
        cld2 = p["cld2"]
        if not cld2:
            e["no_language"] += 1
            continue
        if codes is None:
            continue
        miss_any, miss_main = not set(cld2) & codes, cld2[0] not in codes
        e["lost_any"] += miss_any
        e["lost_main"] += miss_main
        e["lost_kept_any"] += miss_any and d["passed"]
        e["lost_kept_main"] += miss_main and d["passed"]
    return out


def run_file(path: Path, cld2_by_url: dict, recipe, srv, tmp: Path) -> dict:
    import pyarrow.parquet as pq

    from crawlproc.crawl.ccindex import REASONS, plan_ranges, rule_for, select_table
    from crawlproc.crawl.ranged import fetch_records
    from crawlproc.extract.file import process_warc
    from crawlproc.extract.urlfilter import UrlFilter
    from pipelines.demo.minicc import index_rows

    rows = index_rows(path, path.name, languages=lambda u: ",".join(cld2_by_url.get(u) or []) or None)
    table = pa.Table.from_pylist(rows) if rows else None
    full: dict = {}
    with measured(full):
        st = process_warc(path, tmp / "full", recipe, dump="bench", stem=path.stem)
    kept_full = {r["id"]: r["text"] for r in pq.read_table(tmp / "full" / "bench" / "docs" / f"{path.stem}.parquet",
                                                           columns=["id", "text"]).to_pylist()}
    idx: dict = {"reasons": {}}
    with measured(idx):
        uf = UrlFilter(recipe.url_filter)
        if table is not None:
            sel, counts = select_table(table, rule_for(recipe), lambda u: not uf.check(u))
            for reason, n in zip(counts["reason"].to_pylist(), counts["n"].to_pylist()):
                idx["reasons"][reason] = idx["reasons"].get(reason, 0) + n
            records = list(zip(sel["offset"].to_pylist(), sel["length"].to_pylist()))
        else:
            records = []
        ranges = plan_ranges(records, recipe.fetch.max_gap_bytes, recipe.fetch.max_range_bytes)
        got = fetch_records(f"{srv.base_url}/{path.name}", ranges, tmp / "sel.warc.gz", recipe.download)
        process_warc(tmp / "sel.warc.gz", tmp / "idx", recipe, dump="bench", stem=path.stem, file_path=str(path),
                     offsets=got.offsets)
    kept_idx = {r["id"]: r["text"] for r in pq.read_table(tmp / "idx" / "bench" / "docs" / f"{path.stem}.parquet",
                                                          columns=["id", "text"]).to_pylist()}
    assert set(idx["reasons"]) <= set(REASONS)
    return {"file": path.name, "bytes": path.stat().st_size, "responses": st["responses"], "index_rows": len(rows),
            "selected": len(records), "skipped": {k: v for k, v in idx["reasons"].items() if k != "selected"},
            "requests": got.requests, "bytes_fetched": got.bytes, "record_bytes": got.record_bytes, "kept_full": len(kept_full),
            "kept_index": len(kept_idx), "lost": len(set(kept_full) - set(kept_idx)),
            "gained": len(set(kept_idx) - set(kept_full)),
            "same_text": sum(kept_full[i] == kept_idx[i] for i in set(kept_full) & set(kept_idx)),
            "cpu_full_s": round(full["cpu_s"], 3), "cpu_index_s": round(idx["cpu_s"], 3),
            "full_seconds": st["seconds"], "html_responses": st["steps"].get("url_filter", {}).get("in", 0),
            "index_bytes": sum(len(str(v)) for r in rows for v in r.values()),
            "kept_text_bytes": sum(len(t.encode()) for t in kept_full.values())}


def main() -> int:
    from crawlproc.recipe import load_recipe
    from pipelines.demo.minicc import MiniCCServer

    pages = real_pages()
    for p in pages:
        p["cld2"] = cld2_codes(p["html"], p["url"], p["content_language"])
    check = [(p["cld2"], p["cc_languages"]) for p in pages if p["cc_languages"] is not None]
    decisions = our_decisions(pages)
    table = margin(pages, decisions)
    print(f"CLD2 emulation vs CC's own languages-cld2 ({len(check)} real CC records): main language "
          f"{sum(a[:1] == b[:1] for a, b in check)}/{len(check)}, whole list {sum(a == b for a, b in check)}/{len(check)}")
    print(f"\n{len(pages)} real pages; per lid.176 language (score > 0.65): pages a selection by the index would miss")
    print(f"{'lang':6} {'pages':>5} {'kept':>5} {'miss(main)':>10} {'miss(any)':>9} {'kept miss(main)':>15} "
          f"{'kept miss(any)':>14} {'no CLD2 lang':>12}")
    for lang, e in sorted(table.items(), key=lambda kv: -kv[1]["pages"]):
        print(f"{lang:6} {e['pages']:5} {e['kept']:5} {e['lost_main']:10} {e['lost_any']:9} {e['lost_kept_main']:15} "
              f"{e['lost_kept_any']:14} {e['no_language']:12}")

    recipe = load_recipe(None, {"fetch": {"mode": "index"}})
    cld2_by_url = {p["url"]: p["cld2"] for p in pages}
    results = []
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "srv"
        root.mkdir()
        for w in WARCS:
            shutil.copy(w, root / w.name)
        with MiniCCServer(root) as srv:
            for w in WARCS:
                tmp = Path(d) / w.stem
                tmp.mkdir()
                results.append(run_file(w, cld2_by_url, recipe, srv, tmp))
    print("\nreal WARCs, FineWeb recipe (en): full read vs index-selected ranged reads")
    print(f"{'file':44} {'resp':>4} {'sel':>4} {'skipped (reason: n)':34} {'req':>4} {'fetched/file':>13} "
          f"{'kept full':>9} {'kept idx':>8} {'lost':>4} {'gained':>6} {'cpu full':>8} {'cpu idx':>7}")
    tot = Counter()
    for r in results:
        sk = ", ".join(f"{k.split(':')[1]}: {v}" for k, v in sorted(r["skipped"].items()) if v)
        print(f"{r['file'][:44]:44} {r['responses']:4} {r['selected']:4} {sk[:34]:34} {r['requests']:4} "
              f"{r['bytes_fetched']:>6}/{r['bytes']:<6} {r['kept_full']:9} {r['kept_index']:8} {r['lost']:4} "
              f"{r['gained']:6} {r['cpu_full_s']:8.2f} {r['cpu_index_s']:7.2f}")
        for k in ("responses", "index_rows", "selected", "requests", "bytes_fetched", "bytes", "kept_full",
                  "kept_index", "lost", "gained", "cpu_full_s", "cpu_index_s"):
            tot[k] += r[k]
    print(f"total: {tot['index_rows']} index rows, {tot['selected']} selected "
          f"({tot['index_rows'] - tot['selected']} skipped, {1 - tot['selected'] / max(tot['index_rows'], 1):.1%}); "
          f"{tot['requests']} requests, {tot['bytes_fetched']:,} of {tot['bytes']:,} bytes "
          f"({tot['bytes_fetched'] / tot['bytes']:.1%}); kept {tot['kept_full']} full vs {tot['kept_index']} index "
          f"(lost {tot['lost']}, gained {tot['gained']}); CPU {tot['cpu_full_s']:.2f} s vs {tot['cpu_index_s']:.2f} s")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "index_select.json").write_text(json.dumps({"margin": table, "files": results, "total": tot}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
