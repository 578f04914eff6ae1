"""The whole dedup (`pipelines.stages.dedup.run_dedup`, Ray started by the stage as `crawlproc dedup` does) on
generated documents made from real text, with near-duplicates planted across Jaccard 0.5-1.0
(bench/dedup_corpus.py says how): CPU seconds of every process per document, time, the largest task's peak
memory per step, recall and precision against exact Jaccard; then, deduplicated on their own (the generated
text walks and quotes the same articles), the real near-duplicates of bench/dedup_real.py: precision by
page and recall; on a subset, the same
dedup by datatrove 0.10.1's four MinHash steps for the ratio; with --project, the cost of one real Common
Crawl snapshot extrapolated from these figures (bench/dedup_projection.py).

    python bench/bench_dedup_million.py                                  # 100,000 documents of ~500 words
    python bench/bench_dedup_million.py --docs 1000000 --peer-docs 0
    python bench/bench_dedup_million.py --docs 4000000 --peer-docs 0 --project
    python bench/bench_dedup_million.py --docs 1000000 --peer-docs 0 --compare-single   # distributed vs one task

Input: --words (default 500, FineWeb's length: a document that is not a copy has 0.4x-1.6x that many words)
and --dup-frac (default 0.35: the share of documents that are planted copies, FineWeb's 30-40%), printed
beside the figures.
Ours: a fresh interpreter (`--child`) runs the stage with the recipe defaults (word 5-grams, 14 bands x 8
rows, exact dedup first, PII on; components "auto"), --partitions key and node partitions (default: one per
62,500 documents, at least 16), 20,000 documents per input file, --cpus Ray CPUs. Cold start by default:
numba's cache is an empty folder (NUMBA_CACHE_DIR), so the kernels are compiled as on a fresh install
(--warm: the cache as it is). The figure counts everything: the interpreter's imports, the compilation, Ray's
start, every task and the driver.
CPU: user + system seconds of the driver and of every process of the Ray instance (its daemons and workers,
read from /proc just before Ray stops), per step the tasks' own CPU (measured in each task). The machine is
shared: wall time mostly measures the neighbours, so the figure per million documents is given in CPU
seconds with the load average beside it, and the wall time on idle cores is derived from it (printed with
its formula): the steps' parallel CPU divided by the cores, plus what cannot run in parallel (the driver,
single-task steps) at full length.
Exit status 1 when precision (share of sampled dropped documents whose exact Jaccard with the kept one is
>= 0.5) is below 0.95, or when a recall band with 200 or more pairs is more than 0.1 below the LSH theory.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
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

import dedup_real  # noqa: E402
import numpy as np  # noqa: E402
from dedup_corpus import Bigrams, Planted, generate, score  # noqa: E402
from dedup_projection import project  # noqa: E402

from crawlproc.recipe import Recipe  # noqa: E402


def run_ours(inp: Path, out: Path, partitions: int, cpus: int, components: str,
             signatures_from: Path | None = None, sketch: str = "classic") -> dict:
    """The stage in this process, Ray started by it (as `crawlproc dedup`): wall times and its summary."""
    import ray

    from pipelines.engine.ray_runtime import init_ray
    from pipelines.engine.runner import start_ray_on_first_use
    from pipelines.stages.dedup import run_dedup

    recipe = Recipe()
    recipe.dedup.num_partitions = partitions
    recipe.dedup.components = components
    recipe.minhash.sketch = sketch
    recipe.ray.object_store_memory_mb = 300
    shutil.rmtree(out, ignore_errors=True)
    if signatures_from:  # current signatures (same docs bytes, same settings) are reused, not recomputed
        shutil.copytree(signatures_from, out / "BENCH" / "signatures")
    started = {}

    def start():
        t = time.perf_counter()
        init_ray(None, recipe, num_cpus=cpus)
        started["ray_start_s"] = time.perf_counter() - t

    start_ray_on_first_use(start)
    t1 = time.perf_counter()
    summary = run_dedup(out, "BENCH", recipe, input_dir=inp, log=lambda m: print("  " + m, flush=True))
    t2 = time.perf_counter()
    cpu = process_tree_cpu()
    ray.shutdown()
    return {"ray_start_s": started.get("ray_start_s", 0.0), "dedup_s": t2 - t1, "summary": summary, "cpu": cpu}


def process_tree_cpu() -> dict:
    """CPU seconds (user + system) of this process and of all its descendants (Ray's daemons, its workers),
    read now, while they run."""
    import psutil

    me = psutil.Process()
    out = {"driver": sum(me.cpu_times()[:2]), "ray_workers": 0.0, "ray_daemons": 0.0, "processes": 1}
    for p in me.children(recursive=True):
        try:
            t = p.cpu_times()
            worker = "default_worker" in " ".join(p.cmdline()) or p.name().startswith("ray::")
        except psutil.Error:
            continue
        out["ray_workers" if worker else "ray_daemons"] += t.user + t.system + t.children_user + t.children_system
        out["processes"] += 1
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


def run_child(inp: Path, out: Path, partitions: int, cpus: int, components: str, cold: bool,
              sketch: str = "classic") -> dict:
    """run_ours in a fresh interpreter (cold: with an empty numba cache): its result, and the interpreter's
    own start-up (imports) in the driver's CPU and in the wall time."""
    import subprocess
    import tempfile

    spec = {"inp": str(inp), "out": str(out), "partitions": partitions, "cpus": cpus, "components": components,
            "sketch": sketch}
    env = dict(os.environ)
    cache = tempfile.mkdtemp(prefix="numba-cold-") if cold else None
    if cache:
        env["NUMBA_CACHE_DIR"] = cache
    result_path = out.parent / "child-result.json"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--child", json.dumps(spec), str(result_path)], env=env, check=True)
    wall = time.perf_counter() - t0
    if cache:
        shutil.rmtree(cache, ignore_errors=True)
    result = json.loads(result_path.read_text())
    result["process_wall_s"] = wall
    result["cold"] = cold
    return result


def child_main(spec_json: str, result_path: str) -> int:
    spec = json.loads(spec_json)
    res = run_ours(Path(spec["inp"]), Path(spec["out"]), spec["partitions"], spec["cpus"], spec["components"],
                   sketch=spec["sketch"])
    Path(result_path).write_text(json.dumps(res, default=str))
    return 0


def idle_estimate(res: dict, cores: int, docs: int) -> dict:
    """Wall seconds on `cores` idle cores, derived from the CPU: the parallel part (every step with more than
    one task, Ray's workers' time outside tasks, Ray's daemons) divided by the cores, plus the serial part
    (the driver: imports, compilation, planning; single-task steps) at full length. Per million documents:
    the tasks' CPU scaled to 1M documents, the rest (the driver, Ray's daemons, the workers' start-up: the
    same for any size) as measured. Ray's daemons poll while they wait, so under load their CPU grows with
    the wall time: counted as measured, not lowered."""
    tasks = res["summary"]["tasks"]
    serial_tasks = sum(u["cpu_s"] for u in tasks.values() if u["tasks"] <= 1)
    task_cpu = sum(u["cpu_s"] for u in tasks.values())
    cpu = res["cpu"]
    fixed_parallel = cpu["ray_workers"] - task_cpu + cpu["ray_daemons"]
    scale = 1e6 / docs
    out = {"task_cpu_s": round(task_cpu, 2), "fixed_serial_cpu_s": round(cpu["driver"], 2),
           "fixed_parallel_cpu_s": round(fixed_parallel, 2)}
    for name, k in (("", 1.0), ("_per_million", scale)):
        serial = cpu["driver"] + serial_tasks * k
        parallel = fixed_parallel + (task_cpu - serial_tasks) * k
        out[f"cpu_s{name}"] = round(serial + parallel, 2)
        out[f"serial_cpu_s{name}"] = round(serial, 2)
        out[f"parallel_cpu_s{name}"] = round(parallel, 2)
        out[f"estimate_s{name}"] = round(serial + parallel / cores, 1)
        out[f"lower_bound_s{name}"] = round((serial + parallel) / cores, 1)
    return out


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
    ap.add_argument("--docs", type=int, default=100_000, help="generated documents (the real ones come on top)")
    ap.add_argument("--words", type=int, default=500, help="mean words of a generated document (FineWeb's ~500)")
    ap.add_argument("--per-file", type=int, default=20_000)
    ap.add_argument("--dup-frac", type=float, default=0.35, help="share of generated documents that are copies")
    ap.add_argument("--partitions", type=int, default=0, help="0: max(16, docs / 62,500)")
    ap.add_argument("--components", choices=["auto", "distributed", "single"], default="auto",
                    help="auto (the recipe's default): one task up to 8M distinct edges, else distributed")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--sketch", choices=["classic", "one_permutation"], default="classic",
                    help="minhash.sketch (one_permutation: faster, dedups differently; its recall is printed)")
    ap.add_argument("--warm", action="store_true", help="keep numba's compiled kernels (default: a cold start)")
    ap.add_argument("--no-real", action="store_true", help="leave out the real near-duplicates (bench/dedup_real.py)")
    ap.add_argument("--peer-docs", type=int, default=10_000, help="documents for the datatrove comparison (0: none)")
    ap.add_argument("--precision-sample", type=int, default=20_000, help="dropped documents checked exactly")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--project", action="store_true", help="print the cost of one real snapshot from these figures")
    ap.add_argument("--compare-single", action="store_true",
                    help="rerun with the one-task components on the same signatures and compare the outputs byte for byte")
    ap.add_argument("--keep", action="store_true", help="keep the generated input and outputs in bench/out")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    # one run at a time: a second one would delete and rewrite the first one's folder under it
    lock = open(OUT / "dedup-million.lock", "w")  # noqa: SIM115 -- held until the process ends
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("another bench_dedup_million.py is running (it uses bench/out/dedup-million): wait for it to end")
        return 2
    partitions = args.partitions or max(16, args.docs // 62_500)

    work = OUT / "dedup-million"
    shutil.rmtree(work, ignore_errors=True)
    chain = Bigrams()
    t = time.perf_counter()
    # the generated input is kept (bench/out/dedup-input-*, git-ignored) and reused by a run with the same
    # settings: making 1M documents of 500 words takes longer than deduplicating them
    cached = OUT / f"dedup-input-{args.docs}-{args.words}-{args.dup_frac}-{args.per_file}-{args.seed}"
    if not (cached / "planted.npz").is_file():
        shutil.rmtree(cached, ignore_errors=True)
        p = generate(cached / "input", args.docs, args.per_file, args.dup_frac, args.seed, chain, mean_words=args.words)
        np.savez(cached / "planted.npz", copy=p.copy, base=p.base, jaccard=p.jaccard)
    saved = np.load(cached / "planted.npz")
    planted = Planted(saved["copy"], saved["base"], saved["jaccard"])
    gen_s = time.perf_counter() - t
    shutil.copytree(cached / "input", work / "input")
    real = [] if args.no_real else dedup_real.build(OUT / "dedup_real_docs.jsonl")
    gen_words = input_words(work / "input")
    docs = args.docs
    print(f"input: {docs} generated documents ({gen_words:.0f} words on average, {len(planted.copy)} planted copies = "
          f"{len(planted.copy) / args.docs:.1%} duplicates, exact Jaccard {planted.jaccard.min():.2f}-"
          f"{planted.jaccard.max():.2f}; made or loaded in {gen_s:.0f}s)")
    gc.collect()
    load0 = os.getloadavg()
    ours = run_child(work / "input", work / "out", partitions, args.cpus, args.components, cold=not args.warm,
                     sketch=args.sketch)
    load1 = os.getloadavg()
    s = ours["summary"]
    cpu = ours["cpu"]
    total_cpu = cpu["driver"] + cpu["ray_workers"] + cpu["ray_daemons"]
    est = idle_estimate(ours, args.cpus, docs)
    per_m = 1e6 / docs
    print(f"ours ({'cold start: empty numba cache' if not args.warm else 'warm numba cache'}; Ray started by the stage; "
          f"minhash.sketch = {args.sketch}): "
          f"{docs} documents of {gen_words:.0f} words on average, {len(planted.copy) / docs:.1%} planted duplicates; "
          f"load average {load0[0]:.1f} before, {load1[0]:.1f} after")
    print(f"  CPU {total_cpu:.1f} s = {total_cpu / docs * 1e6:.1f} CPU-us per document (driver {cpu['driver']:.1f}: "
          f"imports, compilation, planning; Ray workers {cpu['ray_workers']:.1f}, of which tasks {est['task_cpu_s']:.1f} "
          f"= {est['task_cpu_s'] / docs * 1e6:.1f} CPU-us per document; Ray daemons {cpu['ray_daemons']:.1f}; "
          f"{cpu['processes']} processes)")
    print(f"  PER MILLION DOCUMENTS, {args.cpus} idle cores, derived (tasks' CPU x {per_m:.2f}, the rest as measured "
          f"once): {est['cpu_s_per_million']:.1f} CPU-s; serial {est['serial_cpu_s_per_million']:.1f} CPU-s + parallel "
          f"{est['parallel_cpu_s_per_million']:.1f} CPU-s / {args.cpus} = {est['estimate_s_per_million']:.1f} s wall "
          f"(all in parallel: {est['lower_bound_s_per_million']:.1f} s; target 45 s)")
    print(f"  this run on {args.cpus} idle cores, derived the same way: {est['estimate_s']:.1f} s wall")
    print(f"  measured wall here: {ours['process_wall_s']:.1f}s for the whole process ({ours['dedup_s']:.1f}s in "
          f"run_dedup, of which Ray's start {ours['ray_start_s']:.1f}s) = {ours['process_wall_s'] * per_m:.1f} s per "
          f"million under this load; {partitions} partitions, {s['components']} components ({s['component_rounds']} rounds)")
    print(f"      steps (wall s): {s['wave_seconds']}")
    print_table(s, docs)
    t = time.perf_counter()
    quality = score(work / "out" / "BENCH" / "dedup", work / "input", planted, args.docs, args.per_file,
                    args.precision_sample, args.seed)
    print(f"      dropped {quality['dropped']} (exact {s['exact_duplicates']}, near {s['near_duplicates']}); "
          f"scored in {time.perf_counter() - t:.0f}s")
    print("      generated documents: recall of planted pairs by exact Jaccard band (LSH theory 1-(1-J^8)^14 beside it):")
    for r in quality["recall_by_band"]:
        if r["pairs"]:
            print(f"        J {r['band']:<12} {r['pairs']:>7} pairs: recall {r['recall']:.4f} (theory {r['lsh_theory']:.4f})")
    print(f"      generated documents: precision on {quality['precision_sample']} sampled dropped documents: exact "
          f"Jaccard with the kept one >= 0.5: {quality['precision_j_0.5']:.4f}; >= 0.7: {quality['precision_j_0.7']:.4f}; "
          "by band: " + ", ".join(f"{b['jaccard']}: {b['dropped']}" for b in quality["precision_by_band"]))
    result = {"docs": docs, "generated_docs": args.docs, "words": gen_words, "dup_frac": args.dup_frac,
              "cpus": args.cpus, "sketch": args.sketch, "partitions": partitions, "generate_s": gen_s,
              "load_average": [load0[0], load1[0]], **ours, "cpu_total_s": total_cpu,
              "cpu_s_per_million": est["cpu_s_per_million"], "idle_estimate": est, "quality": quality}
    if real:  # apart: the generated text walks and quotes these same articles, which would join clusters
        dedup_real.write(work / "real-input", real)
        again = run_child(work / "real-input", work / "real-out", 16, args.cpus, args.components, cold=False,
                          sketch=args.sketch)
        rq = dedup_real.score(work / "real-out" / "BENCH" / "dedup", real)
        result["real"] = rq
        print(f"real near-duplicates, deduplicated on their own (bench/dedup_real.py: {rq['documents']} documents, "
              f"{rq['pages']} real pages in 2-3 versions, {rq['mean_words']:.0f} words on average; {again['dedup_s']:.0f}s):"
              f" {rq['dropped']} dropped; precision by page (kept in favour of a version of the same page) "
              f"{rq['precision_same_page']}, exact Jaccard >= 0.5 with the kept one {rq['precision_jaccard_0.5']}; "
              f"recall on the {rq['pairs_jaccard_ge_0.8']} version pairs with exact Jaccard >= 0.8: "
              f"{rq['recall_jaccard_ge_0.8']} (LSH theory {rq['lsh_theory_jaccard_ge_0.8']}); version pairs below 0.8 "
              f"merged: {rq['pairs_jaccard_below_0.8_merged']} of {rq['pairs'] - rq['pairs_jaccard_ge_0.8']}")
        for w in rq["dropped_for_another_page"]:
            print(f"        dropped for another page: {w['dropped']} kept {w['kept']} (exact Jaccard {w['jaccard']})")

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
        generate(sub, n, max(1, min(args.per_file, n // 4)), args.dup_frac, args.seed + 1, chain, mean_words=args.words)
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


def input_words(folder: Path) -> float:
    """Mean whitespace-separated words per document of the input files."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    n = words = 0
    for f in sorted(folder.glob("*.parquet")):
        text = pq.read_table(f, columns=["text"]).column("text")
        words += pc.sum(pc.list_value_length(pc.utf8_split_whitespace(text))).as_py() or 0
        n += len(text)
    return words / n if n else 0.0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        sys.exit(child_main(sys.argv[2], sys.argv[3]))
    sys.exit(main())
