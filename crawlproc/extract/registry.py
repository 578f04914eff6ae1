"""The extract stage's steps in the order every document takes them: the one list that the pipeline
(crawlproc/extract/steps.py), the recipe's sections (crawlproc/recipe.py), the report's stage names and
`crawlproc explain` read.

The first three steps are built by the pipeline from their own recipe sections. After them come the filters:
the ones below, then those of the plugin modules a recipe names in `extract.plugins`. A plugin is any module
importable by name (on the driver and on every worker) that lists its filters in `FILTERS`; see README,
"Adding your own filter".
"""

from __future__ import annotations

import importlib
import re

from crawlproc.config import RecipeError
from crawlproc.quality.c4 import C4Quality
from crawlproc.quality.filter import Filter
from crawlproc.quality.fineweb_quality import FineWebQuality
from crawlproc.quality.gopher_quality import GopherQuality
from crawlproc.quality.gopher_repetition import GopherRepetition

FIRST_STEPS = ("url_filter", "extract", "language")

FILTERS: list[type[Filter]] = [
    GopherRepetition,
    GopherQuality,
    C4Quality,
    FineWebQuality,
]

_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def plugin_filters(module: str) -> list[type[Filter]]:
    """The filters a plugin module lists in `FILTERS`, imported by name."""
    key = "extract.plugins"
    if not isinstance(module, str) or _MODULE_NAME.fullmatch(module) is None:
        raise RecipeError(key, f"{module!r} is not a module name")
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # noqa: BLE001  (whatever the plugin raises, the recipe names the culprit)
        raise RecipeError(key, f"cannot import plugin {module!r} ({type(e).__name__}: {e}); a plugin must be "
                          "importable on the driver and on every worker (installed, or on PYTHONPATH)") from None
    found = getattr(mod, "FILTERS", None)
    if not isinstance(found, (list, tuple)) or not found or not all(
        isinstance(f, type) and issubclass(f, Filter) for f in found
    ):
        raise RecipeError(key, f"plugin {module!r} must list its filters (Filter subclasses) in FILTERS")
    return list(found)


def filters(plugins: list[str] | tuple[str, ...] = ()) -> list[type[Filter]]:
    """The filters in pipeline order: the built-in ones, then each plugin's."""
    out = list(FILTERS)
    for module in plugins:
        out.extend(plugin_filters(module))
    names = [f.name for f in out]
    for f in out:
        if names.count(f.name) > 1 or f.name in FIRST_STEPS:
            raise RecipeError("extract.plugins", f"two steps are named {f.name!r}: a filter's name must be unique")
    return out


def step_names(plugins: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Every step's name in pipeline order (as stats/<file>.json lists them)."""
    return [*FIRST_STEPS, *(f.name for f in filters(plugins))]
