"""The extract stage on Ray: one task per WARC file, skipping files already done (resume, incremental)."""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import ray

from crawlproc.recipe import Recipe
from crawlproc.storage import Layout, atomic_write_json, clean_partials, warc_stem
from pipelines.file_tasks import run_per_file
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

    stats = process_warc(path, out, recipe, dump=dump, stem=stem)
    return {"stats": stats, "error": stats.get("error"), "attempts": 1}


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
    atomic_write_json(layout.recipe_path, recipe.to_dict())
    stems = stems_for(inputs)
    done = layout.done_stems()
    todo = [p for p in inputs if stems[p] not in done]
    summary = StageSummary(files=len(inputs), skipped_done=len(inputs) - len(todo))
    if not todo:
        return summary

    init_ray(address, recipe)
    task = _extract_task.options(num_cpus=recipe.ray.num_cpus_per_task, max_retries=recipe.ray.max_retries)
    recipe_ref = ray.put(recipe)
    outcomes = run_per_file(
        todo, lambda p: task.remote(p, out, recipe_ref, dump, stems[p]), layout=layout, stem_of=stems.get,
        file_of=str, label=f"extract {dump}", progress=progress, num_cpus_per_task=recipe.ray.num_cpus_per_task,
    )
    for o in outcomes:
        if o.error:
            summary.failed[o.item] = o.error
        else:
            summary.done += 1
        if o.stats:
            summary.kept += o.stats["kept"]
            summary.removed += o.stats["removed"]
            summary.records += o.stats["records"]
    return summary
