"""Documents as integer nodes, content hashes, and the partition of a key or a node.

A document is a *node*: an int64 `file_no << 32 | row`, where file_no is the input file's position in the
sorted list of input files. Documents of earlier snapshots (scope "all") are negative nodes, so they sort
first. Every cluster keeps its smallest node: an earlier snapshot's document if there is one, else the first
document in input order (FineWeb keeps the first as well).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import xxhash

ROW_BITS = 32
_ROW_MASK = np.int64((1 << ROW_BITS) - 1)
_LOCAL_BITS = 52  # an earlier snapshot's node: snapshot_no << 52 | its own (file_no << 32 | row)
KIND_EXACT = 0
KIND_NEAR = 1
KIND_NAMES = {KIND_EXACT: "exact", KIND_NEAR: "near"}
_NODE_MIX = np.uint64(0x9E3779B97F4A7C15)


def content_hash(text: str) -> int:
    """64-bit hash of the exact text (exact duplicates share it)."""
    return xxhash.xxh3_64_intdigest(text.encode("utf-8", "surrogatepass"))


def content_hashes(texts) -> np.ndarray:
    """content_hash of each text: a list of str, or an Arrow string column hashed in place."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not isinstance(texts, pa.Array):
        return np.fromiter((content_hash(t) for t in texts), dtype=np.uint64)
    col = texts if texts.type in (pa.large_string(), pa.large_binary()) else texts.cast(pa.large_string())
    offsets = np.frombuffer(col.buffers()[1], dtype=np.int64)[col.offset: col.offset + len(col) + 1].tolist()
    data = memoryview(col.buffers()[2]) if col.buffers()[2] is not None else memoryview(b"")
    return np.fromiter((xxhash.xxh3_64_intdigest(data[a:b]) for a, b in zip(offsets[:-1], offsets[1:])),
                       dtype=np.uint64, count=len(col))


def make_nodes(file_no: int, n_rows: int) -> np.ndarray:
    if n_rows >= 1 << ROW_BITS:
        raise ValueError(f"a file may hold at most {1 << ROW_BITS} documents, got {n_rows}")
    return (np.int64(file_no) << np.int64(ROW_BITS)) + np.arange(n_rows, dtype=np.int64)


def split_nodes(nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(file_no, row) of non-negative nodes."""
    nodes = np.asarray(nodes, dtype=np.int64)
    return nodes >> np.int64(ROW_BITS), nodes & _ROW_MASK


def external_nodes(snapshot_no: int, nodes: np.ndarray) -> np.ndarray:
    """Nodes of an earlier snapshot, mapped below zero so they always win a cluster."""
    return -1 - ((np.int64(snapshot_no) << np.int64(_LOCAL_BITS)) + np.asarray(nodes, dtype=np.int64))


def split_external(nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(snapshot_no, node in that snapshot) of negative nodes: the inverse of external_nodes."""
    base = -1 - np.asarray(nodes, dtype=np.int64)
    return base >> np.int64(_LOCAL_BITS), base & np.int64((1 << _LOCAL_BITS) - 1)


def partition_of(keys: np.ndarray, num_partitions: int) -> np.ndarray:
    """Partition of each (already well-mixed) 64-bit key: equal keys always land in the same partition."""
    return (np.asarray(keys, dtype=np.uint64) % np.uint64(num_partitions)).astype(np.int64)


def node_partition(nodes: np.ndarray, num_partitions: int) -> np.ndarray:
    """Partition of each node (nodes are sequential, so they are mixed first to spread files evenly)."""
    with np.errstate(over="ignore"):
        mixed = np.asarray(nodes, dtype=np.int64).view(np.uint64) * _NODE_MIX
    return ((mixed >> np.uint64(32)) % np.uint64(num_partitions)).astype(np.int64)
