"""`crawlproc mix`'s memory stays flat as the budget grows; throughput against a naive in-memory shuffle.

    python bench/bench_mix.py                       # inputs of 1M, 4M, 16M tokens; a few minutes on 2 cores
    python bench/bench_mix.py --sizes 1M,4M,16M,64M

For each size S: two generated token sets of S/2 tokens each (documents of 100-900 tokens, shards of at
most 512K tokens, as a tokenize run with shard_tokens=512K writes them), mixed as a:0.5 + b:0.5 to a budget
of S/2 train tokens. Each side runs in a fresh process on the same input:
- ours: pipelines.stages.mix.run_mix on a private local Ray (2 CPUs; started before the clock starts, so
  Ray's ~4 s start-up is not in the time), buckets of --bucket-tokens, every unit through the stage runner
  with its markers; peak RSS = the largest of the driver's and every Ray worker's (each unit reports its
  worker's ru_maxrss);
- naive (the peer, written here: the obvious in-memory way): read every input shard whole into one table,
  take the same documents (the same seeded selection keys and cut rule), one np.random permutation of all of
  them, write the output shards; peak RSS = its process's ru_maxrss.
Both write zstd Parquet shards of the same documents. Printed: peak RSS per size (flat for ours, growing
for the naive one), and tokens/s (wall) with the ratio ours/naive (> 1 = ours faster).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tokenizer.mix.decide import parse_tokens  # noqa: E402


def make_inputs(root: Path, total: int) -> list[Path]:
    from tokenizer.tokenset import write_token_set

    out = []
    for k, name in enumerate("ab"):
        rng = np.random.default_rng(k)
        docs, n = [], 0
        while n < total // 2:
            d = rng.integers(1, 50257, int(rng.integers(100, 900)), dtype=np.uint16)
            docs.append(d)
            n += len(d)
        per_shard = max(1, int(len(docs) * 512_000 / n))  # shards of about 512K tokens
        write_token_set(root / name, {"train": docs}, 50257, 0, docs_per_shard=per_shard, docs_per_row_group=1024)
        out.append(root / name)
    return out


def run_ours(inputs: list[str], out: str, budget: int, bucket_tokens: int) -> dict:
    import ray

    from crawlproc.recipe import Recipe
    from pipelines.stages.mix import run_mix
    from tokenizer.mix.config import MixConfig, MixSource
    from tokenizer.mix.decide import parse_spec

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=256 << 20)
    cfg = MixConfig([MixSource(p, parse_spec("0.5")) for p in inputs], name="m", budget=budget, seed=0,
                    bucket_tokens=bucket_tokens)
    t0 = time.perf_counter()
    summary = run_mix(out, cfg, Recipe(), progress=False, log=lambda *_: None)
    wall = time.perf_counter() - t0
    workers = max(u["max_rss_mb"] or 0 for u in summary.units.values())
    driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ray.shutdown()
    return {"wall": wall, "tokens": summary.manifest["totals"]["train"]["tokens"], "rss_mb": max(workers, driver),
            "driver_mb": driver, "workers_mb": workers}


def run_naive(inputs: list[str], out: str, budget: int, bucket_tokens: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tokenizer.mix.decide import select_keys
    from tokenizer.shards import cut_shards, doc_lengths

    t0 = time.perf_counter()
    chosen = []
    for path in inputs:
        manifest = json.loads((Path(path) / "manifest.json").read_text())
        table = pa.concat_tables([pq.read_table(Path(path) / s["file"], columns=["id", "tokens"])
                                  for s in manifest["shards"]])
        u = select_keys(table.column("id").to_pylist(), 0)
        order = np.argsort(u, kind="stable")
        cum = np.cumsum(doc_lengths(table.column("tokens"))[order])
        take = order[: int(np.searchsorted(cum, budget // 2, side="left")) + 1]
        chosen.append(table.take(pa.array(take)))
    mixed = pa.concat_tables(chosen)
    mixed = mixed.take(pa.array(np.random.default_rng(0).permutation(mixed.num_rows)))
    Path(out).mkdir(parents=True, exist_ok=True)
    for i, (shard, _) in enumerate(cut_shards(mixed, bucket_tokens)):
        pq.write_table(shard, Path(out) / f"train-{i:05d}.parquet", compression="zstd", row_group_size=8192)
    wall = time.perf_counter() - t0
    tokens = int(doc_lengths(mixed.column("tokens")).sum())
    return {"wall": wall, "tokens": tokens, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child(argv: list[str]) -> int:
    side, out, budget, bucket, *inputs = argv
    fn = run_ours if side == "ours" else run_naive
    print(json.dumps(fn(inputs, out, int(budget), int(bucket))))
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1M,4M,16M", help="input tokens per run (half per source)")
    p.add_argument("--bucket-tokens", default="1M")
    args = p.parse_args()
    sizes = [parse_tokens(s) for s in args.sizes.split(",")]
    bucket = parse_tokens(args.bucket_tokens)
    print(f"mix a:0.5 + b:0.5 to half the input; buckets of {bucket:,} tokens; each side in a fresh process")
    print(f"  {'input':>12} {'budget':>12} | {'ours MB':>8} {'ours tok/s':>12} | {'naive MB':>8} {'naive tok/s':>12} "
          f"| ratio tok/s")
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            inputs = [str(x) for x in make_inputs(Path(tmp) / "in", size)]
            res = {}
            for side in ("ours", "naive"):
                proc = subprocess.run([sys.executable, __file__, "--child", side, str(Path(tmp) / side), str(size // 2),
                                       str(bucket), *inputs], capture_output=True, text=True, check=False,
                                      env={**os.environ, "PYTHONPATH": str(ROOT), "RAY_DEDUP_LOGS": "0"})
                if proc.returncode:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    return 1
                res[side] = json.loads(proc.stdout.strip().splitlines()[-1])
            o, n = res["ours"], res["naive"]
            tps_o, tps_n = o["tokens"] / o["wall"], n["tokens"] / n["wall"]
            print(f"  {size:>12,} {size // 2:>12,} | {o['rss_mb']:>8.0f} {tps_o:>12,.0f} | {n['rss_mb']:>8.0f} "
                  f"{tps_n:>12,.0f} | {tps_o / tps_n:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
