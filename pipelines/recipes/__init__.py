"""Where the bundled recipes live, and loading the one the user names (or the default, FineWeb's).

Every command that runs work loads its recipe here, so the `[train]` section, which crawlproc carries as a
plain table (it must not import the trainer), is validated against trainer.config.TrainConfig here too:
with the same section-building code as every other section, before any work starts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from crawlproc.config import RecipeError, build_section
from crawlproc.recipe import Recipe, load_recipe
from trainer.config import TrainConfig

RECIPES = Path(__file__).parent
DEFAULT_RECIPE = RECIPES / "fineweb.toml"

# TrainConfig's fields that the command sets (paths under --out), not the recipe.
_TRAIN_PATHS = {"tokens": "", "out": ""}
# Ranges TrainConfig does not check itself: (field, lowest allowed, whether the lowest is allowed itself).
_TRAIN_RANGES = [
    ("lr", 0, False), ("min_lr", 0, True), ("dropout", 0, True), ("weight_decay", 0, True),
    ("beta1", 0, True), ("beta2", 0, True), ("grad_clip", 0, True), ("warmup_steps", 0, True),
    ("decay_steps", 1, True), ("ckpt_interval", 1, True), ("keep_checkpoints", 1, True),
    ("sample_tokens", 0, True), ("block_size", 1, True), ("peak_tflops", 0, False),
]
_BELOW_ONE = ("dropout", "beta1", "beta2")


def train_config(recipe: Recipe, tokens: str, out: str, **overrides) -> TrainConfig:
    """The trainer's settings: the recipe's [train] table (validated), the paths, then command-line overrides."""
    cfg = build_section(TrainConfig, recipe.train, "train", given={"tokens": tokens, "out": out})
    for name, low, inclusive in _TRAIN_RANGES:
        v = getattr(cfg, name)
        if v is not None and not (v >= low if inclusive else v > low):
            raise RecipeError(f"train.{name}", f"must be {'>=' if inclusive else '>'} {low}, got {v!r}")
    for name in _BELOW_ONE:
        if not getattr(cfg, name) < 1:
            raise RecipeError(f"train.{name}", f"must be < 1, got {getattr(cfg, name)!r}")
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def resolve_recipe(path: str | None, overrides: dict | None = None) -> Recipe:
    """Load the user's recipe file or a bundled one by name (`fineweb`, `fineweb-fast`, `demo`); the default is
    FineWeb's. A recipe's `extends = "<name>"` may name a bundled recipe. Every section is validated, [train]
    included."""
    if path is None:
        recipe = load_recipe(DEFAULT_RECIPE, overrides)
    else:
        p = Path(path)
        if not p.exists() and (RECIPES / f"{path}.toml").exists():
            p = RECIPES / f"{path}.toml"
        recipe = load_recipe(p, overrides, search=[RECIPES])  # `extends = "fineweb"` finds the bundled one
    train_config(recipe, **_TRAIN_PATHS)
    return recipe
