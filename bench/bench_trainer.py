"""Trainer throughput against a plain PyTorch loop of the same model, in one run; MFU on a CUDA GPU.

    python bench/bench_trainer.py                 # CPU, fixed small config, a few minutes on 2 cores at most
    python bench/bench_trainer.py --steps 50 --layers 4 --dim 256
    python bench/bench_trainer.py --gpu           # also: the 124m preset, bf16 + torch.compile, MFU (CUDA)

"ours" is trainer.train.run_training reading real Parquet token shards (loader, schedule, clipping, logging,
checkpoints all on); the reference is the same GPT module trained by a bare loop on random windows of an
in-memory tensor, so the ratio is the cost (or gain) of everything the trainer adds around the model.
Token shards are made from tests/data/trainer/articles.json with a small BPE (tokenizers library).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.model import GPT  # noqa: E402
from trainer.presets import PRESETS, GPTConfig, padded_vocab  # noqa: E402
from trainer.shards import write_token_shards  # noqa: E402
from trainer.train import H100_BF16_TFLOPS, TrainConfig, run_training  # noqa: E402


def article_shards(out: Path, vocab_size: int = 1024) -> tuple[Path, np.ndarray]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    articles = json.loads((ROOT / "tests/data/trainer/articles.json").read_text())
    texts = [a["articleBody"] for a in articles.values()]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                                       show_progress=False))
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    docs = [tok.encode(t).ids for t in texts]
    eot = tok.token_to_id("<|endoftext|>")
    write_token_shards(out, {"train": docs}, tok.get_vocab_size(), eot, docs_per_row_group=8,
                       tokenizer_file=out / "tokenizer.json")
    return out, np.concatenate([np.array(d + [eot]) for d in docs])


def random_shards(out: Path, vocab_size: int, n_tokens: int) -> tuple[Path, np.ndarray]:
    """For the GPU run at GPT-2's vocabulary: token values do not change the speed of a step."""
    rng = np.random.default_rng(0)
    flat = rng.integers(1, vocab_size, n_tokens)
    docs = [flat[i : i + 2000].tolist() for i in range(0, n_tokens, 2000)]
    write_token_shards(out, {"train": docs}, vocab_size, eot_id=0, docs_per_row_group=64)
    return out, flat


def reference_loop(cfg: GPTConfig, data: np.ndarray, batch: int, steps: int, warmup: int, device: str,
                   bf16: bool, compile_: bool) -> tuple[float, float]:
    """(wall, CPU-time) tokens/s of a bare loop: random windows of an in-memory tensor, AdamW, nothing else."""
    torch.manual_seed(0)
    model = GPT(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device == "cuda")
    step_fn = torch.compile(model) if compile_ else model
    data_t = torch.from_numpy(data.astype(np.int64))
    T = cfg.block_size
    wall, cpu = [], []
    for i in range(warmup + steps):
        t0, c0 = time.perf_counter(), time.process_time()
        ix = torch.randint(len(data_t) - T - 1, (batch,))
        x = torch.stack([data_t[j : j + T] for j in ix]).to(device)
        y = torch.stack([data_t[j + 1 : j + 1 + T] for j in ix]).to(device)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            _, loss = step_fn(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()  # synchronise, as our loop does when it logs
        if i >= warmup:
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return batch * T / statistics.median(wall), batch * T / statistics.median(cpu)


def ours(tokens: Path, run: Path, preset: str, block: int | None, batch: int, steps: int, warmup: int,
         device: str, compile_: bool) -> tuple[float, float, float | None]:
    """(wall, CPU-time) tokens/s and MFU of run_training, timed between consecutive step reports."""
    cfg = TrainConfig(tokens=str(tokens), out=str(run), preset=preset, block_size=block, batch_size=batch,
                      max_steps=warmup + steps, eval_interval=10**9, eval_iters=1, sample_tokens=0,
                      export=False, device=device, compile=compile_, log_interval=1)
    marks: list[tuple[float, float]] = []
    run_training(cfg, report=lambda rec: "train_loss" in rec and marks.append((time.perf_counter(),
                                                                                 time.process_time())))
    marks = marks[warmup:]
    wall = statistics.median(b[0] - a[0] for a, b in zip(marks, marks[1:]))
    cpu = statistics.median(b[1] - a[1] for a, b in zip(marks, marks[1:]))
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    mfu = [r["mfu"] for r in recs if r.get("mfu") is not None][warmup:]
    tokens = batch * cfg_block(run)
    return tokens / wall, tokens / cpu, (statistics.median(mfu) if mfu else None)


def cfg_block(run: Path) -> int:
    return json.loads((run / "config.json").read_text())["model"]["block_size"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20, help="timed steps per run (CPU)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3, help="alternate ours/reference this many times")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is steadiest on a busy machine)")
    p.add_argument("--gpu", action="store_true", help="also run the 124m preset on CUDA (bf16, compile)")
    p.add_argument("--gpu-batch", type=int, default=16)
    p.add_argument("--gpu-steps", type=int, default=30)
    p.add_argument("--no-compile", dest="compile", action="store_false")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tokens, flat = article_shards(tmp / "tokens")
        # a custom preset for the fixed CPU config (heads of 32 dims)
        PRESETS["bench"] = (args.layers, max(1, args.dim // 32), args.dim, args.block)
        mcfg = GPTConfig(vocab_size=padded_vocab(1024), block_size=args.block, n_layer=args.layers,
                         n_head=max(1, args.dim // 32), n_embd=args.dim)
        print(f"CPU: {args.layers} layers x {args.dim} dims, block {args.block}, batch {args.batch}, "
              f"{args.threads} threads, {args.steps} timed steps, {args.rounds} rounds")
        res = {"ours": [], "reference": []}
        for r in range(args.rounds):  # alternate, so load from other processes hits both alike
            res["ours"].append(ours(tokens, tmp / f"run{r}", "bench", args.block, args.batch, args.steps,
                                    args.warmup, "cpu", False)[:2])
            res["reference"].append(reference_loop(mcfg, flat, args.batch, args.steps, args.warmup, "cpu",
                                                   False, False))
        best = {k: (max(w for w, _ in v), max(c for _, c in v)) for k, v in res.items()}
        for k, v in res.items():
            rounds = ", ".join(f"{w:,.0f}" for w, _ in v)
            print(f"  {k:9} {best[k][0]:10,.0f} tokens/s wall (rounds: {rounds}), "
                  f"{best[k][1]:10,.0f} tokens per CPU-second")
        print(f"  RATIO ours/reference tokens/s (CPU, wall):      {best['ours'][0] / best['reference'][0]:.3f}")
        print(f"  RATIO ours/reference tokens per CPU-second:     {best['ours'][1] / best['reference'][1]:.3f}")

        if not args.gpu:
            return 0
        if not torch.cuda.is_available():
            print("GPU: no CUDA device available; MFU for the 124m preset not measured")
            return 0
        vocab = 50257
        gtokens, gflat = random_shards(tmp / "gpu-tokens", vocab, 20_000_000)
        g = GPTConfig(vocab_size=padded_vocab(vocab), block_size=1024, n_layer=12, n_head=12, n_embd=768)
        tps, _, mfu = ours(gtokens, tmp / "gpu-run", "124m", None, args.gpu_batch, args.gpu_steps, 10, "cuda",
                        args.compile)
        ref, _ = reference_loop(g, gflat, args.gpu_batch, args.gpu_steps, 10, "cuda", True, args.compile)
        name = torch.cuda.get_device_name()
        print(f"GPU ({name}): 124m preset, batch {args.gpu_batch} x 1024, bf16, compile={args.compile}")
        print(f"  ours      {tps:12,.0f} tokens/s   MFU {100 * mfu:.1f}% of {H100_BF16_TFLOPS} TFLOPS")
        print(f"  reference {ref:12,.0f} tokens/s")
        print(f"  RATIO ours/reference tokens/s (GPU): {tps / ref:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
