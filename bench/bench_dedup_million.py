"""The whole dedup (`pipelines.stages.dedup.run_dedup` on a local Ray) on generated documents made from real
text, with near-duplicates planted across Jaccard 0.5-1.0 (bench/dedup_corpus.py says how): time, CPU and
the largest task's peak memory per step, the driver's memory, recall and precision against exact Jaccard;
on a subset, the same dedup by datatrove 0.10.1's four MinHash steps for the ratio; with --project, the cost
of one real Common Crawl snapshot extrapolated from these figures (bench/dedup_projection.py).

    python bench/bench_dedup_million.py                                  # 100,000 documents, peer on 10,000
    python bench/bench_dedup_million.py --docs 1000000 --peer-docs 0
    python bench/bench_dedup_million.py --docs 4000000 --peer-docs 0 --project
    python bench/bench_dedup_million.py --docs 1000000 --peer-docs 0 --compare-single   # distributed vs one task

Ours: recipe defaults (word 5-grams, 14 bands x 8 rows, exact dedup first, PII on; components "auto": one
task up to 8M distinct edges, Large-Star/Small-Star rounds above; --components forces either), --partitions
key and node partitions (default: one per 62,500 documents, at least 16, so that each task's share stays
the same as the input grows), 20,000 documents per input file, --cpus Ray CPUs.
Per step: the number of tasks, their CPU seconds (summed, measured in each task), the largest task's peak
RSS and its growth over the task's start (each task samples its own /proc/self/statm: Ray reuses worker
processes, so process-wide maxima would not tell one task from the next). The driver's RSS is sampled the
same way over the whole run. Wall times on a shared machine are noisy; the load average is printed.
Exit status 1 when precision (share of sampled dropped documents whose exact Jaccard with the kept one is
>= 0.5) is below 0.95, or when a recall band with 200 or more pairs is more than 0.1 below the LSH theory.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
OUT = ROOT / "bench" / "out"

from dedup_corpus import Bigrams, generate, score  # noqa: E402
from dedup_projection import project  # noqa: E402

from crawlproc.recipe import Recipe  # noqa: E402


def run_ours(inp: Path, out: Path, partitions: int, cpus: int, components: str,
             signatures_from: Path | None = None) -> dict:
    import ray

    from pipelines.stages.dedup import run_dedup

    recipe = Recipe()
    recipe.dedup.num_partitions = partitions
    recipe.dedup.components = components
    shutil.rmtree(out, ignore_errors=True)
    if signatures_from:  # current signatures (same docs bytes, same settings) are reused, not recomputed
        shutil.copytree(signatures_from, out / "BENCH" / "signatures")
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, object_store_memory=300 * 1024 * 1024, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    t1 = time.perf_counter()
    summary = run_dedup(out, "BENCH", recipe, input_dir=inp, log=lambda m: print("  " + m, flush=True))
    t2 = time.perf_counter()
    ray.shutdown()
    return {"ray_start_s": t1 - t0, "dedup_s": t2 - t1, "summary": summary}


def run_datatrove(inp: Path, work: Path) -> dict:
    """datatrove's MinHash dedup (FineWeb's settings) on the same files, its four steps in sequence, in this
    process (workers=1, so that the hash function patch below applies)."""
    import xxhash
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    shutil.rmtree(work, ignore_errors=True)
    cfg = MinhashConfig()
    sig_step = MinhashDedupSignature(output_folder=str(work / "sigs"), config=cfg)
    # datatrove 0.10.1 hashes str with xxh64_intdigest, which xxhash >= 3.5 refuses: give it the bytes
    sig_step._hash_func = lambda s: xxhash.xxh64_intdigest(s.encode("utf-8"))
    files = len(list(inp.glob("*.parquet")))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # datatrove logs each task's stats to stderr: keep them in a file, the bench's output stays readable
    with open(work / "datatrove.log", "w") as log, contextlib.redirect_stderr(log):
        LocalPipelineExecutor([ParquetReader(str(inp)), sig_step], tasks=files, workers=1,
                              logging_dir=str(work / "logs1")).run()
        LocalPipelineExecutor([MinhashDedupBuckets(input_folder=str(work / "sigs"),
                                                   output_folder=str(work / "buckets"), config=cfg)],
                              tasks=cfg.num_buckets, workers=1, logging_dir=str(work / "logs2")).run()
        LocalPipelineExecutor([MinhashDedupCluster(input_folder=str(work / "buckets"),
                                                   output_folder=str(work / "remove_ids"), config=cfg)],
                              tasks=1, logging_dir=str(work / "logs3")).run()
        LocalPipelineExecutor([ParquetReader(str(inp)),
                               MinhashDedupFilter(input_folder=str(work / "remove_ids")),
                               ParquetWriter(str(work / "final"))],
                              tasks=files, workers=1, logging_dir=str(work / "logs4")).run()
    return {"dedup_s": time.perf_counter() - t0}


def same_bytes(a: Path, b: Path) -> tuple[int, list[str]]:
    """(files compared, those that differ) over dedup/clusters, dedup/duplicates and final of two runs."""
    n, differ = 0, []
    for sub in ("dedup/clusters", "dedup/duplicates", "final"):
        names = sorted(p.name for p in (a / sub).glob("*.parquet"))
        if names != sorted(p.name for p in (b / sub).glob("*.parquet")):
            differ.append(f"{sub}: other file names")
        for name in names:
            n += 1
            if (a / sub / name).read_bytes() != ((b / sub / name).read_bytes() if (b / sub / name).is_file() else b""):
                differ.append(f"{sub}/{name}")
    return n, differ


def step_order(name: str) -> tuple:
    order = ["signatures", "shuffle", "edges", "components", "finalize"]
    base = name.split(" ")[0]
    rest = name[len(base):]
    return order.index(base), "clusters" in rest, int(rest.split()[-1]) if "round" in rest else -1


def print_table(summary: dict, docs: int) -> None:
    tasks = summary["tasks"]
    print(f"  {'step':<22} {'tasks':>6} {'CPU s':>8} {'CPU us/doc':>10} {'largest task peak RSS':>22} {'its growth':>11}")
    for step in sorted(tasks, key=step_order):
        u = tasks[step]
        print(f"  {step:<22} {u['tasks']:>6} {u['cpu_s']:>8.1f} {u['cpu_s'] / docs * 1e6:>10.1f} "
              f"{u['max_peak_rss_mb']:>19.0f} MB {u['max_growth_mb']:>8.0f} MB")
    total = sum(u["cpu_s"] for u in tasks.values())
    d = summary["driver_rss_mb"]
    print(f"  {'all tasks':<22} {sum(u['tasks'] for u in tasks.values()):>6} {total:>8.1f} "
          f"{total / docs * 1e6:>10.1f}")
    print(f"  driver process RSS: {d['start']:.0f} MB at the start, {d['peak']:.0f} MB at its peak")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--per-file", type=int, default=20_000)
    ap.add_argument("--dup-frac", type=float, default=0.1)
    ap.add_argument("--partitions", type=int, default=0, help="0: max(16, docs / 62,500)")
    ap.add_argument("--components", choices=["auto", "distributed", "single"], default="auto",
                    help="auto (the recipe's default): one task up to 8M distinct edges, else distributed")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--peer-docs", type=int, default=10_000, help="documents for the datatrove comparison (0: none)")
    ap.add_argument("--precision-sample", type=int, default=20_000, help="dropped documents checked exactly")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--project", action="store_true", help="print the cost of one real snapshot from these figures")
    ap.add_argument("--compare-single", action="store_true",
                    help="rerun with the one-task components on the same signatures and compare the outputs byte for byte")
    ap.add_argument("--keep", action="store_true", help="keep the generated input and outputs in bench/out")
    args = ap.parse_args()
    partitions = args.partitions or max(16, args.docs // 62_500)

    work = OUT / "dedup-million"
    shutil.rmtree(work, ignore_errors=True)
    chain = Bigrams()
    t = time.perf_counter()
    planted = generate(work / "input", args.docs, args.per_file, args.dup_frac, args.seed, chain)
    gen_s = time.perf_counter() - t
    print(f"generated {args.docs} documents ({len(planted.copy)} planted copies, exact Jaccard "
          f"{planted.jaccard.min():.2f}-{planted.jaccard.max():.2f}) in {gen_s:.0f}s")
    gc.collect()
    load0 = os.getloadavg()
    ours = run_ours(work / "input", work / "out", partitions, args.cpus, args.components)
    load1 = os.getloadavg()
    s = ours["summary"]
    print(f"ours: {args.docs} documents deduplicated in {ours['dedup_s']:.1f}s wall (+{ours['ray_start_s']:.1f}s "
          f"Ray start) on {args.cpus} CPUs, {partitions} partitions, {s['components']} components "
          f"({s['component_rounds']} rounds): "
          f"{ours['dedup_s'] / args.docs * 1e6:.1f} s per million documents (load average {load0[0]:.1f} before, "
          f"{load1[0]:.1f} after)")
    print(f"      steps (wall s): {s['step_seconds']}")
    print_table(s, args.docs)
    t = time.perf_counter()
    quality = score(work / "out" / "BENCH" / "dedup", work / "input", planted, args.docs, args.per_file,
                    args.precision_sample, args.seed)
    print(f"      dropped {quality['dropped']} (exact {s['exact_duplicates']}, near {s['near_duplicates']}); "
          f"scored in {time.perf_counter() - t:.0f}s")
    print("      recall of planted pairs by exact Jaccard band (LSH theory 1-(1-J^8)^14 beside it):")
    for r in quality["recall_by_band"]:
        if r["pairs"]:
            print(f"        J {r['band']:<12} {r['pairs']:>7} pairs: recall {r['recall']:.4f} (theory {r['lsh_theory']:.4f})")
    print(f"      precision on {quality['precision_sample']} sampled dropped documents: exact Jaccard with the kept "
          f"one >= 0.5: {quality['precision_j_0.5']:.4f}; >= 0.7: {quality['precision_j_0.7']:.4f}; by band: "
          + ", ".join(f"{b['jaccard']}: {b['dropped']}" for b in quality["precision_by_band"]))
    result = {"docs": args.docs, "cpus": args.cpus, "partitions": partitions, "generate_s": gen_s,
              "load_average": [load0[0], load1[0]], **ours, "quality": quality}

    if args.compare_single:
        other = "distributed" if s["components"] == "single" else "single"
        again = run_ours(work / "input", work / "out-other", partitions, args.cpus, other,
                         signatures_from=work / "out" / "BENCH" / "signatures")
        n, differ = same_bytes(work / "out" / "BENCH", work / "out-other" / "BENCH")
        result["compare"] = {"components": other, "files": n, "differ": differ, "dedup_s": again["dedup_s"]}
        print(f"{other} components on the same signatures ({again['dedup_s']:.1f}s): {n} files of dedup/clusters, "
              f"dedup/duplicates and final compared byte for byte, {len(differ)} differ" +
              (f": {differ[:5]}" if differ else ""))
    if args.peer_docs:
        n = min(args.peer_docs, args.docs)
        sub = work / "peer-input"
        generate(sub, n, max(1, min(args.per_file, n // 4)), args.dup_frac, args.seed + 1, chain)
        ours_small = run_ours(sub, work / "peer-ours", 16, 1, args.components)
        peer = run_datatrove(sub, work / "peer-dt")
        ratio = peer["dedup_s"] / ours_small["dedup_s"]
        result["peer"] = {"docs": n, "ours_s": ours_small["dedup_s"], "datatrove_s": peer["dedup_s"], "ratio": ratio}
        print(f"same {n} documents, one core each (wall): ours {ours_small['dedup_s']:.1f}s (PII included) vs "
              f"datatrove {peer['dedup_s']:.1f}s (its 4 MinHash steps) -> ratio {ratio:.1f}x (> 1: ours faster)")
    if args.project:
        result["projection"] = project(result, print_lines=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"dedup_million_{args.docs}.json").write_text(json.dumps(result, indent=1, default=str))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    bad_recall = [r for r in quality["recall_by_band"]
                  if r["pairs"] >= 200 and r["recall"] < r["lsh_theory"] - 0.1]
    same = not result.get("compare", {}).get("differ")
    return 0 if quality["precision_j_0.5"] >= 0.95 and not bad_recall and same else 1


if __name__ == "__main__":
    sys.exit(main())
