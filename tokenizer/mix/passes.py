"""The mix stage's passes as plain functions (pipelines/stages/mix.py runs each unit in a Ray task and plans on
the driver): open the sources, scan each input shard, plan the cuts and buckets, scatter each shard's selected
documents to their buckets, gather each bucket into output shards, and build the manifest. The decisions
themselves (which documents, how often, in which order) are tokenizer/mix/decide.py's.
"""

from __future__ import annotations

import math
import resource
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crawlproc.store.sizes import MAX_BUCKETS, MAX_SHARDS, MIN_SHARD_TOKENS, raised
from crawlproc.store.layout import Layout, TokenSetDir
from crawlproc.store.storage import Storage, is_remote, join, normalize
from tokenizer.mix.config import MixConfig
from tokenizer.mix.decide import (
    HIST_BITS, U64_MAX, MixError, Spec, bin_range, boundary_bin, bucket_of, copies_of, find_cut, hist_bins,
    rehydration_factors,
    order_bucket, select_keys, shuffle_keys,
)
from tokenizer.shards import SPLITS, cut_shards, doc_lengths, merge_parts, new_manifest, parquet_options, shard_name
from tokenizer.tokenset import ShardError, TokenSet, open_token_set, write_shard

MIX_FORMAT = 1


# --- the sources -----------------------------------------------------------------------------------------


@dataclass
class OpenSource:
    index: int
    spec: Spec
    tokset: TokenSet
    rehydrate: dict[int, int] | None = None

    @property
    def uri(self) -> str:
        return self.tokset.uri

    @property
    def manifest(self) -> dict:
        return self.tokset.manifest

    @property
    def digest(self) -> str:  # sha256 of its manifest.json
        return self.tokset.digest

    @property
    def shards(self) -> list[dict]:
        return self.tokset.shards()


def open_sources(layout: Layout, cfg: MixConfig, out_uri: str) -> list[OpenSource]:
    storage = layout.storage
    opened = []
    for i, s in enumerate(cfg.sources):
        plain_name = "/" not in s.path and not is_remote(s.path) and not Path(s.path).exists()
        uri = layout.tokens(s.path).uri if plain_name else normalize(s.path)
        if uri == out_uri:
            raise MixError(f"source {uri} is the mix's own output: pick another --name")
        if any(o.uri == uri for o in opened):
            raise MixError(f"source {uri} is given twice: give it once, with an upsampling factor (xK) to repeat it")
        try:
            tokset = open_token_set(TokenSetDir(uri, storage))
        except ShardError as e:
            raise MixError(f"source {s.path!r}: {e}") from None
        opened.append(OpenSource(i, s.spec, tokset, s.rehydrate))
    first = opened[0]
    for o in opened[1:]:
        a, b = first.manifest["tokenizer"], o.manifest["tokenizer"]
        same = (a.get("sha256"), a["vocab_size"], a["eot_id"]) == (b.get("sha256"), b["vocab_size"], b["eot_id"])
        if not same:
            raise MixError(f"sources have different tokenizers: {first.uri} has sha256 {a.get('sha256')} "
                           f"(vocabulary {a['vocab_size']}), {o.uri} has sha256 {b.get('sha256')} (vocabulary "
                           f"{b['vocab_size']}): a mix needs one tokenizer")
    return opened


def unit_key(src: OpenSource, shard: dict) -> str:
    """The key of one input shard's unit in every pass: <source index>~<shard name>."""
    return f"{src.index:03d}~{shard['file'][: -len('.parquet')]}"


def mix_recipe(cfg: MixConfig, sources: list[OpenSource]) -> dict:
    """What the mix is made of: its identity (digest) is the output's."""
    return {"format": MIX_FORMAT, "seed": cfg.seed, "budget_tokens": cfg.budget, "bucket_tokens": cfg.bucket_tokens,
            "shard_tokens": cfg.shard_tokens or cfg.bucket_tokens, "split": "sources",
            "sources": [{"uri": s.uri, "manifest_sha256": s.digest, "spec": s.spec.text}
                        | ({"rehydrate": {str(k): v for k, v in sorted(s.rehydrate.items())}} if s.rehydrate else {})
                        for s in sources]}


# --- the units (plain functions: the runner calls them in Ray tasks) -----------------------------------


def _max_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _read_docs(storage: Storage, uri: str) -> tuple[list[str], pa.ChunkedArray, np.ndarray]:
    table = storage.read_table(uri, columns=["id", "tokens"])
    return table.column("id").to_pylist(), table.column("tokens"), doc_lengths(table.column("tokens"))


def rehydration(ids: list[str], split: str, rehydrate: tuple[dict, str] | None, storage: Storage) -> np.ndarray:
    """Each train document's repetition from its duplicate-cluster size (1 everywhere without rehydration, and
    for validation documents: held-out text goes in once). `rehydrate`: (weights, the sizes table's URI: the ids
    of clusters of 2 or more with their size, written by the stage from dedup's records)."""
    if rehydrate is None or split != "train" or not ids:
        return np.ones(len(ids), dtype=np.int64)
    weights, sizes_uri = rehydrate
    table = storage.read_table(sizes_uri)
    size_of = dict(zip(table.column("id").to_pylist(), table.column("size").to_pylist()))
    return rehydration_factors(np.array([size_of.get(i, 1) for i in ids], dtype=np.int64), weights)


def scan_shard(uri: str, split: str, spec: Spec, seed: int, scan_uri: str, rehydrate: tuple[dict, str] | None,
               storage: Storage) -> dict:
    """Counts of one input shard; for a weighted source's train shard also the selection-key histogram and
    the (key, tokens) file the plan reads its boundary bin from (tokens counted once per rehydrated copy)."""
    ids, _, lengths = _read_docs(storage, uri)
    stats = {"split": split, "documents": len(ids), "tokens": int(lengths.sum())}
    factor = rehydration(ids, split, rehydrate, storage)
    if rehydrate is not None:
        stats["rehydrated_documents"] = int(factor.sum())
        lengths = lengths * factor
    if spec.kind == "weight" and split == "train":
        u = select_keys(ids, seed)
        order = np.argsort(u, kind="stable")
        storage.write_table(scan_uri, pa.table({"u": pa.array(u[order], pa.uint64()),
                                                "tokens": pa.array(lengths[order], pa.int64())}),
                            row_group_size=1 << 16)
        stats["hist"] = np.bincount(hist_bins(u), weights=lengths, minlength=1 << HIST_BITS).astype(np.int64).tolist()
    else:
        copies = copies_of(spec, ids, np.zeros(0, np.uint64), None, seed, split) * factor
        stats["copy_documents"] = int(copies.sum())
        stats["copy_tokens"] = int((copies * lengths).sum())
    stats["max_rss_mb"] = _max_rss_mb()
    return stats


SCATTER_SCHEMA = pa.schema([("bucket", pa.int32()), ("key", pa.uint64()), ("src", pa.uint16()),
                            ("copy", pa.uint16()), ("id", pa.string())])


def scatter_shard(uri: str, split: str, src: int, spec: Spec, cut: int | None, seed: int, n_buckets: int,
                  scatter_uri: str, rehydrate: tuple[dict, str] | None, storage: Storage) -> dict:
    """Every selected document of one input shard, once per copy (times its rehydration), with its shuffle key,
    sorted by bucket and key, one row group per bucket."""
    ids, tokens, lengths = _read_docs(storage, uri)
    u = select_keys(ids, seed) if spec.kind == "weight" else np.zeros(0, np.uint64)
    copies = copies_of(spec, ids, u, cut, seed, split) * rehydration(ids, split, rehydrate, storage)
    rows = np.repeat(np.arange(len(ids)), copies)
    copy_no = np.arange(len(rows)) - np.repeat(np.cumsum(copies) - copies, copies)
    row_ids = [ids[i] for i in rows]
    keys = shuffle_keys(row_ids, copy_no, seed)
    buckets = bucket_of(keys, n_buckets)
    order = np.lexsort((keys, buckets))
    rows, copy_no, keys, buckets = rows[order], copy_no[order], keys[order], buckets[order]
    tokens = tokens.combine_chunks() if isinstance(tokens, pa.ChunkedArray) else tokens
    table = pa.table({"bucket": pa.array(buckets, pa.int32()), "key": pa.array(keys, pa.uint64()),
                      "src": pa.array(np.full(len(rows), src), pa.uint16()),
                      "copy": pa.array(copy_no, pa.uint16()), "id": pa.array([row_ids[i] for i in order], pa.string()),
                      "tokens": tokens.take(pa.array(rows, pa.int64()))})
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, table.schema, compression="zstd", **parquet_options(table.column_names)) as writer:
        starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]]) if len(buckets) else np.zeros(0, int)
        for a, b in zip(starts, [*starts[1:], len(buckets)]):
            writer.write_table(table.slice(int(a), int(b - a)), row_group_size=int(b - a))
    storage.write_bytes(scatter_uri, sink.getvalue().to_pybytes())
    return {"rows": len(rows), "tokens": int(lengths[rows].sum()) if len(rows) else 0,
            "max_rss_mb": _max_rss_mb()}


def gather_bucket(split: str, bucket: int, pieces: list[tuple[str, list[int]]], part: str, tokset: TokenSetDir,
                  shard_tokens: int, n_sources: int) -> dict:
    """One bucket: its row groups from every scatter file, in key order, duplicates dropped, as shards named
    after `part` (the plan's version of the bucket: a new mix writes beside the shards of the one it replaces)."""
    storage = tokset.storage
    started = time.perf_counter()
    tables = []
    for uri, groups in pieces:
        with storage.open_input(uri) as f:
            tables.append(pq.ParquetFile(f).read_row_groups(groups, columns=["key", "src", "copy", "id", "tokens"]))
    table = pa.concat_tables(tables) if tables else None
    if table is None or table.num_rows == 0:
        return {"source": f"{split} bucket {bucket}", "shards": [], "documents": 0, "tokens": 0, "by_source": {},
                "duplicates": {}, "max_rss_mb": _max_rss_mb()}
    table, dropped_rows = order_bucket(table)
    lengths = doc_lengths(table.column("tokens"))
    src = table.column("src").to_numpy()
    by_source = {str(s): {"documents": int((src == s).sum()), "tokens": int(lengths[src == s].sum())}
                 for s in range(n_sources) if (src == s).any()}
    out = pa.table({"id": table.column("id"), "tokens": table.column("tokens"), "source": table.column("src"),
                    "copy": table.column("copy")})
    shards = []
    for i, (shard, n_tokens) in enumerate(cut_shards(out, shard_tokens)):
        name = shard_name(split, part, i)
        write_shard(tokset, name, shard)
        shards.append({"split": split, "file": name, "tokens": n_tokens, "documents": shard.num_rows})
    return {"source": f"{split} bucket {bucket}", "shards": shards, "documents": out.num_rows,
            "tokens": int(lengths.sum()), "by_source": by_source, "duplicates": dropped_rows,
            "seconds": round(time.perf_counter() - started, 3), "max_rss_mb": _max_rss_mb()}


def make_plan(cfg: MixConfig, sources: list[OpenSource], scans: dict[str, dict], storage: Storage,
              work: str) -> dict:
    """Targets, selection-key cuts and bucket counts from the scans (deterministic: a rerun plans the same)."""
    per = []
    for s in sources:
        mine = [scans[unit_key(s, sh)] for sh in s.shards]
        avail = {sp: {"tokens": sum(x["tokens"] for x in mine if x["split"] == sp),
                      "documents": sum(x["documents"] for x in mine if x["split"] == sp)} for sp in SPLITS}
        fixed = sum(x.get("copy_tokens", 0) for x in mine if x["split"] == "train")
        hist = np.zeros(1 << HIST_BITS, dtype=np.int64)
        for x in mine:
            if x.get("hist"):
                hist += np.asarray(x["hist"], dtype=np.int64)
        per.append({"avail": avail, "fixed": fixed, "hist": hist})
    fixed_total = sum(p["fixed"] for s, p in zip(sources, per) if s.spec.kind != "weight")
    weighted = [s for s in sources if s.spec.kind == "weight"]
    left = None
    if weighted:
        left = cfg.budget - fixed_total
        if left <= 0:
            raise MixError(f"the 'all' and 'xK' sources alone hold {fixed_total:,} train tokens, not less than the "
                           f"budget of {cfg.budget:,}: raise --tokens or drop weights")
    total_weight = sum(s.spec.value for s in weighted)
    cuts: dict[int, int | None] = {}
    plan_sources = []
    for s, p in zip(sources, per):
        entry = {"uri": s.uri, "spec": s.spec.text, "available": p["avail"]}
        if s.spec.kind == "weight":
            target = int(round(left * s.spec.value / total_weight))
            have = p["avail"]["train"]["tokens"]
            if target > have:
                raise MixError(f"source {s.uri} (weight {s.spec.text}) should give {target:,} train tokens but holds "
                               f"{have:,}: lower --tokens, or repeat it explicitly with an upsampling factor (xK)")
            if target <= 0:
                cut, taken = None, 0
            elif target == have:
                cut, taken = U64_MAX, have
            else:
                b, before = boundary_bin(target, p["hist"])
                lo, hi = bin_range(b)
                keys, toks = [], []
                for sh in s.shards:
                    if sh["split"] != "train":
                        continue
                    t = storage.read_table(join(work, "scan", f"{unit_key(s, sh)}.parquet"),
                                           filters=(pc.field("u") >= pa.scalar(lo, pa.uint64()))
                                           & (pc.field("u") <= pa.scalar(hi, pa.uint64())))
                    keys.append(t.column("u").to_numpy())
                    toks.append(t.column("tokens").to_numpy())
                cut, taken = find_cut(target, before, np.concatenate(keys), np.concatenate(toks))
            cuts[s.index] = cut
            entry.update(target_tokens=target, selected_train_tokens=taken)
        else:
            cuts[s.index] = None
            entry.update(target_tokens=p["fixed"], selected_train_tokens=p["fixed"])
        plan_sources.append(entry)
    train_total = sum(e["selected_train_tokens"] for e in plan_sources)
    val_total = sum(e["available"]["val"]["tokens"] * (e["selected_train_tokens"] / max(1, e["available"]["train"]["tokens"])
                                                        if s.spec.kind == "weight" else 1)
                    for s, e in zip(sources, plan_sources))
    # a bucket is a gather task: at most MAX_BUCKETS of them per split, whatever --bucket-tokens says
    bucket_tokens = raised(cfg.bucket_tokens, int(max(train_total, val_total)), MAX_BUCKETS)
    buckets = {"train": max(1, math.ceil(train_total / bucket_tokens)) if train_total else 0,
               "val": max(1, math.ceil(val_total / bucket_tokens)) if val_total else 0}
    return {"cuts": cuts, "buckets": buckets, "sources": plan_sources, "bucket_tokens": bucket_tokens,
            "min_shard_tokens": raised(MIN_SHARD_TOKENS, int(max(train_total, val_total)), MAX_SHARDS)}


def bucket_index(storage: Storage, scatter_uris: list[str], splits: list[str]) -> dict[tuple[str, int], list]:
    """(split, bucket) -> [(scatter file, [row groups])], from the files' footers (one read per file)."""
    def footer(uri: str) -> pq.FileMetaData:
        with storage.open_input(uri) as f:
            return pq.ParquetFile(f).metadata

    index: dict[tuple[str, int], list] = defaultdict(list)
    with ThreadPoolExecutor(max_workers=8) as pool:
        for uri, split, meta in zip(scatter_uris, splits, pool.map(footer, scatter_uris)):
            col = meta.schema.to_arrow_schema().get_field_index("bucket")
            groups: dict[int, list[int]] = defaultdict(list)
            for g in range(meta.num_row_groups):
                st = meta.row_group(g).column(col).statistics
                if st is None or not st.has_min_max or st.min != st.max:
                    raise MixError(f"{uri}: row group {g} is not one bucket (a scatter file from elsewhere?)")
                groups[int(st.min)].append(g)
            for b, gs in groups.items():
                index[(split, b)].append((uri, gs))
    return index


def build_manifest(cfg: MixConfig, sources: list[OpenSource], rec: dict, rec_fp: str, plan: dict,
                   parts: dict[str, dict]) -> dict:
    first = sources[0].manifest
    manifest = new_manifest(cfg.name, first["tokenizer"], np.dtype(first.get("dtype", "uint16")),
                            {"shard_tokens": rec["shard_tokens"]})
    timing = ("seconds", "max_rss_mb")  # not part of the output: a rerun must write the same bytes
    manifest = merge_parts(manifest, {k: {f: x for f, x in v.items() if f not in timing} for k, v in parts.items()})
    realized = {s.index: {sp: {"tokens": 0, "documents": 0} for sp in SPLITS} for s in sources}
    for key, part in parts.items():
        split = key.split("~", 1)[0]
        for src, c in (part.get("by_source") or {}).items():
            for k in ("tokens", "documents"):
                realized[int(src)][split][k] += int(c[k])
    mix_sources = []
    for s, p in zip(sources, plan["sources"]):
        mix_sources.append({"uri": s.uri, "name": s.manifest.get("name"), "manifest_sha256": s.digest,
                            "spec": s.spec.text, "kind": s.spec.kind, "value": s.spec.value,
                            "weight": (s.spec.value / sum(x.spec.value for x in sources if x.spec.kind == "weight")
                                       if s.spec.kind == "weight" else None),
                            "available": p["available"], "target_tokens": p["target_tokens"],
                            "realized": realized[s.index]}
                           | ({"rehydrate": {str(k): v for k, v in sorted(s.rehydrate.items())}} if s.rehydrate else {}))
    manifest["inputs"] = [s.uri for s in sources]
    manifest["mix"] = {**rec, "digest": rec_fp, "sources": mix_sources,
                       "duplicates_dropped": sum(int(p.get("duplicates") or 0) for p in parts.values()),
                       "buckets": plan["buckets"]}
    return manifest
