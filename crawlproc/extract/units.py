"""The extract stage's two units of work, as plain functions the stage runner calls in its tasks:
`extract_file` (a WARC given as a local path or an object-store URI) and `fetch_and_extract` (a file of a
Common Crawl listing: download, verify, extract). Both return the file's stats; a file that cannot be had
raises (the runner records the root cause), one that breaks mid-way raises PartialFailure after writing what
it could read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from crawlproc.crawl.download import download_file, download_slot, safe_join
from crawlproc.store.layout import Layout
from crawlproc.crawl.listing import ListedFile
from crawlproc.extract.file import process_warc
from crawlproc.recipe import Recipe
from crawlproc.store.storage import copy_to_local, is_remote, pid_alive


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
        with (slots() if slots is not None else download_slot(recipe.download.concurrency)):
            got = download_file(f.url, dest, recipe.download, allowed_hosts=set(allowed_hosts),
                                storage=layout.storage)
        stats = process_warc(dest, layout, recipe, dump=dump, file_path=f.path, stem=stem, raise_on_error=True)
        stats["download"] = {"bytes": got.bytes, "attempts": got.attempts, "resumed": got.resumed,
                             "from_cache": got.from_cache, "gzip_members": got.gzip_members}
        return stats
    finally:
        if tmp_dir:
            shutil.rmtree(tmp_dir, ignore_errors=True)
