"""The mix stage: token sets (each with a weight, "all", or an upsampling factor) -> a new token set of a given
token budget, sampled by whole documents from a seed and globally shuffled through an external shuffle on
the output's storage (a disk or an object store), never everything in memory. The decisions (which
documents, how often, in which order) are tokenizer/mixing.py's pure functions of (seed, document id).

Four passes, each unit through the stage runner (pipelines/engine/runner.py) with its `_done` marker, so a kill at
any point and the same command again give byte-identical output:

1. scan     one unit per input shard: document counts and tokens; for a weighted source's train shards a
            histogram of tokens over the selection key and a small file of (key, tokens) sorted by key;
2. plan     (driver) each weighted source's target = its share of what the budget leaves after the "all" and
            "xK" sources; the selection-key cut that reaches it exactly (to one document), found from the
            histograms and the one boundary bin read back from the scan files; the number of buckets;
3. scatter  one unit per input shard: every selected document (once per copy) gets its shuffle key and goes
            to the bucket of its key's range, written as one file per input shard with one row group per
            bucket (readers fetch just their bucket's row groups);
4. gather   one unit per (split, bucket): the bucket's row groups from every scatter file, sorted by key (the
            same document met in two sources is dropped once), cut into output shards.

The split is the sources' own: a source's val documents stay val (held-out text never becomes training
data), and the budget counts train tokens; a weighted source's val documents are sampled at the same rate
(the same key cut), once each. The manifest records the mix: sources with their manifest sha256, specs,
targets and realized tokens and documents per split, the seed and the budget. Work files live in
tokens/<name>/_work/ and are removed when the manifest is written.
"""

from __future__ import annotations

import math
import resource
import time
import tomllib
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crawlproc.store.fingerprint import digest
from crawlproc.store.layout import Layout, Markers, TokenSet
from crawlproc.store.lock import hold
from crawlproc.store.storage import Storage, basename, is_remote, join, normalize, storage_for
from pipelines.engine.runner import StageResult, Unit, run_stage
from tokenizer.formats import CONFIG_FILE, HF_FILE, TIKTOKEN_FILE
from tokenizer.mixing import (
    HIST_BITS, U64_MAX, MixError, Spec, bin_range, boundary_bin, bucket_of, copies_of, find_cut, hist_bins,
    order_bucket, parse_spec, parse_tokens, select_keys, shuffle_keys, split_source,
)
from tokenizer.shards import (
    MANIFEST, ROW_GROUP_DOCS, SPLITS, cut_shards, doc_lengths, manifest_digest, merge_parts, new_manifest,
    parse_manifest, shard_name,
)

Log = Callable[[str], None]
MIX_FORMAT = 1
DEFAULT_BUCKET_TOKENS = 25_000_000


@dataclass
class MixSource:
    path: str  # a tokens/<name> folder or URI, or a token set name under <out>/tokens/
    spec: Spec


@dataclass
class MixConfig:
    sources: list[MixSource]
    name: str = "mix"
    budget: int | None = None  # train tokens of the mix; needed when a source has a weight
    seed: int = 0
    bucket_tokens: int = DEFAULT_BUCKET_TOKENS  # tokens per bucket of the external shuffle (memory of a gather)
    shard_tokens: int | None = None  # tokens per output shard at most (default: bucket_tokens)

    def __post_init__(self):
        if not self.sources:
            raise MixError("a mix needs at least one --source")
        if self.bucket_tokens < 1:
            raise MixError(f"bucket_tokens must be >= 1, got {self.bucket_tokens}")
        weighted = [s for s in self.sources if s.spec.kind == "weight"]
        if weighted and self.budget is None:
            raise MixError("weighted sources need a token budget (--tokens 50M, or tokens = ... in [mix])")
        if self.budget is not None and not weighted:
            raise MixError("a token budget needs at least one weighted source (PATH:0.5): 'all' and 'xK' "
                           "sources have a fixed size")


def load_mix_toml(path: str, storage: Storage) -> MixConfig:
    """The [mix] table of a TOML file:

        [mix]
        name = "web-mix"
        tokens = "50M"          # train tokens (needed with weights)
        seed = 0
        [[mix.source]]
        path = "out/tokens/a"   # or a URI, or a token set name under --out
        weight = 0.7            # or: all = true, or: upsample = 2
    """
    try:
        data = tomllib.loads(storage.read_bytes(path).decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise MixError(f"{path}: not a readable TOML file ({e})") from None
    table = data.get("mix")
    if not isinstance(table, dict):
        raise MixError(f"{path}: no [mix] table")
    known = {"name", "tokens", "seed", "bucket_tokens", "shard_tokens", "source"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise MixError(f"{path}: unknown key(s) in [mix]: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    sources = []
    for i, s in enumerate(table.get("source") or []):
        where = f"{path}: mix.source[{i}]"
        if not isinstance(s, dict) or not isinstance(s.get("path"), str):
            raise MixError(f"{where}: needs path = \"...\"")
        given = [k for k in ("weight", "all", "upsample") if k in s]
        extra = sorted(set(s) - {"path", "weight", "all", "upsample"})
        if len(given) != 1 or extra:
            raise MixError(f"{where}: give exactly one of weight = W, all = true, upsample = K"
                           + (f" (unknown: {', '.join(extra)})" if extra else ""))
        key = given[0]
        if key == "all" and s["all"] is not True:
            raise MixError(f"{where}: all must be true")
        spec = parse_spec("all" if key == "all" else (f"x{s[key]}" if key == "upsample" else str(s[key])))
        sources.append(MixSource(s["path"], spec))
    try:
        return MixConfig(sources=sources, name=str(table.get("name", "mix")),
                         budget=parse_tokens(table["tokens"]) if "tokens" in table else None,
                         seed=int(table.get("seed", 0)),
                         bucket_tokens=parse_tokens(table.get("bucket_tokens", DEFAULT_BUCKET_TOKENS)),
                         shard_tokens=parse_tokens(table["shard_tokens"]) if "shard_tokens" in table else None)
    except MixError as e:
        raise MixError(f"{path}: {e}") from None


def config_from_args(sources: list[str], name: str, tokens: str | None, seed: int, bucket_tokens: str | None,
                     shard_tokens: str | None) -> MixConfig:
    parsed = [MixSource(*split_source(s)) for s in sources]
    return MixConfig(sources=parsed, name=name, budget=parse_tokens(tokens) if tokens is not None else None,
                     seed=seed, bucket_tokens=parse_tokens(bucket_tokens) if bucket_tokens else DEFAULT_BUCKET_TOKENS,
                     shard_tokens=parse_tokens(shard_tokens) if shard_tokens else None)


# --- the sources -----------------------------------------------------------------------------------------


@dataclass
class OpenSource:
    index: int
    uri: str
    spec: Spec
    manifest: dict
    digest: str  # sha256 of its manifest.json

    @property
    def shards(self) -> list[dict]:
        return self.manifest["shards"]


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
        where = join(uri, MANIFEST)
        if not storage.exists(where):
            raise MixError(f"source {s.path!r}: {where} not found (a tokens/<name> folder or URI written by "
                           "`crawlproc tokenize` or `crawlproc mix`)")
        data = storage.read_bytes(where)
        manifest = parse_manifest(data, where, local_root=storage.local_path(uri))
        opened.append(OpenSource(i, uri, s.spec, manifest, manifest_digest(data)))
    first = opened[0]
    for o in opened[1:]:
        a, b = first.manifest["tokenizer"], o.manifest["tokenizer"]
        same = (a.get("sha256"), a["vocab_size"], a["eot_id"]) == (b.get("sha256"), b["vocab_size"], b["eot_id"])
        if not same:
            raise MixError(f"sources have different tokenizers: {first.uri} has sha256 {a.get('sha256')} "
                           f"(vocabulary {a['vocab_size']}), {o.uri} has sha256 {b.get('sha256')} (vocabulary "
                           f"{b['vocab_size']}): a mix needs one tokenizer")
    return opened


def mix_recipe(cfg: MixConfig, sources: list[OpenSource]) -> dict:
    """What the mix is made of: its identity (digest) is the output's."""
    return {"format": MIX_FORMAT, "seed": cfg.seed, "budget_tokens": cfg.budget, "bucket_tokens": cfg.bucket_tokens,
            "shard_tokens": cfg.shard_tokens or cfg.bucket_tokens, "split": "sources",
            "sources": [{"uri": s.uri, "manifest_sha256": s.digest, "spec": s.spec.text} for s in sources]}


# --- the units (plain functions: the runner calls them in Ray tasks) -----------------------------------


def _max_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _read_docs(storage: Storage, uri: str) -> tuple[list[str], pa.ChunkedArray, np.ndarray]:
    table = storage.read_table(uri, columns=["id", "tokens"])
    return table.column("id").to_pylist(), table.column("tokens"), doc_lengths(table.column("tokens"))


def scan_shard(uri: str, split: str, spec: Spec, seed: int, scan_uri: str, storage: Storage) -> dict:
    """Counts of one input shard; for a weighted source's train shard also the selection-key histogram and
    the (key, tokens) file the plan reads its boundary bin from."""
    ids, _, lengths = _read_docs(storage, uri)
    stats = {"split": split, "documents": len(ids), "tokens": int(lengths.sum())}
    if spec.kind == "weight" and split == "train":
        u = select_keys(ids, seed)
        order = np.argsort(u, kind="stable")
        storage.write_table(scan_uri, pa.table({"u": pa.array(u[order], pa.uint64()),
                                                "tokens": pa.array(lengths[order], pa.int64())}),
                            row_group_size=1 << 16)
        stats["hist"] = np.bincount(hist_bins(u), weights=lengths, minlength=1 << HIST_BITS).astype(np.int64).tolist()
    else:
        copies = copies_of(spec, ids, np.zeros(0, np.uint64), None, seed, split)
        stats["copy_documents"] = int(copies.sum())
        stats["copy_tokens"] = int((copies * lengths).sum())
    stats["max_rss_mb"] = _max_rss_mb()
    return stats


SCATTER_SCHEMA = pa.schema([("bucket", pa.int32()), ("key", pa.uint64()), ("src", pa.uint16()),
                            ("copy", pa.uint16()), ("id", pa.string())])


def scatter_shard(uri: str, split: str, src: int, spec: Spec, cut: int | None, seed: int, n_buckets: int,
                  scatter_uri: str, storage: Storage) -> dict:
    """Every selected document of one input shard, once per copy, with its shuffle key, sorted by bucket and
    key, one row group per bucket."""
    ids, tokens, lengths = _read_docs(storage, uri)
    u = select_keys(ids, seed) if spec.kind == "weight" else np.zeros(0, np.uint64)
    copies = copies_of(spec, ids, u, cut, seed, split)
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
    with pq.ParquetWriter(sink, table.schema, compression="zstd") as writer:
        starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]]) if len(buckets) else np.zeros(0, int)
        for a, b in zip(starts, [*starts[1:], len(buckets)]):
            writer.write_table(table.slice(int(a), int(b - a)), row_group_size=int(b - a))
    storage.write_bytes(scatter_uri, sink.getvalue().to_pybytes())
    return {"rows": len(rows), "tokens": int(lengths[rows].sum()) if len(rows) else 0,
            "max_rss_mb": _max_rss_mb()}


def gather_bucket(split: str, bucket: int, pieces: list[tuple[str, list[int]]], tokset_uri: str,
                  shard_tokens: int, n_sources: int, storage: Storage) -> dict:
    """One bucket: its row groups from every scatter file, in key order, duplicates dropped, as shards."""
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
        name = shard_name(split, f"{bucket:05d}", i)
        storage.write_table(join(tokset_uri, name), shard, row_group_size=ROW_GROUP_DOCS)
        shards.append({"split": split, "file": name, "tokens": n_tokens, "documents": shard.num_rows})
    return {"source": f"{split} bucket {bucket}", "shards": shards, "documents": out.num_rows,
            "tokens": int(lengths.sum()), "by_source": by_source, "duplicates": dropped_rows,
            "seconds": round(time.perf_counter() - started, 3), "max_rss_mb": _max_rss_mb()}


# --- the stage -------------------------------------------------------------------------------------------


@dataclass
class MixSummary:
    manifest: dict | None = None
    already_done: bool = False
    failed: dict[str, str] = field(default_factory=dict)
    stopped: str | None = None
    units: dict[str, dict] = field(default_factory=dict)  # pass -> {done, skipped, max_rss_mb}
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and self.stopped is None


class _Pass:
    """One pass of units through the runner, with every unit's counters (fresh ones from the run, earlier
    ones from their markers)."""

    def __init__(self, name: str, markers: Markers, recipe, progress: bool):
        self.name, self.markers, self.recipe, self.progress = name, markers, recipe, progress

    def run(self, units: list[Unit], fn, shared: tuple) -> tuple[StageResult, dict[str, dict]]:
        fresh: dict[str, dict] = {}
        result = run_stage(f"mix {self.name}", units, fn, shared=shared, markers=self.markers,
                           num_cpus=self.recipe.ray.num_cpus_per_task, max_retries=self.recipe.ray.max_retries,
                           progress=f"mix {self.name}" if self.progress else False,
                           on_result=lambda u, stats: fresh.__setitem__(u.key, stats))
        stats = {}
        if result.ok:
            for u in units:
                got = fresh.get(u.key)
                if got is None:
                    got = (self.markers.read(u.key, u.fingerprint) or {}).get("stats")
                    if got is None:  # its marker vanished between the run and now: a rerun redoes it
                        raise MixError(f"mix {self.name}: the marker of {u.key} is gone; run the command again")
                stats[u.key] = got
        return result, stats


def _fail(summary: MixSummary, result: StageResult) -> MixSummary:
    summary.failed = {basename(result.sources.get(k) or k): f.line() for k, f in result.failed.items()}
    summary.stopped = result.stopped.line() if result.stopped else None
    return summary


def _unit_key(src: OpenSource, shard: dict) -> str:
    return f"{src.index:03d}~{shard['file'][: -len('.parquet')]}"


def run_mix(out: str, cfg: MixConfig, recipe, force: bool = False, progress: bool = True,
            log: Log = print) -> MixSummary:
    """Build tokens/<cfg.name>/ under `out` as the mix `cfg` describes; see the module docstring. Ray starts
    on first use (pipelines.engine.runner)."""
    started = time.perf_counter()
    layout = Layout(out, storage_for(recipe))
    storage = layout.storage
    tokset = layout.tokens(cfg.name)
    sources = open_sources(layout, cfg, tokset.uri)
    rec = mix_recipe(cfg, sources)
    rec_fp = digest(rec)
    summary = MixSummary()
    work = tokset.path("_work")
    with hold(storage, tokset.lock_uri, f"token set {tokset.uri}"):
        existing = storage.read_json(tokset.manifest_uri)
        started_with = storage.read_json(join(work, "recipe.json"))
        other = [r for r in ((existing or {}).get("mix"), started_with) if r and r.get("digest") != rec_fp]
        if existing and not (existing.get("mix") or {}).get("digest"):
            other.append({"digest": "(not a mix)"})
        if other and not force:
            raise MixError(f"{tokset.uri} holds another token set or mix (digest {other[0].get('digest')}, this "
                           f"mix is {rec_fp}): use another --name, or --force to replace it")
        if other or force:
            _clear(storage, tokset)
        elif existing:
            log(f"mix: {tokset.uri} is already this mix (digest {rec_fp}): nothing to do")
            summary.manifest, summary.already_done = existing, True
            return summary
        storage.write_json(join(work, "recipe.json"), {**rec, "digest": rec_fp})

        # 1. scan
        scan = _Pass("scan", _markers(storage, work, "scan"), recipe, progress)
        units = [Unit(key=_unit_key(s, sh), args=(join(s.uri, sh["file"]), sh["split"], s.spec, cfg.seed,
                                                 join(work, "scan", f"{_unit_key(s, sh)}.parquet")),
                      source=join(s.uri, sh["file"]), fingerprint=digest({"mix": rec_fp, "shard": sh["file"]}))
                 for s in sources for sh in s.shards]
        result, scans = scan.run(units, scan_shard, (storage,))
        summary.units["scan"] = _counts(result, scans)
        if not result.ok:
            return _fail(summary, result)

        # 2. plan
        plan = make_plan(cfg, sources, scans, storage, work)
        plan_fp = digest({"mix": rec_fp, "cuts": plan["cuts"], "buckets": plan["buckets"]})
        log(f"mix: plan {plan_fp}: " + "; ".join(
            f"{p['uri']} {p['spec']}: {p['selected_train_tokens']:,} of {p['available']['train']['tokens']:,} "
            "train tokens" for p in plan["sources"]) + f"; buckets {plan['buckets']}")

        # 3. scatter
        scatter = _Pass("scatter", _markers(storage, work, "scatter"), recipe, progress)
        units = []
        for s in sources:
            for sh in s.shards:
                key = _unit_key(s, sh)
                target = join(work, "scatter", sh["split"], f"{key}.parquet")
                units.append(Unit(key=key, args=(join(s.uri, sh["file"]), sh["split"], s.index, s.spec,
                                                 plan["cuts"][s.index], cfg.seed, plan["buckets"][sh["split"]],
                                                 target),
                                  source=join(s.uri, sh["file"]), fingerprint=digest({"plan": plan_fp, "key": key})))
        result, scattered = scatter.run(units, scatter_shard, (storage,))
        summary.units["scatter"] = _counts(result, scattered)
        if not result.ok:
            return _fail(summary, result)

        # 4. gather
        pieces = bucket_index(storage, [u.args[-1] for u in units], [u.args[1] for u in units])
        gather = _Pass("gather", tokset.markers, recipe, progress)
        shard_tokens = cfg.shard_tokens or cfg.bucket_tokens
        units = [Unit(key=f"{split}~{b:05d}", args=(split, b, pieces.get((split, b), [])),
                      source=f"{split} bucket {b}", fingerprint=digest({"plan": plan_fp, "bucket": [split, b]}))
                 for split in SPLITS for b in range(plan["buckets"][split])]
        result, parts = gather.run(units, gather_bucket, (tokset.uri, shard_tokens, len(sources), storage))
        summary.units["gather"] = _counts(result, parts)
        if not result.ok:
            return _fail(summary, result)

        manifest = build_manifest(cfg, sources, rec, rec_fp, plan, parts)
        for name in (HF_FILE, TIKTOKEN_FILE, CONFIG_FILE):
            src_file = join(sources[0].uri, name)
            if storage.exists(src_file):
                storage.write_bytes(tokset.path(name), storage.read_bytes(src_file))
        storage.write_json(tokset.manifest_uri, manifest)  # the commit point of the whole mix
        _remove_unlisted(storage, tokset, manifest, {u.key for u in units})
        storage.delete_tree(work)
    summary.manifest = manifest
    summary.seconds = time.perf_counter() - started
    return summary


def _markers(storage: Storage, work: str, name: str) -> Markers:
    return Markers(storage, join(work, name, "_done"), join(work, name, "_failed"))


def _counts(result: StageResult, stats: dict[str, dict]) -> dict:
    rss = [s.get("max_rss_mb", 0) for s in stats.values()]
    return {"done": result.done, "skipped": result.skipped, "failed": len(result.failed),
            "max_rss_mb": max(rss) if rss else None}


def make_plan(cfg: MixConfig, sources: list[OpenSource], scans: dict[str, dict], storage: Storage,
              work: str) -> dict:
    """Targets, selection-key cuts and bucket counts from the scans (deterministic: a rerun plans the same)."""
    per = []
    for s in sources:
        mine = [scans[_unit_key(s, sh)] for sh in s.shards]
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
                    t = storage.read_table(join(work, "scan", f"{_unit_key(s, sh)}.parquet"),
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
    buckets = {"train": max(1, math.ceil(train_total / cfg.bucket_tokens)) if train_total else 0,
               "val": max(1, math.ceil(val_total / cfg.bucket_tokens)) if val_total else 0}
    return {"cuts": cuts, "buckets": buckets, "sources": plan_sources}


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
                            "realized": realized[s.index]})
    manifest["inputs"] = [s.uri for s in sources]
    manifest["mix"] = {**rec, "digest": rec_fp, "sources": mix_sources,
                       "duplicates_dropped": sum(int(p.get("duplicates") or 0) for p in parts.values()),
                       "buckets": plan["buckets"]}
    return manifest


def _clear(storage: Storage, tokset: TokenSet) -> None:
    """Everything of a token set but its lock (held by this command)."""
    for e in storage.list(tokset.uri, recursive=True):
        if not e.uri.startswith(tokset.lock_uri):
            storage.delete(e.uri)


def _remove_unlisted(storage: Storage, tokset: TokenSet, manifest: dict, keys: set[str]) -> None:
    listed = {s["file"] for s in manifest["shards"]}
    for e in storage.list(tokset.uri, suffix=".parquet"):
        if e.name not in listed:
            storage.delete(e.uri)
    for key, fp in tokset.markers.done().items():
        if key not in keys:
            tokset.markers.unmark(key, fp)
