"""Bucketed Parquet files: how the dedup steps hand rows from P producer tasks to P consumer tasks.

A producer writes ONE file holding the rows for every consumer, one row group per consumer (the file's
metadata lists which), so a step of P tasks writes P files instead of P x P small ones: on object storage
that is P PUTs, and each consumer reads only its own row group of each file.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crawlproc.dedup import files

BUCKETS_KEY = b"crawlproc.buckets"


def write_buckets(path: str, table: pa.Table, bucket: np.ndarray, num_buckets: int) -> None:
    """Write `table` with its rows grouped by `bucket` (0..num_buckets-1), whole or not at all (the storage
    renames it into place, or sends it in one request). Row order within a bucket is kept."""
    bucket = np.asarray(bucket, dtype=np.int64)
    order = np.argsort(bucket, kind="stable")
    bounds = np.searchsorted(bucket[order], np.arange(num_buckets + 1))
    present = [b for b in range(num_buckets) if bounds[b + 1] > bounds[b]]
    rows = table.take(pa.array(order)) if len(order) else table
    schema = table.schema.with_metadata({**(table.schema.metadata or {}), BUCKETS_KEY: json.dumps(present)})
    sink = pa.BufferOutputStream()
    # no dictionary: keys and node numbers are mostly distinct, so Parquet's attempt would only cost
    with pq.ParquetWriter(sink, schema, compression="zstd", use_dictionary=False) as writer:
        for b in present:
            n = int(bounds[b + 1] - bounds[b])
            writer.write_table(rows.slice(int(bounds[b]), n).replace_schema_metadata(schema.metadata),
                               row_group_size=n)
    files.write_bytes(path, sink.getvalue().to_pybytes())


def read_bucket(paths, bucket: int, schema: pa.Schema) -> pa.Table:
    """The rows of `bucket` (the columns of `schema`) from every file in `paths`. Every producer writes its
    file, even when empty, so a missing file is an error, never an empty bucket."""
    parts = []
    for p in paths:
        f = files.parquet_file(p)
        present = json.loads(f.schema_arrow.metadata[BUCKETS_KEY])
        i = np.searchsorted(present, bucket)
        if i < len(present) and present[i] == bucket:
            parts.append(f.read_row_group(int(i), columns=schema.names).replace_schema_metadata(None))
    return pa.concat_tables(parts).cast(schema) if parts else schema.empty_table()


def read_all(paths, schema: pa.Schema) -> pa.Table:
    """Every row (the columns of `schema`) of every file in `paths`."""
    parts = [files.read_table(p, columns=schema.names).replace_schema_metadata(None) for p in paths]
    return pa.concat_tables(parts).cast(schema) if parts else schema.empty_table()
