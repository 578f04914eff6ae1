"""What a training run should say before it starts: how much data there is for the model, how many times the
run will read it, and, on --resume, whether the learning-rate schedule would change under the checkpoint.

Epochs: Muennighoff et al. 2023 ("Scaling Data-Constrained Language Models", NeurIPS) found that up to about
4 passes over the same tokens are worth nearly as much as fresh ones, and that returns fall to nothing well
past that: MANY_EPOCHS is where a run is warned. Tokens per parameter: Hoffmann et al. 2022 (Chinchilla)
put the compute-optimal budget at about 20 training tokens per parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

MANY_EPOCHS = 4.0
CHINCHILLA_TOKENS_PER_PARAM = 20


@dataclass
class DataCheck:
    train_tokens: int  # tokens in the token set's train split (end-of-text tokens not counted)
    params: int
    run_tokens: int  # tokens this run's steps read (from step 0 to max_steps)

    @property
    def epochs(self) -> float:
        return self.run_tokens / max(self.train_tokens, 1)

    @property
    def tokens_per_param(self) -> float:
        return self.train_tokens / max(self.params, 1)

    def line(self) -> str:
        return (f"data: {self.train_tokens:,} train tokens for {self.params / 1e6:.2f}M parameters "
                f"({self.tokens_per_param:.3g} tokens per parameter; ~{CHINCHILLA_TOKENS_PER_PARAM} is "
                f"compute-optimal); the run reads {self.run_tokens:,} tokens = {self.epochs:,.3g} epochs")

    def warning(self) -> str | None:
        if self.epochs <= MANY_EPOCHS:
            return None
        return (f"this run passes over its training data {self.epochs:,.0f} times (more than {MANY_EPOCHS:g} "
                "epochs): the model will learn the data by heart, and a low loss then says nothing about new "
                "text. Give it more data (a larger --limit, more snapshots) or fewer --max-steps, or use a "
                "smaller --preset")


def effective_schedule(train: dict) -> dict:
    """The learning-rate schedule and batch a TrainConfig (as a dict) implies, its defaults resolved as
    trainer.config.lr_at resolves them."""
    max_steps = int(train.get("max_steps") or 0)
    decay = int(train.get("decay_steps") or max_steps)
    warmup = train.get("warmup_steps")
    lr = float(train.get("lr") or 0.0)
    min_lr = train.get("min_lr")
    return {
        "lr": lr,
        "min_lr": float(min_lr) if min_lr is not None else lr / 10,
        "warmup_steps": int(warmup) if warmup is not None else min(1000, decay // 10),
        "decay_steps": decay,
        "batch_size": int(train.get("batch_size") or 0),
        "grad_accum": int(train.get("grad_accum") or 0),
    }


_WHY = {"decay_steps": "the cosine's length, --max-steps unless --decay-steps is given",
        "warmup_steps": "10% of the decay steps unless --warmup-steps is given"}


def schedule_changes(saved: dict, now: dict) -> list[str]:
    """One line per schedule setting that differs between a checkpoint's train config and this run's."""
    a, b = effective_schedule(saved), effective_schedule(now)
    out = []
    for key in a:
        if a[key] != b[key]:
            why = f" ({_WHY[key]})" if key in _WHY else ""
            out.append(f"{key} {a[key]:g} -> {b[key]:g}{why}")
    return out


def resume_refusal(changes: list[str], saved: dict, step: int) -> str:
    """The message that refuses a resume whose schedule would change, with both ways forward."""
    keep = effective_schedule(saved)
    return (f"--resume at step {step} would change the learning-rate schedule or batch of the checkpoint: "
            + "; ".join(changes) + ". To train longer on the old schedule, keep it: --decay-steps "
            f"{keep['decay_steps']} --warmup-steps {keep['warmup_steps']} (after the decay the rate stays at "
            f"min_lr {keep['min_lr']:g}); to take the new schedule from this step on, add --reschedule")
