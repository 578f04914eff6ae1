"""MinHash near-duplicate removal on Ray, then PII anonymization: the orchestration of crawlproc.dedup.

The stage runs in waves of tasks of the stage runner over crawlproc.dedup's functions (see that package for
what they do), all through the recipe's storage (a folder or a bucket); every unit's marker carries the plan's
fingerprint and every output is written whole, so a rerun resumes where a crash stopped:
  signatures  per docs file, shuffle per group of signatures files, edges per key partition,
  components  Large-Star/Small-Star rounds (three waves each) until no partition changes, or one task
              ("single"; "auto", the default, when the distinct edges are few), then three waves to
              dedup/clusters/<stem>.parquet,
  finalize    per docs file: dedup/duplicates/ and final/ (PII applied).
Then dedup/summary.json (with each step's task count, CPU seconds and largest task's peak RSS) and
dedup/_done.json. A node is `file_no << 32 | row` in the sorted input list, so reruns pick the same survivors.

Across snapshots (`dedup.scope = "all"`) each cluster of near-duplicates keeps one survivor, in the older
crawl: `dedup.order` lists snapshots oldest first, the others follow by name (CC-MAIN-YYYY-WW sorts by crawl
date). A snapshot is matched against the band index of every older snapshot under the root (one without a
current index gets one built from its documents first, `crawlproc.dedup.index`), never against a newer one;
its plan records which indexes it was matched against, so when an older snapshot changes, the newer
snapshots deduplicated against it are redone after it (in order), and tokenize refuses a stale one.
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
from crawlproc.dedup.index import index_part, index_record
from crawlproc.dedup.signatures import compute_signatures, open_docs_file, signature_fingerprint
from crawlproc.dedup.stars import run_components
from crawlproc.dedup.usage import TaskUsage
from crawlproc.store.fingerprint import digest
from crawlproc.store.layout import Layout, Snapshot, StageDir, check_snapshot_name, done_record
from crawlproc.store.lock import hold
from crawlproc.recipe import Recipe
from crawlproc.store.storage import Storage, basename, join, storage_for
from pipelines.engine.runner import Unit, ensure_ray, run_stage

WAVES = ("signatures", "shuffle", "edges", "components", "finalize")
# components = "auto" runs one task up to this many distinct edges. It grows ~120 bytes per edge (measured by
# bench/bench_dedup_million.py: 64 MB for 547k edges), so 8M edges stay near 1 GB, half the 2 GB per task
# that bench/dedup_projection.py budgets; and it saves the distributed rounds' waves (three per round, each
# a fixed cost of tasks and P x P small reads, however few the edges).
SINGLE_TASK_EDGES = 8_000_000
# The format of dedup/work/'s files (2: Arrow IPC buckets), part of the plan: a run stopped by code that wrote
# another one starts over instead of resuming on files this code cannot read.
WORK_FORMAT = 2


class StopAfter(RuntimeError):
    """Raised when `stop_after` asks to stop between waves (simulates a crash in tests)."""


def _measured(args: tuple, fn, storage: Storage) -> dict:
    """Runs in a task: fn(*args) over the recipe's storage, with its CPU and peak memory (a long list argument
    arrives as an ObjectRef: shared by the wave's tasks, resolved here)."""
    files.use(storage)
    args = tuple(ray.get(a) if isinstance(a, ray.ObjectRef) else a for a in args)
    with TaskUsage() as usage:
        result = fn(*args) or {}
    return {**result, "usage": usage.stats()}


# what each wave's tasks process, for its progress line (a wave not named here counts its tasks)
_WAVE_COUNTS = {"compute_signatures": ("documents", "docs"), "finalize_file": ("documents", "docs"),
                "shuffle_files": ("rows", "band keys"), "partition_edges": ("edges", "edges"),
                "index_part": ("keys", "band keys")}


class _Waves:
    """Each wave (one function over many argument tuples) is one stage of the stage runner, with its own
    markers under dedup/work/<wave>/ and the plan's fingerprint, so a wave resumes unit by unit and every
    failure keeps its root cause; results come back in argument order (a unit done earlier reads its
    result from its marker). A failed unit stops dedup with a DedupError naming it."""

    def __init__(self, recipe: Recipe, folder: StageDir, fingerprint: str):
        self.recipe, self.folder, self.fingerprint = recipe, folder, fingerprint
        self.usage: dict[str, dict] = {}
        self._lists: dict[int, ray.ObjectRef] = {}

    def _share(self, a):
        if isinstance(a, list) and len(a) > 64:  # the same long list in every task: once in the store
            if id(a) not in self._lists:
                self._lists[id(a)] = (ray.put(a), a)
            return self._lists[id(a)][0]
        return a

    def __call__(self, name: str, fn, arg_tuples: list[tuple]) -> list:
        wave = re.sub(r"[^a-z0-9]+", "-", f"{name} {fn.__name__}".lower()).strip("-")
        markers = self.folder.wave_markers(wave)
        units = [Unit(key=f"u{i:05d}", args=(tuple(self._share(a) for a in args),), source=f"{wave} {i}",
                      fingerprint=self.fingerprint) for i, args in enumerate(arg_tuples)]
        result = run_stage(f"dedup {name}", units, _measured, shared=(fn, self.folder.storage), markers=markers,
                           num_cpus=self.recipe.ray.num_cpus_per_task, max_retries=self.recipe.ray.max_retries,
                           progress=f"dedup {name}" if len(units) >= 16 else False, fail_fast=3, keep_stats=True,
                           unit="tasks", count=_WAVE_COUNTS.get(fn.__name__, (None, "")))
        if result.stopped or result.failed:
            first = result.stopped or next(iter(result.failed.values()))
            raise DedupError(f"{name}: {len(result.failed)} of {len(units)} tasks failed; first: {first.line()}")
        out = []
        use = self.usage.setdefault(name, {"tasks": 0, "cpu_s": 0.0, "max_peak_rss_mb": 0.0, "max_growth_mb": 0.0})
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


def snapshot_order(layout: Layout, recipe: Recipe, also: str | None = None) -> list[str]:
    """The snapshots under the root, oldest first (see the module docstring), with `also` among them."""
    names = set(layout.snapshots()) | ({also} if also else set())
    listed = [n for n in recipe.dedup.order if n in names]
    return listed + sorted(names - set(listed))


def _input_files(snap: Snapshot) -> tuple[list[str], list[str], dict | None]:
    """(docs files, stems, extract markers) a snapshot's dedup reads: its extract-done files, or, for a snapshot
    deduplicated from a folder (`--input-dir`), the files its dedup plan names."""
    extracted = snap.markers.done()
    if extracted:
        return [snap.path("docs", s) for s in sorted(extracted)], sorted(extracted), extracted
    plan = snap.storage.read_json(snap.dedup.plan_uri) or {}
    if plan.get("input_dir") and plan.get("stems"):
        return [join(plan["input_dir"], f"{s}.parquet") for s in plan["stems"]], list(plan["stems"]), None
    return [], [], None


def _source(snap: Snapshot, inputs: list[str], extracted: dict | None) -> dict:
    """What a snapshot's documents are, for its index record: the extract markers, or the files' sizes and
    times (a foreign folder)."""
    if extracted is not None:
        return {"inputs": extracted}
    return {"files": [[e.size, e.mtime] if e else None for e in map(snap.storage.info, inputs)]}


def _index_info(layout: Layout, name: str) -> dict | None:
    return layout.storage.read_json(done_record(layout.index_dir(name)))


def _index_is_current(layout: Layout, name: str, recipe: Recipe) -> tuple[dict | None, str]:
    """(the index record, "") when the snapshot's index is usable with this recipe, else (None, why not)."""
    info = _index_info(layout, name)
    if not info:
        return None, "it has no band index"
    if info.get("minhash") != signature_fingerprint(recipe.minhash):
        return None, "its band index was made with other [minhash] settings"
    snap = layout.snapshot(name)
    inputs, _, extracted = _input_files(snap)
    if info.get("source") != _source(snap, inputs, extracted):
        return None, "its documents changed since its band index was made"
    return info, ""


def _build_index(layout: Layout, name: str, recipe: Recipe, log) -> dict | None:
    """A band index for an older snapshot that has no current one, from its documents: signatures, a shuffle
    by key, the partitions, then the record. Holds that snapshot's lock. None when it has no documents."""
    snap = layout.snapshot(name)
    with hold(layout.storage, snap.lock_uri, f"snapshot {snap.uri}"):
        inputs, stems, extracted = _input_files(snap)
        if not inputs:
            return None
        index_dir = layout.index_dir(name)
        folder = StageDir(layout.storage, index_dir)
        record = index_record(name, stems, recipe.dedup.num_partitions, recipe.minhash,
                              _source(snap, inputs, extracted))
        if layout.storage.read_json(folder.plan_uri) != record:
            layout.storage.delete_tree(index_dir)
            layout.storage.write_json(folder.plan_uri, record)
        layout.storage.clean_partials(index_dir)
        waves = _Waves(recipe, folder, digest(record))
        P = recipe.dedup.num_partitions
        sig = [folder.path("signatures", f"{s}.parquet") for s in stems]
        waves("index signatures", compute_signatures,
              [(f, p, recipe.minhash, recipe.dedup.signature_batch, recipe.dedup.by_language, recipe.dedup.ids)
               for f, p in zip(inputs, sig)])
        k = recipe.dedup.shuffle_files_per_task
        groups = [list(zip(sig[i: i + k], range(i, i + k))) for i in range(0, len(sig), k)]
        shuffled = [folder.work("shuffle", f"group-{g:05d}.arrow") for g in range(len(groups))]
        waves("index shuffle", shuffle_files, [(grp, out, P, False) for grp, out in zip(groups, shuffled)])
        waves("index partitions", index_part, [(p, shuffled, index_dir) for p in range(P)])
        layout.storage.delete_tree(folder.work())
        info = {**record, "signatures": folder.path("signatures")}
        layout.storage.write_json(folder.done_uri, info)
        log(f"dedup: indexed {name} ({len(stems)} files) for the snapshots newer than it")
        return info


def _older_indexes(layout: Layout, snapshot: str, recipe: Recipe, log) -> list[tuple[int, str, dict]]:
    """[(number, index dir, record)] of every older snapshot under the root, indexing those without a current
    index first. Older snapshots get higher numbers: their nodes sort lower, so the oldest crawl's document is
    the root (the survivor) of a cluster."""
    order = snapshot_order(layout, recipe, also=snapshot)
    older = order[: order.index(snapshot)]
    out = []
    for rank, name in enumerate(older):
        info, why = _index_is_current(layout, name, recipe)
        if info is None:
            log(f"dedup: older snapshot {name}: {why}; indexing it first")
            info = _build_index(layout, name, recipe, log)
            if info is None:
                continue
        out.append((len(older) - rank, layout.index_dir(name), info))
    return out


def _signatures_of(layout: Layout, info: dict) -> str:
    """Where an index's documents' ids can be read: its own signatures, or its snapshot's dedup signatures."""
    return info.get("signatures") or layout.snapshot(info["snapshot"]).folder("signatures")


def _find_duplicates(waves, recipe, snap, files_, stems, work, earlier, step, log) -> tuple[int, dict]:
    """signatures, shuffle, edges, components; returns (documents, cluster counts)."""
    layout = snap.layout
    t = time.monotonic()
    sig = [snap.path("signatures", s) for s in stems]
    counts = waves("signatures", compute_signatures,
                   [(f, p, recipe.minhash, recipe.dedup.signature_batch, recipe.dedup.by_language,
                     recipe.dedup.ids)
                    for f, p in zip(files_, sig)])
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
    their = {o: (_signatures_of(layout, i), i["stems"]) for o, _, i in earlier}
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

    Uses the running Ray (else starts a local one). `stop_after` (one of WAVES) raises StopAfter after that
    wave: tests use it to crash the run in the middle.

    With scope "all", the newer snapshots that were deduplicated against an older state of this one (or of any
    snapshot older than them) are redone after it, oldest first, so that every cluster keeps one survivor
    whatever order the commands ran in."""
    layout = Layout(str(out), storage_for(recipe))
    snap = layout.snapshot(check_snapshot_name(snapshot, "--snapshot"))
    with hold(layout.storage, snap.lock_uri, f"snapshot {snap.uri}"):
        summary = _dedup(layout, snap, recipe, input_dir, force, stop_after, log)
    if recipe.dedup.scope == "all" and recipe.dedup.enabled:
        order = snapshot_order(layout, recipe, also=snapshot)
        for newer in order[order.index(snapshot) + 1:]:
            why = stale_against_older(layout, newer, recipe)
            if why:
                log(f"dedup: {newer} was deduplicated against {why}: redoing it")
                other = layout.snapshot(newer)
                with hold(layout.storage, other.lock_uri, f"snapshot {other.uri}"):
                    plan = layout.storage.read_json(other.dedup.plan_uri) or {}
                    from_dir = None if plan.get("inputs") is not None else plan.get("input_dir")
                    _dedup(layout, other, recipe, from_dir, False, None, log)
    return summary


def _identities(earlier: list[tuple[int, str, dict]]) -> list[list[str]]:
    """[snapshot, digest of its index record] of the indexes a dedup matched against, oldest first."""
    return [[info["snapshot"], digest(info)] for _, _, info in sorted(earlier, key=lambda e: -e[0])]


def stale_against_older(layout: Layout, name: str, recipe: Recipe) -> str | None:
    """Why a snapshot's finished cross-snapshot dedup no longer holds (an older snapshot's index changed,
    appeared or went), or None when it holds or is not a scope-"all" dedup. Reads only: builds nothing."""
    snap = layout.snapshot(name)
    plan = layout.storage.read_json(snap.dedup.plan_uri)
    if not plan or not layout.storage.exists(snap.dedup.done_uri) or (plan.get("dedup") or {}).get("scope") != "all":
        return None
    if not (plan.get("dedup") or {}).get("enabled", True):
        return None
    order = snapshot_order(layout, recipe, also=name)
    now = []
    for older in order[: order.index(name)]:
        info, why = _index_is_current(layout, older, recipe)
        if info is None:
            if not _input_files(layout.snapshot(older))[0]:
                continue  # nothing to index: not part of the scope
            return f"{older}, which {why.removeprefix('it').strip()} now"
        now.append([older, digest(info)])
    used = plan.get("earlier") or []
    if now != used:
        changed = sorted({n for n, _ in now} ^ {n for n, _ in used}) or [
            n for (n, a), (_, b) in zip(now, used) if a != b]
        return f"an older state of {', '.join(changed) or 'the older snapshots'}"
    return None


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
    scope_all = recipe.dedup.scope == "all" and recipe.dedup.enabled
    earlier = _older_indexes(layout, snap.name, recipe, log) if scope_all else []
    names = {n: info["snapshot"] for n, _, info in earlier}
    entries = [st.info(f) for f in inputs]
    plan = {
        "input_dir": input_dir, "stems": stems,
        # cheap to read for 100k files; the signatures check each file's content fingerprint themselves
        "files": [[e.size, e.mtime] if e else None for e in entries],
        "minhash": recipe.minhash.identity(), "dedup": {k: v for k, v in vars(recipe.dedup).items() if k != "order"},
        "earlier": _identities(earlier), "pii": asdict(recipe.pii), "inputs": extracted,
        "work_format": WORK_FORMAT,
    }
    plan_uri = snap.dedup.plan_uri
    if force or st.read_json(plan_uri) != plan:
        # Another input or recipe: nothing downstream of the signatures may be reused.
        # (its band index too when this dedup rewrites it: readers see no index rather than a half-written one;
        # with scope "snapshot" an index built from the same documents stays valid: its record says of what)
        for d in (snap.dedup.uri, snap.folder("final"), *([layout.index_dir(snap.name)] if scope_all else [])):
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

    compiling = compile_kernels_in_background(recipe.minhash) if recipe.dedup.enabled else None
    ensure_ray()  # while the kernels compile: a cold start pays for the two at once
    if compiling is not None:
        compiling.join()  # before the first task: this machine's workers then load the compiled code
    waves = _Waves(recipe, snap.dedup, digest(plan))
    with TaskUsage() as driver:  # the driver's own memory: per-file and per-task values only
        if recipe.dedup.enabled:
            documents, cstats = _find_duplicates(waves, recipe, snap, inputs, stems, work, earlier, step, log)
        else:  # PII only: every document survives
            documents = sum(open_docs_file(f, ids=recipe.dedup.ids).metadata.num_rows for f in inputs)
            cstats = {"exact_duplicates": 0, "near_duplicates": 0, "matched_earlier": 0, "matched_by": {},
                      "clusters": 0, "cluster_sizes": {}, "edges": 0, "rounds": 0}
        t = time.monotonic()
        clusters = snap.dedup.path("clusters")
        fstats = waves("finalize", finalize_file, [
            (f, join(clusters, f"{s}.parquet") if recipe.dedup.enabled else None,
             snap.dedup.file("duplicates", s), snap.path("final", s), recipe.pii, recipe.dedup.ids)
            for f, s in zip(inputs, stems)
        ])
        step("finalize", t)
    summary = {
        "snapshot": snap.name, "input_dir": input_dir, "files": len(inputs), "scope": recipe.dedup.scope,
        "documents": int(documents), "kept": int(sum(f["kept"] for f in fstats)),
        "exact_duplicates": cstats["exact_duplicates"], "near_duplicates": cstats["near_duplicates"],
        "matched_earlier": cstats["matched_earlier"],
        "matched_by_snapshot": {names[n]: c for n, c in cstats.get("matched_by", {}).items() if n in names},
        "clusters": cstats["clusters"],
        "cluster_sizes": cstats["cluster_sizes"], "candidate_edges": cstats["edges"],
        "pii": {"emails": int(sum(f["pii_emails"] for f in fstats)), "ips": int(sum(f["pii_ips"] for f in fstats))},
        "seconds": round(time.monotonic() - t0, 3), "wave_seconds": seconds,
        "component_rounds": cstats["rounds"], "components": cstats.get("components", "none"), "tasks": waves.usage,
        "driver_rss_mb": {"start": driver.stats()["rss_start_mb"], "peak": driver.stats()["peak_rss_mb"]},
    }
    if summary["matched_by_snapshot"]:
        log("dedup: " + snap.name + " matched older snapshots: " + ", ".join(
            f"{k} {v}" for k, v in summary["matched_by_snapshot"].items()))
    if summary["kept"] + summary["exact_duplicates"] + summary["near_duplicates"] != summary["documents"]:
        raise DedupError(f"document count mismatch in {snap.name}: {summary}")  # never lose documents silently
    st.write_json(snap.dedup.summary_uri, summary)
    if scope_all:
        st.write_json(done_record(layout.index_dir(snap.name)),
                      index_record(snap.name, stems, recipe.dedup.num_partitions, recipe.minhash,
                                   _source(snap, inputs, extracted)))
    st.delete_tree(work)  # the index keeps what later snapshots need
    st.write_json(snap.dedup.done_uri,
                  {"snapshot": snap.name, "documents": summary["documents"], "kept": summary["kept"],
                   "inputs": extracted, "earlier": plan["earlier"], "finished_at": datetime.now(UTC).isoformat()})
    return summary
