"""`crawlproc run`: one Common Crawl snapshot, from its listing to extracted documents, then the later stages.

listing (validated) -> the extract stage (pipelines/stages/extract.py) over the listed files not yet done, each
task downloading (retried, resumed, verified) then extracting its file -> the post-extract steps (dedup,
tokenize, train: the chain of pipelines/stages/chain.py).

The output folder is the run state: a driver killed at any point is resumed by running the same command
(done files are skipped, a file without its marker is processed again, its outputs replaced). A listing that
gained files costs only the new files. One file's failure (404, retries exhausted, corrupt gzip) is recorded
in `_failed/<stem>.json` and the run goes on; the command then exits non-zero naming it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from crawlproc.extract.units import fetch_and_extract, fetch_selected_and_extract
from crawlproc.store.fingerprint import digest
from crawlproc.store.inputs import Candidate
from crawlproc.store.layout import Layout, Snapshot, check_snapshot_name, now_iso
from crawlproc.crawl.listing import ListedFile, Listing, check_snapshot, read_listing
from crawlproc.store.lock import hold
from crawlproc.recipe import Recipe
from crawlproc.store.storage import normalize, storage_for
from pipelines.stages.extract import ExtractSummary, extract_snapshot
from pipelines.stages.index import select_snapshot
from pipelines.engine.runner import ensure_ray
from pipelines.engine.slots import ClusterSlots

RunSummary = ExtractSummary  # what a run reports: the extract summary plus its listing and later stages


@dataclass
class RunContext:
    """What a stage of the chain after extraction gets: the snapshot, the recipe, and how extraction went."""

    snapshot: str
    layout: Layout
    recipe: Recipe
    summary: RunSummary
    force: bool = False

    @property
    def snap(self) -> Snapshot:
        return self.layout.snapshot(self.snapshot)


ChainedStage = Callable[[RunContext], None]


def _listing_record(listing: Listing, selected: list[ListedFile], base_url: str, limit: int | None) -> dict:
    d = listing.to_dict()
    d.update(files=[asdict(f) for f in selected], listed_total=len(listing.files), limit=limit,
             base_url=base_url, updated_at=now_iso())
    return d


def listed_fingerprint(f: ListedFile) -> str:
    """A listed file is identified by its path in the listing: Common Crawl never rewrites a published file."""
    return digest({"listed": f.path})[:8]


def run_snapshot(
    snapshot: str,
    out: str | Path,
    recipe: Recipe,
    *,
    base_url: str | None = None,
    limit: int | None = None,
    cache_dir: str | None = None,
    progress: bool = True,
    force: bool = False,
    chain: list[tuple[str, ChainedStage]] | None = None,
) -> RunSummary:
    """Process `snapshot` into <out>/<snapshot>/; rerunning resumes, and only new listing entries cost work.
    Raises ListingError / DownloadError when the listing itself cannot be had (nothing is started then),
    RecipeChanged when the snapshot was extracted with another recipe (and not `force`). Ray must be
    initialised."""
    check_snapshot(snapshot)
    check_snapshot_name(snapshot, "--snapshot")
    layout = Layout(str(out), storage_for(recipe))
    snap = layout.snapshot(snapshot)
    base_url = base_url or recipe.download.base_url
    cache_dir = cache_dir if cache_dir is not None else (recipe.download.cache_dir or None)
    cache_dir = normalize(cache_dir) if cache_dir else None
    with hold(layout.storage, snap.lock_uri, f"snapshot {snap.uri}"):
        listing = read_listing(snapshot, recipe.download, base_url=base_url, storage=layout.storage,
                               name="wet.paths.gz" if recipe.fetch.mode == "wet" else "warc.paths.gz")
        selected = listing.files[:limit] if limit is not None else listing.files
        layout.storage.write_json(snap.listing_uri, _listing_record(listing, selected, base_url, limit))
        summary = RunSummary(snapshot, layout.root, files=len(selected), listed=len(selected),
                             listed_total=len(listing.files), rejected=[asdict(r) for r in listing.rejected])
        # the base URL's own origin is always allowed (crawlproc.crawl.download.allowed_origin)
        allowed = sorted(h.lower() for h in recipe.download.allowed_hosts)
        candidates = [Candidate(source=f.path, name=f.stem, input_fp=listed_fingerprint(f), extra=asdict(f))
                      for f in selected]
        slots: list[ClusterSlots] = []

        def shared() -> tuple:  # only when there is work: a rerun with nothing to do starts no Ray
            ensure_ray()
            slots.append(ClusterSlots(recipe.download.concurrency))  # one cap for the cluster, not per machine
            return layout, recipe, snapshot, cache_dir, allowed, slots[0]

        unit_fn, unit_args = fetch_and_extract, _listed_args
        if recipe.fetch.mode == "index":
            candidates = _index_candidates(snap, recipe, selected, base_url, allowed, summary, progress)
            unit_fn, unit_args = fetch_selected_and_extract, _selected_args
        try:
            extract_snapshot(snap, candidates, recipe, unit_fn, unit_args,
                             shared, summary, force=force, progress=progress)
        finally:
            for s in slots:
                s.close()
        ctx = RunContext(snapshot, layout, recipe, summary, force)
        for name, stage in chain or []:
            stage(ctx)
            summary.stages_run.append(name)
    return summary


def _listed_args(p) -> tuple:
    return p.candidate.extra, p.stem


def _selected_args(p) -> tuple:
    return p.candidate.extra["entry"], p.candidate.extra["selection"], p.stem


def _index_candidates(snap: Snapshot, recipe: Recipe, selected: list[ListedFile], base_url: str,
                      allowed: list[str], summary: RunSummary, progress: bool) -> list[Candidate]:
    """fetch.mode = "index": each listed file's selection (pipelines/stages/index.py). A file's input
    fingerprint is its path and the digest of its selected records; a file the index does not know is read
    whole, under its plain listed fingerprint, and counted (summary.stage_info["index"])."""
    ensure_ray()
    found = select_snapshot(snap, recipe, selected, base_url, allowed, progress=progress)
    out, missing, rows = [], 0, 0
    for f in selected:
        entry = found.get(f.path)
        if entry is None:
            missing += 1
            fp, extra = listed_fingerprint(f), {"entry": asdict(f), "selection": None}
        else:
            rows += entry["selected"]
            fp = digest({"listed": f.path, "selection": entry["digest"]})[:8]
            extra = {"entry": asdict(f), "selection": {"bucket": entry["bucket"], "rows": entry["rows"]}}
        out.append(Candidate(source=f.path, name=f.stem, input_fp=fp, extra=extra))
    summary.stage_info["index"] = {"files_in_index": len(selected) - missing, "files_read_whole": missing,
                                   "records_selected": rows}
    return out


def print_summary(summary: RunSummary, stream=None) -> None:
    """The run in one line, then each stage's documents in and out (what it removed, and why)."""
    stream = stream or sys.stdout
    total = (f"; documents kept {summary.total_kept:,}, removed {summary.total_removed:,} "
             if summary.total_kept is not None else "; ")
    print(
        f"run {summary.snapshot}: {summary.listed} files listed"
        + (f" (of {summary.listed_total:,})" if summary.listed != summary.listed_total else "")
        + f", {summary.skipped_done} already done, {summary.done} processed, {len(summary.failed)} failed"
        + (f", {len(summary.rejected)} listing lines rejected" if summary.rejected else "")
        + total + f"(this run: {summary.kept} / {summary.removed}); output in {summary.out}/{summary.snapshot}/",
        file=stream,
    )
    for line in stage_lines(summary.stage_info):
        print("  " + line, file=stream)


def stage_lines(info: dict[str, dict]) -> list[str]:
    """In and out of every stage that ran (the whole snapshot's figures, not only this command's)."""
    lines = []
    ex = info.get("extract")
    if ex:
        why = ", ".join(f"{step} {n:,}" for step, n in sorted(ex["removed_by"].items(), key=lambda kv: -kv[1]))
        lines.append(f"extract   {ex['responses']:,} HTML pages in -> {ex['kept']:,} documents kept, "
                     f"{ex['removed']:,} removed" + (f" ({why})" if why else ""))
    dd = info.get("dedup")
    if dd and dd.get("documents") is not None:
        earlier = f", {dd['matched_earlier']:,} of them seen in older snapshots" if dd.get("matched_earlier") else ""
        lines.append(f"dedup     {dd['documents']:,} documents in -> {dd.get('kept') or 0:,} kept; removed "
                     f"{dd.get('exact_duplicates') or 0:,} exact and {dd.get('near_duplicates') or 0:,} near "
                     f"duplicates ({dd.get('clusters') or 0:,} clusters){earlier}")
    dc = info.get("decontaminate")
    if dc and dc.get("documents") is not None:
        by = ", ".join(f"{k} {v:,}" for k, v in sorted(dc.get("benchmarks", {}).items(), key=lambda kv: -kv[1]))
        lines.append(f"decontam  {dc['documents']:,} documents in -> {dc['documents'] - dc['removed']:,} kept; removed "
                     f"{dc['removed']:,} holding benchmark items" + (f", cut items out of {dc['cut']:,}" if dc.get("cut")
                                                                      else "") + (f" ({by})" if by else ""))
    cl = info.get("classify")
    if cl:
        lines.append(f"classify  {cl['documents']:,} documents in -> {cl['kept']:,} kept, {cl['removed']:,} removed "
                     "by the classifiers")
    tk = info.get("tokenize")
    if tk and tk.get("train_tokens") is not None:
        skipped = f", {tk['skipped']:,} skipped" if tk.get("skipped") else ""
        if tk.get("languages"):
            skipped += (f", {tk.get('other_language') or 0:,} in languages other than "
                        f"{', '.join(tk['languages'])} left out")
        lines.append(f"tokenize  {tk.get('documents', 0):,} documents in{skipped} -> {tk['train_tokens']:,} train + "
                     f"{tk['val_tokens']:,} val tokens (vocabulary {tk.get('vocab_size') or '?'})")
        lines += [f"          warning: {w}" for w in tk.get("warnings") or []]
    tr = info.get("train")
    if tr and tr.get("step") is not None:
        val = f", val loss {tr['val_loss']:.3f}" if tr.get("val_loss") is not None else ""
        lines.append(f"train     {tr['step']:,} steps{val} -> {tr['out']}")
    return lines
