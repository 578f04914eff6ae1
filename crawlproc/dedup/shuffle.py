"""Step 2, per group of signatures files: every (key, node, kind) row, bucketed by key into one file.

Keys are band keys (kind near) and, with exact dedup, content hashes (kind exact). Equal keys always land in
the same bucket, so the edges step finds every pair of documents sharing a key within one bucket.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from crawlproc.dedup import files
from crawlproc.dedup.buckets import bucket_rows, write_buckets
from crawlproc.dedup.nodes import KIND_EXACT, KIND_NEAR, make_nodes, partition_of
from crawlproc.dedup.schemas import SHUFFLE_SCHEMA


def key_rows(sig_path: str, file_no: int, exact: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, nodes, kinds) of one signatures file: 14 band keys per document with words, plus its content
    hash when `exact`."""
    table = files.read_table(sig_path, columns=["content_hash", "has_words", "bands"])
    n = table.num_rows
    nodes = make_nodes(file_no, n)
    has_words = table.column("has_words").to_numpy(zero_copy_only=False)
    bands = table.column("bands").combine_chunks()
    num_bands = bands.type.list_size
    band_keys = bands.flatten().to_numpy().reshape(n, num_bands)[has_words].reshape(-1)
    keys = [band_keys]
    key_nodes = [np.repeat(nodes[has_words], num_bands)]
    kinds = [np.full(len(band_keys), KIND_NEAR, np.int8)]
    if exact:
        keys.append(table.column("content_hash").to_numpy())
        key_nodes.append(nodes)
        kinds.append(np.full(n, KIND_EXACT, np.int8))
    return np.concatenate(keys), np.concatenate(key_nodes), np.concatenate(kinds)


def shuffle_files(sig_files: list[tuple[str, int]], out_path: str, num_partitions: int, exact: bool) -> dict:
    """Write the key rows of [(signatures path, file_no)] into `out_path`, bucketed by key partition.
    Skipped when `out_path` exists (it is written atomically, last)."""
    if files.exists(out_path):
        return {"rows": bucket_rows(out_path), "reused": True}
    rows = [key_rows(path, file_no, exact) for path, file_no in sig_files]
    keys, nodes, kinds = (np.concatenate([r[i] for r in rows]) for i in range(3))
    table = pa.table({"key": keys, "node": nodes, "kind": kinds}, schema=SHUFFLE_SCHEMA)
    write_buckets(out_path, table, partition_of(keys, num_partitions), num_partitions)
    return {"rows": len(keys), "reused": False}
