"""The mix stage: token sets (each with a weight, "all", or an upsampling factor) -> a new token set of a given
token budget, sampled by whole documents from a seed and globally shuffled through an external shuffle on
the output's storage (a disk or an object store), never everything in memory. The decisions (which
documents, how often, in which order) are tokenizer/mix/decide.py's pure functions of (seed, document id).

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

import time

import pyarrow as pa
from collections.abc import Callable
from dataclasses import dataclass, field

from crawlproc.store.fingerprint import digest
from crawlproc.store.layout import Layout, Markers
from crawlproc.store.lock import hold
from crawlproc.store.sizes import MAX_BUCKETS, MAX_SHARDS
from crawlproc.store.storage import basename, clean_stage_partials, join, storage_for
from pipelines.engine.runner import StageResult, StageSummary, Unit, run_stage
from tokenizer.mix.config import MixConfig
from tokenizer.mix.decide import MixError
from tokenizer.mix.passes import (
    bucket_index, build_manifest, gather_bucket, make_plan, mix_recipe, open_sources, scan_shard,
    scatter_shard, unit_key,
)
from tokenizer.shards import SPLITS
from tokenizer.tokenset import copy_tokenizer, read_manifest, remove_unlisted_shards, write_manifest

Log = Callable[[str], None]


# --- the stage -------------------------------------------------------------------------------------------


@dataclass
class MixSummary(StageSummary):
    manifest: dict | None = None
    already_done: bool = False
    units: dict[str, dict] = field(default_factory=dict)  # pass -> {done, skipped, max_rss_mb}


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
    return summary.absorb(result, basename)


def write_cluster_sizes(storage, source, uri: str) -> str:
    """The duplicate-cluster size of every document of `source` that stood for 2 or more (the survivor and the
    documents dedup dropped for it: dedup/duplicates/ of each snapshot the token set was made from), as a table
    (id, size) at `uri`; FineWeb-2 keeps the same count as `minhash_cluster_size`. A source without dedup
    records (tokenized from docs/) has no cluster: every size is 1."""
    from collections import Counter

    from crawlproc.store.layout import LayoutError
    from crawlproc.store.storage import parent

    # an input is <root>/<snapshot>/<kind>/<stem>.parquet
    snapshots = sorted({(parent(parent(parent(u))), basename(parent(parent(u))))
                        for u in source.manifest.get("inputs") or []})
    dropped: Counter = Counter()
    for root, name in snapshots:
        try:
            snap = Layout(root, storage).snapshot(name)
        except LayoutError:  # not a crawlproc snapshot folder: no dedup records
            continue
        for e in storage.list(snap.dedup.path("duplicates"), suffix=".parquet"):
            dropped.update(storage.read_table(e.uri, columns=["kept_id"]).column("kept_id").to_pylist())
    ids = sorted(dropped)
    storage.write_table(uri, pa.table({"id": pa.array(ids, pa.string()),
                                       "size": pa.array([dropped[i] + 1 for i in ids], pa.int64())}))
    return uri


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
    with hold(storage, tokset.lock_uri, f"token set {tokset.uri}"):
        clean_stage_partials(storage, tokset.uri)  # what killed runs left half-written
        found = read_manifest(tokset)
        existing = found[0] if found else None
        if existing and (existing.get("mix") or {}).get("digest") == rec_fp and not force:
            log(f"mix: {tokset.uri} is already this mix (digest {rec_fp}): nothing to do")
            summary.manifest, summary.already_done = existing, True
            return summary
        if existing and not force:
            other = (existing.get("mix") or {}).get("digest") or "(not a mix)"
            raise MixError(f"{tokset.uri} holds another token set or mix (digest {other}, this mix is {rec_fp}): "
                           "use another --name, or --force to replace it")
        # The finished version (if any) stays whole until the new manifest replaces it: new shards are named
        # after the new plan, and only work files of an unfinished other mix are dropped here.
        started_with = storage.read_json(tokset.work_recipe_uri)
        if force or (started_with or {}).get("digest") != rec_fp:
            storage.delete_tree(tokset.work())
        storage.write_json(tokset.work_recipe_uri, {**rec, "digest": rec_fp})

        # 0. rehydration: the cluster sizes the sources' documents stood for, from dedup's records
        rehydrate = {s.index: (s.rehydrate, write_cluster_sizes(storage, s, tokset.work(f"sizes-{s.index:03d}.parquet")))
                     for s in sources if s.rehydrate}

        # 1. scan
        scan = _Pass("scan", tokset.work_markers("scan"), recipe, progress)
        units = [Unit(key=unit_key(s, sh), args=(join(s.uri, sh["file"]), sh["split"], s.spec, cfg.seed,
                                                 tokset.work("scan", f"{unit_key(s, sh)}.parquet"),
                                                 rehydrate.get(s.index)),
                      source=join(s.uri, sh["file"]), fingerprint=digest({"mix": rec_fp, "shard": sh["file"]}))
                 for s in sources for sh in s.shards]
        result, scans = scan.run(units, scan_shard, (storage,))
        summary.units["scan"] = _counts(result, scans)
        if not result.ok:
            return _fail(summary, result)

        # 2. plan (a mix it cannot make is refused here, before anything of the finished version is touched)
        plan = make_plan(cfg, sources, scans, storage, tokset.work())
        plan_fp = digest({"mix": rec_fp, "cuts": plan["cuts"], "buckets": plan["buckets"]})
        if plan["bucket_tokens"] != cfg.bucket_tokens:
            log(f"mix: {cfg.bucket_tokens:,} tokens per bucket would make more than {MAX_BUCKETS:,} shuffle tasks per "
                f"split: raised to {plan['bucket_tokens']:,}")
        log(f"mix: plan {plan_fp}: " + "; ".join(
            f"{p['uri']} {p['spec']}: {p['selected_train_tokens']:,} of {p['available']['train']['tokens']:,} "
            "train tokens" for p in plan["sources"]) + f"; buckets {plan['buckets']}")

        # 3. scatter
        scatter = _Pass("scatter", tokset.work_markers("scatter"), recipe, progress)
        units = []
        for s in sources:
            for sh in s.shards:
                key = unit_key(s, sh)
                target = tokset.work("scatter", sh["split"], f"{key}.parquet")
                units.append(Unit(key=key, args=(join(s.uri, sh["file"]), sh["split"], s.index, s.spec,
                                                 plan["cuts"][s.index], cfg.seed, plan["buckets"][sh["split"]],
                                                 target, rehydrate.get(s.index)),
                                  source=join(s.uri, sh["file"]), fingerprint=digest({"plan": plan_fp, "key": key})))
        result, scattered = scatter.run(units, scatter_shard, (storage,))
        summary.units["scatter"] = _counts(result, scattered)
        if not result.ok:
            return _fail(summary, result)

        # 4. gather
        pieces = bucket_index(storage, [u.args[7] for u in units], [u.args[1] for u in units])  # scatter_uri, split
        gather = _Pass("gather", tokset.markers, recipe, progress)
        shard_tokens = max(cfg.shard_tokens or cfg.bucket_tokens, plan["min_shard_tokens"])
        if shard_tokens != (cfg.shard_tokens or cfg.bucket_tokens):
            log(f"mix: {cfg.shard_tokens or cfg.bucket_tokens:,} tokens per shard would write more than {MAX_SHARDS:,} "
                f"shards per split: raised to {shard_tokens:,}")
        # shards are named after what the mix is made of (the sources' manifests, not where they lie)
        version = digest({**{k: v for k, v in rec.items() if k != "sources"}, "cuts": plan["cuts"],
                          "sources": [[s.digest, s.spec.text] for s in sources]})[:8]
        units = [Unit(key=f"{split}~{b:05d}", args=(split, b, pieces.get((split, b), []), f"{version}-{b:05d}"),
                      source=f"{split} bucket {b}", fingerprint=digest({"plan": plan_fp, "bucket": [split, b]}))
                 for split in SPLITS for b in range(plan["buckets"][split])]
        result, parts = gather.run(units, gather_bucket, (tokset, shard_tokens, len(sources)))
        summary.units["gather"] = _counts(result, parts)
        if not result.ok:
            return _fail(summary, result)

        manifest = build_manifest(cfg, sources, rec, rec_fp, plan, parts)
        copy_tokenizer(sources[0].tokset, tokset)
        write_manifest(tokset, manifest)  # the commit point of the whole mix
        remove_unlisted_shards(tokset, manifest)
        keys = {u.key for u in units}
        for key, fp in tokset.markers.done().items():
            if key not in keys:
                tokset.markers.unmark(key, fp)
        storage.delete_tree(tokset.work())
    summary.manifest = manifest
    summary.seconds = time.perf_counter() - started
    return summary


def _counts(result: StageResult, stats: dict[str, dict]) -> dict:
    rss = [s.get("max_rss_mb", 0) for s in stats.values()]
    return {"done": result.done, "skipped": result.skipped, "failed": len(result.failed),
            "max_rss_mb": max(rss) if rss else None}
