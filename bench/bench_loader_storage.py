"""The trainer's shard loader reading from the local disk vs from an S3-compatible server, in tokens/s.

    python bench/bench_loader_storage.py                  # 24M tokens, 3 rounds; about a minute on 2 cores
    python bench/bench_loader_storage.py --tokens 100M --step-ms 16

Both sides run trainer.data.ShardLoader over the same token set (random uint16 tokens, documents of 200-1800
tokens, row groups of 1024 documents, Parquet zstd), batch 16 x 1024, one epoch, with the same read-ahead
(--prefetch row groups, background threads); "local" reads the folder, "s3" reads the same files uploaded to
moto_server on 127.0.0.1 through crawlproc.store.storage (pyarrow's S3 client, its retry strategy). Two modes:
- loader only: next_batch() as fast as it goes: the loader's own throughput, I/O and decoding;
- with a model step: each batch is followed by --step-ms of sleep standing in for a GPU step (16 ms per
  16K tokens is a 124M model at ~1M tokens/s), which read-ahead should hide: the target is S3 >= 0.9x local.
The S3 server runs on the same machine (it takes CPU from the loader: on 2 cores that counts); a real bucket
adds network latency (tens of ms per request) that read-ahead overlaps the same way. Wall time, best of
--rounds, sides alternated.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from crawlproc.store.storage import Storage, join  # noqa: E402
from s3 import MotoServer, free_port, session_env  # noqa: E402
from tokenizer.mix.decide import parse_tokens  # noqa: E402
from tokenizer.tokenset import write_token_set  # noqa: E402
from trainer.data import ShardLoader  # noqa: E402


def make_tokens(out: Path, n_tokens: int) -> Path:
    rng = np.random.default_rng(0)
    docs, total = [], 0
    while total < n_tokens:
        d = rng.integers(1, 50257, int(rng.integers(200, 1800)), dtype=np.uint16)
        docs.append(d)
        total += len(d)
    write_token_set(out, {"train": docs}, vocab_size=50257, eot_id=0, docs_per_shard=8192, docs_per_row_group=1024)
    return out


def epoch(tokens: str, n_tokens: int, prefetch: int, step_s: float, storage: Storage) -> float:
    """tokens/s over about one epoch of batches."""
    B, T = 16, 1024
    loader = ShardLoader(tokens, "train", B, T, seed=1, prefetch=prefetch, storage=storage)
    n = max(1, n_tokens // (B * T))
    loader.next_batch()  # the first row groups: start-up, not throughput
    t0 = time.perf_counter()
    for _ in range(n):
        loader.next_batch()
        if step_s:
            time.sleep(step_s)
    wall = time.perf_counter() - t0
    loader.close()
    return n * B * T / wall


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens", default="24M")
    p.add_argument("--prefetch", type=int, default=4)
    p.add_argument("--step-ms", type=float, default=16.0)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    n_tokens = parse_tokens(args.tokens)
    port = free_port()
    os.environ.update(session_env(port))
    server = MotoServer(port).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = make_tokens(Path(tmp) / "tokens", n_tokens)
            storage = Storage()
            bucket = server.bucket(f"bench-{uuid.uuid4().hex[:8]}")
            remote = join(bucket, "tokens")
            for f in sorted(local.iterdir()):
                storage.upload(f, join(remote, f.name))
            size = sum(f.stat().st_size for f in local.iterdir()) / 1e6
            print(f"{n_tokens:,} tokens in {len(list(local.glob('*.parquet')))} shards ({size:.0f} MB), batch 16 x 1024, "
                  f"prefetch {args.prefetch}, best of {args.rounds}")
            for label, step_s in (("loader only", 0.0), (f"with a {args.step_ms:g} ms model step", args.step_ms / 1e3)):
                best = {"local": 0.0, "s3": 0.0}
                for _ in range(args.rounds):
                    for side, uri in (("local", str(local)), ("s3", remote)):
                        best[side] = max(best[side], epoch(uri, n_tokens, args.prefetch, step_s, storage))
                print(f"  {label:28} local {best['local']:12,.0f} tokens/s   s3 {best['s3']:12,.0f} tokens/s   "
                      f"RATIO s3/local {best['s3'] / best['local']:.3f}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
