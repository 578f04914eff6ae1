"""Step 4 in one task: connected components of the whole edge list with numpy, as a star forest.

This is the reference that the distributed components (crawlproc.dedup.stars) must reproduce exactly, and
the cheaper choice for small inputs (one task instead of a few waves per round). Its memory is
proportional to the number of edges, never to the number of documents, but it is all the edges at once.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from crawlproc.dedup import files
from crawlproc.dedup.buckets import read_all, write_buckets
from crawlproc.dedup.nodes import node_partition
from crawlproc.dedup.schemas import EDGE_SCHEMA, STAR_SCHEMA


def connected_components(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Components of an undirected edge list, by min-label propagation with pointer jumping (numpy only).

    Returns (nodes, roots): every node that appears in an edge, sorted, and the smallest node of its
    component."""
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


def single_task_stars(edge_paths: list[str], stars_path: str, num_partitions: int) -> dict:
    """Read every edge, compute the components, write the star forest (root, node) bucketed by node."""
    if files.exists(stars_path):
        return {"rounds": 0, "reused": True}
    edges = read_all(edge_paths, EDGE_SCHEMA)
    nodes, roots = connected_components(edges.column("src").to_numpy(), edges.column("dst").to_numpy())
    leaf = roots != nodes
    table = pa.table({"src": roots[leaf], "dst": nodes[leaf]}, schema=STAR_SCHEMA)
    write_buckets(stars_path, table, node_partition(nodes[leaf], num_partitions), num_partitions)
    return {"rounds": 0, "reused": False}
