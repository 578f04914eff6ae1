"""The decontaminate stage on Ray: one snapshot's documents without the ones that hold benchmark items.

It runs after dedup and before classify and tokenize. It reads final/ (docs/ in a recipe whose documents skip
dedup: Recipe.decontaminate_source) and writes decontaminated/ (kept), decontaminated_removed/ (removed, with
the benchmark, the item id and the shared n-gram) and, in "cut" mode, decontam/cuts/; classify and tokenize
then read decontaminated/. The pure code is crawlproc/decontam (what is indexed, the normalization, matching).

- The index of the benchmark items (the bundled evaluation suite and `decontaminate.benchmarks`) is built
  once, on the driver, and the stage runner puts it in Ray's object store once for all files: each task
  reads its numpy arrays there without a copy.
- One unit per input file (pipelines/engine/runner.py): its marker (decontam/work/files/_done/) carries the
  fingerprint of the input's identity, the index (its files' sha256 and settings) and the mode, so a rerun
  skips what is done, and a new benchmark file, setting or input redoes the files it concerns.
- Then decontam/summary.json (per benchmark: documents, items seen, top domains; the files cleaned against,
  with their sha256) and decontam/_done.json, the commit record of a finished plan (rewritten only when the
  plan changed; removed before a changed plan redoes any file).
- decontam/plan.json, written before any unit runs, lists each file's fingerprint: a later stage reads a file
  of decontaminated/ only when its marker has that fingerprint (decontaminated_inputs), and takes that
  fingerprint as the file's identity. So a file decontaminated again (a new benchmark file, another input)
  is encoded again, one that is unchanged is not, and a file whose decontamination failed is reported by
  the later stage with its cause instead of being read stale.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field

from crawlproc.decontam.apply import decontaminate_file, settings_of
from crawlproc.decontam.index import Index, cached_index
from crawlproc.evalsuite import FEWSHOT_SUFFIX, EvalSuiteError, Task, default_suite, load_task
from crawlproc.recipe import Recipe, RecipeError
from crawlproc.store.fingerprint import digest
from crawlproc.store.layout import Layout, Snapshot, check_snapshot_name, now_iso
from crawlproc.store.lock import hold
from crawlproc.store.storage import Storage, clean_stage_partials, storage_for
from pipelines.engine.runner import StageSummary, Unit, run_stage

TOP_DOMAINS = 10
MAX_DOMAINS = 10_000  # per benchmark while summing files: beyond this only the most frequent are kept


class DecontaminateError(RuntimeError):
    """The stage cannot run as asked (its input is not ready)."""


# --- the benchmarks and the index (on the driver) ----------------------------------------------------------


def benchmark_files(cfg, storage: Storage) -> list[str]:
    """The task files to clean against: the bundled suite's (when default_suite), then each of
    `decontaminate.benchmarks` (a .jsonl file, or a folder whose .jsonl tasks are taken, few-shot files left
    out)."""
    files = [str(p) for p in default_suite()] if cfg.default_suite else []
    for entry in cfg.benchmarks:
        if entry.endswith(".jsonl"):
            files.append(entry)
            continue
        found = [e.uri for e in storage.list(entry, suffix=".jsonl") if not e.name.endswith(FEWSHOT_SUFFIX)]
        if not found:
            raise RecipeError("decontaminate.benchmarks", f"{entry!r} is neither a .jsonl task file nor a folder "
                              "holding any")
        files.extend(found)
    return files


def load_benchmarks(cfg, storage: Storage) -> tuple[list[Task], dict[str, str]]:
    """The tasks of benchmark_files and the sha256 of each task file's bytes (what `sha256sum` prints: the
    few-shot files are not indexed, so they are not part of it); a file that cannot be read as benchmark items
    is a RecipeError."""
    tasks: list[Task] = []
    digests: dict[str, str] = {}
    names: dict[str, str] = {}
    for path in benchmark_files(cfg, storage):
        try:
            data = storage.read_bytes(path)
            task = load_task(path, read=lambda p, path=path, data=data: data if p == path else storage.read_bytes(p))
        except (EvalSuiteError, UnicodeDecodeError) as e:
            raise RecipeError("decontaminate.benchmarks", str(e)) from None
        except FileNotFoundError:
            raise RecipeError("decontaminate.benchmarks", f"{path}: no such benchmark file") from None
        except OSError as e:
            raise RecipeError("decontaminate.benchmarks", f"{path}: cannot be read ({e})") from None
        if task.name in names:
            raise RecipeError("decontaminate.benchmarks", f"two task files are named {task.name!r} "
                              f"({names[task.name]} and {path}): a removal names its benchmark, rename one")
        names[task.name] = path
        digests[path] = hashlib.sha256(data).hexdigest()
        tasks.append(task)
    return tasks, digests


def build_index(recipe: Recipe, log=print) -> Index:
    """The index of the recipe's benchmarks (reused within this process while files and settings are the same)."""
    cfg = recipe.decontaminate
    t = time.perf_counter()
    tasks, digests = load_benchmarks(cfg, storage_for(recipe))
    index = cached_index(tasks, **cfg.index_settings())
    for b in index.benchmarks:
        b.sha256 = digests.get(b.path, b.sha256)
    if not tasks:
        log("decontaminate: no benchmark files (the bundled suite is empty and decontaminate.benchmarks names "
            "none): documents pass unchanged")
    else:
        items = sum(b.items for b in index.benchmarks)
        log(f"decontaminate: index of {len(tasks)} benchmark file(s), {items:,} items, {index.size:,} {cfg.n}-grams "
            f"({index.nbytes / 1e6:.1f} MB) in {time.perf_counter() - t:.1f}s")
    return index


# --- inputs ------------------------------------------------------------------------------------------------


@dataclass
class Input:
    stem: str
    uri: str
    identity: str  # what the input's content is made of: the finished dedup, or the file's extract marker


def find_inputs(snap: Snapshot, source: str, recipe: Recipe | None = None) -> list[Input]:
    """The files decontamination reads; a snapshot whose dedup has not finished, or no longer holds (its files
    extracted again, or an older snapshot of a cross-snapshot dedup changed), is an error naming the fix."""
    if source == "final":
        finished = snap.dedup.done()
        if not finished:
            # the key that makes decontamination read docs/ (Recipe.decontaminate_source)
            key = "classify.source" if recipe is not None and recipe.classifiers else "tokenize.source"
            raise DecontaminateError(
                f"snapshot {snap.name!r} has no finished dedup (its final/ is what is decontaminated): run "
                f"`crawlproc dedup --snapshot {snap.name}` first, or set {key} = \"docs\" in a recipe without dedup")
        deduped = finished.get("inputs")
        if deduped is not None and deduped != snap.markers.done():
            raise DecontaminateError(
                f"snapshot {snap.name!r} changed since its dedup (files were extracted or redone after it): run "
                f"`crawlproc dedup --snapshot {snap.name}` again first")
        if recipe is not None:
            from pipelines.stages.dedup import stale_against_older

            why = stale_against_older(snap.layout, snap.name, recipe)
            if why:
                raise DecontaminateError(f"snapshot {snap.name!r} was deduplicated against {why}: run `crawlproc "
                                         f"dedup --snapshot {snap.name} --scope all` again first")
        identity = digest(finished)
        return [Input(s, snap.path("final", s), identity) for s in snap.stems("final")]
    return [Input(stem, snap.path("docs", stem), fp) for stem, fp in sorted(snap.markers.done().items())]


def inputs_digest(inputs: list[Input]) -> str:
    return digest(sorted((i.stem, i.identity) for i in inputs))


def decontaminated_inputs(snap: Snapshot, source: str, recipe: Recipe | None = None
                          ) -> tuple[list[Input], dict[str, str]]:
    """The files of <snapshot>/decontaminated/ that the stages after it may read, each identified by the
    fingerprint its decontamination was made with (its input, the index, the settings), and the files of the
    plan that are not decontaminated ({stem: why}: the unit's root cause, or not run yet). Raises
    DecontaminateError when decontamination never ran on the snapshot, or ran before its input last changed."""
    plan = snap.storage.read_json(snap.decontam.plan_uri)
    if not plan:
        raise DecontaminateError(f"snapshot {snap.name!r} has no decontamination: run `crawlproc decontaminate "
                                 f"--snapshot {snap.name}` first")
    if plan.get("inputs") != inputs_digest(find_inputs(snap, source, recipe)):
        raise DecontaminateError(f"snapshot {snap.name!r} changed since its decontamination ({source}/ was redone "
                                 f"after it): run `crawlproc decontaminate --snapshot {snap.name}` again first")
    markers = snap.decontam_markers()
    done = markers.done()
    failed = markers.failed()
    ready, missing = [], {}
    for stem, fp in sorted(plan["files"].items()):
        if done.get(stem) == fp:
            ready.append(Input(stem, snap.path("decontaminated", stem), fp))
        else:
            cause = (failed.get(stem) or {}).get("error")
            missing[stem] = f"decontaminate: {cause}" if cause else "not decontaminated yet (its run stopped first)"
    return ready, missing


# --- the stage ---------------------------------------------------------------------------------------------


@dataclass
class DecontaminateSummary(StageSummary):
    snapshot: str = ""
    inputs: int = 0
    processed: int = 0  # files decontaminated by this command
    documents: int = 0
    kept: int = 0
    removed: int = 0
    cut: int = 0
    benchmarks: dict = field(default_factory=dict)


def run_decontaminate(out: str, snapshot: str, recipe: Recipe, *, force: bool = False, progress: bool = True,
                      log=print, index: Index | None = None) -> DecontaminateSummary:
    """Decontaminate one snapshot (see the module docstring); `index` saves building it again when a driver
    runs several snapshots. Holds the snapshot's lock. Ray must be initialisable."""
    started = time.perf_counter()
    summary = DecontaminateSummary(snapshot=snapshot)
    if not recipe.decontaminate.enabled:
        log("decontaminate: off in the recipe ([decontaminate] enabled = false)")
        return summary
    layout = Layout(out, storage_for(recipe))
    snap = layout.snapshot(check_snapshot_name(snapshot, "--snapshot"))
    with hold(layout.storage, snap.lock_uri, f"snapshot {snap.uri}"):
        clean_stage_partials(layout.storage, snap.uri)  # what killed runs left half-written
        source = recipe.decontaminate_source()
        inputs = find_inputs(snap, source, recipe)
        summary.inputs = len(inputs)
        index = index or build_index(recipe, log)
        settings = settings_of(recipe.decontaminate)
        units = [Unit(i.stem, (i.uri, i.stem), i.uri,
                      digest({"input": i.identity, "index": index.fingerprint, **settings})) for i in inputs]
        plan = digest(sorted((u.key, u.fingerprint) for u in units))
        done = snap.storage.read_json(snap.decontam.done_uri) or {}
        if done and (force or done.get("plan") != plan):
            snap.storage.delete(snap.decontam.done_uri)  # decontaminated/ is about to change
        record = {"plan": plan, "inputs": inputs_digest(inputs), "source": source, "index": index.fingerprint,
                  "files": {u.key: u.fingerprint for u in units}}
        if snap.storage.read_json(snap.decontam.plan_uri) != record:  # before any unit: what each file will be
            snap.storage.write_json(snap.decontam.plan_uri, record)
        markers = snap.decontam_markers()
        fresh: dict[str, dict] = {}
        result = run_stage("decontaminate", units, decontaminate_file, shared=(snap, index, settings),
                           markers=markers, num_cpus=recipe.ray.num_cpus_per_task,
                           max_retries=recipe.ray.max_retries, force=force,
                           progress="decontaminate" if progress else False,
                           on_result=lambda u, stats: fresh.__setitem__(u.key, stats))
        summary.processed = result.done
        summary.absorb(result, lambda source: f"decontaminate {source}")
        if not result.ok:
            return _finish(summary, started)
        _drop_vanished(snap, {i.stem for i in inputs}, log)
        previous = snap.storage.read_json(snap.decontam.summary_uri) or {}
        if fresh or previous.get("plan") != plan or not done or done.get("plan") != plan:
            stats = {u.key: fresh.get(u.key) or (markers.read(u.key, u.fingerprint) or {}).get("stats") or {}
                     for u in units}
            record = _write_summary(snap, source, index, recipe, stats, plan, inputs_digest(inputs))
        else:
            record = previous
        summary.documents, summary.kept, summary.removed, summary.cut = (
            record[k] for k in ("documents", "kept", "removed", "cut"))
        summary.benchmarks = record["benchmarks"]
        by = ", ".join(f"{name} {b['documents']}" for name, b in record["benchmarks"].items() if b["documents"])
        log(f"decontaminate: {snapshot}: {summary.documents:,} documents, {summary.removed:,} removed"
            + (f", {summary.cut:,} cut" if recipe.decontaminate.mode == "cut" else "") + (f" ({by})" if by else "")
            + f"; {summary.processed} file(s) done by this run")
    return _finish(summary, started)


def _finish(summary: DecontaminateSummary, started: float) -> DecontaminateSummary:
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _drop_vanished(snap: Snapshot, stems: set[str], log) -> None:
    """Outputs of input files that no longer exist (a rerun dedup with fewer files)."""
    gone = 0
    for kind in ("decontaminated", "decontaminated_removed"):
        for stem in snap.stems(kind):
            if stem not in stems:
                snap.storage.delete(snap.path(kind, stem))
                gone += kind == "decontaminated"
    for e in snap.storage.list(snap.decontam.path("cuts"), suffix=".parquet"):
        if e.name[: -len(".parquet")] not in stems:
            snap.storage.delete(e.uri)
    markers = snap.decontam_markers()
    for key, fp in markers.done().items():
        if key not in stems:
            markers.unmark(key, fp)
    if gone:
        log(f"decontaminate: removed the outputs of {gone} input file(s) that no longer exist")


def _write_summary(snap: Snapshot, source: str, index: Index, recipe: Recipe, stats: dict, plan: str,
                   inputs: str) -> dict:
    """summary.json, and _done.json when the plan changed (see the module docstring)."""
    totals = Counter()
    per: dict[str, dict] = {}
    for s in stats.values():
        for k in ("documents", "kept", "removed", "cut", "chars_cut", "below_min_matches", "chars"):
            totals[k] += int(s.get(k) or 0)
        for name, b in (s.get("benchmarks") or {}).items():
            p = per.setdefault(name, {"documents": 0, "removed": 0, "cut": 0, "items": set(), "domains": Counter()})
            for k in ("documents", "removed", "cut"):
                p[k] += int(b.get(k) or 0)
            p["items"].update(b.get("items") or [])
            p["domains"].update(b.get("domains") or {})
            if len(p["domains"]) > MAX_DOMAINS:
                p["domains"] = Counter(dict(p["domains"].most_common(MAX_DOMAINS // 2)))
    if totals["kept"] + totals["removed"] != totals["documents"]:  # never lose documents silently
        raise DecontaminateError(f"decontaminate {snap.name}: kept {totals['kept']} + removed {totals['removed']} "
                                 f"!= {totals['documents']} documents")
    benchmarks = {}
    for b in index.benchmarks:
        p = per.get(b.name) or {"documents": 0, "removed": 0, "cut": 0, "items": set(), "domains": Counter()}
        benchmarks[b.name] = {
            "documents": p["documents"], "removed": p["removed"], "cut": p["cut"],
            "items": b.items, "items_seen": len(p["items"]),
            "share_seen": round(len(p["items"]) / b.items, 6) if b.items else 0.0,
            "top_domains": [[d, n] for d, n in p["domains"].most_common(TOP_DOMAINS)],
            "file": b.path, "sha256": b.sha256,
        }
    cfg = recipe.decontaminate
    record = {"snapshot": snap.name, "source": source, "files": len(stats), **{k: totals[k] for k in (
        "documents", "kept", "removed", "cut", "chars_cut", "below_min_matches", "chars")},
        "settings": {"mode": cfg.mode, "min_matches": cfg.min_matches, "min_words_after_cut": cfg.min_words_after_cut,
                     **cfg.index_settings()},
        "index": index.record(), "benchmarks": benchmarks, "plan": plan, "updated_at": now_iso()}
    snap.storage.write_json(snap.decontam.summary_uri, record)
    done = snap.storage.read_json(snap.decontam.done_uri) or {}
    if done.get("plan") != plan:
        snap.storage.write_json(snap.decontam.done_uri, {
            "snapshot": snap.name, "documents": totals["documents"], "kept": totals["kept"], "plan": plan,
            "inputs": inputs, "index": index.fingerprint, "finished_at": now_iso()})
    return record
