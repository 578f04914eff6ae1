"""`crawlproc run`: one Common Crawl snapshot, from its listing to extracted documents, on Ray.

listing (validated) -> one Ray task per WARC not yet done: download (retried, resumed, verified) -> process_warc
-> the post-extract steps (dedup, tokenize, ... appended to POST_EXTRACT_STEPS).

The output folder is the run state. A file is done when its `_done/<stem>.json` exists (written last, after
docs/removed/stats, all atomically), so a driver killed at any point is resumed by running the same command:
done files are skipped, a file with outputs but no marker is simply processed again (its outputs are replaced,
never appended to), and temporary files left by the crash are removed first. The same skip makes a snapshot
whose listing gained files cost only the new files. One file's failure (404, retries exhausted, corrupt gzip)
is recorded in `_failed/<stem>.json` and the run goes on; the command then exits non-zero naming it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import ray

from crawlproc.download import DownloadError, download_file, download_slot, host_of, safe_join
from crawlproc.listing import ListedFile, Listing, check_snapshot, https_base, read_listing
from crawlproc.recipe import Recipe
from crawlproc.storage import Layout, atomic_write_json, clean_partials
from pipelines.file_tasks import clear_failure, run_per_file
from pipelines.ray_runtime import init_ray


@dataclass
class RunSummary:
    snapshot: str
    out: str
    listed: int = 0  # files this run targets (after --limit)
    listed_total: int = 0  # valid files in the listing
    rejected: list[dict] = field(default_factory=list)  # listing lines refused, with the reason
    skipped_done: int = 0
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # stem -> error
    kept: int = 0  # documents of the files processed by this run
    removed: int = 0
    total_kept: int = 0  # documents of every done file of this listing, whichever run did it
    total_removed: int = 0
    steps: list[str] = field(default_factory=list)  # post-extract steps that ran
    steps_info: dict[str, dict] = field(default_factory=dict)  # what each step reports (counts, paths)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.rejected


@dataclass
class RunContext:
    """What a post-extract step gets: the snapshot's folder, the recipe, and how extraction went."""

    snapshot: str
    out: Path
    layout: Layout
    recipe: Recipe
    summary: RunSummary
    address: str | None = None


# Later stages (dedup, PII, tokenize, ...) register here, in order: each is called as step(ctx) after the
# extract stage, also when every file was already done (a step skips work it finds done, like extract).
# A step raising an exception stops the run with that error; the extract outputs stay valid.
PostStep = Callable[[RunContext], None]
POST_EXTRACT_STEPS: list[tuple[str, PostStep]] = []


def _listing_record(listing: Listing, selected: list[ListedFile], base_url: str, limit: int | None) -> dict:
    d = listing.to_dict()
    d.update(files=[asdict(f) for f in selected], listed_total=len(listing.files), limit=limit,
             base_url=base_url, updated_at=datetime.now(UTC).isoformat(timespec="seconds"))
    return d


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def download_tmp_root() -> Path:
    return Path(tempfile.gettempdir()) / f"crawlproc-downloads-{os.getuid()}"


def task_download_dir() -> Path:
    """A private folder for one task's download, named after its process; folders of processes that no longer
    exist (workers killed mid-download) are removed, so SIGKILLs do not fill the disk."""
    base = download_tmp_root()
    base.mkdir(parents=True, exist_ok=True)
    for d in base.iterdir():
        pid = d.name.split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=base))


def fetch_and_process(entry: dict, out: str, recipe: Recipe, dump: str, cache_dir: str | None,
                      allowed_hosts: list[str]) -> dict:
    """Download one listed WARC, verify it, run the extract stage on it. Never raises for a bad file: the
    error comes back in the result (Ray retries only what kills the worker)."""
    from crawlproc.process import process_warc

    f = ListedFile(**entry)
    tmp_dir = None
    try:
        if cache_dir:
            dest = safe_join(cache_dir, f.cache_path)
        else:
            tmp_dir = task_download_dir()
            dest = tmp_dir / Path(f.cache_path).name
        try:
            with download_slot(recipe.download.concurrency):
                got = download_file(f.url, dest, recipe.download, allowed_hosts=set(allowed_hosts))
        except DownloadError as e:
            return {"stem": f.stem, "error": f"download failed: {e}", "attempts": e.attempts, "stats": None}
        stats = process_warc(dest, out, recipe, dump=dump, file_path=f.path, stem=f.stem)
        stats["download"] = {"bytes": got.bytes, "attempts": got.attempts, "resumed": got.resumed,
                             "from_cache": got.from_cache, "gzip_members": got.gzip_members}
        return {"stem": f.stem, "error": stats.get("error"), "attempts": got.attempts, "stats": stats}
    finally:
        if tmp_dir:
            shutil.rmtree(tmp_dir, ignore_errors=True)


_remote_fetch_and_process = ray.remote(fetch_and_process)


def run_snapshot(
    snapshot: str,
    out: str | Path,
    recipe: Recipe,
    *,
    base_url: str | None = None,
    limit: int | None = None,
    cache_dir: str | None = None,
    address: str | None = None,
    progress: bool = True,
    steps: list[tuple[str, PostStep]] | None = None,
) -> RunSummary:
    """Process `snapshot` into <out>/<snapshot>/; rerunning resumes, and only new listing entries cost work.
    Raises ListingError / DownloadError when the listing itself cannot be had (nothing is started then)."""
    check_snapshot(snapshot)
    out = Path(out).resolve()  # workers may run elsewhere: give them absolute paths
    base_url = base_url or recipe.download.base_url
    cache_dir = cache_dir if cache_dir is not None else (recipe.download.cache_dir or None)
    cache_dir = str(Path(cache_dir).resolve()) if cache_dir else None
    layout = Layout(out, snapshot)
    layout.snapshot.mkdir(parents=True, exist_ok=True)
    clean_partials(layout.snapshot)  # a crashed writer's temporary files are never counted
    atomic_write_json(layout.recipe_path, recipe.to_dict())

    listing = read_listing(snapshot, recipe.download, base_url=base_url)
    selected = listing.files[:limit] if limit is not None else listing.files
    atomic_write_json(layout.snapshot / "listing.json", _listing_record(listing, selected, base_url, limit))
    summary = RunSummary(snapshot, str(out), listed=len(selected), listed_total=len(listing.files),
                         rejected=[asdict(r) for r in listing.rejected])
    done = layout.done_stems()
    todo = [f for f in selected if f.stem not in done]
    summary.skipped_done = len(selected) - len(todo)
    for f in selected:
        if f.stem in done:
            clear_failure(layout, f.stem)  # done by an earlier run (or a straggler): no longer failed

    if todo:
        _extract(todo, layout, recipe, summary, base_url, cache_dir, address, progress)

    for f in selected:
        marker = _read_json(layout.path("_done", f.stem))
        summary.total_kept += int(marker.get("kept", 0))
        summary.total_removed += int(marker.get("removed", 0))

    ctx = RunContext(snapshot, out, layout, recipe, summary, address)
    for name, step in (POST_EXTRACT_STEPS if steps is None else steps):
        step(ctx)
        summary.steps.append(name)
    return summary


def _extract(todo: list[ListedFile], layout: Layout, recipe: Recipe, summary: RunSummary, base_url: str,
             cache_dir: str | None, address: str | None, progress: bool) -> None:
    init_ray(address, recipe)
    allowed = sorted({host_of(https_base(base_url, recipe.download.s3))}
                     | {h.lower() for h in recipe.download.allowed_hosts})
    task = _remote_fetch_and_process.options(
        num_cpus=recipe.ray.num_cpus_per_task, max_retries=recipe.ray.max_retries, retry_exceptions=False
    )
    recipe_ref = ray.put(recipe)
    outcomes = run_per_file(
        todo, lambda f: task.remote(asdict(f), str(layout.root), recipe_ref, layout.dump, cache_dir, allowed),
        layout=layout, stem_of=lambda f: f.stem, file_of=lambda f: f.path, label=f"run {layout.dump}",
        progress=progress, num_cpus_per_task=recipe.ray.num_cpus_per_task,
    )
    for o in outcomes:
        if o.error:
            summary.failed[o.stem] = o.error
        else:
            summary.done += 1
        if o.stats:
            summary.kept += o.stats.get("kept", 0)
            summary.removed += o.stats.get("removed", 0)


def print_summary(summary: RunSummary, stream=None) -> None:
    stream = stream or sys.stdout
    print(
        f"run {summary.snapshot}: {summary.listed} files listed"
        + (f" (of {summary.listed_total})" if summary.listed != summary.listed_total else "")
        + f", {summary.skipped_done} already done, {summary.done} processed, {len(summary.failed)} failed"
        + (f", {len(summary.rejected)} listing lines rejected" if summary.rejected else "")
        + f"; documents kept {summary.total_kept}, removed {summary.total_removed} "
        f"(this run: {summary.kept} / {summary.removed}); output in {summary.out}/{summary.snapshot}/",
        file=stream,
    )
