"""`fetch.mode = "index"`: select the records a recipe can keep from Common Crawl's columnar index, before
`crawlproc run` fetches anything but the index (crawlproc/crawl/ccindex.py says what is selected).

Two waves of units through the stage runner, resumable like every stage (markers under selection/work/):
`index-select` (one per index part) and `index-group` (one per bucket of WARC names); see
crawlproc/crawl/selection.py. What comes back to the driver is one small summary per bucket: per listed
WARC, how many records were selected and a digest of which. That digest is part of the WARC's input
fingerprint, so a file is redone (in place) exactly when its selection changes, and a snapshot can mix files
read whole and files read by the index without a record counted twice.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

from crawlproc.crawl.ccindex import rule_for
from crawlproc.crawl.download import download_file, fetch_bytes
from crawlproc.crawl.listing import ListedFile, https_base, parse_listing_bytes
from crawlproc.crawl.selection import group_bucket, select_part
from crawlproc.recipe import Recipe
from crawlproc.store.fingerprint import digest, file_fingerprint
from crawlproc.store.layout import Snapshot
from crawlproc.store.storage import Storage, join
from pipelines.engine.runner import Unit, run_stage

FILES_PER_BUCKET = 100


class IndexSelectionError(RuntimeError):
    """The selection could not be made (an index part unreadable, a wave failed)."""


def index_parts(snapshot: str, recipe: Recipe, base_url: str, storage: Storage) -> list[str]:
    """The index Parquet parts: `fetch.index` (a file, folder, glob or URI), else those named by
    `<base>/crawl-data/<snapshot>/cc-index-table.paths.gz`. Only subset=warc: a part under a `subset=<other>`
    folder of CC's layout (crawldiagnostics: redirects and errors; robotstxt) indexes other WARC files, which
    the snapshot's listing never reads; a folder given whole, as CC lays out `crawl=<snapshot>/`, holds them."""
    given = recipe.fetch.index
    if given:
        found = storage.expand(given, in_folder=lambda name: name.endswith(".parquet"))
        if not found:
            raise IndexSelectionError(f"fetch.index {given!r} names no Parquet file")
        warc = [p for p in found if _subset(p) in (None, "warc")]
        if not warc:
            raise IndexSelectionError(f"fetch.index {given!r} names only parts of subsets "
                                      f"{sorted({_subset(p) for p in found})}, none of subset=warc")
        return warc
    base = https_base(base_url, recipe.download.s3)
    url = f"{base}/crawl-data/{snapshot}/cc-index-table.paths.gz"
    data = fetch_bytes(url, recipe.download, allowed_hosts={h.lower() for h in recipe.download.allowed_hosts},
                       verify=False, max_bytes=64 << 20, storage=storage)
    lines = [ln for ln in (raw.strip() for raw in parse_listing_bytes(data))
             if ln.endswith(".parquet") and _subset(ln) == "warc"]
    if not lines:
        raise IndexSelectionError(f"{url} lists no index part of subset=warc")
    return [f"{base}/{ln.lstrip('/')}" for ln in lines]


def check_given_index(snapshot: str, recipe: Recipe, base_url: str, storage: Storage) -> None:
    """Before Ray starts (`run`, each `ablate` arm): a given `fetch.index` that names no part to read raises
    IndexSelectionError, from a listing of it (seconds). Other modes, and the snapshot's own index listing (a
    download), are left to the selection."""
    if recipe.fetch.mode == "index" and recipe.fetch.index:
        index_parts(snapshot, recipe, base_url, storage)


def part_contents(parts: list[str], recipe: Recipe, storage: Storage) -> list[str | None]:
    """What each index part holds, for its selection's fingerprint: a given `fetch.index` is the user's own
    file, which may be rewritten in place (the same name, other rows), so its parts are known by content
    (file_fingerprint: a few sampled MiB of each, up to 16 parts read at once). CC's own parts, named in
    the snapshot's listing by crawl and part number, are never rewritten: their URL names them (None)."""
    if not recipe.fetch.index:
        return [None] * len(parts)

    def content(part: str) -> str:
        try:
            return file_fingerprint(storage, part)
        except OSError as e:  # StorageError too
            raise IndexSelectionError(f"index part {part} cannot be read: {e}") from e

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(parts)))) as pool:
        return list(pool.map(content, parts))


def _subset(part: str) -> str | None:
    """The `subset=<name>` folder of a part's path in CC's layout, or None outside that layout."""
    names = [seg[len("subset="):] for seg in part.replace("\\", "/").split("/") if seg.startswith("subset=")]
    return names[-1] if names else None


def _select_unit(part: str, out_dir: str, recipe: Recipe, num_buckets: int, storage: Storage,
                 allowed: list[str]) -> dict:
    from crawlproc.extract.urlfilter import UrlFilter

    url_check = UrlFilter(recipe.url_filter).check if recipe.url_filter.enabled else None

    def download(url, dest):
        download_file(url, dest, recipe.download, allowed_hosts=set(allowed), verify=False, storage=storage)

    return select_part(part, out_dir, rule_for(recipe), url_check, num_buckets, storage, download)


def select_snapshot(snap: Snapshot, recipe: Recipe, listed: list[ListedFile], base_url: str,
                    allowed: list[str], progress: bool = True) -> dict[str, dict]:
    """Run both waves; return, per listed WARC path found in the index, {"bucket": uri, "rows": {reason: n},
    "selected": n, "bytes": n, "digest": ...}. Raises IndexSelectionError when a wave fails."""
    storage = snap.storage
    parts = index_parts(snap.name, recipe, base_url, storage)
    num_buckets = recipe.fetch.buckets or max(1, len(listed) // FILES_PER_BUCKET)
    rule = rule_for(recipe)
    url_filter = dataclasses.asdict(recipe.url_filter) if recipe.url_filter.enabled else None
    what = {"rule": rule.to_dict(), "url_filter": url_filter,
            "buckets": num_buckets}
    units, part_fps, part_dirs = [], [], []
    for i, (part, content) in enumerate(zip(parts, part_contents(parts, recipe, storage))):
        key = f"p{i:05d}"
        fp = digest({"part": part, "content": content, **what})
        out = snap.selection.path("parts", key)
        units.append(Unit(key=key, args=(part, out), source=part, fingerprint=fp))
        part_fps.append(fp)
        part_dirs.append(out)
    label = f"index select {snap.name}" if progress else False
    res = run_stage("index-select", units, _select_unit, shared=(recipe, num_buckets, storage, allowed),
                    markers=snap.selection.wave_markers("select"), num_cpus=recipe.ray.num_cpus_per_task,
                    max_retries=recipe.ray.max_retries, progress=label)
    if not res.ok:
        raise IndexSelectionError("index selection failed: " + "; ".join(res.failure_lines()[:3]))
    files_dir = snap.selection.path("files")
    units = [Unit(key=f"b{k:05d}", args=(part_dirs, k, files_dir), source=f"bucket {k}",
                  fingerprint=digest({"parts": part_fps, "bucket": k}))
             for k in range(num_buckets)]
    res = run_stage("index-group", units, group_bucket, shared=(storage,), markers=snap.selection.wave_markers("group"),
                    num_cpus=recipe.ray.num_cpus_per_task, max_retries=recipe.ray.max_retries,
                    progress=f"index group {snap.name}" if progress else False)
    if not res.ok:
        raise IndexSelectionError("index grouping failed: " + "; ".join(res.failure_lines()[:3]))
    out: dict[str, dict] = {}
    for k in range(num_buckets):
        summary = storage.read_json(join(files_dir, f"b{k:05d}.json")) or {}
        bucket_uri = join(files_dir, f"b{k:05d}.parquet")
        for name, entry in summary.items():
            out[name] = {**entry, "bucket": bucket_uri}
    return out
