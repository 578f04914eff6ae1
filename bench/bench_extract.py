"""The extract stage against datatrove's FineWeb stage 1, on the same WARC, in one run.

    python bench/bench_extract.py                       # 1000 captures in Common Crawl's language mix, 3 rounds
    python bench/bench_extract.py --mix en              # the English-heavy WARC (~90% English pages)
    python bench/bench_extract.py --warc my.warc.gz     # any WARC
    python bench/bench_extract.py --rounds 1            # quicker, noisier
    python bench/bench_extract.py --profile             # also cProfile ours: where the time goes

What runs, on the same WARC file:
- **ours**: `crawlproc.extract.file.process_warc` with the default (FineWeb) recipe, in one process: our WARC reader
  -> URL filter (UT1 lists + FineWeb's word lists) -> language pre-check (resiliparse main text + lid.176; it
  removes a page without extracting it only when that text is confidently in a language the recipe does not
  keep, see crawlproc/extract/precheck.py) -> trafilatura (favour precision, tables kept) -> lid.176 (en > 0.65) ->
  Gopher repetition -> Gopher quality -> C4 -> FineWeb quality, writing docs/ and removed/ Parquet.
- **ours, no pre-check**: the same with `language.precheck = false`: every page is extracted. It gives the
  agreement the pre-check costs (Jaccard of the two kept sets) and the ratio without it.
- **datatrove 0.10.1**, as its examples/fineweb.py: WarcReader -> URLFilter -> Trafilatura(favour_precision)
  -> LanguageFilter(en > 0.65) -> GopherRepetition -> GopherQuality -> C4(filter_no_terminal_punct=False) ->
  FineWebQuality -> JsonlWriter, each filter with its exclusion writer, under LocalPipelineExecutor(tasks=1,
  workers=1). It extracts every page that passes the URL filter.
Both sides read the same records, apply the same FineWeb thresholds and write every kept and removed document.
Neither side downloads anything: the peer's language model is pointed at the local lid.176.ftz and its
tldextract at the bundled suffix-list snapshot.

How it is measured: every run is a fresh interpreter. Each side first runs once untimed on a 5-capture WARC
(once-per-machine caches), then, in each round, timed on that small WARC (its fixed cost: lists, models, spaCy)
and on the bench WARC; rounds interleave the sides (the order alternates) so that a change of machine load
hits all of them. Throughput is documents per CPU-second (user + system, the peer's extractor child process
included) of the marginal work, (docs_main - docs_base) / (cpu_main - cpu_base); "incl. setup" does not
subtract the fixed cost; "wall" figures are wall-clock. RATIO = ours / datatrove (> 1: ours is faster), the
median over rounds, with each round's ratio and the load average. AGREEMENT: Jaccard index of the kept record
ids (WARC-Record-ID), with a per-stage removal table and the first disagreeing ids. JSON: bench/out/extract.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
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


def our_recipe(engine: str, timeout_s: float, precheck: bool = True):
    from crawlproc.recipe import ExtractConfig, Recipe

    recipe = Recipe(extract=ExtractConfig(engine=engine, timeout_s=timeout_s))
    recipe.language.precheck = precheck
    return recipe


def run_ours(warc: Path, work: Path, engine: str = "trafilatura", timeout_s: float = 1.0,
             precheck: bool = True) -> dict:
    import pyarrow.parquet as pq

    from crawlproc.extract.file import process_warc
    from crawlproc.store.layout import Layout, warc_stem

    recipe = our_recipe(engine, timeout_s, precheck)
    timing: dict = {}
    with measured(timing):
        stats = process_warc(warc, work, recipe, dump=DUMP)
    layout, stem = Layout(str(work)).snapshot(DUMP), warc_stem(str(warc))
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


SIDES = {  # worker name -> (label in the report, run function, keyword arguments)
    "ours": ("ours", "run_ours", {}),
    "ours-noprecheck": ("ours, no pre-check", "run_ours", {"precheck": False}),
    "datatrove": ("datatrove", "run_peer", {}),
}


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


def jaccard(a: set, b: set) -> float:
    return round(len(a & b) / len(a | b), 4) if a | b else 1.0


def compare(ours: dict, peer: dict, show: int) -> dict:
    for r in (ours, peer):
        r["kept_set"] = set(r["kept"])
    a, b = ours["kept_set"], peer["kept_set"]
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
        "jaccard": jaccard(a, b),
        "kept_both": len(a & b),
        "only_ours": len(a - b),
        "only_peer": len(b - a),
        "stages": table,
        "disagreement_kinds": dict(pairs.most_common()),
        "disagreements": disagree[:show],
    }


def print_report(summary: dict) -> None:
    labels = {k: SIDES[k][0] for k in summary["sides"]}
    rows = summary["throughput"]
    print(f"\nWARC {summary['warc']}: {rows['ours']['docs']} HTML documents in "
          f"(datatrove read {rows['datatrove']['docs']}); {len(summary['rounds'])} round(s), medians below")
    print(f"{'':24}" + "".join(f"{labels[k]:>20}" for k in summary["sides"]))
    for key, label in [
        ("docs_per_cpu_s", "docs per CPU-second"),
        ("ms_per_doc_cpu", "CPU ms per doc"),
        ("docs_per_wall_s", "docs/s (wall)"),
        ("cold_docs_per_cpu_s", "docs/CPU-s incl. setup"),
        ("setup_cpu_s", "setup CPU s"),
        ("cpu_s", "CPU s (bench WARC)"),
    ]:
        print(f"{label:24}" + "".join(f"{rows[k][key]:>20}" for k in summary["sides"]))
    r = summary["ratio"]
    print(f"RATIO ours / datatrove, docs per CPU-second: {r['median']} (rounds: {r['rounds']}; wall: "
          f"{r['wall_median']}, incl. setup: {r['cold_median']}); load average {summary['load_average']}")
    if "ratio_noprecheck" in summary:
        rn = summary["ratio_noprecheck"]
        print(f"RATIO ours without the pre-check / datatrove: {rn['median']} (rounds: {rn['rounds']})")
    c = summary["agreement"]
    print(f"AGREEMENT ours vs datatrove (Jaccard of kept ids): {c['jaccard']}  kept by both {c['kept_both']}, "
          f"only ours {c['only_ours']}, only datatrove {c['only_peer']}")
    if "precheck_agreement" in summary:
        pa = summary["precheck_agreement"]
        print(f"AGREEMENT ours with vs without the pre-check: {pa['jaccard']}  (only with {pa['only_with']}, "
              f"only without {pa['only_without']}; pre-check removed {pa['removed_by_precheck']} of "
              f"{rows['ours']['docs']} documents)")
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

    from crawlproc.extract.file import process_warc

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


def _median_ratio(rounds: list[dict], side_name: str, key: str) -> float | None:
    values = [ratio(r[side_name][key], r["datatrove"][key]) for r in rounds]
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def _median_row(rounds: list[dict], side_name: str) -> dict:
    """Each throughput field's median over the rounds (counts are the same in every round)."""
    keys = rounds[0][side_name]
    return {k: (statistics.median([r[side_name][k] for r in rounds]) if isinstance(rounds[0][side_name][k], float)
                else rounds[0][side_name][k]) for k in keys}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warc", type=Path, help="the WARC to run (default: generate one with make_warc.py)")
    ap.add_argument("--records", type=int, default=1000, help="captures in the generated WARC")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mix", choices=["cc", "en"], default="cc",
                    help="language mix of the generated WARC: cc (Common Crawl's, default) or en (~90%% English)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per side (the ratio is their median)")
    ap.add_argument("--show", type=int, default=10, help="disagreeing ids to print")
    ap.add_argument("--profile", action="store_true", help="also cProfile ours (one more run of ours)")
    ap.add_argument("--side", choices=["both", "ours", "datatrove"], default="both")
    ap.add_argument("--no-precheck-baseline", action="store_true",
                    help="do not also run ours without the language pre-check (saves a third of the time)")
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
        help="per-document extraction limit for both sides, seconds (FineWeb: 1; ours counts CPU time, "
        "datatrove wall-clock time); raise it on a busy machine, where a 1 s wall limit cuts pages at random",
    )
    ap.add_argument("--worker", choices=list(SIDES), help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("result", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:  # one side, in this fresh interpreter
        _label, fn, kwargs = SIDES[args.worker]
        res = globals()[fn](args.warc.resolve(), args.work.resolve(), args.engine, args.extract_timeout, **kwargs)
        write_json(args.result, res)
        return 0

    from make_warc import generate

    warc = args.warc or OUT / f"cc-bench-{args.mix}-{args.records}-s{args.seed}.warc.gz"
    if not warc.is_file():
        print(f"generating {warc} ({args.records} captures, seed {args.seed}, {args.mix} language mix)")
        generate(warc, args.records, args.seed, mix=args.mix)
    base_warc = OUT / "cc-bench-base.warc.gz"  # 5 captures: measures each side's fixed cost
    if not base_warc.is_file():
        generate(base_warc, 5, 1)
    work, logs = OUT / "extract-work", OUT / "logs"
    if args.side == "both":
        names = ["ours", "datatrove"] + ([] if args.no_precheck_baseline else ["ours-noprecheck"])
    else:
        names = [args.side]
    summary: dict = {
        "warc": str(warc),
        "dump": DUMP,
        "engine": args.engine,
        "extract_timeout_s": args.extract_timeout,
        "sides": names,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    opts = ["--engine", args.engine, "--extract-timeout", str(args.extract_timeout)]
    for name in names:  # once-per-machine caches (block lists), untimed
        side(name, base_warc, work / f"{name}-warmup", logs, opts)
    rounds, results = [], {}
    for k in range(max(1, args.rounds)):
        order = names if k % 2 == 0 else names[::-1]
        row = {}
        for name in order:
            print(f"round {k + 1}: {name} ...", flush=True)
            base = side(name, base_warc, work / f"{name}-base", logs, opts)
            main_run = side(name, warc, work / name, logs, opts)
            results.setdefault(name, main_run)  # the first round's outputs give the agreement
            row[name] = throughput(base, main_run)
            print(f"  {name}: {json.dumps(row[name])}", flush=True)
        rounds.append(row)
    summary["load_average"] += [round(x, 2) for x in os.getloadavg()]
    summary["rounds"] = rounds
    summary["throughput"] = {name: _median_row(rounds, name) for name in names}
    if args.side == "both":
        summary["ratio"] = {
            "median": _median_ratio(rounds, "ours", "docs_per_cpu_s"),
            "rounds": [ratio(r["ours"]["docs_per_cpu_s"], r["datatrove"]["docs_per_cpu_s"]) for r in rounds],
            "wall_median": _median_ratio(rounds, "ours", "docs_per_wall_s"),
            "cold_median": _median_ratio(rounds, "ours", "cold_docs_per_cpu_s"),
        }
        summary["agreement"] = compare(results["ours"], results["datatrove"], args.show)
        if "ours-noprecheck" in names:
            summary["ratio_noprecheck"] = {
                "median": _median_ratio(rounds, "ours-noprecheck", "docs_per_cpu_s"),
                "rounds": [ratio(r["ours-noprecheck"]["docs_per_cpu_s"], r["datatrove"]["docs_per_cpu_s"])
                           for r in rounds],
            }
            with_, without = set(results["ours"]["kept"]), set(results["ours-noprecheck"]["kept"])
            summary["precheck_agreement"] = {
                "jaccard": jaccard(with_, without),
                "only_with": len(with_ - without),
                "only_without": len(without - with_),
                "removed_by_precheck": sum(
                    1 for v in results["ours"]["removed"].values()
                    if v[0] == "language" and (v[1] or "").startswith("precheck:")
                ),
            }
        summary["ours_stage_seconds"] = results["ours"]["stats"]["seconds"]
        summary["ours_skipped"] = results["ours"]["stats"]["skipped"]
        summary["peer_stage_seconds"] = results["datatrove"]["stats"]["seconds"]
        summary["target"] = {
            "ratio": 3.0,
            "jaccard": 0.99,
            "met": bool(summary["ratio"]["median"] and summary["ratio"]["median"] >= 3.0
                        and summary["agreement"]["jaccard"] >= 0.99),
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
