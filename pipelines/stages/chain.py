"""The stages after extraction that `crawlproc run` chains: dedup (+ PII), decontaminate, classify, tokenize,
train.

Each is stage(ctx) with ctx a pipelines.stages.run.RunContext; each skips the work it finds done, so a rerun of
`crawlproc run` after a crash (or on a grown listing) redoes only what is missing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

STAGE_NAMES = ("extract", "dedup", "decontaminate", "classify", "tokenize", "train")
DEFAULT_STAGES = ("extract", "dedup", "tokenize")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def dedup_stage(ctx) -> None:
    from pipelines.stages.dedup import run_dedup

    summary = run_dedup(ctx.layout.root, ctx.snapshot, ctx.recipe, log=_log)
    ctx.summary.stage_info["dedup"] = {
        k: summary.get(k) for k in ("documents", "kept", "exact_duplicates", "near_duplicates", "matched_earlier",
                                    "clusters")
    }


def decontaminate_stage(ctx) -> None:
    """Benchmark items out of the deduplicated documents (nothing to do with [decontaminate] off)."""
    from pipelines.stages.decontaminate import run_decontaminate

    if not ctx.recipe.decontaminate.enabled:
        return
    result = run_decontaminate(ctx.layout.root, ctx.snapshot, ctx.recipe, force=ctx.force, log=_log)
    ctx.summary.failed.update(result.failed)
    ctx.summary.stopped = ctx.summary.stopped or result.stopped
    ctx.summary.stage_info["decontaminate"] = {
        "documents": result.documents, "removed": result.removed, "cut": result.cut,
        "benchmarks": {k: v["documents"] for k, v in result.benchmarks.items() if v["documents"]}}


def classify_stage(ctx) -> None:
    """The recipe's classifiers over the deduplicated documents; nothing to do without classifiers."""
    from pipelines.stages.classify import classify_settings, run_classify

    if not classify_settings(ctx.recipe)[1]:
        return
    result = run_classify(ctx.layout.root, ctx.snapshot, ctx.recipe, force=ctx.force, log=_log)
    ctx.summary.failed.update({f"classify {k}": v for k, v in result.failed.items()})
    ctx.summary.stopped = ctx.summary.stopped or result.stopped
    ctx.summary.stage_info["classify"] = {"documents": result.documents, "kept": result.kept,
                                          "removed": result.removed, "rules": result.rules}


def tokenize_stage(ctx) -> None:
    from pipelines.stages.tokenize import run_tokenize

    result = run_tokenize(ctx.layout.root, ctx.recipe, snapshots=[ctx.snapshot], log=_log)
    if not result.ok:
        ctx.summary.failed.update({f"tokenize {k}": v for k, v in result.failed.items()})
        ctx.summary.stopped = ctx.summary.stopped or result.stopped
    manifest = result.manifest or {}
    totals = manifest.get("totals", {})
    ctx.summary.stage_info["tokenize"] = {
        "tokens_dir": ctx.layout.tokens(ctx.recipe.tokenize.name).uri,
        "documents": sum(totals.get(s, {}).get("documents", 0) for s in ("train", "val")),
        # documents of other languages (tokenize.languages) are not bad: counted apart, for their own token set
        "skipped": sum(n for k, n in (manifest.get("skipped") or {}).items() if k != "other_language"),
        "other_language": result.other_language,
        "languages": manifest.get("languages") or [],
        "train_tokens": totals.get("train", {}).get("tokens"),
        "val_tokens": totals.get("val", {}).get("tokens"),
        "vocab_size": (manifest.get("tokenizer") or {}).get("vocab_size"),
        "warnings": result.warnings,
    }


def make_train_stage(run_name: str = "run", **overrides) -> Callable:
    """The train step: the recipe's [train] settings, then `overrides` (command-line flags); it resumes a run
    whose checkpoints are already there (on a disk or in a bucket)."""

    def train_stage(ctx) -> None:
        from pipelines.recipes import train_config
        from trainer.train import run_training

        run_dir = ctx.layout.train_run(run_name)
        # resume: continue the run's checkpoints if there are any (on a disk or in a bucket), else start fresh
        cfg = train_config(ctx.recipe, tokens=ctx.layout.tokens(ctx.recipe.tokenize.name).uri, out=run_dir,
                           resume=True, **{k: v for k, v in overrides.items() if v is not None})
        try:
            result = run_training(cfg)
        except ValueError as e:  # a resume the run cannot make (another model, another schedule): say why
            ctx.summary.failed["train"] = str(e)
            return
        ctx.summary.stage_info["train"] = {"out": cfg.out, "step": result.get("step"),
                                           "val_loss": result.get("val_loss"), "eval": result.get("eval")}

    return train_stage


def build_chain(stages: list[str], train_preset: str | None = None, train_steps: int | None = None,
                **train_kwargs) -> list[tuple[str, Callable]]:
    """The chain of stages after extraction for the chosen stages, in pipeline order."""
    unknown = [s for s in stages if s not in STAGE_NAMES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {', '.join(STAGE_NAMES)}")
    chain: list[tuple[str, Callable]] = []
    if "dedup" in stages:
        chain.append(("dedup", dedup_stage))
    if any(s in stages for s in ("decontaminate", "classify", "tokenize")):  # both read decontaminated/
        chain.append(("decontaminate", decontaminate_stage))
    if "classify" in stages or "tokenize" in stages:  # tokenize reads what the recipe's classifiers kept
        chain.append(("classify", classify_stage))
    if "tokenize" in stages:
        chain.append(("tokenize", tokenize_stage))
    if "train" in stages:
        chain.append(("train", make_train_stage(preset=train_preset, max_steps=train_steps, **train_kwargs)))
    return chain
