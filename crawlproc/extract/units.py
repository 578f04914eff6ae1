"""The extract stage's units of work, as plain functions the stage runner calls in its tasks:
`extract_file` (a WARC given as a local path or an object-store URI), `fetch_and_extract` (a file of a
Common Crawl listing: download, verify, extract) and `fetch_selected_and_extract` (only the records of a
listed file that CC's columnar index selected: ranged reads, each record verified, then extract). Each
returns the file's stats; a file that cannot be had raises (the runner records the root cause), one that
breaks mid-way raises PartialFailure after writing what it could read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from crawlproc.crawl.download import download_file, download_slot, safe_join
from crawlproc.store.layout import Layout
from crawlproc.crawl.listing import ListedFile
from crawlproc.extract.file import process_warc
from crawlproc.recipe import Recipe
from crawlproc.store.storage import copy_to_local, is_remote, pid_alive
from crawlproc.warc.reader import skip_limit


def download_tmp_root() -> Path:
    return Path(tempfile.gettempdir()) / f"crawlproc-downloads-{os.getuid()}"


def task_download_dir() -> Path:
    """A private folder for one task's download, named after its process; folders of processes that no longer
    exist (workers killed mid-download) are removed, so SIGKILLs do not fill the disk."""
    base = download_tmp_root()
    base.mkdir(parents=True, exist_ok=True)
    for d in base.iterdir():
        pid = d.name.split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=base))


def extract_file(source: str, stem: str, layout: Layout, recipe: Recipe, dump: str) -> dict:
    """One WARC given by path or URI (a remote one is copied to a private temporary folder first)."""
    if not is_remote(source):
        return process_warc(source, layout, recipe, dump=dump, stem=stem, raise_on_error=True)
    tmp = task_download_dir()
    try:
        local = copy_to_local(source, tmp / Path(source).name, layout.storage)
        return process_warc(local, layout, recipe, dump=dump, file_path=source, stem=stem, raise_on_error=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_and_extract(entry: dict, stem: str, layout: Layout, recipe: Recipe, dump: str, cache_dir: str | None,
                      allowed_hosts: list[str], slots=None) -> dict:
    """Download one listed WARC (retried, resumed, gzip-verified), then extract it. `slots` is a context
    manager factory bounding concurrent downloads (the stage passes a cluster-wide one); default: per machine."""
    f = ListedFile(**entry)
    tmp_dir = None
    try:
        if cache_dir:
            dest = safe_join(cache_dir, f.cache_path)
        else:
            tmp_dir = task_download_dir()
            dest = tmp_dir / Path(f.cache_path).name
        waited = time.perf_counter()
        with (slots() if slots is not None else download_slot(recipe.download.concurrency)):
            started = time.perf_counter()
            got = download_file(f.url, dest, recipe.download, allowed_hosts=set(allowed_hosts),
                                storage=layout.storage)
        done = time.perf_counter()
        stats = process_warc(dest, layout, recipe, dump=dump, file_path=f.path, stem=stem, raise_on_error=True)
        # the report's timeline and cost projection: the time in the network, and waiting for a download slot
        stats["download"] = {"bytes": got.bytes, "attempts": got.attempts, "resumed": got.resumed,
                             "from_cache": got.from_cache, "gzip_members": got.gzip_members,
                             "seconds": round(done - started, 3), "slot_wait_s": round(started - waited, 3)}
        return stats
    finally:
        if tmp_dir:
            shutil.rmtree(tmp_dir, ignore_errors=True)


def fetch_selected_and_extract(entry: dict, selection: dict | None, stem: str, layout: Layout, recipe: Recipe,
                               dump: str, cache_dir: str | None, allowed_hosts: list[str], slots=None) -> dict:
    """The records of one listed WARC that the index selected (`selection`: its bucket file and counts, from
    pipelines/stages/index.py), fetched by ranged reads into a private WARC and extracted; documents keep
    their offsets in the original file. `selection` None: the file is not in the index, it is read whole."""
    if selection is None:
        return fetch_and_extract(entry, stem, layout, recipe, dump, cache_dir, allowed_hosts, slots)
    from crawlproc.crawl.ccindex import plan_ranges
    from crawlproc.crawl.ranged import fetch_records
    from crawlproc.crawl.selection import file_selection

    f = ListedFile(**entry)
    rows = file_selection(selection["bucket"], f.path, layout.storage)
    records = list(zip(rows.column("offset").to_pylist(), rows.column("length").to_pylist()))
    ranges = plan_ranges(records, recipe.fetch.max_gap_bytes, recipe.fetch.max_range_bytes)
    tmp = task_download_dir()
    try:
        dest = tmp / Path(f.cache_path).name
        with (slots() if slots is not None else download_slot(recipe.download.concurrency)):
            got = fetch_records(f.url, ranges, dest, recipe.download, allowed_hosts=set(allowed_hosts),
                                storage=layout.storage, max_inflate=skip_limit(recipe.input.max_payload_bytes))
        stats = process_warc(dest, layout, recipe, dump=dump, file_path=f.path, stem=stem, raise_on_error=True,
                             offsets=got.offsets)
        index_rows = dict(selection.get("rows") or {})
        stats["index"] = {"rows": sum(index_rows.values()), "selected": len(records),
                          "skipped": {k: v for k, v in index_rows.items() if k != "selected" and v},
                          "fetch": got.to_stats()}
        for reason, n in index_rows.items():  # what the index ruled out is counted like any other skip
            if reason != "selected" and n:
                stats["skipped"][reason] = stats["skipped"].get(reason, 0) + n
        for reason, n in got.skipped.items():
            stats["skipped"][reason] = stats["skipped"].get(reason, 0) + n
        return stats
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
