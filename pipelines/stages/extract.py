"""The extract stage on Ray: plan which inputs still need it (crawlproc.store.inputs), then one stage-runner task
per file. `run_extract` takes WARC files (local paths, object-store URIs, globs of either); `crawlproc run`
(pipelines/stages/run.py) feeds it the files of a Common Crawl listing through `extract_snapshot`.

A command holds the snapshot's lock while it works (crawlproc.store.lock): a second command on the same snapshot
stops at once with a message naming the holder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from crawlproc.extract.units import extract_file
from crawlproc.extract.stats import FileStats, snapshot_stats
from crawlproc.store.fingerprint import file_fingerprint
from crawlproc.store.inputs import Candidate, Plan, Planned, RecipeChanged, plan_inputs
from crawlproc.store.layout import FILE_KINDS, Layout, Snapshot, check_snapshot_name, warc_stem
from crawlproc.store.lock import hold
from crawlproc.extract.file import extract_fingerprint, extract_view
from crawlproc.recipe import Recipe
from crawlproc.store.storage import Storage, check_local_file, clean_stage_partials, is_remote, join, storage_for
from pipelines.engine.runner import StageResult, StageSummary, Unit, run_stage


@dataclass
class ExtractSummary(StageSummary):
    """What an extract (or a `crawlproc run`) did to one snapshot."""

    snapshot: str
    out: str
    files: int = 0  # inputs of this command (after --limit, for a run)
    skipped_done: int = 0  # already done with this recipe
    same_content: int = 0  # equal to another input: processed once
    done: int = 0  # processed by this command
    removed_files: int = 0  # files of another recipe whose outputs --force removed
    kept: int = 0  # documents of the files processed by this command
    removed: int = 0
    records: int = 0
    total_kept: int | None = None  # documents of every done file of the snapshot (None when not counted)
    total_removed: int | None = None
    # crawlproc run only
    listed: int = 0
    listed_total: int = 0
    rejected: list[dict] = field(default_factory=list)
    stages_run: list[str] = field(default_factory=list)  # the chain's stages after extraction, as they ran
    stage_info: dict[str, dict] = field(default_factory=dict)  # each one's counts

    @property
    def ok(self) -> bool:
        return super().ok and not self.rejected


def expand_inputs(patterns: list[str], storage: Storage | None = None) -> list[str]:
    """Expand globs and folders (local or object-store) into a sorted, de-duplicated list of WARC files; a
    pattern that matches nothing is an error (a typo must not silently process nothing), and so is a local
    match that is not a regular file (a named pipe would block its reader forever, a device never end):
    StorageError, one line, before any work."""
    storage = storage or Storage()
    found: list[str] = []
    for pat in patterns:
        matches = storage.expand(pat, in_folder=lambda name: ".warc" in name)
        if not is_remote(pat):
            for m in matches:
                check_local_file(m, "input")
        if not matches:
            raise FileNotFoundError(f"no input matches {pat!r}")
        found.extend(matches)
    return sorted(dict.fromkeys(found))


def extract_snapshot(
    snap: Snapshot,
    candidates: list[Candidate],
    recipe: Recipe,
    unit_fn: Callable[..., dict],
    unit_args: Callable[[Planned], tuple],
    shared: tuple | Callable[[], tuple],
    summary: ExtractSummary,
    *,
    force: bool = False,
    progress: bool = True,
) -> tuple[Plan, StageResult | None]:
    """Plan `candidates` against the snapshot's markers and run `unit_fn(*unit_args(planned), *shared)` for
    those still to do (`shared` may be a callable, called only when there is work). Raises
    crawlproc.store.inputs.RecipeChanged (nothing started) when done files used another recipe."""
    storage = snap.storage
    clean_stage_partials(storage, snap.uri)  # only temporary files of writers that died
    fp = extract_fingerprint(recipe)
    try:
        plan = plan_inputs(snap, candidates, fp, recipe.to_dict(), force=force, view=extract_view)
    except RecipeChanged as e:
        if _only_filters_changed(snap, recipe):
            e.args = (f"{e} Only quality-filter settings changed: `crawlproc refilter --out {snap.layout.root} "
                      f"--snapshot {snap.name} --recipe <this recipe>` applies them to the extracted text without "
                      "downloading or extracting again.",)
        raise
    storage.write_json(snap.recipe_for(fp), recipe.to_dict())
    storage.write_json(snap.recipe_uri, recipe.to_dict())
    for stem in plan.remove:
        remove_file_outputs(snap, stem)
    summary.removed_files = len(plan.remove)
    summary.skipped_done = len(plan.done)
    summary.same_content = len(plan.same_content)
    result = None
    if plan.todo:
        units = [Unit(key=p.stem, args=unit_args(p), source=p.candidate.source, fingerprint=p.fingerprint)
                 for p in plan.todo]
        result = run_stage("extract", units, unit_fn, shared=shared() if callable(shared) else shared,
                           markers=snap.markers,
                           num_cpus=recipe.ray.num_cpus_per_task, max_retries=recipe.ray.max_retries,
                           progress=f"extract {snap.name}" if progress else False)
        summary.done = result.done
        summary.absorb(result)
        summary.kept = int(result.totals["kept"])
        summary.removed = int(result.totals["removed"])
        summary.records = int(result.totals["records"])
    total = snapshot_total(snap)
    if total is not None:
        summary.total_kept, summary.total_removed = total.kept, total.removed
        summary.stage_info["extract"] = {
            "responses": total.responses, "documents": total.kept + total.removed, "kept": total.kept,
            "removed": total.removed, "removed_by": {k: v["removed"] for k, v in total.steps.items() if v["removed"]}}
    return plan, result


def _only_filters_changed(snap: Snapshot, recipe: Recipe) -> bool:
    from crawlproc.extract.refilter import RefilterError
    from pipelines.stages.refilter import refilter_check

    try:
        return bool(refilter_check(snap, recipe)[1])
    except RefilterError:
        return False


def remove_file_outputs(snap: Snapshot, stem: str) -> None:
    """Forget one file entirely: its marker first (so it is never seen as done), then its outputs."""
    fp = snap.markers.done().get(stem)
    if fp:
        snap.markers.unmark(stem, fp)
    for kind in FILE_KINDS:
        snap.storage.delete(snap.path(kind, stem))
    snap.markers.clear_failed(stem)


def snapshot_total(snap: Snapshot) -> FileStats | None:
    """The counts of every done file (from their markers), summed. Counted on local disks only: on an object
    store it would cost a request per file (see `crawlproc status`)."""
    if snap.storage.local_path(snap.uri) is None:
        return None
    return FileStats.total(snapshot_stats(snap, failed=False)[0].values())



def run_extract(
    inputs: list[str],
    out: str,
    recipe: Recipe,
    *,
    dump: str,
    force: bool = False,
    progress: bool = True,
    storage: Storage | None = None,
) -> ExtractSummary:
    """Process WARC files into <out>/<dump>/{docs,removed,_done}; files already done are skipped.
    Ray must be initialised (pipelines.engine.ray_runtime.init_ray)."""
    layout = Layout(out, storage or storage_for(recipe))
    snap = layout.snapshot(check_snapshot_name(dump, "--dump (snapshot name)"))
    summary = ExtractSummary(snapshot=dump, out=layout.root, files=len(inputs))
    with hold(layout.storage, snap.lock_uri, f"snapshot {join(layout.root, dump)}"):
        candidates = [Candidate(source=p, name=warc_stem(p), input_fp=file_fingerprint(layout.storage, p))
                      for p in inputs]
        extract_snapshot(snap, candidates, recipe, extract_file, lambda p: (p.candidate.source, p.stem),
                         (layout, recipe, dump), summary, force=force, progress=progress)
    return summary
