"""MinHash near-duplicate removal on Ray, then PII anonymization. No step holds all documents or all
signatures: only the edge list (pairs of documents that share a key) ever meets in one task.

Steps, each resumable (outputs are written atomically and skipped when present):
 1. signatures   one task per docs file -> <snap>/signatures/<stem>.parquet (id, content_hash, has_words, bands)
 2. shuffle      one task per signatures file: (key, node, kind) rows hash-partitioned by key into
                 dedup/work/shuffle/<stem>/part-PPPPP.parquet (kind: exact content hash or band key)
 3. edges        one task per partition: equal keys -> star edges; with scope "all" also edges to earlier
                 snapshots' band index (<out>/_index/bands/<snap>/part-PPPPP.parquet), which it extends
 4. components   one task over the edge list only: min-label propagation; survivor = smallest node
 5. finalize     one task per docs file: dedup/duplicates/<stem>.parquet and final/<stem>.parquet (PII applied)
Then dedup/summary.json and dedup/_done.json. A node is `file_no << 32 | row` with file_no the position of
the file in the sorted input list, so reruns pick the same survivors.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray

from crawlproc import dedup as D
from crawlproc.minhash import FINGERPRINT_KEY, MinHasher, signature_fingerprint, signature_table
from crawlproc.pii import PiiAnonymizer
from crawlproc.recipe import Recipe
from crawlproc.schema import DOC_SCHEMA, conform
from crawlproc.layout import Layout
from crawlproc.storage import atomic_write_json, atomic_write_table, default_storage

STEPS = ("signatures", "shuffle", "edges", "components", "finalize")
SHUFFLE_SCHEMA = pa.schema([("key", pa.uint64()), ("node", pa.int64()), ("kind", pa.int8())])
EDGE_SCHEMA = pa.schema([("src", pa.int64()), ("dst", pa.int64()), ("kind", pa.int8())])
INDEX_SCHEMA = pa.schema([("key", pa.uint64()), ("node", pa.int64())])
DUP_SCHEMA = pa.schema(
    [("id", pa.string()), ("cluster_id", pa.int64()), ("kept_id", pa.string()), ("kind", pa.string())]
)


class DedupError(RuntimeError):
    """Dedup cannot run on this input (unreadable file, missing column): names the file and the reason."""


class StopAfter(RuntimeError):
    """Raised when `stop_after` asks to stop between steps (simulates a crash in tests)."""


# ---------------------------------------------------------------- step 1: signatures


def _check_docs_file(path: Path) -> pq.ParquetFile:
    try:
        f = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - any reader error means the same thing: not a Parquet file
        raise DedupError(f"{path}: not a readable Parquet file ({e})") from None
    names = f.schema_arrow.names
    for col in ("text", "id"):
        if col not in names:
            raise DedupError(f"{path}: lacks required column {col!r} (has {names})")
    return f


def compute_signatures(docs_path: str, sig_path: str, recipe: Recipe) -> int:
    """Signatures of one docs file, written atomically; skipped when present, made with the same MinHash
    settings and holding as many rows as the docs file (e.g. written by the extract task)."""
    sig_path = Path(sig_path)
    f = _check_docs_file(Path(docs_path))
    n_docs = f.metadata.num_rows
    if sig_path.is_file():
        sig = pq.ParquetFile(sig_path)
        meta = sig.schema_arrow.metadata or {}
        if meta.get(FINGERPRINT_KEY, b"").decode() == signature_fingerprint(recipe.minhash) and (
            sig.metadata.num_rows == n_docs
        ):
            return n_docs
    hasher = MinHasher(recipe.minhash)
    parts = []
    for batch in f.iter_batches(batch_size=recipe.dedup.signature_batch, columns=["id", "text"]):
        parts.append(signature_table(batch.column("id").cast(pa.string()).to_pylist(), batch.column("text").to_pylist(),
                                     batch=recipe.dedup.signature_batch, hasher=hasher))
    table = pa.concat_tables(parts) if parts else signature_table([], [], recipe.minhash)
    atomic_write_table(sig_path, table)
    return table.num_rows



# ---------------------------------------------------------------- step 2: shuffle


def shuffle_file(sig_path: str, file_no: int, shuffle_dir: str, num_partitions: int, exact: bool) -> int:
    """Write this file's (key, node, kind) rows into one Parquet file per partition, then a marker."""
    out = Path(shuffle_dir)
    marker = out / "_done.json"
    if marker.is_file():
        return json.loads(marker.read_text())["rows"]
    table = pq.read_table(sig_path, columns=["content_hash", "has_words", "bands"])
    n = table.num_rows
    nodes = D.make_nodes(file_no, n)
    has_words = table.column("has_words").to_numpy(zero_copy_only=False)
    bands = table.column("bands").combine_chunks()
    num_bands = bands.type.list_size
    band_keys = bands.flatten().to_numpy().reshape(n, num_bands)[has_words].reshape(-1)
    band_nodes = np.repeat(nodes[has_words], num_bands)
    keys = [band_keys]
    key_nodes = [band_nodes]
    kinds = [np.full(len(band_keys), D.KIND_NEAR, np.int8)]
    if exact:
        keys.append(table.column("content_hash").to_numpy())
        key_nodes.append(nodes)
        kinds.append(np.full(n, D.KIND_EXACT, np.int8))
    keys_a, nodes_a, kinds_a = np.concatenate(keys), np.concatenate(key_nodes), np.concatenate(kinds)
    part = D.partition_of(keys_a, num_partitions)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(num_partitions + 1))
    for p in range(num_partitions):
        sel = order[bounds[p]: bounds[p + 1]]
        if len(sel):
            atomic_write_table(
                out / f"part-{p:05d}.parquet",
                pa.table({"key": keys_a[sel], "node": nodes_a[sel], "kind": kinds_a[sel]}, schema=SHUFFLE_SCHEMA),
            )
    atomic_write_json(marker, {"rows": len(keys_a)})
    return len(keys_a)


# ---------------------------------------------------------------- step 3: candidate edges per partition


def _read_parts(paths: list[Path], schema: pa.Schema) -> pa.Table:
    tables = [pq.read_table(p) for p in paths if p.is_file()]
    return pa.concat_tables(tables).cast(schema) if tables else schema.empty_table()


def _index_part_rows(index_dir: Path, part: int, num_partitions: int) -> pa.Table:
    """Rows of an earlier snapshot's band index that fall in `part` (re-partitioned if it used another P)."""
    info = json.loads((index_dir / "_done.json").read_text())
    if info["num_partitions"] == num_partitions:
        return _read_parts([index_dir / f"part-{part:05d}.parquet"], INDEX_SCHEMA)
    table = _read_parts(sorted(index_dir.glob("part-*.parquet")), INDEX_SCHEMA)
    keys = table.column("key").to_numpy()
    return table.filter(pa.array(D.partition_of(keys, num_partitions) == part))


def partition_edges(
    part: int, shuffle_dirs: list[str], edges_path: str, num_partitions: int,
    index_out: str | None, earlier: list[tuple[int, str]],
) -> int:
    """Candidate edges of one partition: documents with an equal key, and (scope "all") new documents whose
    band key is in an earlier snapshot's index. Also writes this snapshot's index partition."""
    edges_path = Path(edges_path)
    if edges_path.is_file():
        return pq.ParquetFile(edges_path).metadata.num_rows
    rows = _read_parts([Path(d) / f"part-{part:05d}.parquet" for d in shuffle_dirs], SHUFFLE_SCHEMA)
    keys = rows.column("key").to_numpy()
    nodes = rows.column("node").to_numpy()
    kinds = rows.column("kind").to_numpy()
    srcs, dsts, ks = [], [], []
    for kind in (D.KIND_EXACT, D.KIND_NEAR):
        sel = kinds == kind
        s, d = D.edges_from_keys(keys[sel], nodes[sel])
        srcs.append(s), dsts.append(d), ks.append(np.full(len(s), kind, np.int8))
    near = kinds == D.KIND_NEAR
    for snapshot_no, index_dir in earlier:
        idx = _index_part_rows(Path(index_dir), part, num_partitions)
        old_nodes = D.external_nodes(snapshot_no, idx.column("node").to_numpy())
        s, d = D.edges_against_index(keys[near], nodes[near], idx.column("key").to_numpy(), old_nodes)
        srcs.append(s), dsts.append(d), ks.append(np.full(len(s), D.KIND_NEAR, np.int8))
    if index_out is not None:
        atomic_write_table(
            Path(index_out) / f"part-{part:05d}.parquet",
            pa.table({"key": keys[near], "node": nodes[near]}, schema=INDEX_SCHEMA),
        )
    table = pa.table(
        {"src": np.concatenate(srcs), "dst": np.concatenate(dsts), "kind": np.concatenate(ks)}, schema=EDGE_SCHEMA
    )
    atomic_write_table(edges_path, table)
    return table.num_rows


# ---------------------------------------------------------------- step 4: connected components


def _ids_of(sig_dir: Path, stems: list[str], nodes: np.ndarray) -> list[str]:
    """Document ids of non-negative nodes, reading only the id column of the files that hold them."""
    ids = np.empty(len(nodes), dtype=object)
    file_no, row = D.split_nodes(nodes)
    for f in np.unique(file_no):
        sel = np.flatnonzero(file_no == f)
        col = pq.read_table(sig_dir / f"{stems[f]}.parquet", columns=["id"]).column("id")
        ids[sel] = col.take(pa.array(row[sel])).to_pylist()
    return ids.tolist()


def components(edges_dir: str, clusters_path: str, out: str, snapshot: str, stems: list[str],
               earlier: list[tuple[int, str]]) -> dict:
    """Clusters from the edge list alone; writes the dropped documents (node, cluster_id, kind, kept_id)."""
    clusters_path = Path(clusters_path)
    stats_path = clusters_path.with_suffix(".json")
    if clusters_path.is_file() and stats_path.is_file():
        return json.loads(stats_path.read_text())
    edges = _read_parts(sorted(Path(edges_dir).glob("part-*.parquet")), EDGE_SCHEMA)
    src, dst = edges.column("src").to_numpy(), edges.column("dst").to_numpy()
    exact = edges.column("kind").to_numpy() == D.KIND_EXACT
    nodes, roots = D.connected_components(src, dst)
    kinds = D.duplicate_kinds(nodes, roots, src[exact], dst[exact])
    dropped = (roots != nodes) & (nodes >= 0)
    d_nodes, d_roots, d_kinds = nodes[dropped], roots[dropped], kinds[dropped]
    # kept_id: survivors of this snapshot by their signatures' id column; earlier ones by their index's files.
    uniq_roots, inv = np.unique(d_roots, return_inverse=True)
    root_ids = np.empty(len(uniq_roots), dtype=object)
    own = uniq_roots >= 0
    root_ids[own] = _ids_of(Path(out) / snapshot / "signatures", stems, uniq_roots[own])
    for snapshot_no, index_dir in earlier:
        info = json.loads((Path(index_dir) / "_done.json").read_text())
        base = -1 - uniq_roots
        mine = (~own) & ((base >> np.int64(52)) == snapshot_no)
        if mine.any():
            local = base[mine] & np.int64((1 << 52) - 1)
            root_ids[mine] = _ids_of(Path(out) / info["snapshot"] / "signatures", info["stems"], local)
    table = pa.table(
        {"node": d_nodes, "cluster_id": d_roots, "kind": d_kinds,
         "kept_id": pa.array(root_ids[inv].tolist() if len(d_nodes) else [], pa.string())}
    ).sort_by("node")
    in_snapshot = nodes >= 0
    stats = {
        "exact_duplicates": int((d_kinds == D.KIND_EXACT).sum()),
        "near_duplicates": int((d_kinds == D.KIND_NEAR).sum()),
        "matched_earlier": int((d_roots < 0).sum()),
        # clusters touching this snapshot; sizes count every member, earlier snapshots' included
        "clusters": len(np.unique(roots[in_snapshot])),
        "cluster_sizes": D.cluster_size_counts(roots[np.isin(roots, roots[in_snapshot])]),
        "edges": len(src),
    }
    atomic_write_table(clusters_path, table)
    atomic_write_json(stats_path, stats)
    return stats


# ---------------------------------------------------------------- step 5: duplicates/ and final/


def finalize_file(docs_path: str, file_no: int, stem: str, clusters_path: str, dup_path: str,
                  final_path: str, recipe: Recipe) -> dict:
    """Write this file's dropped ids and its survivors (PII applied) in DOC_SCHEMA."""
    final_path = Path(final_path)
    if final_path.is_file() and Path(dup_path).is_file():
        meta = pq.read_schema(final_path).metadata or {}
        return json.loads(meta.get(b"crawlproc.dedup", b"{}"))
    lo, hi = file_no << D.ROW_BITS, (file_no + 1) << D.ROW_BITS
    dups = pq.read_table(clusters_path, filters=[("node", ">=", lo), ("node", "<", hi)])
    _, rows = D.split_nodes(dups.column("node").to_numpy())
    docs = conform(pq.read_table(docs_path))
    kind_names = pa.array([D.KIND_NAMES[k] for k in dups.column("kind").to_pylist()], pa.string())
    atomic_write_table(
        dup_path,
        pa.table({"id": docs.column("id").take(pa.array(rows)), "cluster_id": dups.column("cluster_id"),
                  "kept_id": dups.column("kept_id"), "kind": kind_names}, schema=DUP_SCHEMA),
    )
    keep = np.ones(docs.num_rows, dtype=bool)
    keep[rows] = False
    kept = docs.filter(pa.array(keep))
    anonymize = PiiAnonymizer(recipe.pii)
    if recipe.pii.enabled:
        texts = [anonymize(t) for t in kept.column("text").to_pylist()]
        kept = kept.set_column(0, DOC_SCHEMA.field("text"), pa.array(texts, pa.large_string()))
    stats = {"documents": docs.num_rows, "kept": kept.num_rows, "dropped": len(rows),
             "pii_emails": anonymize.counts.emails, "pii_ips": anonymize.counts.ips}
    kept = kept.replace_schema_metadata({"crawlproc.dedup": json.dumps(stats)})
    atomic_write_table(final_path, kept)
    return stats


# ---------------------------------------------------------------- the driver


def _earlier_indexes(index_root: Path, snapshot: str) -> tuple[int, list[tuple[int, str]]]:
    """(this snapshot's order number, [(order, index dir)] of complete indexes deduplicated before it)."""
    done = {}
    for d in sorted(index_root.glob("*/_done.json")) if index_root.is_dir() else []:
        info = json.loads(d.read_text())
        done[info["snapshot"]] = (info["order"], str(d.parent))
    if snapshot in done:
        order = done[snapshot][0]
    else:
        order = 1 + max((o for o, _ in done.values()), default=0)
    earlier = sorted((o, p) for s, (o, p) in done.items() if o < order)
    return order, earlier


def _remote(fn, recipe: Recipe):
    return ray.remote(fn).options(num_cpus=recipe.ray.num_cpus_per_task, max_retries=recipe.ray.max_retries)


def _gather(refs: list) -> list:
    """ray.get with the first failing task's own error (a DedupError names the bad file)."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, DedupError):
            raise DedupError(str(cause)) from None
        raise


def _find_duplicates(out, snapshot, recipe, files, stems, work, index_root, earlier, step):
    """Steps 1-4: signatures, shuffle, edges, components; returns (documents per file, cluster stats)."""
    layout = Layout(str(out)).snapshot(snapshot)
    t = time.monotonic()
    task = _remote(compute_signatures, recipe)
    counts = _gather([task.remote(str(f), str(layout.path("signatures", s)), recipe) for f, s in zip(files, stems)])
    step("signatures", t)

    t = time.monotonic()
    P = recipe.dedup.num_partitions
    shuffle_dirs = [str(work / "shuffle" / s) for s in stems]
    task = _remote(shuffle_file, recipe)
    _gather([task.remote(str(layout.path("signatures", s)), i, shuffle_dirs[i], P, recipe.dedup.exact)
             for i, s in enumerate(stems)])
    step("shuffle", t)

    t = time.monotonic()
    index_out = str(index_root / snapshot) if recipe.dedup.scope == "all" else None
    task = _remote(partition_edges, recipe)
    _gather([task.remote(p, shuffle_dirs, str(work / "edges" / f"part-{p:05d}.parquet"), P, index_out, earlier)
             for p in range(P)])
    step("edges", t)

    t = time.monotonic()
    clusters_path = work / "clusters.parquet"
    task = _remote(components, recipe)
    cstats = _gather([task.remote(str(work / "edges"), str(clusters_path), str(out), snapshot, stems, earlier)])[0]
    step("components", t)

    return counts, cstats


def run_dedup(
    out: str | Path, snapshot: str, recipe: Recipe, input_dir: str | Path | None = None, force: bool = False,
    stop_after: str | None = None, log=print,
) -> dict:
    """Deduplicate `input_dir` (default <out>/<snapshot>/docs) into <out>/<snapshot>/final; returns the summary.

    Uses the running Ray (else starts a local one). `stop_after` (one of STEPS) raises StopAfter after that
    step: tests use it to crash the run in the middle."""
    if not ray.is_initialized():
        from pipelines.ray_runtime import init_ray

        init_ray(None, recipe)
    t0 = time.monotonic()
    layout = Layout(str(out)).snapshot(snapshot)
    snap_dir = Path(layout.uri)
    dedup_dir = snap_dir / "dedup"
    work = dedup_dir / "work"
    extracted = None  # {stem: extract marker fingerprint}: what this dedup is of (tokenize checks it)
    if input_dir:
        input_dir = Path(input_dir)
        files = sorted(input_dir.glob("*.parquet"))
    else:  # only files whose extract is done: a failed file's partial output is not an input
        input_dir = snap_dir / "docs"
        extracted = layout.markers.done()
        files = [input_dir / f"{stem}.parquet" for stem in sorted(extracted)]
    if not files:
        raise DedupError(f"no Parquet documents in {input_dir}")
    stems = [f.name[: -len(".parquet")] for f in files]
    scope_all = recipe.dedup.scope == "all"
    index_root = Path(out) / "_index" / "bands"
    order, earlier = _earlier_indexes(index_root, snapshot) if scope_all else (0, [])
    plan = {
        "input_dir": str(input_dir.resolve()), "stems": stems, "sizes": [f.stat().st_size for f in files],
        "minhash": asdict(recipe.minhash), "enabled": recipe.dedup.enabled,
        "exact": recipe.dedup.exact, "scope": recipe.dedup.scope, "num_partitions": recipe.dedup.num_partitions,
        "earlier": [p for _, p in earlier], "pii": asdict(recipe.pii), "inputs": extracted,
    }
    plan_path = dedup_dir / "plan.json"
    old_plan = json.loads(plan_path.read_text()) if plan_path.is_file() else None
    if force or old_plan != plan:
        # Another input or recipe: nothing downstream of the signatures may be reused.
        for d in (dedup_dir, snap_dir / "final", index_root / snapshot):
            shutil.rmtree(d, ignore_errors=True)
        atomic_write_json(plan_path, plan)
    elif (dedup_dir / "_done.json").is_file():
        log(f"dedup: {snapshot} already done (use --force to redo)")
        return json.loads((dedup_dir / "summary.json").read_text())
    for d in (dedup_dir, snap_dir / "signatures", snap_dir / "final"):
        default_storage().clean_partials(str(d))
    seconds = {}

    def step(name: str, t: float) -> None:
        seconds[name] = round(time.monotonic() - t, 3)
        log(f"dedup: {name} done in {seconds[name]:.1f}s")
        if stop_after == name:
            raise StopAfter(name)

    clusters_path = work / "clusters.parquet"
    if recipe.dedup.enabled:
        counts, cstats = _find_duplicates(out, snapshot, recipe, files, stems, work, index_root, earlier, step)
    else:  # PII only: every document survives
        for f in files:
            _check_docs_file(f)
        counts = [pq.ParquetFile(f).metadata.num_rows for f in files]
        empty = pa.table({"node": pa.array([], pa.int64()), "cluster_id": pa.array([], pa.int64()),
                          "kind": pa.array([], pa.int8()), "kept_id": pa.array([], pa.string())})
        atomic_write_table(clusters_path, empty)
        cstats = {"exact_duplicates": 0, "near_duplicates": 0, "matched_earlier": 0, "clusters": 0,
                  "cluster_sizes": {}, "edges": 0}

    t = time.monotonic()
    task = _remote(finalize_file, recipe)
    fstats = _gather([
        task.remote(str(f), i, s, str(clusters_path), str(dedup_dir / "duplicates" / f"{s}.parquet"),
                    str(layout.path("final", s)), recipe)
        for i, (f, s) in enumerate(zip(files, stems))
    ])
    step("finalize", t)

    summary = {
        "snapshot": snapshot, "input_dir": str(input_dir), "files": len(files), "scope": recipe.dedup.scope,
        "documents": int(sum(counts)), "kept": int(sum(f["kept"] for f in fstats)),
        "exact_duplicates": cstats["exact_duplicates"], "near_duplicates": cstats["near_duplicates"],
        "matched_earlier": cstats["matched_earlier"], "clusters": cstats["clusters"],
        "cluster_sizes": cstats["cluster_sizes"], "candidate_edges": cstats["edges"],
        "pii": {"emails": int(sum(f["pii_emails"] for f in fstats)), "ips": int(sum(f["pii_ips"] for f in fstats))},
        "seconds": round(time.monotonic() - t0, 3), "step_seconds": seconds,
    }
    if summary["kept"] + summary["exact_duplicates"] + summary["near_duplicates"] != summary["documents"]:
        raise DedupError(f"document count mismatch in {snapshot}: {summary}")  # never lose documents silently
    atomic_write_json(dedup_dir / "summary.json", summary)
    if scope_all and recipe.dedup.enabled:
        atomic_write_json(index_root / snapshot / "_done.json", {"snapshot": snapshot, "order": order,
                          "stems": stems, "num_partitions": recipe.dedup.num_partitions})
    shutil.rmtree(work / "shuffle", ignore_errors=True)  # the index keeps what later snapshots need
    atomic_write_json(dedup_dir / "_done.json",
                      {"snapshot": snapshot, "documents": summary["documents"], "kept": summary["kept"],
                       "inputs": extracted, "finished_at": datetime.now(UTC).isoformat()})
    return summary
