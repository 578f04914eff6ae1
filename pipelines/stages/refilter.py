"""`crawlproc refilter`: re-apply a recipe whose quality-filter settings changed to a snapshot's extracted files,
without downloading or extracting again (the unit of work: crawlproc/extract/refilter.py).

It refuses, before any work, a recipe whose other extract settings differ from those the files were made with
(URL filter, extraction, language ID, input): those decide what reached the filters, and only a new extract
(`--force`) can change that. Each done file of another recipe is one unit of the stage runner; a file already
done with this recipe is skipped, so a rerun after a crash finishes the rest (and the switch a crash left
half-done). Afterwards the snapshot is what `crawlproc extract` with this recipe would have made of the same
files: dedup and tokenize see new markers and redo what depends on them.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from crawlproc.extract.file import extract_fingerprint
from crawlproc.extract.refilter import (
    RefilterError, filter_sections, finish_switch, pending_switches, refilter_file, refilter_view,
)
from crawlproc.extract.stats import FileStats, snapshot_stats
from crawlproc.recipe import Recipe
from crawlproc.store.fingerprint import changed_keys
from crawlproc.store.layout import Layout, Snapshot
from crawlproc.store.lock import hold
from crawlproc.store.storage import storage_for
from pipelines.engine.runner import StageSummary, Unit, run_stage


@dataclass
class RefilterSummary(StageSummary):
    snapshot: str
    files: int = 0  # done files of the snapshot
    already: int = 0  # done with this recipe before this command
    refiltered: int = 0
    finished: int = 0  # switches a crash had left half-done, completed now
    changed: list[str] = field(default_factory=list)  # the filter keys that differ
    before: dict = field(default_factory=dict)  # {"kept", "removed", "reasons"} of the refiltered files
    after: dict = field(default_factory=dict)


def refilter_check(snap: Snapshot, recipe: Recipe) -> tuple[dict[str, str], list[str]]:
    """({stem: old fingerprint} of the done files to refilter, the filter keys that changed). Raises
    RefilterError, naming the keys, when the files were made with other extract settings than filters'."""
    new = recipe.to_dict()
    new8 = extract_fingerprint(recipe)
    done = snap.markers.done()
    todo = {stem: fp for stem, fp in done.items() if fp[:8] != new8}
    changed: set[str] = set()
    for old8 in sorted({fp[:8] for fp in todo.values()}):
        old = snap.storage.read_json(snap.recipe_for(old8))
        if not isinstance(old, dict):
            raise RefilterError(f"snapshot {snap.name}: the recipe of its files {old8} is not recorded "
                                f"({snap.recipe_for(old8)}): extract them again with --force")
        both = filter_sections(old) | filter_sections(new)
        fixed = changed_keys(refilter_view(old, both), refilter_view(new, both))
        if fixed:
            keys = ", ".join(fixed[:12]) + (" ..." if len(fixed) > 12 else "")
            raise RefilterError(
                f"snapshot {snap.name} was extracted with other settings than the filters' (changed: {keys}): a "
                "refilter re-applies quality filters to the extracted text only. Extract again with this recipe "
                "(`crawlproc extract` or `crawlproc run` with --force), or change only filter sections")
        from crawlproc.extract.file import extract_view

        changed |= set(changed_keys(extract_view(old), extract_view(new)))
    return todo, sorted(changed)


def _tally(stats: list[FileStats]) -> dict:
    total = FileStats.total(stats)
    return {"kept": total.kept, "removed": total.removed, "reasons": dict(Counter(total.removed_reasons))}


def run_refilter(out: str, snapshot: str, recipe: Recipe, *, progress: bool = True) -> RefilterSummary:
    """Refilter every done file of `snapshot` to `recipe`; see the module docstring. Raises RefilterError when
    it cannot. Holds the snapshot's lock."""
    started = time.monotonic()
    layout = Layout(out, storage_for(recipe))
    snap = layout.snapshot(snapshot)
    summary = RefilterSummary(snapshot=snapshot)
    with hold(layout.storage, snap.lock_uri, f"snapshot {snap.uri}"):
        snap.storage.clean_partials(snap.uri)
        new8 = extract_fingerprint(recipe)
        for stem, record in pending_switches(snap, new8):  # a crash between the old marker and the new one
            finish_switch(snap, stem, record["to"], record)
            summary.finished += 1
        done = snap.markers.done()
        if not done:
            raise RefilterError(f"snapshot {snapshot} has no extracted files under {snap.uri}: run `crawlproc "
                                "extract` or `crawlproc run` first")
        todo, summary.changed = refilter_check(snap, recipe)
        summary.files, summary.already = len(done), len(done) - len(todo)
        snap.storage.write_json(snap.recipe_for(new8), recipe.to_dict())
        snap.storage.write_json(snap.recipe_uri, recipe.to_dict())
        if todo:
            stats, _ = snapshot_stats(snap, failed=False)
            summary.before = _tally([stats[s] for s in todo if s in stats])
            units = [Unit(key=stem, args=(stem, fp, new8 + fp[8:]), source=stem) for stem, fp in sorted(todo.items())]
            fresh: dict[str, dict] = {}
            result = run_stage("refilter", units, refilter_file, shared=(layout, recipe, snapshot), markers=None,
                               num_cpus=recipe.ray.num_cpus_per_task, max_retries=recipe.ray.max_retries,
                               progress=f"refilter {snapshot}" if progress else False,
                               on_result=lambda u, s: fresh.__setitem__(u.key, s))
            summary.refiltered = result.done
            summary.absorb(result)
            summary.after = _tally([FileStats.from_dict(s) for s in fresh.values()])
            if summary.ok:
                snap.storage.delete_tree(snap.refilter.uri)
    summary.seconds = time.monotonic() - started
    return summary
