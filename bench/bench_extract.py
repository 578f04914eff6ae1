"""The extract stage against datatrove's FineWeb stage 1, on the same WARC, in one run.

    python bench/bench_extract.py                       # 1000 captures: a few minutes on 2 cores
    python bench/bench_extract.py --records 5000        # bigger
    python bench/bench_extract.py --warc my.warc.gz     # any WARC
    python bench/bench_extract.py --profile             # also cProfile ours: where the time goes

Ours: `crawlproc.process.process_warc` with the default (FineWeb) recipe, in one process. The peer: datatrove
0.10.1 as in its examples/fineweb.py -- WarcReader -> URLFilter -> Trafilatura(favour_precision) ->
LanguageFilter(en > 0.65) -> GopherRepetition -> GopherQuality -> C4(filter_no_terminal_punct=False) ->
FineWebQuality -> JsonlWriter, each filter with its exclusion writer -- under LocalPipelineExecutor(tasks=1,
workers=1). Neither side downloads anything: the peer's language model is pointed at the local lid.176.ftz and
its tldextract at the bundled suffix-list snapshot.

Each side runs in a fresh interpreter per file: on a 5-capture WARC once untimed (once-per-machine caches),
then timed on it again (the fixed cost: lists, models, spaCy) and on the bench WARC. Throughput is documents
per CPU-second (= per core; CPU time counts the peer's extractor child process too) of the marginal work,
(docs_main - docs_base) / (cpu_main - cpu_base); the "incl. setup" figures do not subtract the fixed cost.
Prints the ratio (ours / peer), the Jaccard agreement of kept ids, a per-stage removal table for both, and the
first ids where they disagree with the stage each side removed them at. JSON summary: bench/out/extract.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import OUT, ROOT, lid_model_path, measured, ratio, run_isolated, write_json

DUMP = "CC-MAIN-BENCH"
STAGES = ["url_filter", "extract", "language", "gopher_repetition", "gopher_quality", "c4", "fineweb_quality"]
FILTER_STAGES = [s for s in STAGES if s != "extract"]  # the peer writes these out with a reason
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


# --------------------------------------------------------------- workers (each in a fresh interpreter)


def our_recipe(engine: str, timeout_s: float):
    from crawlproc.recipe import ExtractConfig, Recipe

    return Recipe(extract=ExtractConfig(engine=engine, timeout_s=timeout_s))


def run_ours(warc: Path, work: Path, engine: str = "trafilatura", timeout_s: float = 1.0) -> dict:
    import pyarrow.parquet as pq

    from crawlproc.process import process_warc
    from crawlproc.storage import Layout, warc_stem

    recipe = our_recipe(engine, timeout_s)
    timing: dict = {}
    with measured(timing):
        stats = process_warc(warc, work, recipe, dump=DUMP)
    layout, stem = Layout(work, DUMP), warc_stem(str(warc))
    kept = pq.read_table(layout.path("docs", stem), columns=["id"]).column("id").to_pylist()
    rem = pq.read_table(
        layout.path("removed", stem), columns=["id", "removed_by", "removed_reason"]
    ).to_pylist()
    return {
        "timing": timing,
        "docs_in": stats["stages"]["url_filter"]["in"] or stats["stages"]["extract"]["in"],
        "kept": kept,
        "removed": {r["id"]: [r["removed_by"], r["removed_reason"]] for r in rem},
        "stats": {k: stats.get(k) for k in ("records", "responses", "skipped", "stages", "seconds", "error")},
    }


def _accept_our_fasttext_binding() -> None:
    """datatrove asks for the distribution `fasttext-numpy2-wheel`; we ship `fasttext-numpy2`, which installs
    the same `fasttext` module (two bindings would overwrite each other's folder): accept that name too."""
    import importlib.metadata

    from datatrove.utils import _import_utils

    original = _import_utils._is_distribution_available

    def available(name: str) -> bool:
        if name == "fasttext-numpy2-wheel":
            try:
                importlib.metadata.version("fasttext-numpy2")
                return True
            except importlib.metadata.PackageNotFoundError:
                pass
        return original(name)

    _import_utils._is_distribution_available = available


def build_peer_pipeline(warc: Path, work: Path, seen: list, timeout_s: float = 1.0) -> list:
    _accept_our_fasttext_binding()
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
        URLFilter,
    )
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers.jsonl import JsonlWriter
    from datatrove.utils.lid import FT176LID
    from tldextract import TLDExtract

    class LocalFT176(FT176LID):
        """lid.176 from the local .ftz instead of a download of lid.176.bin."""

        @property
        def model(self):
            if self._model is None:
                from fasttext.FastText import _FastText

                self._model = _FastText(str(lid_model_path()))
            return self._model

    def tap(data, rank: int = 0, world_size: int = 1):  # records what the reader produced (the peer's input)
        for doc in data:
            seen.append(doc.id)
            yield doc

    def removed(stage: str):
        return JsonlWriter(str(work / "removed" / stage))

    url_filter = URLFilter(exclusion_writer=removed("url_filter"))
    url_filter.tldextractor = TLDExtract(suffix_list_urls=())  # the bundled snapshot: no fetch
    language = LanguageFilter(languages=["en"], language_threshold=0.65, exclusion_writer=removed("language"))
    language.model = LocalFT176(["en"])
    return [
        WarcReader(str(warc.parent), glob_pattern=warc.name, default_metadata={"dump": DUMP}),
        tap,
        url_filter,
        Trafilatura(favour_precision=True, timeout=timeout_s),
        language,
        GopherRepetitionFilter(exclusion_writer=removed("gopher_repetition")),
        GopherQualityFilter(exclusion_writer=removed("gopher_quality")),
        C4QualityFilter(filter_no_terminal_punct=False, exclusion_writer=removed("c4")),
        FineWebQualityFilter(exclusion_writer=removed("fineweb_quality")),
        JsonlWriter(str(work / "output")),
    ]


def _read_jsonl_dir(folder: Path):
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)


def run_peer(warc: Path, work: Path, engine: str = "trafilatura", timeout_s: float = 1.0) -> dict:
    from datatrove.executor import LocalPipelineExecutor

    seen: list[str] = []
    executor = LocalPipelineExecutor(
        build_peer_pipeline(warc, work, seen, timeout_s), tasks=1, workers=1, logging_dir=str(work / "logs")
    )
    timing: dict = {}
    with measured(timing):
        executor.run()
    kept = [d["id"] for d in _read_jsonl_dir(work / "output")]
    removed = {}
    for stage in FILTER_STAGES:
        for d in _read_jsonl_dir(work / "removed" / stage):
            removed[d["id"]] = [stage, (d.get("metadata") or {}).get("filter_reason")]
    reached = set(kept) | set(removed)
    for doc_id in seen:  # the extractor drops empty results and timeouts without writing them
        if doc_id not in reached:
            removed[doc_id] = ["extract", "empty_or_timeout"]
    step_seconds = {}  # datatrove's own per-step wall time (includes each step's setup)
    for step in json.loads((work / "logs" / "stats" / "00000.json").read_text()):
        label = step["name"].split(":")[-1].strip().split(" ", 1)[-1]
        step_seconds[label] = round(step["time_stats"]["total"], 3)
    return {
        "timing": timing,
        "docs_in": len(seen),
        "kept": kept,
        "removed": removed,
        "stats": {"seconds": step_seconds},
    }


# --------------------------------------------------------------- the comparison (parent process)


def side(name: str, warc: Path, work: Path, logs: Path, opts: list[str]) -> dict:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    result = work / "result.json"
    return run_isolated(
        [__file__, "--worker", name, "--warc", str(warc), "--work", str(work), *opts, str(result)],
        logs / f"{name}-{warc.stem.split('.')[0]}.log",
        env=OFFLINE_ENV,
    )


def throughput(base: dict, main: dict) -> dict:
    docs = main["docs_in"] - base["docs_in"]
    # the fixed cost measured on the small file; a noisy one larger than the main run's would inflate the rate
    cpu = max(main["timing"]["cpu_s"] - base["timing"]["cpu_s"], main["timing"]["cpu_s"] * 0.05)
    wall = max(main["timing"]["wall_s"] - base["timing"]["wall_s"], main["timing"]["wall_s"] * 0.05)
    return {
        "docs": main["docs_in"],
        "kept": len(main["kept"]),
        "setup_cpu_s": round(base["timing"]["cpu_s"], 2),
        "cpu_s": round(main["timing"]["cpu_s"], 2),
        "wall_s": round(main["timing"]["wall_s"], 2),
        "docs_per_cpu_s": round(docs / cpu, 2),
        "docs_per_wall_s": round(docs / wall, 2),
        "cold_docs_per_cpu_s": round(main["docs_in"] / main["timing"]["cpu_s"], 2),
        "ms_per_doc_cpu": round(1000 * cpu / max(docs, 1), 2),
    }


def stage_of(res: dict, doc_id: str) -> list:
    if doc_id in res["removed"]:
        return res["removed"][doc_id]
    return ["kept", None] if doc_id in res["kept_set"] else ["not_read", None]


def compare(ours: dict, peer: dict, show: int) -> dict:
    for r in (ours, peer):
        r["kept_set"] = set(r["kept"])
    a, b = ours["kept_set"], peer["kept_set"]
    jaccard = len(a & b) / len(a | b) if a | b else 1.0
    table = {}
    for stage in STAGES:
        table[stage] = {
            "ours": sum(1 for v in ours["removed"].values() if v[0] == stage),
            "peer": sum(1 for v in peer["removed"].values() if v[0] == stage),
        }
    table["kept"] = {"ours": len(a), "peer": len(b)}
    disagree = [{"id": i, "ours": stage_of(ours, i), "peer": stage_of(peer, i)} for i in sorted(a ^ b)]
    pairs = Counter(f"{d['ours'][0]} vs {d['peer'][0]}" for d in disagree)
    return {
        "jaccard": round(jaccard, 4),
        "kept_both": len(a & b),
        "only_ours": len(a - b),
        "only_peer": len(b - a),
        "stages": table,
        "disagreement_kinds": dict(pairs.most_common()),
        "disagreements": disagree[:show],
    }


def print_report(summary: dict) -> None:
    o, p = summary["ours"], summary["peer"]
    print(f"\nWARC {summary['warc']}: {o['docs']} HTML documents in (peer read {p['docs']})")
    print(f"{'':24}{'ours':>12}{'datatrove':>12}")
    for key, label in [
        ("docs_per_cpu_s", "docs/s per core"),
        ("ms_per_doc_cpu", "ms per doc (CPU)"),
        ("docs_per_wall_s", "docs/s (wall)"),
        ("cold_docs_per_cpu_s", "docs/s incl. setup"),
        ("setup_cpu_s", "setup CPU s"),
        ("cpu_s", "CPU s (main run)"),
    ]:
        print(f"{label:24}{o[key]:>12}{p[key]:>12}")
    print(
        f"RATIO (ours / datatrove, docs/s per core): {summary['ratio']}   (wall: {summary['ratio_wall']}, "
        f"incl. setup: {summary['ratio_cold']})"
    )
    c = summary["agreement"]
    print(
        f"AGREEMENT (Jaccard of kept ids): {c['jaccard']}  kept by both {c['kept_both']}, only ours "
        f"{c['only_ours']}, only datatrove {c['only_peer']}"
    )
    print(f"\n{'removed at stage':24}{'ours':>12}{'datatrove':>12}")
    for stage, row in c["stages"].items():
        print(f"{stage:24}{row['ours']:>12}{row['peer']:>12}")
    if c["disagreement_kinds"]:
        print(
            "\ndisagreements (ours vs datatrove):",
            ", ".join(f"{k}: {n}" for k, n in c["disagreement_kinds"].items()),
        )
        for d in c["disagreements"]:
            print(
                f"  {d['id']}  ours={d['ours'][0]}({d['ours'][1]})  datatrove={d['peer'][0]}({d['peer'][1]})"
            )


def profile_ours(warc: Path, work: Path, top: int, recipe) -> list:
    """cProfile one run of ours in this process; returns the top functions by own time."""
    import cProfile
    import pstats

    from crawlproc.process import process_warc

    if work.exists():
        shutil.rmtree(work)
    prof = cProfile.Profile(time.process_time)  # CPU time: a busy machine does not inflate the figures
    prof.enable()
    process_warc(warc, work, recipe, dump=DUMP)
    prof.disable()
    prof.dump_stats(str(OUT / "extract-ours.prof"))
    st = pstats.Stats(prof)
    total = st.total_tt
    rows = []
    for (file, line, fn), (_cc, nc, tt, ct, _callers) in st.stats.items():
        rows.append(
            {
                "function": f"{os.path.relpath(file, ROOT) if file.startswith(str(ROOT)) else file}:"
                f"{line}({fn})",
                "calls": nc,
                "own_s": round(tt, 3),
                "cum_s": round(ct, 3),
                "own_pct": round(100 * tt / total, 1),
            }
        )
    rows.sort(key=lambda r: -r["own_s"])
    print(
        f"\ncProfile of ours (total {total:.1f} s; full dump bench/out/extract-ours.prof), top by own time:"
    )
    for r in rows[:top]:
        print(f"  {r['own_pct']:5.1f}% {r['own_s']:8.2f}s {r['calls']:>9}  {r['function'][-90:]}")
    return rows[:top]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warc", type=Path, help="the WARC to run (default: generate one with make_warc.py)")
    ap.add_argument("--records", type=int, default=1000, help="captures in the generated WARC")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=10, help="disagreeing ids to print")
    ap.add_argument("--profile", action="store_true", help="also cProfile ours (one more run of ours)")
    ap.add_argument("--side", choices=["both", "ours", "datatrove"], default="both")
    ap.add_argument(
        "--engine",
        choices=["trafilatura", "resiliparse"],
        default="trafilatura",
        help="our extraction engine (the peer always runs trafilatura)",
    )
    ap.add_argument(
        "--extract-timeout",
        type=float,
        default=1.0,
        help="per-document extraction limit for both sides, wall-clock seconds (FineWeb: 1); "
        "raise it on a busy machine, where a 1 s limit cuts pages at random",
    )
    ap.add_argument("--worker", choices=["ours", "datatrove"], help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("result", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:  # one side, in this fresh interpreter
        res = (run_ours if args.worker == "ours" else run_peer)(
            args.warc.resolve(), args.work.resolve(), args.engine, args.extract_timeout
        )
        write_json(args.result, res)
        return 0

    from make_warc import generate

    warc = args.warc or OUT / f"cc-bench-{args.records}-s{args.seed}.warc.gz"
    if not warc.is_file():
        print(f"generating {warc} ({args.records} captures, seed {args.seed})")
        generate(warc, args.records, args.seed)
    base_warc = OUT / "cc-bench-base.warc.gz"  # 5 captures: measures each side's fixed cost
    if not base_warc.is_file():
        generate(base_warc, 5, 1)
    work, logs = OUT / "extract-work", OUT / "logs"
    summary: dict = {
        "warc": str(warc),
        "dump": DUMP,
        "engine": args.engine,
        "extract_timeout_s": args.extract_timeout,
    }
    opts = ["--engine", args.engine, "--extract-timeout", str(args.extract_timeout)]
    results = {}
    for name in ["ours", "datatrove"] if args.side == "both" else [args.side]:
        print(f"running {name} ...", flush=True)
        side(name, base_warc, work / f"{name}-warmup", logs, opts)  # once-per-machine caches (block lists)
        base = side(name, base_warc, work / f"{name}-base", logs, opts)
        main_run = side(name, warc, work / name, logs, opts)
        results[name] = main_run
        summary["ours" if name == "ours" else "peer"] = throughput(base, main_run)
        print(f"  {name}: {json.dumps(summary['ours' if name == 'ours' else 'peer'])}", flush=True)
    if args.side == "both":
        o, p = summary["ours"], summary["peer"]
        summary["ratio"] = ratio(o["docs_per_cpu_s"], p["docs_per_cpu_s"])
        summary["ratio_wall"] = ratio(o["docs_per_wall_s"], p["docs_per_wall_s"])
        summary["ratio_cold"] = ratio(o["cold_docs_per_cpu_s"], p["cold_docs_per_cpu_s"])
        summary["agreement"] = compare(results["ours"], results["datatrove"], args.show)
        summary["ours"]["stage_seconds"] = results["ours"]["stats"]["seconds"]
        summary["ours"]["skipped"] = results["ours"]["stats"]["skipped"]
        summary["peer"]["stage_seconds"] = results["datatrove"]["stats"]["seconds"]
        summary["target"] = {
            "ratio": 1.0,
            "jaccard": 0.95,
            "met": bool(
                summary["ratio"] and summary["ratio"] >= 1.0 and summary["agreement"]["jaccard"] >= 0.95
            ),
        }
        print_report(summary)
    if args.profile:
        summary["profile_ours"] = profile_ours(
            warc, work / "ours-profile", 30, our_recipe(args.engine, args.extract_timeout)
        )
    write_json(OUT / "extract.json", summary)
    print(f"\nsummary: {OUT / 'extract.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
