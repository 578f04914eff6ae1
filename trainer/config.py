"""Training settings as one dataclass, its command-line flags and the learning-rate schedule (no torch here,
so `crawlproc --help` stays fast)."""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field

from trainer.presets import PRESETS

H100_BF16_TFLOPS = 989.0  # dense bf16 peak of an H100 SXM: the default MFU denominator on CUDA


@dataclass
class TrainConfig:
    tokens: str  # tokens/<name> directory (manifest.json, {train,val}-*.parquet, tokenizer.json)
    out: str  # run directory
    preset: str = "tiny"
    block_size: int | None = None  # default: the preset's
    dropout: float = 0.0
    batch_size: int = 8  # sequences per micro-batch per process
    grad_accum: int = 1  # micro-batches per optimizer step
    max_steps: int = 100
    lr: float = 1e-3
    min_lr: float | None = None  # default lr / 10
    warmup_steps: int | None = None  # default: 10% of the decay steps, at most 1000
    decay_steps: int | None = None  # cosine length; default max_steps (set it to stop early and resume)
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 disables clipping
    seed: int = 1337
    eval_interval: int = 50
    eval_iters: int = 10
    ckpt_interval: int | None = None  # default: eval_interval
    keep_checkpoints: int = 2
    log_interval: int = 1
    sample_tokens: int = 48
    prompts: list[str] = field(default_factory=lambda: ["The"])
    resume: bool = False
    compile: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (bf16 on CUDA, else float32) | float32 | bfloat16
    peak_tflops: float | None = None  # MFU denominator per device; default H100 bf16 on CUDA, none on CPU
    export: bool = True  # write hf/ at the end

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        for name in ("batch_size", "grad_accum", "max_steps", "eval_interval", "eval_iters", "log_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"dtype must be auto, float32 or bfloat16, got {self.dtype!r}")

    @property
    def total_decay_steps(self) -> int:
        return self.decay_steps or self.max_steps


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to lr, then cosine down to min_lr at decay_steps, flat after. `step` counts from 0."""
    decay = cfg.total_decay_steps
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else min(1000, decay // 10)
    min_lr = cfg.min_lr if cfg.min_lr is not None else cfg.lr / 10
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    if step >= decay:
        return min_lr
    progress = (step - warmup) / max(1, decay - warmup)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - min_lr)


# --- command line (shared by `python -m trainer.train`, torchrun and `crawlproc train`) -------------------
def add_train_args(p: argparse.ArgumentParser) -> None:
    defaults = TrainConfig(tokens="", out="")
    p.add_argument("--tokens", required=True, help="tokens/<name> directory written by `crawlproc tokenize`")
    p.add_argument("--out", required=True, help="run directory (metrics, samples, checkpoints, hf export)")
    p.add_argument("--preset", choices=list(PRESETS), default=defaults.preset)
    p.add_argument("--max-steps", type=int, default=defaults.max_steps)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="sequences per micro-batch per process")
    p.add_argument("--block-size", type=int, default=None, help="context length (default: the preset's)")
    p.add_argument("--grad-accum", type=int, default=defaults.grad_accum)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--min-lr", type=float, default=None)
    p.add_argument("--warmup-steps", type=int, default=None)
    p.add_argument("--decay-steps", type=int, default=None, help="cosine schedule length (default: max steps)")
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--grad-clip", type=float, default=defaults.grad_clip)
    p.add_argument("--dropout", type=float, default=defaults.dropout)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--eval-interval", type=int, default=defaults.eval_interval)
    p.add_argument("--eval-iters", type=int, default=defaults.eval_iters)
    p.add_argument("--ckpt-interval", type=int, default=None)
    p.add_argument("--log-interval", type=int, default=defaults.log_interval)
    p.add_argument("--sample-tokens", type=int, default=defaults.sample_tokens, help="0 disables samples")
    p.add_argument("--prompt", action="append", dest="prompts", default=None, help="sampling prompt (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/ckpt/latest.json")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--device", default=defaults.device, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--dtype", default=defaults.dtype, choices=["auto", "float32", "bfloat16"])
    p.add_argument("--peak-tflops", type=float, default=None,
                   help=f"per-device peak for MFU (default {H100_BF16_TFLOPS} on CUDA: H100 bf16)")
    p.add_argument("--no-export", dest="export", action="store_false", help="skip the hf/ export")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return TrainConfig(**values)
