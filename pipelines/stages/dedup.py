"""MinHash near-duplicate removal on Ray, then PII anonymization: the orchestration of crawlproc.dedup.

Each step is a wave of tasks of the stage runner over crawlproc.dedup's functions (see that package for what
they do), all through the recipe's storage (a folder or a bucket); every unit's marker carries the plan's
fingerprint and every output is written whole, so a rerun resumes where a crash stopped:
  signatures  per docs file, shuffle per group of signatures files, edges per key partition,
  components  Large-Star/Small-Star rounds (three waves each) until no partition changes, or one task
              ("single"; "auto", the default, when the distinct edges are few), then three waves to
              dedup/clusters/<stem>.parquet,
  finalize    per docs file: dedup/duplicates/ and final/ (PII applied).
Then dedup/summary.json (with each step's task count, CPU seconds and largest task's peak RSS) and
dedup/_done.json. A node is `file_no << 32 | row` in the sorted input list, so reruns pick the same survivors.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict
from datetime import UTC, datetime

import ray

from crawlproc.dedup import DedupError, files
from crawlproc.dedup.clusters import run_clusters
from crawlproc.dedup.components import single_task_stars
from crawlproc.dedup.edges import partition_edges
from crawlproc.dedup.finalize import finalize_file
from crawlproc.dedup.minhash import compile_kernels_in_background
from crawlproc.dedup.shuffle import shuffle_files
from crawlproc.dedup.signatures import compute_signatures, open_docs_file
from crawlproc.dedup.stars import run_components
from crawlproc.dedup.usage import TaskUsage
from crawlproc.store.fingerprint import digest
from crawlproc.store.layout import Layout, Snapshot, done_record
from crawlproc.store.lock import hold
from crawlproc.recipe import Recipe
from crawlproc.store.storage import Storage, basename, join, storage_for
from pipelines.engine.runner import Unit, ensure_ray, run_stage

STEPS = ("signatures", "shuffle", "edges", "components", "finalize")
# components = "auto" runs one task up to this many distinct edges. It grows ~120 bytes per edge (measured by
# bench/bench_dedup_million.py: 64 MB for 547k edges), so 8M edges stay near 1 GB, half the 2 GB per task
# that bench/dedup_projection.py budgets; and it saves the distributed rounds' waves (three per round, each
# a fixed cost of tasks and P x P small reads, however few the edges).
SINGLE_TASK_EDGES = 8_000_000
# The format of dedup/work/'s files (2: Arrow IPC buckets), part of the plan: a run stopped by code that wrote
# another one starts over instead of resuming on files this code cannot read.
WORK_FORMAT = 2


class StopAfter(RuntimeError):
    """Raised when `stop_after` asks to stop between steps (simulates a crash in tests)."""


def _measured(args: tuple, fn, storage: Storage) -> dict:
    """Runs in a task: fn(*args) over the recipe's storage, with its CPU and peak memory (a long list argument
    arrives as an ObjectRef: shared by the wave's tasks, resolved here)."""
    files.use(storage)
    args = tuple(ray.get(a) if isinstance(a, ray.ObjectRef) else a for a in args)
    with TaskUsage() as usage:
        result = fn(*args) or {}
    return {**result, "usage": usage.stats()}


class _Waves:
    """Each wave (one function over many argument tuples) is one stage of the stage runner, with its own
    markers under dedup/work/<wave>/ and the plan's fingerprint, so a wave resumes unit by unit and every
    failure keeps its root cause; results come back in argument order (a unit done earlier reads its
    result from its marker). A failed unit stops dedup with a DedupError naming it."""

    def __init__(self, recipe: Recipe, snap: Snapshot, fingerprint: str):
        self.recipe, self.snap, self.fingerprint = recipe, snap, fingerprint
        self.usage: dict[str, dict] = {}
        self._lists: dict[int, ray.ObjectRef] = {}

    def _share(self, a):
        if isinstance(a, list) and len(a) > 64:  # the same long list in every task: once in the store
            if id(a) not in self._lists:
                self._lists[id(a)] = (ray.put(a), a)
            return self._lists[id(a)][0]
        return a

    def __call__(self, step: str, fn, arg_tuples: list[tuple]) -> list:
        wave = re.sub(r"[^a-z0-9]+", "-", f"{step} {fn.__name__}".lower()).strip("-")
        markers = self.snap.dedup.wave_markers(wave)
        units = [Unit(key=f"u{i:05d}", args=(tuple(self._share(a) for a in args),), source=f"{wave} {i}",
                      fingerprint=self.fingerprint) for i, args in enumerate(arg_tuples)]
        result = run_stage(f"dedup {step}", units, _measured, shared=(fn, self.snap.storage), markers=markers,
                           num_cpus=self.recipe.ray.num_cpus_per_task, max_retries=self.recipe.ray.max_retries,
                           progress=f"dedup {step}" if len(units) >= 16 else False, fail_fast=3, keep_stats=True)
        if result.stopped or result.failed:
            first = result.stopped or next(iter(result.failed.values()))
            raise DedupError(f"{step}: {len(result.failed)} of {len(units)} tasks failed; first: {first.line()}")
        out = []
        use = self.usage.setdefault(step, {"tasks": 0, "cpu_s": 0.0, "max_peak_rss_mb": 0.0, "max_growth_mb": 0.0})
        for u in units:
            stats = result.stats.get(u.key)
            if stats is None:  # done by an earlier run: its result is in its marker
                stats = ((markers.read(u.key, self.fingerprint) or {}).get("stats")) or {}
            usage = stats.pop("usage", None)
            if usage and u.key in result.stats:
                use["tasks"] += 1
                use["cpu_s"] = round(use["cpu_s"] + usage["cpu_s"], 3)
                use["max_peak_rss_mb"] = max(use["max_peak_rss_mb"], usage["peak_rss_mb"])
                use["max_growth_mb"] = round(max(use["max_growth_mb"],
                                                 usage["peak_rss_mb"] - usage["rss_start_mb"]), 1)
            out.append(stats)
        return out


def _earlier_indexes(layout: Layout, snapshot: str) -> tuple[int, list[tuple[int, str, dict]]]:
    """(this snapshot's order number, [(order, index dir, its _done.json)] of indexes made before it)."""
    st = layout.storage
    done = {}
    for e in st.list(layout.index_root, include_dirs=True):
        info = st.read_json(done_record(e.uri)) if e.is_dir else None
        if info:
            done[info["snapshot"]] = (info["order"], e.uri, info)
    order = done[snapshot][0] if snapshot in done else 1 + max((o for o, _, _ in done.values()), default=0)
    return order, sorted(v for s, v in done.items() if v[0] < order)


def _find_duplicates(waves, recipe, snap, files_, stems, work, earlier, step, log) -> tuple[int, dict]:
    """signatures, shuffle, edges, components; returns (documents, cluster counts)."""
    t = time.monotonic()
    sig = [snap.path("signatures", s) for s in stems]
    counts = waves("signatures", compute_signatures,
                   [(f, p, recipe.minhash, recipe.dedup.signature_batch) for f, p in zip(files_, sig)])
    step("signatures", t)

    t, P = time.monotonic(), recipe.dedup.num_partitions
    k = recipe.dedup.shuffle_files_per_task
    groups = [list(zip(sig[i: i + k], range(i, i + k))) for i in range(0, len(sig), k)]
    shuffled = [join(work, "shuffle", f"group-{g:05d}.arrow") for g in range(len(groups))]
    waves("shuffle", shuffle_files, [(grp, out, P, recipe.dedup.exact) for grp, out in zip(groups, shuffled)])
    step("shuffle", t)

    t = time.monotonic()
    index_out = snap.layout.index_dir(snap.name) if recipe.dedup.scope == "all" else None
    edge_files = [join(work, "edges", f"part-{p:05d}.arrow") for p in range(P)]
    by_index = [(o, d) for o, d, _ in earlier]
    edge_stats = waves("edges", partition_edges,
                       [(p, shuffled, edge_files[p], P, index_out, by_index) for p in range(P)])
    step("edges", t)

    t = time.monotonic()
    mode = recipe.dedup.components
    if mode == "auto":  # decided by the distinct edges alone (what one task would hold): a resumed run agrees
        mode = "single" if sum(s["edges"] for s in edge_stats) <= SINGLE_TASK_EDGES else "distributed"
    if mode == "single":
        star_files, rounds = [join(work, "stars.arrow")], 0
        waves("components", single_task_stars, [(edge_files, star_files[0], P)])
    else:
        star_files, rounds = run_components(waves, edge_files, join(work, "cc"), P,
                                            recipe.dedup.max_component_rounds, log)
    their = {o: (snap.layout.snapshot(i["snapshot"]).folder("signatures"), i["stems"]) for o, _, i in earlier}
    cstats = run_clusters(waves, star_files, edge_files, join(work, "clusters"), snap.dedup.path("clusters"),
                          snap.folder("signatures"), stems, their, P)
    cstats.update(edges=sum(s["candidate_edges"] for s in edge_stats), rounds=rounds, components=mode)
    step("components", t)
    return sum(c["documents"] for c in counts), cstats


def run_dedup(
    out: str, snapshot: str, recipe: Recipe, input_dir: str | None = None, force: bool = False,
    stop_after: str | None = None, log=print,
) -> dict:
    """Deduplicate `input_dir` (default: the snapshot's extract-done docs/ files) into <out>/<snapshot>/final;
    returns the summary. `out` and `input_dir` are folders or URIs. Holds the snapshot's lock.

    Uses the running Ray (else starts a local one). `stop_after` (one of STEPS) raises StopAfter after that
    step: tests use it to crash the run in the middle."""
    layout = Layout(str(out), storage_for(recipe))
    snap = layout.snapshot(snapshot)
    with hold(layout.storage, snap.lock_uri, f"snapshot {snap.uri}"):
        return _dedup(layout, snap, recipe, input_dir, force, stop_after, log)


def _no_inputs(snap: Snapshot, docs_dir: str) -> str:
    """Why a snapshot has nothing to deduplicate, and what to run: docs files without their done marker are
    what a stopped or failed extract leaves (their rows may be partial), so they are never inputs."""
    left = [basename(f)[: -len(".parquet")] for f in files.parquet_files(docs_dir)]
    if not left:
        return (f"snapshot {snap.name} has no extracted documents ({docs_dir} holds none): run `crawlproc "
                "extract` on its WARCs first")
    named = ", ".join(left[:3]) + (f" and {len(left) - 3} more" if len(left) > 3 else "")
    return (f"no file of snapshot {snap.name} has finished its extract: {len(left)} documents file(s) in "
            f"{docs_dir} have no done marker ({named}), as a stopped or failed extract leaves them. Run "
            "`crawlproc extract` on the same WARCs again (it redoes only those files), then dedup")


def _dedup(layout: Layout, snap: Snapshot, recipe: Recipe, input_dir, force, stop_after, log) -> dict:
    t0 = time.monotonic()
    st = layout.storage
    files.use(st)
    work = snap.dedup.work()
    extracted = None  # {stem: extract marker fingerprint}: what this dedup is of (tokenize checks it)
    if input_dir:
        input_dir = str(input_dir)
        inputs = files.parquet_files(input_dir)
    else:  # only files whose extract is done: a failed file's partial output is not an input
        input_dir = snap.folder("docs")
        extracted = snap.markers.done()
        inputs = [snap.path("docs", stem) for stem in sorted(extracted)]
    if not inputs:
        raise DedupError(_no_inputs(snap, input_dir) if extracted is not None else
                         f"no Parquet documents in {input_dir}")
    stems = [basename(f)[: -len(".parquet")] for f in inputs]
    scope_all = recipe.dedup.scope == "all"
    order, earlier = _earlier_indexes(layout, snap.name) if scope_all else (0, [])
    entries = [st.info(f) for f in inputs]
    plan = {
        "input_dir": input_dir, "stems": stems,
        # cheap to read for 100k files; the signatures check each file's content fingerprint themselves
        "files": [[e.size, e.mtime] if e else None for e in entries],
        "minhash": asdict(recipe.minhash), "dedup": vars(recipe.dedup), "earlier": [d for _, d, _ in earlier],
        "pii": asdict(recipe.pii), "inputs": extracted, "work_format": WORK_FORMAT,
    }
    plan_uri = snap.dedup.plan_uri
    if force or st.read_json(plan_uri) != plan:
        # Another input or recipe: nothing downstream of the signatures may be reused.
        for d in (snap.dedup.uri, snap.folder("final"), layout.index_dir(snap.name)):
            st.delete_tree(d)
        st.write_json(plan_uri, plan)
    elif st.exists(snap.dedup.done_uri):
        log(f"dedup: {snap.name} already done (use --force to redo)")
        return st.read_json(snap.dedup.summary_uri)
    for d in (snap.dedup.uri, snap.folder("signatures"), snap.folder("final")):
        st.clean_partials(d)
    seconds = {}

    def step(name: str, t: float) -> None:
        seconds[name] = round(time.monotonic() - t, 3)
        log(f"dedup: {name} done in {seconds[name]:.1f}s")
        if stop_after == name:
            raise StopAfter(name)

    compiling = compile_kernels_in_background() if recipe.dedup.enabled else None
    ensure_ray()  # while the kernels compile: a cold start pays for the two at once
    if compiling is not None:
        compiling.join()  # before the first task: this machine's workers then load the compiled code
    waves = _Waves(recipe, snap, digest(plan))
    with TaskUsage() as driver:  # the driver's own memory: per-file and per-task values only
        if recipe.dedup.enabled:
            documents, cstats = _find_duplicates(waves, recipe, snap, inputs, stems, work, earlier, step, log)
        else:  # PII only: every document survives
            documents = sum(open_docs_file(f).metadata.num_rows for f in inputs)
            cstats = {"exact_duplicates": 0, "near_duplicates": 0, "matched_earlier": 0, "clusters": 0,
                      "cluster_sizes": {}, "edges": 0, "rounds": 0}
        t = time.monotonic()
        clusters = snap.dedup.path("clusters")
        fstats = waves("finalize", finalize_file, [
            (f, join(clusters, f"{s}.parquet") if recipe.dedup.enabled else None,
             snap.dedup.file("duplicates", s), snap.path("final", s), recipe.pii)
            for f, s in zip(inputs, stems)
        ])
        step("finalize", t)
    summary = {
        "snapshot": snap.name, "input_dir": input_dir, "files": len(inputs), "scope": recipe.dedup.scope,
        "documents": int(documents), "kept": int(sum(f["kept"] for f in fstats)),
        "exact_duplicates": cstats["exact_duplicates"], "near_duplicates": cstats["near_duplicates"],
        "matched_earlier": cstats["matched_earlier"], "clusters": cstats["clusters"],
        "cluster_sizes": cstats["cluster_sizes"], "candidate_edges": cstats["edges"],
        "pii": {"emails": int(sum(f["pii_emails"] for f in fstats)), "ips": int(sum(f["pii_ips"] for f in fstats))},
        "seconds": round(time.monotonic() - t0, 3), "step_seconds": seconds,
        "component_rounds": cstats["rounds"], "components": cstats.get("components", "none"), "tasks": waves.usage,
        "driver_rss_mb": {"start": driver.stats()["rss_start_mb"], "peak": driver.stats()["peak_rss_mb"]},
    }
    if summary["kept"] + summary["exact_duplicates"] + summary["near_duplicates"] != summary["documents"]:
        raise DedupError(f"document count mismatch in {snap.name}: {summary}")  # never lose documents silently
    st.write_json(snap.dedup.summary_uri, summary)
    if scope_all and recipe.dedup.enabled:
        st.write_json(done_record(layout.index_dir(snap.name)),
                      {"snapshot": snap.name, "order": order, "stems": stems,
                       "num_partitions": recipe.dedup.num_partitions})
    st.delete_tree(work)  # the index keeps what later snapshots need
    st.write_json(snap.dedup.done_uri,
                  {"snapshot": snap.name, "documents": summary["documents"], "kept": summary["kept"],
                   "inputs": extracted, "finished_at": datetime.now(UTC).isoformat()})
    return summary
