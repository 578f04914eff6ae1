"""The stages after extraction, as steps that `crawlproc run` chains: dedup (+ PII), classify, tokenize, train.

Each step is step(ctx) with ctx a run_snapshot.RunContext; each skips the work it finds done, so a rerun of
`crawlproc run` after a crash (or on a grown listing) redoes only what is missing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

STAGE_NAMES = ("extract", "dedup", "classify", "tokenize", "train")
DEFAULT_STAGES = ("extract", "dedup", "tokenize")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def dedup_step(ctx) -> None:
    from pipelines.stages.dedup import run_dedup

    summary = run_dedup(ctx.layout.root, ctx.snapshot, ctx.recipe, log=_log)
    ctx.summary.steps_info["dedup"] = {
        k: summary.get(k) for k in ("documents", "exact_duplicates", "near_duplicates", "clusters")
    }


def classify_step(ctx) -> None:
    """The recipe's classifiers over the deduplicated documents; nothing to do without classifiers."""
    from pipelines.stages.classify import classify_settings, run_classify

    if not classify_settings(ctx.recipe)[1]:
        return
    result = run_classify(ctx.layout.root, ctx.snapshot, ctx.recipe, force=ctx.force, log=_log)
    ctx.summary.failed.update({f"classify {k}": v for k, v in result.failed.items()})
    ctx.summary.stopped = ctx.summary.stopped or result.stopped
    ctx.summary.steps_info["classify"] = {"documents": result.documents, "kept": result.kept,
                                          "removed": result.removed, "rules": result.rules}


def tokenize_step(ctx) -> None:
    from pipelines.stages.tokenize import run_tokenize

    result = run_tokenize(ctx.layout.root, ctx.recipe, snapshots=[ctx.snapshot], log=_log)
    if not result.ok:
        ctx.summary.failed.update({f"tokenize {k}": v for k, v in result.failed.items()})
        ctx.summary.stopped = ctx.summary.stopped or result.stopped
    totals = result.manifest.get("totals", {})
    ctx.summary.steps_info["tokenize"] = {
        "tokens_dir": ctx.layout.tokens(ctx.recipe.tokenize.name).uri,
        "train_tokens": totals.get("train", {}).get("tokens"),
        "val_tokens": totals.get("val", {}).get("tokens"),
    }


def make_train_step(run_name: str = "run", **overrides) -> Callable:
    """The train step: the recipe's [train] settings, then `overrides` (command-line flags); it resumes a run
    whose checkpoints are already there (on a disk or in a bucket)."""

    def train_step(ctx) -> None:
        from pipelines.recipes import train_config
        from trainer.train import run_training

        run_dir = ctx.layout.train_run(run_name)
        # resume: continue the run's checkpoints if there are any (on a disk or in a bucket), else start fresh
        cfg = train_config(ctx.recipe, tokens=ctx.layout.tokens(ctx.recipe.tokenize.name).uri, out=run_dir,
                           resume=True, **{k: v for k, v in overrides.items() if v is not None})
        result = run_training(cfg)
        ctx.summary.steps_info["train"] = {"out": cfg.out, "step": result.get("step"),
                                           "val_loss": result.get("val_loss"), "eval": result.get("eval")}

    return train_step


def build_steps(stages: list[str], train_preset: str | None = None, train_steps: int | None = None,
                **train_kwargs) -> list[tuple[str, Callable]]:
    """The post-extract steps for the chosen stages, in pipeline order."""
    unknown = [s for s in stages if s not in STAGE_NAMES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {', '.join(STAGE_NAMES)}")
    steps: list[tuple[str, Callable]] = []
    if "dedup" in stages:
        steps.append(("dedup", dedup_step))
    if "classify" in stages or "tokenize" in stages:  # tokenize reads what the recipe's classifiers kept
        steps.append(("classify", classify_step))
    if "tokenize" in stages:
        steps.append(("tokenize", tokenize_step))
    if "train" in stages:
        steps.append(("train", make_train_step(preset=train_preset, max_steps=train_steps, **train_kwargs)))
    return steps
