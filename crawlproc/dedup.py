"""Pure helpers for duplicate removal: content hashes, node keys, key partitioning, candidate edges from
equal keys, connected components on an edge list, and the deterministic survivor of each cluster.

A document is a *node*: an int64 `file_no << 32 | row`, where file_no is the input file's position in the
sorted list of input files. Documents of earlier snapshots (scope "all") are negative nodes, so they sort
first. Every cluster keeps its smallest node: an earlier snapshot's document if there is one, else the first
document in input order (FineWeb keeps the first as well). No helper here needs all documents at once:
edges exist only between documents that share a key.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import xxhash

ROW_BITS = 32
KIND_EXACT = 0
KIND_NEAR = 1
KIND_NAMES = {KIND_EXACT: "exact", KIND_NEAR: "near"}


def content_hash(text: str) -> int:
    """64-bit hash of the exact text (exact duplicates share it)."""
    return xxhash.xxh3_64_intdigest(text.encode("utf-8", "surrogatepass"))


def content_hashes(texts) -> np.ndarray:
    return np.fromiter((content_hash(t) for t in texts), dtype=np.uint64)


def make_nodes(file_no: int, n_rows: int) -> np.ndarray:
    if n_rows >= 1 << ROW_BITS:
        raise ValueError(f"a file may hold at most {1 << ROW_BITS} documents, got {n_rows}")
    return (np.int64(file_no) << np.int64(ROW_BITS)) + np.arange(n_rows, dtype=np.int64)


def split_nodes(nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(file_no, row) of non-negative nodes."""
    nodes = np.asarray(nodes, dtype=np.int64)
    return nodes >> np.int64(ROW_BITS), nodes & np.int64((1 << ROW_BITS) - 1)


def external_nodes(snapshot_no: int, nodes: np.ndarray) -> np.ndarray:
    """Nodes of an earlier snapshot, mapped below zero so they always win a cluster."""
    return -1 - ((np.int64(snapshot_no) << np.int64(52)) + np.asarray(nodes, dtype=np.int64))


def partition_of(keys: np.ndarray, num_partitions: int) -> np.ndarray:
    """Partition of each (already well-mixed) 64-bit key: equal keys always land in the same partition."""
    return (np.asarray(keys, dtype=np.uint64) % np.uint64(num_partitions)).astype(np.int64)


def edges_from_keys(keys: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate edges between documents with an equal key: each group becomes a star around its smallest
    node (enough for connected components, and linear in the group size instead of quadratic)."""
    keys = np.asarray(keys, dtype=np.uint64)
    nodes = np.asarray(nodes, dtype=np.int64)
    if len(keys) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
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
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.lexsort((np.asarray(index_nodes, dtype=np.int64), index_keys))
    ik, inodes = index_keys[order], np.asarray(index_nodes, dtype=np.int64)[order]
    pos = np.searchsorted(ik, np.asarray(keys, dtype=np.uint64), side="left")
    pos_c = np.minimum(pos, len(ik) - 1)
    hit = ik[pos_c] == keys
    return inodes[pos_c[hit]], np.asarray(nodes, dtype=np.int64)[hit]


def connected_components(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Components of an undirected edge list, by min-label propagation with pointer jumping (numpy only).

    Returns (nodes, roots): every node that appears in an edge, sorted, and the smallest node of its
    component. Memory is proportional to the number of edges, never to the number of documents."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    if len(src) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    nodes, inverse = np.unique(np.concatenate([src, dst]), return_inverse=True)
    u, v = inverse[: len(src)], inverse[len(src):]
    label = np.arange(len(nodes))  # nodes are sorted, so the smallest label is the smallest node
    while True:
        m = np.minimum(label[u], label[v])
        before = label.copy()
        np.minimum.at(label, u, m)
        np.minimum.at(label, v, m)
        while True:  # pointer jumping: follow labels to their own labels until stable
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped
        if np.array_equal(label, before):
            return nodes, nodes[label]


def duplicate_kinds(nodes: np.ndarray, roots: np.ndarray, exact_src, exact_dst) -> np.ndarray:
    """For the dropped nodes (root != node): KIND_EXACT when the document has an exact copy that sorts
    before it, else KIND_NEAR."""
    e_nodes, e_roots = connected_components(exact_src, exact_dst)
    kinds = np.full(len(nodes), KIND_NEAR, dtype=np.int8)
    if len(e_nodes):
        pos = np.minimum(np.searchsorted(e_nodes, nodes), len(e_nodes) - 1)
        is_exact_dup = (e_nodes[pos] == nodes) & (e_roots[pos] != nodes)
        kinds[is_exact_dup] = KIND_EXACT
    return kinds


def cluster_size_counts(roots: np.ndarray) -> dict[str, int]:
    """{"<cluster size>": number of clusters of that size} for clusters of two or more documents."""
    if len(roots) == 0:
        return {}
    _, sizes = np.unique(roots, return_counts=True)
    return {str(k): v for k, v in sorted(Counter(sizes.tolist()).items())}
