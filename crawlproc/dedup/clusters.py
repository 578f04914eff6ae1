"""Step 4's last part: from the star forest to dedup/clusters/<stem>.parquet, one file per input file.

Every node of a star but its root is a dropped document (if it belongs to this snapshot) and its root is
the document kept in its place. Three waves, none of which holds more than its share:

  leaves     per star partition: each leaf's row (node, root, kind), bucketed by the leaf's file group;
             and per (root, leaf file group) the number of leaves, bucketed by the root's file group
  roots      per file group: cluster sizes, and the kept document's id for every root of its files,
             read from the signatures' id column, sent to the file groups that need it
  parts      per file group: join, and write each file's clusters part (sorted by node) and counts

A file group is a contiguous range of input files; documents of earlier snapshots (negative nodes) are
grouped by (snapshot, file).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa

from crawlproc.dedup import files
from crawlproc.dedup.buckets import read_bucket, write_buckets
from crawlproc.dedup.errors import DedupError
from crawlproc.dedup.nodes import KIND_EXACT, KIND_NEAR, split_external, split_nodes
from crawlproc.dedup.schemas import CLUSTER_SCHEMA, EDGE_SCHEMA, STAR_SCHEMA
from crawlproc.store.storage import join

LEAF_SCHEMA = pa.schema([("node", pa.int64()), ("cluster_id", pa.int64()), ("kind", pa.int8())])
COUNT_SCHEMA = pa.schema([("root", pa.int64()), ("group", pa.int64()), ("leaves", pa.int64())])
KEPT_SCHEMA = pa.schema([("root", pa.int64()), ("kept_id", pa.string())])


class FileGroups:
    """Which group each document's file belongs to: G contiguous ranges of this snapshot's F files, and
    (snapshot, file) hashed over the same G groups for earlier snapshots' documents."""

    def __init__(self, num_files: int, num_groups: int):
        self.num_files = num_files
        self.num_groups = max(1, min(num_groups, num_files))

    def of_nodes(self, nodes: np.ndarray) -> np.ndarray:
        nodes = np.asarray(nodes, dtype=np.int64)
        groups = np.empty(len(nodes), dtype=np.int64)
        own = nodes >= 0
        file_no, _ = split_nodes(nodes[own])
        groups[own] = file_no * self.num_groups // self.num_files
        snapshot_no, local = split_external(nodes[~own])
        earlier_file, _ = split_nodes(local)
        groups[~own] = (snapshot_no * 1_000_003 + earlier_file) % self.num_groups
        return groups

    def files(self, group: int) -> np.ndarray:
        f = np.arange(self.num_files)
        return f[f * self.num_groups // self.num_files == group]


def cluster_leaves(part: int, star_paths: list[str], edge_paths: list[str], out_dir: str,
                   num_files: int, num_groups: int) -> dict:
    """Wave 1 for star partition `part`: its leaves' rows and the per-root leaf counts."""
    counts_path = join(out_dir, f"counts-{part:05d}.arrow")
    if files.exists(counts_path):
        return {}
    groups = FileGroups(num_files, num_groups)
    stars = read_bucket(star_paths, part, STAR_SCHEMA)
    order = np.lexsort((stars.column("src").to_numpy(), stars.column("dst").to_numpy()))
    root, node = stars.column("src").to_numpy()[order], stars.column("dst").to_numpy()[order]
    keep = np.ones(len(node), dtype=bool)
    keep[1:] = (node[1:] != node[:-1]) | (root[1:] != root[:-1])
    root, node = root[keep], node[keep]
    if len(node) and (node[1:] == node[:-1]).any():
        raise DedupError(f"components did not converge: a node of partition {part} has two roots")
    # exact duplicates: the documents an exact (content hash) edge points at, i.e. not first of their text
    edges = read_bucket(edge_paths, part, EDGE_SCHEMA)
    exact = np.unique(edges.column("dst").to_numpy()[edges.column("kind").to_numpy() == KIND_EXACT])
    kind = np.where(np.isin(node, exact), KIND_EXACT, KIND_NEAR).astype(np.int8)
    own = node >= 0
    leaf_group = np.full(len(node), -1, dtype=np.int64)
    leaf_group[own] = groups.of_nodes(node[own])
    write_buckets(join(out_dir, f"leaves-{part:05d}.arrow"),
                  pa.table({"node": node[own], "cluster_id": root[own], "kind": kind[own]}, schema=LEAF_SCHEMA),
                  leaf_group[own], groups.num_groups)
    # one row per (root, group of its leaves); leaves of earlier snapshots count in group -1 (no id needed)
    roots, leaf_groups, n = _count_pairs(root, leaf_group)
    write_buckets(counts_path, pa.table({"root": roots, "group": leaf_groups, "leaves": n}, schema=COUNT_SCHEMA),
                  groups.of_nodes(roots), groups.num_groups)
    return {}


def _count_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (a, b) pairs and how often each occurs."""
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    first = np.ones(len(a), dtype=bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    starts = np.flatnonzero(first)
    return a[starts], b[starts], np.diff(np.append(starts, len(a)))


def _ids_of(sig_dir: str, stems: list[str], nodes: np.ndarray) -> np.ndarray:
    """Document ids of non-negative nodes, reading only the id column of the files that hold them."""
    ids = np.empty(len(nodes), dtype=object)
    file_no, row = split_nodes(nodes)
    for f in np.unique(file_no):
        sel = np.flatnonzero(file_no == f)
        col = files.read_table(join(sig_dir, f"{stems[f]}.parquet"), columns=["id"]).column("id")
        ids[sel] = col.take(pa.array(row[sel])).to_pylist()
    return ids


def cluster_roots(group: int, count_paths: list[str], out_dir: str, sig_dir: str, stems: list[str],
                  earlier: dict[int, tuple[str, list[str]]], num_groups: int) -> dict:
    """Wave 2 for file group `group`: cluster sizes of its roots, and their ids for the groups that ask.
    `earlier` maps an earlier snapshot's number to (its signatures folder, its stems)."""
    kept_path = join(out_dir, f"kept-{group:05d}.arrow")
    stats_path = join(out_dir, f"roots-{group:05d}.json")
    if files.exists(kept_path) and files.exists(stats_path):
        return files.read_json(stats_path)
    groups = FileGroups(len(stems), num_groups)
    counts = read_bucket(count_paths, group, COUNT_SCHEMA)
    root, leaf_group, n = (counts.column(c).to_numpy() for c in ("root", "group", "leaves"))
    # sizes count every member, earlier snapshots' included, of the clusters that touch this snapshot
    uniq, inv = np.unique(root, return_inverse=True)
    size = 1 + np.bincount(inv, weights=n, minlength=len(uniq)).astype(np.int64)
    touches = (uniq >= 0) | (np.bincount(inv, weights=leaf_group >= 0, minlength=len(uniq)) > 0)
    sizes = Counter(size[touches].tolist())
    # ids of the kept documents, once per (root, asking group)
    ask = leaf_group >= 0
    asked_roots, asked_by, _ = _count_pairs(root[ask], leaf_group[ask])
    wanted = np.unique(asked_roots)
    ids = np.empty(len(wanted), dtype=object)
    own = wanted >= 0
    ids[own] = _ids_of(sig_dir, stems, wanted[own])
    snapshot_no, local = split_external(wanted[~own])
    for s in np.unique(snapshot_no):
        their_dir, their_stems = earlier[int(s)]
        sel = np.flatnonzero(~own)[snapshot_no == s]
        ids[sel] = _ids_of(their_dir, their_stems, local[snapshot_no == s])
    kept = ids[np.searchsorted(wanted, asked_roots)]
    write_buckets(kept_path, pa.table({"root": asked_roots, "kept_id": pa.array(kept.tolist(), pa.string())},
                                      schema=KEPT_SCHEMA), asked_by, groups.num_groups)
    stats = {"clusters": int(touches.sum()), "cluster_sizes": {str(k): v for k, v in sorted(sizes.items())}}
    files.write_json(stats_path, stats)
    return stats


def cluster_parts(group: int, leaf_paths: list[str], kept_paths: list[str], out_dir: str, clusters_dir: str,
                  stems: list[str], num_groups: int) -> dict:
    """Wave 3 for file group `group`: each of its files' clusters part, <clusters_dir>/<stem>.parquet."""
    stats_path = join(out_dir, f"parts-{group:05d}.json")
    if files.exists(stats_path):
        return files.read_json(stats_path)
    num_files = len(stems)
    groups = FileGroups(num_files, num_groups)
    leaves = read_bucket(leaf_paths, group, LEAF_SCHEMA).sort_by("node")
    kept = read_bucket(kept_paths, group, KEPT_SCHEMA)
    kept_roots = kept.column("root").to_numpy()
    order = np.argsort(kept_roots)
    roots = leaves.column("cluster_id").to_numpy()
    pos = order[np.searchsorted(kept_roots, roots, sorter=order)]
    table = pa.table({"node": leaves.column("node"), "cluster_id": leaves.column("cluster_id"),
                      "kind": leaves.column("kind"), "kept_id": kept.column("kept_id").take(pa.array(pos))},
                     schema=CLUSTER_SCHEMA)
    file_no, _ = split_nodes(table.column("node").to_numpy())
    bounds = np.searchsorted(file_no, np.arange(num_files + 1))
    for f in groups.files(group):
        files.write_table(join(clusters_dir, f"{stems[f]}.parquet"),
                          table.slice(int(bounds[f]), int(bounds[f + 1] - bounds[f])))
    kinds = table.column("kind").to_numpy()
    older, _ = split_external(roots[roots < 0])
    stats = {"exact_duplicates": int((kinds == KIND_EXACT).sum()), "near_duplicates": int((kinds == KIND_NEAR).sum()),
             "matched_earlier": int((roots < 0).sum()),
             "matched_by": {str(k): int(v) for k, v in zip(*np.unique(older, return_counts=True))}}
    files.write_json(stats_path, stats)
    return stats


def merge_stats(root_stats: list[dict], part_stats: list[dict]) -> dict:
    """The components' counts for the summary, from the waves' per-task counts."""
    sizes: Counter = Counter()
    for s in root_stats:
        sizes.update({int(k): v for k, v in s["cluster_sizes"].items()})
    total = {k: sum(s[k] for s in part_stats) for k in ("exact_duplicates", "near_duplicates", "matched_earlier")}
    by: Counter = Counter()
    for s in part_stats:
        by.update({int(k): v for k, v in (s.get("matched_by") or {}).items()})
    return {**total, "matched_by": dict(sorted(by.items())), "clusters": sum(s["clusters"] for s in root_stats),
            "cluster_sizes": {str(k): v for k, v in sorted(sizes.items())}}


def run_clusters(run, star_files: list[str], edge_files: list[str], work: str, clusters_dir: str,
                 sig_dir: str, stems: list[str], earlier: dict[int, tuple[str, list[str]]],
                 num_partitions: int) -> dict:
    """The three waves (see the module docstring) with `run` as in stars.run_components; returns the counts."""
    P, work = num_partitions, str(work)
    G = FileGroups(len(stems), P).num_groups
    run("components clusters", cluster_leaves, [(p, star_files, edge_files, work, len(stems), G) for p in range(P)])
    counts = [join(work, f"counts-{p:05d}.arrow") for p in range(P)]
    roots = run("components clusters", cluster_roots,
                [(g, counts, work, str(sig_dir), stems, earlier, G) for g in range(G)])
    leaves = [join(work, f"leaves-{p:05d}.arrow") for p in range(P)]
    kept = [join(work, f"kept-{g:05d}.arrow") for g in range(G)]
    parts = run("components clusters", cluster_parts,
                [(g, leaves, kept, work, str(clusters_dir), stems, G) for g in range(G)])
    return merge_stats(roots, parts)
