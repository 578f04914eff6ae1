"""Where the bundled recipes live, and loading the one the user names (or the default, FineWeb's)."""

from __future__ import annotations

from pathlib import Path

from crawlproc.recipe import Recipe, load_recipe

RECIPES = Path(__file__).parent / "recipes"
DEFAULT_RECIPE = RECIPES / "fineweb.toml"


def resolve_recipe(path: str | None, overrides: dict | None = None) -> Recipe:
    """Load the user's recipe file or a bundled one by name (`fineweb`, `demo`); the default is FineWeb's."""
    if path is None:
        return load_recipe(DEFAULT_RECIPE, overrides)
    p = Path(path)
    if not p.exists() and (RECIPES / f"{path}.toml").exists():
        p = RECIPES / f"{path}.toml"
    return load_recipe(p, overrides)
