"""Bucketed files: how the dedup steps hand rows from P producer tasks to P consumer tasks.

A producer writes ONE Arrow IPC file (`.arrow`) holding the rows for every consumer, one record batch per
consumer (the schema's metadata lists which), so a step of P tasks writes P files instead of P x P small
ones: on object storage that is P PUTs, and each consumer reads only its own batch of each file, a ranged
read after the file's footer. Arrow IPC rather than Parquet, because every consumer opens all P files: a
Parquet footer describes each of its P row groups and is parsed whole on opening (0.4 ms at P = 64, growing
with P, so a wave cost P^3), while the IPC footer is a flat array of batch offsets.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crawlproc.dedup import files

BUCKETS_KEY = b"crawlproc.buckets"
_IPC_MAGIC = b"ARROW1"
_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


def write_buckets(path: str, table: pa.Table, bucket: np.ndarray, num_buckets: int) -> None:
    """Write `table` with its rows grouped by `bucket` (0..num_buckets-1), whole or not at all (the storage
    renames it into place, or sends it in one request). Row order within a bucket is kept."""
    bucket = np.asarray(bucket, dtype=np.int64)
    order = np.argsort(bucket, kind="stable")
    bounds = np.searchsorted(bucket[order], np.arange(num_buckets + 1))
    present = [b for b in range(num_buckets) if bounds[b + 1] > bounds[b]]
    rows = (table.take(pa.array(order)) if len(order) else table).combine_chunks()
    columns = [c.chunk(0) if c.num_chunks else pa.array([], c.type) for c in rows.columns]
    info = json.dumps({"buckets": present, "rows": len(order)})
    schema = table.schema.with_metadata({**(table.schema.metadata or {}), BUCKETS_KEY: info})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, schema, options=_OPTIONS) as writer:
        for b in present:  # exactly one batch per bucket, so batch i is bucket present[i]
            n = int(bounds[b + 1] - bounds[b])
            writer.write_batch(pa.record_batch([c.slice(int(bounds[b]), n) for c in columns], schema=schema))
    files.write_bytes(path, sink.getvalue().to_pybytes())


def bucket_metadata(path: str) -> dict[bytes, bytes]:
    """The schema metadata a bucketed file was written with (the producer's stats travel there)."""
    with files.storage().open_input(path) as f:
        return dict(pa.ipc.open_file(f).schema.metadata or {})


def bucket_rows(path: str) -> int:
    return json.loads(bucket_metadata(path)[BUCKETS_KEY])["rows"]


def read_bucket(paths, bucket: int, schema: pa.Schema) -> pa.Table:
    """The rows of `bucket` (the columns of `schema`) from every file in `paths`. Every producer writes its
    file, even when empty, so a missing file is an error, never an empty bucket."""
    parts = []
    for p in paths:
        with files.storage().open_input(p) as f:
            reader = pa.ipc.open_file(f)
            present = json.loads(reader.schema.metadata[BUCKETS_KEY])["buckets"]
            i = int(np.searchsorted(present, bucket))
            if i < len(present) and present[i] == bucket:
                parts.append(pa.Table.from_batches([reader.get_batch(i)]).select(schema.names)
                             .replace_schema_metadata(None))
    return pa.concat_tables(parts).cast(schema) if parts else schema.empty_table()


def read_all(paths, schema: pa.Schema) -> pa.Table:
    """Every row (the columns of `schema`) of every file in `paths`: bucketed files, or Parquet files (which
    the steps write for what one task reads whole)."""
    parts = []
    for p in paths:
        data = files.read_bytes(p)
        if data[:6] == _IPC_MAGIC:
            t = pa.ipc.open_file(pa.BufferReader(data)).read_all().select(schema.names)
        else:
            t = pq.read_table(pa.BufferReader(data), columns=schema.names)
        parts.append(t.replace_schema_metadata(None))
    return pa.concat_tables(parts).cast(schema) if parts else schema.empty_table()
