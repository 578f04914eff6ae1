"""Trainer throughput against a plain PyTorch loop of the same model, in one run; MFU on a CUDA GPU.

    python bench/bench_trainer.py                 # CPU, fixed small config, a few minutes on 2 cores at most
    python bench/bench_trainer.py --steps 50 --layers 4 --dim 256
    python bench/bench_trainer.py --gpu           # GPU only: 124m preset, bf16, fused AdamW, torch.compile, MFU
    python bench/bench_trainer.py --gpu --peak-tflops 989   # a GPU whose peak is not in the table

What runs on each side, the same model (trainer.model.GPT) and optimizer settings on both:
- ours: trainer.train.run_training, everything on: Parquet token shards streamed by the loader with
  read-ahead, packing and seeded shuffle, the lr schedule, gradient clipping, a metrics record per step, and a
  checkpoint (model + optimizer saved with torch.save, latest.json, loss.png) every --ckpt-every steps INSIDE
  the timed window. Throughput is timed steps / wall time between the report of the last warm-up step and the
  report of the last step, so the checkpoints' cost is in it (a median per step would hide them). No
  evaluation and no sampling run in the window.
- reference: a bare loop: random windows of an in-memory tensor, forward, backward, AdamW step, .item();
  no clipping, no schedule, no logging, no checkpoints. Timed the same way (total over the window).
So the ratio ours/reference is the cost (or gain) of everything the trainer adds around the model.

CPU token shards come from tests/data/trainer/articles.json with a small BPE (tokenizers library); the GPU run
uses random tokens over GPT-2's vocabulary (token values do not change a step's speed). --gpu: bf16 autocast,
fused AdamW and torch.compile on both sides; MFU = FLOPs per token (6N + 12*L*d*T) * tokens/s over the
device's published dense bf16 peak, found by name (H100 SXM 989, H100 PCIe 756, H100 NVL 835, H200 989,
A100 312 TFLOPS) or given with --peak-tflops.
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

from tokenizer.tokenset import write_token_set  # noqa: E402
from trainer.config import peak_tflops_for  # noqa: E402
from trainer.model import GPT  # noqa: E402
from trainer.presets import PRESETS, GPTConfig, padded_vocab  # noqa: E402
from trainer.train import TrainConfig, run_training  # noqa: E402


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
    write_token_set(out, {"train": docs}, tok.get_vocab_size(), eot, docs_per_row_group=8,
                       tokenizer_file=out / "tokenizer.json")
    return out, np.concatenate([np.array(d + [eot]) for d in docs])


def random_shards(out: Path, vocab_size: int, n_tokens: int) -> tuple[Path, np.ndarray]:
    """For the GPU run at GPT-2's vocabulary: token values do not change the speed of a step."""
    rng = np.random.default_rng(0)
    flat = rng.integers(1, vocab_size, n_tokens)
    docs = [flat[i : i + 2000].tolist() for i in range(0, n_tokens, 2000)]
    write_token_set(out, {"train": docs}, vocab_size, eot_id=0, docs_per_row_group=64)
    return out, flat


def reference_loop(cfg: GPTConfig, data: np.ndarray, batch: int, steps: int, warmup: int, device: str,
                   bf16: bool, compile_: bool) -> tuple[float, float]:
    """(wall, CPU-time) tokens/s of a bare loop over the timed window: random windows of an in-memory tensor,
    AdamW, nothing else."""
    torch.manual_seed(0)
    model = GPT(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device == "cuda")
    step_fn = torch.compile(model) if compile_ else model
    data_t = torch.from_numpy(data.astype(np.int64))
    T = cfg.block_size
    for i in range(warmup + steps):
        if i == warmup:
            if device == "cuda":
                torch.cuda.synchronize()
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
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return batch * T * steps / wall, batch * T * steps / cpu


def ours(tokens: Path, run: Path, preset: str, block: int | None, batch: int, steps: int, warmup: int,
         device: str, compile_: bool, ckpt_every: int, peak: float | None = None) -> dict:
    """tokens/s (wall and per CPU-second) of run_training over the timed window, which holds
    steps // ckpt_every checkpoints; and the median MFU the trainer itself reports (checkpoints excluded)."""
    cfg = TrainConfig(tokens=str(tokens), out=str(run), preset=preset, block_size=block, batch_size=batch,
                      max_steps=warmup + steps, eval_interval=10**9, eval_iters=1, sample_tokens=0,
                      export=False, device=device, compile=compile_, log_interval=1, peak_tflops=peak,
                      ckpt_interval=ckpt_every, keep_checkpoints=1)
    marks: list[tuple[float, float]] = []
    run_training(cfg, report=lambda rec: "train_loss" in rec and marks.append((time.perf_counter(),
                                                                                 time.process_time())))
    (w0, c0), (w1, c1) = marks[warmup - 1], marks[-1]
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    mfu = [r["mfu"] for r in recs if r.get("mfu") is not None][warmup:]
    tokens = batch * cfg_block(run) * steps
    in_window = sum(1 for s in range(warmup + 1, warmup + steps + 1) if s % ckpt_every == 0)
    return {"wall": tokens / (w1 - w0), "cpu": tokens / (c1 - c0), "mfu": statistics.median(mfu) if mfu else None,
            "checkpoints": in_window}


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
    p.add_argument("--ckpt-every", type=int, default=10, help="ours: a checkpoint every N steps, timed")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is steadiest on a busy machine)")
    p.add_argument("--gpu", action="store_true", help="only the GPU run: 124m preset, bf16, fused AdamW, compile")
    p.add_argument("--gpu-batch", type=int, default=32, help="sequences of 1024 tokens per step")
    p.add_argument("--gpu-steps", type=int, default=50)
    p.add_argument("--gpu-warmup", type=int, default=10, help="untimed steps (torch.compile compiles here)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak (default: by name)")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.gpu:
            return gpu_bench(args, tmp)
        tokens, flat = article_shards(tmp / "tokens")
        # a custom preset for the fixed CPU config (heads of 32 dims)
        PRESETS["bench"] = (args.layers, max(1, args.dim // 32), args.dim, args.block)
        mcfg = GPTConfig(vocab_size=padded_vocab(1024), block_size=args.block, n_layer=args.layers,
                         n_head=max(1, args.dim // 32), n_embd=args.dim)
        print(f"CPU: {args.layers} layers x {args.dim} dims, block {args.block}, batch {args.batch}, "
              f"{args.threads} threads, {args.steps} timed steps ({args.steps // args.ckpt_every} checkpoints "
              f"inside for ours), {args.rounds} rounds")
        res = {"ours": [], "reference": []}
        for r in range(args.rounds):  # alternate, so load from other processes hits both alike
            o = ours(tokens, tmp / f"run{r}", "bench", args.block, args.batch, args.steps, args.warmup, "cpu", False,
                     args.ckpt_every)
            res["ours"].append((o["wall"], o["cpu"]))
            res["reference"].append(reference_loop(mcfg, flat, args.batch, args.steps, args.warmup, "cpu",
                                                   False, False))
        best = {k: (max(w for w, _ in v), max(c for _, c in v)) for k, v in res.items()}
        for k, v in res.items():
            rounds = ", ".join(f"{w:,.0f}" for w, _ in v)
            print(f"  {k:9} {best[k][0]:10,.0f} tokens/s wall (rounds: {rounds}), "
                  f"{best[k][1]:10,.0f} tokens per CPU-second")
        print(f"  RATIO ours/reference tokens/s (CPU, wall):      {best['ours'][0] / best['reference'][0]:.3f}")
        print(f"  RATIO ours/reference tokens per CPU-second:     {best['ours'][1] / best['reference'][1]:.3f}")
    return 0


def gpu_bench(args, tmp: Path) -> int:
    if not torch.cuda.is_available():
        print("GPU: no CUDA device available; the 124m bf16 run and its MFU were not measured")
        return 0
    name = torch.cuda.get_device_name()
    peak = args.peak_tflops or peak_tflops_for(name)
    vocab = 50257
    gtokens, gflat = random_shards(tmp / "gpu-tokens", vocab, 20_000_000)
    g = GPTConfig(vocab_size=padded_vocab(vocab), block_size=1024, n_layer=12, n_head=12, n_embd=768)
    steps, warmup = args.gpu_steps, args.gpu_warmup
    every = max(1, steps // 2)
    o = ours(gtokens, tmp / "gpu-run", "124m", None, args.gpu_batch, steps, warmup, "cuda", args.compile, every, peak)
    ref, _ = reference_loop(g, gflat, args.gpu_batch, steps, warmup, "cuda", True, args.compile)
    flops = GPT(g).flops_per_token(1024)
    print(f"GPU ({name}, peak {peak or '?'} TFLOPS bf16): 124m preset, batch {args.gpu_batch} x 1024, bf16 autocast, "
          f"fused AdamW, compile={args.compile}; {steps} timed steps after {warmup} warm-up steps")

    def mfu(tps: float) -> str:
        return f"{100 * flops * tps / (peak * 1e12):.1f}%" if peak else "- (pass --peak-tflops)"

    own = "-" if o["mfu"] is None else f"{100 * o['mfu']:.1f}%"
    print(f"  ours      {o['wall']:12,.0f} tokens/s  MFU {mfu(o['wall'])} (with {o['checkpoints']} checkpoint(s) in "
          f"the window; the trainer's own median per-step MFU, checkpoints excluded: {own})")
    print(f"  reference {ref:12,.0f} tokens/s  MFU {mfu(ref)}")
    print(f"  RATIO ours/reference tokens/s (GPU, wall): {o['wall'] / ref:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
