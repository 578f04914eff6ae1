"""MinHash near-duplicate removal on Ray, then PII anonymization: the orchestration of crawlproc.dedup.

Each step is a wave of Ray tasks over crawlproc.dedup's functions (see that package for what they do);
every task writes its output atomically and skips itself when the output is there, so a rerun resumes:
  signatures  per docs file, shuffle per group of signatures files, edges per key partition,
  components  Large-Star/Small-Star rounds (three waves each) until no partition changes, or one task
              (dedup.components = "single"), then three waves to dedup/clusters/<stem>.parquet,
  finalize    per docs file: dedup/duplicates/ and final/ (PII applied).
Then dedup/summary.json (with each step's task count, CPU seconds and largest task's peak RSS) and
dedup/_done.json. A node is `file_no << 32 | row` in the sorted input list, so reruns pick the same survivors.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import deque
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import ray

from crawlproc.dedup import DedupError
from crawlproc.dedup.clusters import run_clusters
from crawlproc.dedup.components import single_task_stars
from crawlproc.dedup.edges import partition_edges
from crawlproc.dedup.finalize import finalize_file
from crawlproc.dedup.shuffle import shuffle_files
from crawlproc.dedup.signatures import compute_signatures, open_docs_file
from crawlproc.dedup.stars import run_components
from crawlproc.dedup.usage import TaskUsage
from crawlproc.recipe import Recipe
from crawlproc.layout import Layout
from crawlproc.storage import atomic_write_json, default_storage, is_remote

STEPS = ("signatures", "shuffle", "edges", "components", "finalize")


class StopAfter(RuntimeError):
    """Raised when `stop_after` asks to stop between steps (simulates a crash in tests)."""


def _measured(fn, *args):  # args at the top level, so that Ray resolves the ObjectRefs among them
    with TaskUsage() as usage:
        result = fn(*args)
    return result, usage.stats()


class _Waves:
    """Runs one function over many argument tuples as Ray tasks, a bounded window at a time, in order;
    the first failure stops the stage with its own error (a DedupError names the bad file)."""

    def __init__(self, recipe: Recipe):
        self.task = ray.remote(_measured).options(num_cpus=recipe.ray.num_cpus_per_task,
                                                 max_retries=recipe.ray.max_retries)
        self.window = max(2, int(2 * ray.cluster_resources().get("CPU", 1) / recipe.ray.num_cpus_per_task))
        self.usage: dict[str, dict] = {}

    def __call__(self, step: str, fn, arg_tuples: list[tuple]) -> list:
        shared: dict[int, ray.ObjectRef] = {}  # a long list argument (files, stems) goes to the store once

        def put(a):
            if isinstance(a, list) and len(a) > 64:
                if id(a) not in shared:
                    shared[id(a)] = ray.put(a)
                return shared[id(a)]
            return a

        arg_tuples = [tuple(put(a) for a in args) for args in arg_tuples]
        results, queue, pending = [None] * len(arg_tuples), deque(enumerate(arg_tuples)), {}
        use = self.usage.setdefault(step, {"tasks": 0, "cpu_s": 0.0, "max_peak_rss_mb": 0.0, "max_growth_mb": 0.0})
        while queue or pending:
            while queue and len(pending) < self.window:
                i, args = queue.popleft()
                pending[self.task.remote(fn, *args)] = i
            [ready], _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ready)
            try:
                results[i], stats = ray.get(ready)
            except ray.exceptions.RayTaskError as e:
                if isinstance(getattr(e, "cause", None), DedupError):
                    raise DedupError(str(e.cause)) from None
                raise
            use["tasks"] += 1
            use["cpu_s"] = round(use["cpu_s"] + stats["cpu_s"], 3)
            use["max_peak_rss_mb"] = max(use["max_peak_rss_mb"], stats["peak_rss_mb"])
            use["max_growth_mb"] = round(max(use["max_growth_mb"], stats["peak_rss_mb"] - stats["rss_start_mb"]), 1)
        return results


def _earlier_indexes(index_root: Path, snapshot: str) -> tuple[int, list[tuple[int, str, dict]]]:
    """(this snapshot's order number, [(order, index dir, its _done.json)] of indexes made before it)."""
    done = {}
    for d in sorted(index_root.glob("*/_done.json")) if index_root.is_dir() else []:
        info = json.loads(d.read_text())
        done[info["snapshot"]] = (info["order"], str(d.parent), info)
    order = done[snapshot][0] if snapshot in done else 1 + max((o for o, _, _ in done.values()), default=0)
    return order, sorted(v for s, v in done.items() if v[0] < order)


def _find_duplicates(waves, recipe, layout, files, stems, work, index_root, earlier, step, log) -> tuple[int, dict]:
    """signatures, shuffle, edges, components; returns (documents, cluster counts)."""
    t = time.monotonic()
    sig = [layout.path("signatures", s) for s in stems]
    counts = waves("signatures", compute_signatures,
                       [(str(f), p, recipe.minhash, recipe.dedup.signature_batch) for f, p in zip(files, sig)])
    step("signatures", t)

    t, P = time.monotonic(), recipe.dedup.num_partitions
    k = getattr(recipe.dedup, "shuffle_files_per_task", 8)
    groups = [list(zip(sig[i: i + k], range(i, i + k))) for i in range(0, len(sig), k)]
    shuffled = [str(work / "shuffle" / f"group-{g:05d}.parquet") for g in range(len(groups))]
    waves("shuffle", shuffle_files, [(grp, out, P, recipe.dedup.exact) for grp, out in zip(groups, shuffled)])
    step("shuffle", t)

    t = time.monotonic()
    index_out = str(index_root / layout.name) if recipe.dedup.scope == "all" else None
    edge_files = [str(work / "edges" / f"part-{p:05d}.parquet") for p in range(P)]
    by_index = [(o, d) for o, d, _ in earlier]
    edge_stats = waves("edges", partition_edges,
                       [(p, shuffled, edge_files[p], P, index_out, by_index) for p in range(P)])
    step("edges", t)

    t = time.monotonic()
    if getattr(recipe.dedup, "components", "distributed") == "single":
        star_files, rounds = [str(work / "stars.parquet")], 0
        waves("components", single_task_stars, [(edge_files, star_files[0], P)])
    else:
        star_files, rounds = run_components(waves, edge_files, work / "cc", P,
                                            getattr(recipe.dedup, "max_component_rounds", 100), log)
    their = {o: (str(Path(layout.layout.root) / i["snapshot"] / "signatures"), i["stems"]) for o, _, i in earlier}
    snap_dir = Path(layout.uri)
    cstats = run_clusters(waves, star_files, edge_files, work / "clusters", snap_dir / "dedup" / "clusters",
                          snap_dir / "signatures", stems, their, P)
    cstats.update(edges=sum(s["candidate_edges"] for s in edge_stats), rounds=rounds)
    step("components", t)
    return sum(c["documents"] for c in counts), cstats


def run_dedup(
    out: str | Path, snapshot: str, recipe: Recipe, input_dir: str | Path | None = None, force: bool = False,
    stop_after: str | None = None, log=print,
) -> dict:
    """Deduplicate `input_dir` (default <out>/<snapshot>/docs) into <out>/<snapshot>/final; returns the summary.

    Uses the running Ray (else starts a local one). `stop_after` (one of STEPS) raises StopAfter after that
    step: tests use it to crash the run in the middle."""
    if not ray.is_initialized():
        from pipelines.ray_runtime import init_ray

        init_ray(None, recipe)
    t0 = time.monotonic()
    layout = Layout(str(out)).snapshot(snapshot)
    if is_remote(layout.uri):
        raise DedupError(f"{layout.uri}: dedup runs on a local or mounted output root for now")
    snap_dir = Path(layout.uri)
    dedup_dir = snap_dir / "dedup"
    work = dedup_dir / "work"
    extracted = None  # {stem: extract marker fingerprint}: what this dedup is of (tokenize checks it)
    if input_dir:
        input_dir = Path(input_dir)
        files = sorted(input_dir.glob("*.parquet"))
    else:  # only files whose extract is done: a failed file's partial output is not an input
        input_dir = snap_dir / "docs"
        extracted = layout.markers.done()
        files = [input_dir / f"{stem}.parquet" for stem in sorted(extracted)]
    if not files:
        raise DedupError(f"no Parquet documents in {input_dir}")
    stems = [f.name[: -len(".parquet")] for f in files]
    scope_all = recipe.dedup.scope == "all"
    index_root = Path(out) / "_index" / "bands"
    order, earlier = _earlier_indexes(index_root, snapshot) if scope_all else (0, [])
    plan = {
        "input_dir": str(input_dir.resolve()), "stems": stems,
        # cheap to read for 100k files; the signatures check each file's content fingerprint themselves
        "files": [[f.stat().st_size, f.stat().st_mtime_ns] for f in files],
        "minhash": asdict(recipe.minhash), "dedup": vars(recipe.dedup), "earlier": [d for _, d, _ in earlier],
        "pii": asdict(recipe.pii), "inputs": extracted,
    }
    plan_path = dedup_dir / "plan.json"
    old_plan = json.loads(plan_path.read_text()) if plan_path.is_file() else None
    if force or old_plan != plan:
        # Another input or recipe: nothing downstream of the signatures may be reused.
        for d in (dedup_dir, snap_dir / "final", index_root / snapshot):
            shutil.rmtree(d, ignore_errors=True)
        atomic_write_json(plan_path, plan)
    elif (dedup_dir / "_done.json").is_file():
        log(f"dedup: {snapshot} already done (use --force to redo)")
        return json.loads((dedup_dir / "summary.json").read_text())
    for d in (dedup_dir, snap_dir / "signatures", snap_dir / "final"):
        default_storage().clean_partials(str(d))
    seconds = {}

    def step(name: str, t: float) -> None:
        seconds[name] = round(time.monotonic() - t, 3)
        log(f"dedup: {name} done in {seconds[name]:.1f}s")
        if stop_after == name:
            raise StopAfter(name)

    waves = _Waves(recipe)
    with TaskUsage() as driver:  # the driver's own memory: per-file and per-task values only
        if recipe.dedup.enabled:
            documents, cstats = _find_duplicates(waves, recipe, layout, files, stems, work, index_root, earlier,
                                                 step, log)
        else:  # PII only: every document survives
            documents = sum(open_docs_file(f).metadata.num_rows for f in files)
            cstats = {"exact_duplicates": 0, "near_duplicates": 0, "matched_earlier": 0, "clusters": 0,
                      "cluster_sizes": {}, "edges": 0, "rounds": 0}
        t = time.monotonic()
        clusters = dedup_dir / "clusters"
        fstats = waves("finalize", finalize_file, [
            (str(f), str(clusters / f"{s}.parquet") if recipe.dedup.enabled else None,
             str(dedup_dir / "duplicates" / f"{s}.parquet"), str(layout.path("final", s)), recipe.pii)
            for f, s in zip(files, stems)
        ])
        step("finalize", t)
    summary = {
        "snapshot": snapshot, "input_dir": str(input_dir), "files": len(files), "scope": recipe.dedup.scope,
        "documents": int(documents), "kept": int(sum(f["kept"] for f in fstats)),
        "exact_duplicates": cstats["exact_duplicates"], "near_duplicates": cstats["near_duplicates"],
        "matched_earlier": cstats["matched_earlier"], "clusters": cstats["clusters"],
        "cluster_sizes": cstats["cluster_sizes"], "candidate_edges": cstats["edges"],
        "pii": {"emails": int(sum(f["pii_emails"] for f in fstats)), "ips": int(sum(f["pii_ips"] for f in fstats))},
        "seconds": round(time.monotonic() - t0, 3), "step_seconds": seconds,
        "component_rounds": cstats["rounds"], "tasks": waves.usage,
        "driver_rss_mb": {"start": driver.stats()["rss_start_mb"], "peak": driver.stats()["peak_rss_mb"]},
    }
    if summary["kept"] + summary["exact_duplicates"] + summary["near_duplicates"] != summary["documents"]:
        raise DedupError(f"document count mismatch in {snapshot}: {summary}")  # never lose documents silently
    atomic_write_json(dedup_dir / "summary.json", summary)
    if scope_all and recipe.dedup.enabled:
        atomic_write_json(index_root / snapshot / "_done.json", {"snapshot": snapshot, "order": order,
                          "stems": stems, "num_partitions": recipe.dedup.num_partitions})
    shutil.rmtree(work, ignore_errors=True)  # the index keeps what later snapshots need
    atomic_write_json(dedup_dir / "_done.json",
                      {"snapshot": snapshot, "documents": summary["documents"], "kept": summary["kept"],
                       "inputs": extracted, "finished_at": datetime.now(UTC).isoformat()})
    return summary
