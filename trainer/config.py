"""Training settings as one dataclass, its command-line flags and the learning-rate schedule (no torch here,
so `crawlproc --help` stays fast)."""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field

from trainer.presets import ARCHS, PRESETS

H100_BF16_TFLOPS = 989.0  # dense bf16 peak of an H100 SXM (and of an H200: the same chip, more memory)

# Published dense bf16 peaks (TFLOPS, no sparsity) by the device name CUDA reports; the first match wins.
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", H100_BF16_TFLOPS),  # "NVIDIA H100 80GB HBM3" is the SXM part
    ("H200", 989.0),
    ("A100", 312.0),  # SXM and PCIe alike
)


def peak_tflops_for(device_name: str) -> float | None:
    """The published dense bf16 peak of a GPU by its name, None for one not in the table (pass
    --peak-tflops for it)."""
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops
    return None


@dataclass
class TrainConfig:
    tokens: str  # tokens/<name> folder or URI (manifest.json, {train,val}-*.parquet, tokenizer.json)
    out: str  # run folder or URI (s3://bucket/run: checkpoints, metrics and hf/ go there)
    preset: str = "tiny"
    arch: str = "gpt2"  # gpt2 | llama (rotary, RMSNorm, SwiGLU) | qwen3 (llama + QK-norm): trainer/presets.py
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
    # benchmarks and bits per byte at every eval_interval (trainer/evaluate.py): bundled task names, `suite`
    # (all bundled), or .jsonl paths/URIs; [] turns them off. eval_limit: the first N items of each task
    # (0: all); eval_ref_limit: the first N documents of each reference set (0: all)
    eval_tasks: list[str] = field(default_factory=lambda: ["suite"])
    eval_refs: list[str] = field(default_factory=lambda: ["suite"])
    eval_limit: int = 500
    eval_ref_limit: int = 8
    eval_fewshot: int = 0
    eval_batch_size: int = 32
    eval_bench_interval: int | None = None  # benchmarks every N steps (and at the end); default: eval_interval
    ckpt_interval: int | None = None  # default: eval_interval
    keep_checkpoints: int = 2
    log_interval: int = 10  # steps between log lines (each waits for the device: not every step)
    sample_tokens: int = 48
    prompts: list[str] = field(default_factory=lambda: ["The"])
    resume: bool = False
    reschedule: bool = False  # --resume may change the learning-rate schedule (else it is refused)
    compile: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (bf16 on CUDA, else float32) | float32 | bfloat16
    peak_tflops: float | None = None  # MFU denominator per device; default: the GPU's published bf16 peak
    export: bool = True  # write hf/ at the end

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        for name in ("batch_size", "grad_accum", "max_steps", "eval_interval", "eval_iters", "log_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        for name in ("eval_limit", "eval_ref_limit", "eval_fewshot"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.eval_bench_interval is not None and self.eval_bench_interval < 1:
            raise ValueError(f"eval_bench_interval must be >= 1, got {self.eval_bench_interval}")
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        from crawlproc.evalsuite import EvalSuiteError, resolve_paths

        for name, kind in (("eval_tasks", "task"), ("eval_refs", "reference")):
            try:
                resolve_paths(getattr(self, name), kind)  # names only: files are read when training starts
            except EvalSuiteError as e:
                raise ValueError(f"{name}: {e}") from None
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"dtype must be auto, float32 or bfloat16, got {self.dtype!r}")

    @property
    def total_decay_steps(self) -> int:
        return self.decay_steps or self.max_steps


# What the trained weights depend on (with the data): a run resumed or redone with other values of these is
# another model. The other fields change what is logged, scored, saved or how fast (eval_*, log_interval,
# sample_tokens, ckpt_interval, device, compile, ...), not the weights; `crawlproc ablate` fingerprints a
# unit by these only, so rescoring or logging differently never retrains it. tests/test_recipe.py makes every
# new field pick a side.
WEIGHT_FIELDS = ("preset", "arch", "block_size", "dropout", "batch_size", "grad_accum", "max_steps", "lr", "min_lr",
                 "warmup_steps", "decay_steps", "weight_decay", "beta1", "beta2", "grad_clip", "seed", "dtype")
OTHER_FIELDS = ("tokens", "out", "eval_interval", "eval_iters", "eval_tasks", "eval_refs", "eval_limit",
                "eval_ref_limit", "eval_fewshot", "eval_batch_size", "eval_bench_interval", "ckpt_interval",
                "keep_checkpoints", "log_interval", "sample_tokens", "prompts", "resume", "reschedule", "compile",
                "device", "peak_tflops", "export")


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
def add_train_args(p: argparse.ArgumentParser, with_defaults: bool = True) -> None:
    """The trainer's flags. with_defaults=False leaves a flag out of the parsed namespace unless it is given
    (`crawlproc train --recipe` then takes the rest from the recipe's [train] table)."""
    config = TrainConfig(tokens="", out="")

    def d(value):
        return value if with_defaults else argparse.SUPPRESS

    p.add_argument("--tokens", required=True,
                   help="tokens/<name> folder or URI written by `crawlproc tokenize` or `crawlproc mix`")
    p.add_argument("--out", required=True,
                   help="run folder or URI, e.g. s3://bucket/run (metrics, samples, checkpoints, hf export)")
    p.add_argument("--preset", choices=list(PRESETS), default=d(config.preset))
    p.add_argument("--arch", choices=list(ARCHS), default=d(config.arch),
                   help="gpt2 (default) | llama: rotary, RMSNorm, SwiGLU | qwen3: llama + QK-norm")
    p.add_argument("--max-steps", type=int, default=d(config.max_steps))
    p.add_argument("--batch-size", type=int, default=d(config.batch_size), help="sequences per micro-batch per process")
    p.add_argument("--block-size", type=int, default=d(None), help="context length (default: the preset's)")
    p.add_argument("--grad-accum", type=int, default=d(config.grad_accum))
    p.add_argument("--lr", type=float, default=d(config.lr))
    p.add_argument("--min-lr", type=float, default=d(None))
    p.add_argument("--warmup-steps", type=int, default=d(None))
    p.add_argument("--decay-steps", type=int, default=d(None), help="cosine schedule length (default: max steps)")
    p.add_argument("--weight-decay", type=float, default=d(config.weight_decay))
    p.add_argument("--grad-clip", type=float, default=d(config.grad_clip))
    p.add_argument("--dropout", type=float, default=d(config.dropout))
    p.add_argument("--seed", type=int, default=d(config.seed))
    p.add_argument("--eval-interval", type=int, default=d(config.eval_interval))
    p.add_argument("--eval-iters", type=int, default=d(config.eval_iters))
    p.add_argument("--eval-tasks", type=_names, default=d(config.eval_tasks),
                   help="benchmarks scored at every eval: comma-separated bundled names, `suite` (default), "
                   ".jsonl files, or `none`")
    p.add_argument("--eval-refs", type=_names, default=d(config.eval_refs),
                   help="reference text sets for bits per byte: bundled names, `suite` (default), files, `none`")
    p.add_argument("--eval-limit", type=int, default=d(config.eval_limit),
                   help=f"first N items of each task at each eval (default {config.eval_limit}; 0: all)")
    p.add_argument("--eval-ref-limit", type=int, default=d(config.eval_ref_limit),
                   help=f"first N documents of each reference set (default {config.eval_ref_limit}; 0: all)")
    p.add_argument("--eval-fewshot", type=int, default=d(config.eval_fewshot), help="few-shot examples")
    p.add_argument("--eval-bench-interval", type=int, default=d(None),
                   help="benchmarks every N steps and at the end (default: every --eval-interval)")
    p.add_argument("--ckpt-interval", type=int, default=d(None))
    p.add_argument("--log-interval", type=int, default=d(config.log_interval))
    p.add_argument("--sample-tokens", type=int, default=d(config.sample_tokens), help="0 disables samples")
    p.add_argument("--prompt", action="append", dest="prompts", default=d(None), help="sampling prompt (repeatable)")
    p.add_argument("--resume", action="store_true", default=d(config.resume),
                   help="continue from RUN/ckpt/latest.json (read from the bucket when --out is a URI)")
    p.add_argument("--reschedule", action="store_true", default=d(config.reschedule),
                   help="with --resume: accept a learning-rate schedule or batch other than the checkpoint's "
                   "(e.g. a larger --max-steps); without it such a resume is refused, naming what would change")
    p.add_argument("--compile", action="store_true", default=d(config.compile), help="torch.compile the model")
    p.add_argument("--device", default=d(config.device), help="auto | cpu | cuda | cuda:N")
    p.add_argument("--dtype", default=d(config.dtype), choices=["auto", "float32", "bfloat16"])
    p.add_argument("--peak-tflops", type=float, default=d(None),
                   help="per-device peak TFLOPS for MFU (default: the GPU's published dense bf16 peak, "
                   "known for H100, H200 and A100)")
    p.add_argument("--no-export", dest="export", action="store_false", default=d(config.export), help="skip the hf/ export")


def _names(value: str) -> list[str]:
    """`a,b` -> ["a", "b"]; `none` or "" -> []."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    return [] if names in ([], ["none"]) else names


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return TrainConfig(**values)
