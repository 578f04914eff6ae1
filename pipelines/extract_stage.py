"""The extract stage on Ray: one task per WARC file, skipping files already done (resume, incremental)."""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path

import ray

from crawlproc.recipe import Recipe
from crawlproc.storage import Layout, atomic_write_json, clean_partials, warc_stem
from pipelines.progress import Progress
from pipelines.ray_runtime import init_ray


@dataclass
class StageSummary:
    files: int = 0
    skipped_done: int = 0
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # file -> error
    kept: int = 0
    removed: int = 0
    records: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


def expand_inputs(patterns: list[str]) -> list[str]:
    """Expand globs and directories into a sorted, de-duplicated list of files; a pattern that matches
    nothing is an error (a typo must not silently process nothing)."""
    found: list[str] = []
    for pat in patterns:
        p = Path(pat)
        if p.is_dir():
            matches = sorted(str(x) for x in p.rglob("*") if x.is_file() and ".warc" in x.name)
        else:
            matches = sorted(glob.glob(pat, recursive=True)) or ([pat] if p.is_file() else [])
        if not matches:
            raise FileNotFoundError(f"no input matches {pat!r}")
        found.extend(os.path.abspath(m) for m in matches)
    return sorted(dict.fromkeys(found))


def stems_for(paths: list[str]) -> dict[str, str]:
    """A unique output stem per input file; equal file names in different folders get a short path hash."""
    by_stem: dict[str, list[str]] = {}
    for p in paths:
        by_stem.setdefault(warc_stem(p), []).append(p)
    out = {}
    for stem, ps in by_stem.items():
        for p in ps:
            out[p] = stem if len(ps) == 1 else f"{stem}-{hashlib.sha1(p.encode()).hexdigest()[:8]}"
    return out


@ray.remote
def _extract_task(path: str, out: str, recipe: Recipe, dump: str, stem: str) -> dict:
    from crawlproc.process import process_warc

    return process_warc(path, out, recipe, dump=dump, stem=stem)


def record_failure(layout: Layout, stem: str, file: str, error: str, attempts: int = 1) -> None:
    atomic_write_json(
        layout.snapshot / "_failed" / f"{stem}.json",
        {"stem": stem, "file": file, "error": error, "attempts": attempts,
         "at": datetime.now(UTC).isoformat(timespec="seconds")},
    )


def clear_failure(layout: Layout, stem: str) -> None:
    (layout.snapshot / "_failed" / f"{stem}.json").unlink(missing_ok=True)


def run_extract(
    inputs: list[str],
    out: str,
    recipe: Recipe,
    *,
    dump: str,
    address: str | None = None,
    progress: bool = True,
) -> StageSummary:
    """Process local WARC files into <out>/<dump>/{docs,removed,stats,_done}; already-done files are skipped."""
    layout = Layout(out, dump)
    layout.snapshot.mkdir(parents=True, exist_ok=True)
    clean_partials(layout.snapshot)
    stems = stems_for(inputs)
    done = layout.done_stems()
    todo = [p for p in inputs if stems[p] not in done]
    summary = StageSummary(files=len(inputs), skipped_done=len(inputs) - len(todo))
    if not todo:
        return summary

    init_ray(address, recipe)
    task = _extract_task.options(num_cpus=recipe.ray.num_cpus_per_task, max_retries=recipe.ray.max_retries)
    recipe_ref = ray.put(recipe)
    pending = {task.remote(p, out, recipe_ref, dump, stems[p]): p for p in todo}
    bar = Progress(len(todo), f"extract {dump}") if progress else None
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        ref = ready[0]
        path = pending.pop(ref)
        stem = stems[path]
        try:
            stats = ray.get(ref)
            error = stats.get("error")
        except Exception as e:  # the task itself died after its retries
            stats, error = None, f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
        if error:
            summary.failed[path] = error
            record_failure(layout, stem, path, error)
        else:
            summary.done += 1
            clear_failure(layout, stem)
        if stats:
            summary.kept += stats["kept"]
            summary.removed += stats["removed"]
            summary.records += stats["records"]
        if bar:
            bar.update(stats, failed=bool(error))
    if bar:
        bar.close()
    return summary
