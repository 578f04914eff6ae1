"""Step 3, per key partition: candidate edges between documents that share a key.

Each group of equal keys becomes a star around its smallest node (enough for connected components, and
linear in the group size instead of quadratic). With scope "all", new documents are also linked to the
smallest earlier document (a negative node) with an equal band key in the earlier snapshots' band index,
and this partition of the snapshot's own index is written for later snapshots. The edges are written
bucketed by the partition of their larger end (dst), which is where the components step wants them.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from crawlproc.store.layout import done_record
from crawlproc.dedup import files
from crawlproc.dedup.index import part_path, write_part
from crawlproc.dedup.buckets import bucket_metadata, read_all, read_bucket, write_buckets
from crawlproc.dedup.nodes import KIND_EXACT, KIND_NEAR, external_nodes, node_partition, partition_of
from crawlproc.dedup.schemas import EDGE_SCHEMA, INDEX_SCHEMA, SHUFFLE_SCHEMA

_EMPTY = np.empty(0, np.int64)
_STATS_KEY = b"crawlproc.edges"  # the step's counts, kept in the file so that a skipped task returns them


def edges_from_keys(keys: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(src, dst) edges from each group of equal keys' smallest node to the group's other nodes."""
    keys = np.asarray(keys, dtype=np.uint64)
    nodes = np.asarray(nodes, dtype=np.int64)
    if len(keys) == 0:
        return _EMPTY, _EMPTY
    order = np.lexsort((nodes, keys))
    k, n = keys[order], nodes[order]
    new_group = np.ones(len(k), dtype=bool)
    new_group[1:] = k[1:] != k[:-1]
    group_id = np.cumsum(new_group) - 1
    group_min = n[new_group][group_id]
    edge = (~new_group) & (n != group_min)
    return group_min[edge], n[edge]


def edges_against_index(
    keys: np.ndarray, nodes: np.ndarray, index_keys: np.ndarray, index_nodes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Edges from each new document to the smallest indexed (earlier) document sharing one of its keys."""
    index_keys = np.asarray(index_keys, dtype=np.uint64)
    if len(index_keys) == 0 or len(keys) == 0:
        return _EMPTY, _EMPTY
    order = np.lexsort((np.asarray(index_nodes, dtype=np.int64), index_keys))
    ik, inodes = index_keys[order], np.asarray(index_nodes, dtype=np.int64)[order]
    pos = np.searchsorted(ik, np.asarray(keys, dtype=np.uint64), side="left")
    pos_c = np.minimum(pos, len(ik) - 1)
    hit = ik[pos_c] == keys
    return inodes[pos_c[hit]], np.asarray(nodes, dtype=np.int64)[hit]


def unique_edges(src: np.ndarray, dst: np.ndarray, kind: np.ndarray):
    """Each (src, dst) pair once; a pair found both by content hash and by band key counts as exact."""
    order = np.lexsort((kind, dst, src))
    s, d, k = src[order], dst[order], kind[order]
    first = np.ones(len(s), dtype=bool)
    first[1:] = (s[1:] != s[:-1]) | (d[1:] != d[:-1])
    return s[first], d[first], k[first]


def _index_part_rows(index_dir: str, part: int, num_partitions: int) -> pa.Table:
    """Rows of an earlier snapshot's band index that fall in `part` (re-partitioned if it used another P)."""
    info = files.read_json(done_record(index_dir))
    if info["num_partitions"] == num_partitions:
        return read_all([part_path(index_dir, part)], INDEX_SCHEMA)
    table = read_all(files.parquet_files(index_dir, "part-"), INDEX_SCHEMA)
    keys = table.column("key").to_numpy()
    return table.filter(pa.array(partition_of(keys, num_partitions) == part))


def partition_edges(
    part: int, shuffle_paths: list[str], edges_path: str, num_partitions: int,
    index_out: str | None, earlier: list[tuple[int, str]],
) -> dict:
    """Candidate edges of key partition `part`; skipped when `edges_path` exists (written last)."""
    if files.exists(edges_path):
        return json.loads(bucket_metadata(edges_path)[_STATS_KEY])
    rows = read_bucket(shuffle_paths, part, SHUFFLE_SCHEMA)
    keys = rows.column("key").to_numpy()
    nodes = rows.column("node").to_numpy()
    kinds = rows.column("kind").to_numpy()
    srcs, dsts, ks = [], [], []
    for kind in (KIND_EXACT, KIND_NEAR):
        sel = kinds == kind
        s, d = edges_from_keys(keys[sel], nodes[sel])
        srcs.append(s), dsts.append(d), ks.append(np.full(len(s), kind, np.int8))
    near = kinds == KIND_NEAR
    for snapshot_no, index_dir in earlier:
        idx = _index_part_rows(index_dir, part, num_partitions)
        old_nodes = external_nodes(snapshot_no, idx.column("node").to_numpy())
        s, d = edges_against_index(keys[near], nodes[near], idx.column("key").to_numpy(), old_nodes)
        srcs.append(s), dsts.append(d), ks.append(np.full(len(s), KIND_NEAR, np.int8))
    if index_out is not None:
        write_part(index_out, part, keys[near], nodes[near])
    src, dst, kind = np.concatenate(srcs), np.concatenate(dsts), np.concatenate(ks)
    stats = {"candidate_edges": len(src)}
    src, dst, kind = unique_edges(src, dst, kind)
    stats["edges"] = len(src)
    table = pa.table({"src": src, "dst": dst, "kind": kind}, schema=EDGE_SCHEMA)
    table = table.replace_schema_metadata({_STATS_KEY: json.dumps(stats)})
    write_buckets(edges_path, table, node_partition(dst, num_partitions), num_partitions)
    return stats
