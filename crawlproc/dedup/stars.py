"""Step 4 across P tasks: connected components by the Alternating algorithm of Kiveris, Lattanzi, Mirrokni,
Rastogi and Vassilvitskii, "Connected Components in MapReduce and Beyond" (SoCC 2014).

The graph is only ever an edge list; a round rewrites it with two operations and never adds edges:
  Large-Star  every edge (w, u) with w < u becomes (m(w), u), where m(w) is the smallest of w and its
              neighbours: a node's larger neighbours all move to its smallest neighbour.
  Small-Star  every node u with smaller neighbours N(u) links all of N(u) and u itself to min N(u).
Rounds repeat until neither changes anything (every partition counts its changes). The graph is then a
star forest: each component is a star around its smallest node, the survivor. Kiveris et al. prove
O(log^2 n) rounds; on dedup graphs, which start as stars around each key group's smallest document,
it takes a few.

Why this algorithm: its whole state is the edge list (no label table to join against every round), and
both operations only need, for each node, its *smaller* neighbours. So each edge (w, u), w < u, is stored
once, in the partition of u, its larger end. A node's smaller neighbours are few (at most one per key it
holds: 14 bands and a content hash, plus earlier snapshots' index), so no partition holds more than its
share, even for a document that is the smallest of a million copies: its million larger neighbours are
spread over every partition. That node's m(w) is the one value that must travel; partitions ask for it
(one request per node and partition), so one round is three waves of P tasks:

  A  requests   read this partition's edges, dedupe; m(u) for its nodes; ask the owner of every src w
  B  answers    answer each asking partition with m(w) for its nodes that have smaller neighbours
  C  stars      Large-Star (src w -> m(w)), then Small-Star, writing the next round's edges by larger end

Every file is written atomically and a task whose file exists is skipped, so a round resumes where it
stopped; the driver records each finished round's change counts in round-RRR/_done.json.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from crawlproc.store.layout import done_record
from crawlproc.dedup import files
from crawlproc.dedup.buckets import bucket_metadata, read_all, read_bucket, write_buckets
from crawlproc.dedup.errors import DedupError
from crawlproc.dedup.nodes import node_partition
from crawlproc.dedup.schemas import LABEL_SCHEMA, NODE_SCHEMA, STAR_SCHEMA
from crawlproc.store.storage import join

_STATS_KEY = b"crawlproc.stars"


def round_dir(work: str, r: int) -> str:
    return join(str(work), f"round-{r:03d}")


def round_outputs(work: str, r: int, num_partitions: int) -> list[str]:
    """The edge files round r writes (round r+1 reads them)."""
    return [join(round_dir(work, r), f"stars-{p:05d}.arrow") for p in range(num_partitions)]


def _unique_by_dst(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (src, dst) pairs, sorted by dst, then src."""
    order = np.lexsort((src, dst))
    s, d = src[order], dst[order]
    first = np.ones(len(s), dtype=bool)
    first[1:] = (s[1:] != s[:-1]) | (d[1:] != d[:-1])
    return s[first], d[first]


def _groups(dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For dst sorted: (start of each run of equal dst, run id of every element)."""
    new = np.ones(len(dst), dtype=bool)
    new[1:] = dst[1:] != dst[:-1]
    return np.flatnonzero(new), np.cumsum(new) - 1


def _lookup(known: np.ndarray, values: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For `known` sorted: (is each query known, its value where known, else the query itself)."""
    if len(known) == 0:
        return np.zeros(len(query), dtype=bool), query
    pos = np.minimum(np.searchsorted(known, query), len(known) - 1)
    hit = known[pos] == query
    return hit, np.where(hit, values[pos], query)


def star_requests(part: int, edge_paths: list[str], work: str, r: int, num_partitions: int) -> dict:
    """Wave A of round r for partition `part`."""
    d = round_dir(work, r)
    requests_path = join(d, f"requests-{part:05d}.arrow")
    if files.exists(requests_path):
        return {}
    t = read_bucket(edge_paths, part, STAR_SCHEMA)
    src, dst = _unique_by_dst(t.column("src").to_numpy(), t.column("dst").to_numpy())
    files.write_table(join(d, f"edges-{part:05d}.parquet"), pa.table({"src": src, "dst": dst}, schema=STAR_SCHEMA))
    starts, _ = _groups(dst)  # each dst's smallest neighbour is the first src of its run
    files.write_table(join(d, f"mins-{part:05d}.parquet"),
                       pa.table({"node": dst[starts], "label": src[starts]}, schema=LABEL_SCHEMA))
    asked = np.unique(src)
    write_buckets(requests_path, pa.table({"node": asked}, schema=NODE_SCHEMA),
                  node_partition(asked, num_partitions), num_partitions)
    return {}


def star_answers(part: int, work: str, r: int, num_partitions: int) -> dict:
    """Wave B: for every partition q, m(w) of the nodes w it asked about that have a smaller neighbour."""
    d = round_dir(work, r)
    answers_path = join(d, f"answers-{part:05d}.arrow")
    if files.exists(answers_path):
        return {}
    mins = read_all([join(d, f"mins-{part:05d}.parquet")], LABEL_SCHEMA)
    known, label = mins.column("node").to_numpy(), mins.column("label").to_numpy()
    nodes, labels, to = [], [], []
    for q in range(num_partitions):
        asked = read_bucket([join(d, f"requests-{q:05d}.arrow")], part, NODE_SCHEMA).column("node").to_numpy()
        hit, m = _lookup(known, label, asked)
        nodes.append(asked[hit]), labels.append(m[hit]), to.append(np.full(hit.sum(), q))
    table = pa.table({"node": np.concatenate(nodes), "label": np.concatenate(labels)}, schema=LABEL_SCHEMA)
    write_buckets(answers_path, table, np.concatenate(to), num_partitions)
    return {}


def star_round(part: int, work: str, r: int, num_partitions: int) -> dict:
    """Wave C: Large-Star then Small-Star on this partition's edges; returns the change counts."""
    d = round_dir(work, r)
    out_path = round_outputs(work, r, num_partitions)[part]
    if files.exists(out_path):
        return json.loads(bucket_metadata(out_path)[_STATS_KEY])
    edges = read_all([join(d, f"edges-{part:05d}.parquet")], STAR_SCHEMA)
    src, dst = edges.column("src").to_numpy(), edges.column("dst").to_numpy()
    answers = read_bucket([join(d, f"answers-{q:05d}.arrow") for q in range(num_partitions)], part, LABEL_SCHEMA)
    known, label = answers.column("node").to_numpy(), answers.column("label").to_numpy()
    order = np.argsort(known)
    known, label = known[order], label[order]
    # Large-Star: a src w with a smaller neighbour hands its edge to m(w).
    moved, src = _lookup(known, label, src)
    src, dst = _unique_by_dst(src, dst)
    # Small-Star: every node's smaller neighbours, and the node, link to the smallest of them.
    starts, run = _groups(dst)
    smallest = src[starts]
    sizes = np.diff(np.append(starts, len(dst)))
    others = src != smallest[run]
    new_src = np.concatenate([smallest, smallest[run][others]])
    new_dst = np.concatenate([dst[starts], src[others]])
    stats = {"large_star_changes": int(moved.sum()), "small_star_changes": int((sizes > 1).sum()),
             "edges": int(len(new_src))}
    table = pa.table({"src": new_src, "dst": new_dst}, schema=STAR_SCHEMA)
    table = table.replace_schema_metadata({_STATS_KEY: json.dumps(stats)})
    write_buckets(out_path, table, node_partition(new_dst, num_partitions), num_partitions)
    return stats


def run_components(run, edge_files: list[str], work: str, num_partitions: int, max_rounds: int = 100,
                   log=lambda m: None) -> tuple[list[str], int]:
    """Rounds until no partition changes; returns (the star forest's files, rounds). `run(step, fn, args)`
    runs fn(*a) for every tuple a of args (as Ray tasks, or in a loop) and returns the results in order.
    A round whose round-RRR/_done.json exists is not run again."""
    P, inputs = num_partitions, edge_files
    for r in range(max_rounds):
        done = done_record(round_dir(work, r))
        if not files.exists(done):
            step = f"components round {r}"
            run(step, star_requests, [(p, inputs, str(work), r, P) for p in range(P)])
            run(step, star_answers, [(p, str(work), r, P) for p in range(P)])
            stats = run(step, star_round, [(p, str(work), r, P) for p in range(P)])
            files.write_json(done, {k: sum(s[k] for s in stats) for k in stats[0]})
        totals = files.read_json(done)
        log(f"dedup: components round {r}: {totals}")
        if totals["large_star_changes"] == 0 and totals["small_star_changes"] == 0:
            return inputs, r + 1  # this round's input was already a star forest
        inputs = round_outputs(work, r, P)
    raise DedupError(f"components did not converge in {max_rounds} rounds")
