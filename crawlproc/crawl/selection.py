"""The index selection as two waves of plain functions (the stage runs them as units), so that no task ever
holds a whole snapshot's index: CC's index is sorted by URL, a WARC's rows are spread over every part.

1. `select_part`: one index Parquet part -> its selected rows and its counts per (file, reason), each written
   as one bucketed file (crawlproc.dedup.buckets: one batch per bucket), the bucket a hash of the WARC name.
2. `group_bucket`: one bucket of every part -> `files/b<k>.parquet` (the bucket's selected rows, sorted by
   file and offset) and `files/b<k>.json` (per file: selected records, their bytes, the selection's digest,
   and the rows by reason).
3. `file_selection`: what one WARC's extract unit reads back: its (offset, length, url) rows.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from crawlproc.crawl.ccindex import INDEX_COLUMNS, REASONS, SELECTED_SCHEMA, SelectRule, select_table, selection_digest
from crawlproc.dedup import files
from crawlproc.dedup.buckets import read_bucket, write_buckets
from crawlproc.store.storage import is_remote, join

COUNTS_SCHEMA = pa.schema([("warc_filename", pa.string()), ("reason", pa.string()), ("n", pa.int64())])


def bucket_of(names: pa.Array | pa.ChunkedArray, num_buckets: int) -> np.ndarray:
    """A stable bucket for every WARC name (the same on every machine and run)."""
    if isinstance(names, pa.ChunkedArray):
        names = names.combine_chunks() if names.num_chunks else pa.array([], pa.string())
    enc = names.dictionary_encode()
    per_value = np.fromiter((xxhash.xxh64_intdigest(v.encode()) % num_buckets for v in enc.dictionary.to_pylist()),
                            np.int64, len(enc.dictionary))
    return per_value[enc.indices.to_numpy(zero_copy_only=False)] if len(names) else np.zeros(0, np.int64)


def _read_index(uri: str, storage, download) -> pa.Table:
    """The columns the selection needs, from a local or object-store part (ranged column reads), or from an
    http(s) URL through `download(url, dest)` (the whole part, retried and resumed)."""
    if uri.startswith(("http://", "https://")):
        tmp = Path(tempfile.mkdtemp(prefix="crawlproc-index-"))
        try:
            local = tmp / "part.parquet"
            download(uri, local)
            return _project(pq.ParquetFile(local))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _project(storage.parquet_file(uri) if is_remote(uri) else pq.ParquetFile(uri))


def _project(pf: pq.ParquetFile) -> pa.Table:
    names = set(pf.schema_arrow.names)
    missing = [c for c in INDEX_COLUMNS if c not in names and c != "content_mime_type"]
    if missing:
        raise ValueError(f"not a Common Crawl index table: no column {', '.join(missing)}")
    return pf.read(columns=[c for c in INDEX_COLUMNS if c in names])


def select_part(index_uri: str, out_dir: str, rule: SelectRule, url_check, num_buckets: int, storage,
                download=None) -> dict:
    """Wave 1 for one index part; `url_check(url)` returns a removal reason or "" (the recipe's URL filter)."""
    files.use(storage)
    table = _read_index(index_uri, storage, download)
    url_ok = (lambda u: not url_check(u)) if url_check is not None else None
    selected, counts = select_table(table, rule, url_ok)
    write_buckets(join(out_dir, "selected.arrow"), selected, bucket_of(selected.column("warc_filename"), num_buckets),
                  num_buckets)
    counts = counts.cast(COUNTS_SCHEMA)
    write_buckets(join(out_dir, "counts.arrow"), counts, bucket_of(counts.column("warc_filename"), num_buckets),
                  num_buckets)
    return {"index_rows": table.num_rows, "selected_rows": selected.num_rows}


def group_bucket(part_dirs: list[str], bucket: int, out_dir: str, storage) -> dict:
    """Wave 2 for one bucket: gather its rows from every part, write the bucket's selection and summary."""
    files.use(storage)
    sel = read_bucket([join(d, "selected.arrow") for d in part_dirs], bucket, SELECTED_SCHEMA)
    sel = sel.group_by(["warc_filename", "offset", "length"]).aggregate([("url", "min")]) \
        .rename_columns(["warc_filename", "offset", "length", "url"]).cast(SELECTED_SCHEMA) \
        .sort_by([("warc_filename", "ascending"), ("offset", "ascending")])
    counts = read_bucket([join(d, "counts.arrow") for d in part_dirs], bucket, COUNTS_SCHEMA)
    summary: dict[str, dict] = {}
    for name, reason, n in zip(*(counts.column(c).to_pylist() for c in ("warc_filename", "reason", "n"))):
        rows = summary.setdefault(name, {"rows": {}})["rows"]
        rows[reason] = rows.get(reason, 0) + n
    names = sel.column("warc_filename").to_pylist()
    offsets = sel.column("offset").to_numpy()
    lengths = sel.column("length").to_numpy()
    bounds = [0] + [i for i in range(1, len(names)) if names[i] != names[i - 1]] + [len(names)]
    for a, b in zip(bounds, bounds[1:]):
        if a == b:
            continue
        records = list(zip(offsets[a:b].tolist(), lengths[a:b].tolist()))
        entry = summary.setdefault(names[a], {"rows": {}})
        entry.update(selected=b - a, bytes=int(lengths[a:b].sum()), digest=selection_digest(records))
    empty = selection_digest([])
    for entry in summary.values():
        entry.setdefault("selected", 0)
        entry.setdefault("bytes", 0)
        entry.setdefault("digest", empty)
        entry["rows"].setdefault("selected", 0)
    storage.write_table(join(out_dir, f"b{bucket:05d}.parquet"), sel)
    storage.write_json(join(out_dir, f"b{bucket:05d}.json"), summary)
    return {"files": len(summary), "selected_rows": sel.num_rows}


def file_selection(bucket_uri: str, warc_filename: str, storage) -> pa.Table:
    """One WARC's selected rows (offset, length, url), sorted by offset."""
    t = storage.read_table(bucket_uri, columns=["warc_filename", "offset", "length", "url"],
                           filters=[("warc_filename", "=", warc_filename)])
    return t.sort_by("offset")


__all__ = ["REASONS", "bucket_of", "file_selection", "group_bucket", "select_part"]
