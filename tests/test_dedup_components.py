"""Connected components: the distributed Large-Star/Small-Star rounds (crawlproc.dedup.stars) against the
one-task numpy components and a plain union-find, on random graphs (chains, stars, cycles, negative
nodes) and for several partition counts; the cluster waves (kinds, kept ids, sizes); and resuming a round.
Everything runs in-process: the waves are plain functions, Ray only schedules them."""

from __future__ import annotations

import random
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawlproc.dedup import stars
from crawlproc.dedup.buckets import read_all, write_buckets
from crawlproc.dedup.clusters import run_clusters
from crawlproc.dedup.components import connected_components, single_task_stars
from crawlproc.dedup.nodes import KIND_EXACT, KIND_NEAR, external_nodes, make_nodes, node_partition
from crawlproc.dedup.schemas import EDGE_SCHEMA, STAR_SCHEMA


def in_process(step, fn, arg_tuples):
    return [fn(*args) for args in arg_tuples]


def write_edges(path, src, dst, num_partitions, kind=None):
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    keep = lo != hi
    lo, hi = lo[keep], hi[keep]
    kind = np.full(len(lo), KIND_NEAR, np.int8) if kind is None else np.asarray(kind, np.int8)[keep]
    write_buckets(path, pa.table({"src": lo, "dst": hi, "kind": kind}, schema=EDGE_SCHEMA),
                  node_partition(hi, num_partitions), num_partitions)
    return [str(path)]


def star_forest(files) -> dict[int, int]:
    t = read_all(files, STAR_SCHEMA)
    pairs = set(zip(t.column("dst").to_pylist(), t.column("src").to_pylist()))
    forest = dict(pairs)
    assert len(forest) == len(pairs), "a node with two roots"
    return forest


def expected_forest(src, dst) -> dict[int, int]:
    nodes, roots = connected_components(np.asarray(src, np.int64), np.asarray(dst, np.int64))
    return {n: r for n, r in zip(nodes.tolist(), roots.tolist()) if n != r}


def union_find(edges) -> dict[int, int]:
    parent: dict = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent if find(x) != x}


def distributed(tmp, src, dst, num_partitions):
    shutil.rmtree(tmp, ignore_errors=True)
    files = write_edges(tmp / "edges.arrow", src, dst, num_partitions)
    return stars.run_components(in_process, files, tmp / "cc", num_partitions)


def shaped_graph(rng: random.Random, shape: str, n: int) -> list[tuple[int, int]]:
    ids = rng.sample(range(-50, 10 * n + 50), n + 1)  # random ids: a chain is not sorted along itself
    if shape == "chain":
        return list(zip(ids, ids[1:]))
    if shape == "cycle":
        return list(zip(ids, ids[1:] + ids[:1]))
    if shape == "star":
        return [(ids[0], x) for x in ids[1:]]
    if shape == "tree":
        return [(ids[i], ids[rng.randrange(i)]) for i in range(1, n + 1)]
    return [(rng.choice(ids), rng.choice(ids)) for _ in range(n)]  # "random": several components


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(st.tuples(st.sampled_from(["chain", "cycle", "star", "tree", "random"]),
                             st.integers(1, 40)), min_size=1, max_size=5),
    num_partitions=st.sampled_from([1, 2, 3, 7]),
    seed=st.integers(0, 2**16),
)
def test_stars_equal_numpy_components_and_union_find(tmp_path, parts, num_partitions, seed):
    rng = random.Random(seed)
    edges = [e for shape, n in parts for e in shaped_graph(rng, shape, n)]
    src, dst = [a for a, _ in edges], [b for _, b in edges]
    files, rounds = distributed(tmp_path / "g", src, dst, num_partitions)
    got = star_forest(files)
    assert got == expected_forest(src, dst)
    assert got == union_find((a, b) for a, b in edges if a != b)


@pytest.mark.parametrize("shape", ["chain", "cycle", "tree"])
def test_long_shapes_converge_in_few_rounds(tmp_path, shape):
    rng = random.Random(7)
    edges = shaped_graph(rng, shape, 3000)
    src, dst = [a for a, _ in edges], [b for _, b in edges]
    files, rounds = distributed(tmp_path / "g", src, dst, 4)
    assert star_forest(files) == expected_forest(src, dst)
    # Kiveris et al.: O(log^2 n) rounds; log2(3000)^2 is 133, practice is far below
    assert rounds <= 4 * int(np.log2(3000)), rounds


def test_no_partition_holds_a_big_star(tmp_path):
    """A document that is the smallest of 20,000 copies: its edges spread over the partitions."""
    P = 8
    src, dst = np.zeros(20000, np.int64), np.arange(1, 20001)
    files, rounds = distributed(tmp_path / "g", src, dst, P)
    per_part = [pq.read_table(tmp_path / "g" / "cc" / "round-000" / f"edges-{p:05d}.parquet").num_rows
                for p in range(P)]
    assert max(per_part) < 2 * 20000 / P
    assert star_forest(files) == {int(d): 0 for d in dst}


def test_a_round_resumes_where_it_stopped(tmp_path):
    rng = random.Random(3)
    edges = shaped_graph(rng, "chain", 500) + shaped_graph(rng, "random", 300)
    src, dst = [a for a, _ in edges], [b for _, b in edges]
    clean, _ = distributed(tmp_path / "clean", src, dst, 3)
    work = tmp_path / "crashed"
    files = write_edges(work / "edges.arrow", src, dst, 3)
    calls = []

    def crash_in_round_one(step, fn, arg_tuples):
        if step == "components round 1" and fn is stars.star_round:
            fn(*arg_tuples[0])  # one partition finished, then the driver died
            raise RuntimeError("killed")
        calls.append(step)
        return in_process(step, fn, arg_tuples)

    with pytest.raises(RuntimeError):
        stars.run_components(crash_in_round_one, files, work / "cc", 3)
    skipped = []

    def counting(step, fn, arg_tuples):
        skipped.append(step)
        return in_process(step, fn, arg_tuples)

    again, _ = stars.run_components(counting, files, work / "cc", 3)
    assert "components round 0" not in skipped  # a finished round is not run again
    assert star_forest(again) == star_forest(clean) == expected_forest(src, dst)


def test_single_task_stars_are_the_same_forest(tmp_path):
    rng = random.Random(11)
    edges = shaped_graph(rng, "random", 400) + shaped_graph(rng, "chain", 100)
    src, dst = [a for a, _ in edges], [b for _, b in edges]
    files = write_edges(tmp_path / "edges.arrow", src, dst, 5)
    single_task_stars(files, str(tmp_path / "stars.arrow"), 5)
    distributed_files, _ = distributed(tmp_path / "d", src, dst, 5)
    assert star_forest([str(tmp_path / "stars.arrow")]) == star_forest(distributed_files)


def test_cluster_waves_kinds_kept_ids_and_sizes(tmp_path):
    """Two files of this snapshot and one earlier snapshot's file; one cluster rooted in the earlier one."""
    sig_dir = tmp_path / "sig"
    stems = ["f0", "f1"]
    ids = {"f0": [f"<a{i}>" for i in range(5)], "f1": [f"<b{i}>" for i in range(5)], "old": ["<o0>", "<o1>"]}
    for stem, col in ids.items():
        folder = tmp_path / "old_sig" if stem == "old" else sig_dir
        folder.mkdir(exist_ok=True)
        pq.write_table(pa.table({"id": col}), folder / f"{stem}.parquet")
    a, b = make_nodes(0, 5), make_nodes(1, 5)
    old = external_nodes(1, make_nodes(0, 2))
    # cluster 1: a0 (kept) - a3 exact copy - b1 near; cluster 2: old1 (kept) - b4 - a1; cluster 3: b2 - b3 exact
    src = [a[0], a[0], old[1], old[1], b[2]]
    dst = [a[3], b[1], b[4], a[1], b[3]]
    kind = [KIND_EXACT, KIND_NEAR, KIND_NEAR, KIND_NEAR, KIND_EXACT]
    edge_files = write_edges(tmp_path / "edges.arrow", src, dst, 3, kind)
    star_files, _ = stars.run_components(in_process, edge_files, tmp_path / "cc", 3)
    counts = run_clusters(in_process, star_files, edge_files, tmp_path / "work", tmp_path / "clusters", sig_dir,
                          stems, {1: (str(tmp_path / "old_sig"), ["old"])}, 3)
    rows = {r["node"]: r for stem in stems for r in pq.read_table(tmp_path / "clusters" / f"{stem}.parquet").to_pylist()}
    assert set(rows) == {a[3], b[1], b[4], a[1], b[3]}
    assert {n: (r["kept_id"], r["kind"]) for n, r in rows.items()} == {
        a[3]: ("<a0>", KIND_EXACT), b[1]: ("<a0>", KIND_NEAR), b[4]: ("<o1>", KIND_NEAR),
        a[1]: ("<o1>", KIND_NEAR), b[3]: ("<b2>", KIND_EXACT)}
    assert rows[b[4]]["cluster_id"] == old[1]
    assert counts == {"exact_duplicates": 2, "near_duplicates": 3, "matched_earlier": 2,
                      "matched_by": {1: 2}, "clusters": 3, "cluster_sizes": {"2": 1, "3": 2}}
    # each file's part is sorted by node
    part = pq.read_table(tmp_path / "clusters" / "f1.parquet").column("node").to_pylist()
    assert part == sorted(part) == [b[1], b[3], b[4]]
