"""The training loop, readable top to bottom; one process, torchrun DDP, or Ray Train workers alike.

    python -m trainer.train --tokens OUT/tokens/NAME --out OUT/train/RUN --preset tiny --max-steps 200
    torchrun --nproc_per_node 8 -m trainer.train --tokens ... --out ... --preset 124m --compile

The run directory gets config.json, metrics.jsonl, samples.jsonl, loss.png, ckpt/ and hf/ (see DESIGN.md).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from trainer.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_state
from trainer.config import H100_BF16_TFLOPS, TrainConfig, add_train_args, config_from_args, lr_at
from trainer.data import ShardLoader, has_split
from trainer.model import GPT
from trainer.plot import plot_loss
from trainer.presets import GPTConfig, preset_config
from trainer.sample import load_sampling_tokenizer, sample_texts
from trainer.shards import read_manifest

log = logging.getLogger("trainer")

__all__ = ["H100_BF16_TFLOPS", "TrainConfig", "add_train_args", "config_from_args", "lr_at", "main", "run_training"]


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we created the process group (torchrun), so we destroy it

    @property
    def master(self) -> bool:
        return self.rank == 0


def setup_distributed(device_pref: str) -> tuple[Dist, torch.device]:
    """Join torchrun's (or Ray Train's already created) process group if there is one; pick the device."""
    d = Dist(local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    want_cuda = device_pref.startswith("cuda") or (device_pref == "auto" and torch.cuda.is_available())
    if dist.is_available() and dist.is_initialized():  # Ray Train sets the group up before our loop
        d.rank, d.world_size = dist.get_rank(), dist.get_world_size()
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
        d.rank, d.world_size, d.owns_group = dist.get_rank(), dist.get_world_size(), True
    if want_cuda:
        device = torch.device(device_pref if ":" in device_pref else f"cuda:{d.local_rank}")
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return d, device


class RunFiles:
    """The run directory's append-only logs (written by rank 0 only)."""

    def __init__(self, out: Path, enabled: bool):
        self.out, self.enabled = out, enabled
        self.metrics, self.samples = out / "metrics.jsonl", out / "samples.jsonl"

    def append(self, path: Path, record: dict) -> None:
        if self.enabled:
            with path.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        """On resume, drop records a crash left beyond the checkpoint: they will be produced again."""
        if not self.enabled:
            return
        for path in (self.metrics, self.samples):
            if path.is_file():
                keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
                path.write_text("".join(ln + "\n" for ln in keep))


def _all_mean(values: list[float], d: Dist, device: torch.device) -> list[float]:
    if d.world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / d.world_size).tolist()


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: ShardLoader, iters: int, autocast) -> float:
    """Mean loss over the first `iters` val batches (the same batches at every evaluation)."""
    model.eval()
    loader.reset()
    total = 0.0
    for _ in range(iters):
        x, y = loader.next_batch()
        with autocast:
            _, loss = model(x, y)
        total += loss.item()
    model.train()
    return total / iters


def run_training(cfg: TrainConfig, report: Callable[[dict], None] | None = None) -> dict:
    """Train as `cfg` says; returns {"step", "train_losses" (this invocation's), "val_loss", "out"}.
    `report(metrics)` is called on every rank at each log step (Ray Train passes ray.train.report)."""
    d, device = setup_distributed(cfg.device)
    try:
        return _train(cfg, d, device, report)
    finally:
        if d.owns_group:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, d: Dist, device: torch.device, report) -> dict:
    out = Path(cfg.out)
    files = RunFiles(out, d.master)
    if d.master:
        out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(cfg.tokens)
    vocab, eot_id = manifest["tokenizer"]["vocab_size"], manifest["tokenizer"]["eot_id"]
    mcfg = preset_config(cfg.preset, vocab, cfg.block_size, cfg.dropout)
    T = mcfg.block_size

    # --- resume or start ---------------------------------------------------------------------------------
    ckpt_path = latest_checkpoint(out / "ckpt")
    if ckpt_path and not cfg.resume:
        raise FileExistsError(f"{out} already holds checkpoints: pass --resume to continue it or pick a new --out")
    ckpt = load_checkpoint(ckpt_path) if (ckpt_path and cfg.resume) else None
    if ckpt:
        saved = GPTConfig(**ckpt["config"]["model"])
        if saved != mcfg:
            raise ValueError(f"checkpoint model {saved} differs from the requested {mcfg}")

    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    use_bf16 = cfg.dtype == "bfloat16" or (cfg.dtype == "auto" and device.type == "cuda"
                                            and torch.cuda.is_bf16_supported())
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if use_bf16
                else contextlib.nullcontext())

    raw = GPT(mcfg).to(device)
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(raw.optimizer_groups(cfg.weight_decay), lr=cfg.lr,
                                  betas=(cfg.beta1, cfg.beta2), fused=fused)
    train_loader = ShardLoader(cfg.tokens, "train", cfg.batch_size, T, d.rank, d.world_size, cfg.seed,
                               shuffle=True, device=device)
    val_loader = None
    if has_split(cfg.tokens, "val"):
        val_loader = ShardLoader(cfg.tokens, "val", cfg.batch_size, T, d.rank, d.world_size, cfg.seed,
                                 shuffle=False, device=device)
    else:
        log.warning("no val shards in %s: validation loss skipped", cfg.tokens)

    step = 0
    if ckpt:
        raw.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        train_loader.load_state_dict(ckpt["loader"])
        set_rng_state(ckpt["rng"])
        step = ckpt["step"]
        files.truncate_after(step)
        log.info("resumed from %s at step %d", ckpt_path, step)
    else:
        files.truncate_after(0)  # a fresh run does not inherit an earlier, checkpoint-less run's logs
    del ckpt

    model = torch.compile(raw) if cfg.compile else raw
    if d.world_size > 1:
        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    run_config = {"train": dataclasses.asdict(cfg), "model": dataclasses.asdict(mcfg), "world_size": d.world_size,
                  "params": raw.num_params(), "device": str(device), "bf16": use_bf16}
    if d.master:
        (out / "config.json").write_text(json.dumps(run_config, indent=2))
    tok = load_sampling_tokenizer(cfg.tokens) if d.master and cfg.sample_tokens > 0 else None
    peak = cfg.peak_tflops or (H100_BF16_TFLOPS if device.type == "cuda" else None)
    tokens_per_step = cfg.batch_size * T * cfg.grad_accum * d.world_size
    flops_per_token = raw.flops_per_token(T)
    ckpt_every = cfg.ckpt_interval or cfg.eval_interval
    if d.master:
        print(f"model {raw.num_params() / 1e6:.2f}M params, {d.world_size} process(es) on {device}, "
              f"{tokens_per_step} tokens/step, bf16={use_bf16}, compile={cfg.compile}", flush=True)

    train_losses: list[float] = []
    val_loss = None
    model.train()
    # tokens/s: wall time from the first step after a log to the next log (whose .item() waits for the GPU);
    # evaluation, samples and checkpoints that follow a log are left out
    t_mark, steps_since = time.perf_counter(), 0
    while step < cfg.max_steps:
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), device=device)
        for micro in range(cfg.grad_accum):
            x, y = train_loader.next_batch()
            # DDP: all-reduce gradients only on the last micro-batch of the step
            sync = micro == cfg.grad_accum - 1 or d.world_size == 1
            with (contextlib.nullcontext() if sync else model.no_sync()), autocast:
                _, loss = model(x, y)
            (loss / cfg.grad_accum).backward()
            loss_sum += loss.detach()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(raw.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        steps_since += 1

        logged = step % cfg.log_interval == 0 or step == cfg.max_steps
        if logged:
            (train_loss,) = _all_mean([loss_sum.item() / cfg.grad_accum], d, device)
            tps = tokens_per_step * steps_since / (time.perf_counter() - t_mark)
            mfu = flops_per_token * tps / (peak * 1e12 * d.world_size) if peak else None
            rec = {"step": step, "train_loss": train_loss, "lr": lr, "tokens_per_s": tps, "mfu": mfu}
            train_losses.append(train_loss)
            files.append(files.metrics, rec)
            if d.master:
                mfu_s = f"{100 * mfu:.1f}%" if mfu is not None else "-"
                print(f"step {step}/{cfg.max_steps} loss {train_loss:.4f} lr {lr:.2e} "
                      f"{tps:,.0f} tok/s mfu {mfu_s}", flush=True)
            if report:
                report(rec)

        last = step == cfg.max_steps
        if val_loader is not None and (step % cfg.eval_interval == 0 or last):
            (val_loss,) = _all_mean([evaluate(model, val_loader, cfg.eval_iters, autocast)], d, device)
            files.append(files.metrics, {"step": step, "val_loss": val_loss})
            if d.master:
                print(f"step {step} val_loss {val_loss:.4f}", flush=True)
            if report:
                report({"step": step, "val_loss": val_loss})
        if tok is not None and (step % cfg.eval_interval == 0 or last):
            try:
                texts = sample_texts(raw, tok, cfg.prompts, eot_id, vocab, cfg.sample_tokens, cfg.seed + step,
                                     device)
            except (ValueError, KeyError, IndexError, UnicodeError, RuntimeError) as e:
                log.warning("sampling failed (%s): no more samples in this run", e)  # training goes on
                tok, texts = None, []
            for prompt, text in zip(cfg.prompts, texts):
                files.append(files.samples, {"step": step, "prompt": prompt, "text": text})
        if step % ckpt_every == 0 or last:
            if d.master:
                save_checkpoint(out / "ckpt", step, raw, optimizer, train_loader.state_dict(), run_config,
                                cfg.keep_checkpoints)
                plot_loss(files.metrics, out / "loss.png")
            if d.world_size > 1:
                dist.barrier()  # no rank runs ahead of a checkpoint that might be resumed from
        if logged:
            t_mark, steps_since = time.perf_counter(), 0

    if d.master and cfg.export:
        try:
            from trainer.export import export_hf

            export_hf(raw, out / "hf", cfg.tokens, eot_id)
        except ImportError as e:
            log.warning("hf/ export skipped: %s", e)
    return {"step": step, "train_losses": train_losses, "val_loss": val_loss, "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.train", description=__doc__.split("\n")[0])
    add_train_args(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        run_training(config_from_args(args))
    except (ValueError, FileExistsError, FileNotFoundError) as e:  # ShardError, CheckpointError: one line
        print(f"python -m trainer.train: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
