"""What a recipe section is made of: `Section` (a dataclass that validates itself), the range checks its
`check()` uses, and `build_section`, which turns one TOML table into a section and names `section.key` in
every error.

Apart from crawlproc/recipe.py so that a filter module (crawlproc/quality/*) can own its section without
importing the recipe that lists it.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing


class RecipeError(ValueError):
    """A recipe that cannot be run: names the offending key (e.g. `gopher_quality.min_doc_words`)."""

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"recipe key {key!r}: {reason}")


def _check_finite(value, key: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise RecipeError(key, f"must be a finite number, got {value!r}")
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_finite(v, key)


class Section:
    """Base of every recipe section (each one a dataclass). Building one validates it: every number must be
    finite (NaN compares false, so it would silently switch a check off), then the section's `check()` runs."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _check_finite(getattr(self, f.name), f.name)
        self.check()

    def check(self) -> None:
        """The section's own rules; raise RecipeError(field name, reason)."""


# --- the rules sections use in check(); each names the field it rejects ----------------------------------

def require(cond: bool, key: str, reason: str) -> None:
    if not cond:
        raise RecipeError(key, reason)


def at_least(section, low: float, *names: str) -> None:
    """Each field (None allowed: "off") is >= low."""
    for n in names:
        v = getattr(section, n)
        require(v is None or v >= low, n, f"must be >= {low}, got {v!r}")


def above(section, low: float, *names: str) -> None:
    """Each field is > low."""
    for n in names:
        v = getattr(section, n)
        require(v > low, n, f"must be > {low}, got {v!r}")


def fraction(section, *names: str) -> None:
    """Each field (None allowed: "off") is a fraction in [0, 1]."""
    for n in names:
        v = getattr(section, n)
        require(v is None or 0.0 <= v <= 1.0, n, f"must be a fraction in [0, 1], got {v!r}")


def one_of(section, name: str, choices: tuple) -> None:
    v = getattr(section, name)
    require(v in choices, name, f"must be one of {', '.join(map(repr, choices))}, got {v!r}")


def not_above(section, name: str, high: float, why: str = "") -> None:
    v = getattr(section, name)
    require(v is None or v <= high, name, f"must be <= {high}{why}, got {v!r}")


# --- TOML table -> section --------------------------------------------------------------------------------

def _type_ok(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # TOML writes 1 for 1.0: accept ints where floats are expected
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    if origin is list:
        (inner,) = typing.get_args(hint) or (typing.Any,)
        return isinstance(value, list) and all(inner is typing.Any or _type_ok(v, inner) for v in value)
    return True


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


# Names that would put a credential in the recipe, which every run records in <out>/<snapshot>/recipe.json.
_SECRET = re.compile(r"secret|passw|credential|access_key|session_token|api_key|private_key|(^|_)(token|key)$",
                     re.IGNORECASE)
SECRETS_GO_ELSEWHERE = (
    "recipes never hold credentials (every run records its recipe in <out>/<snapshot>/recipe.json): "
    "set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN in the environment, or name a profile "
    "of ~/.aws/credentials in storage.profile"
)


def build_section(cls, values: dict, section: str, given: dict | None = None):
    """Build one section dataclass from a TOML table, naming `section.key` in every error.

    `given`: constructor arguments that are not recipe keys (set by the caller, e.g. the trainer's paths);
    the table may not set them. A ValueError from a dataclass that is not a Section (it names the field in
    its message) is reported under that field's key."""
    if not isinstance(values, dict):
        raise RecipeError(section, f"must be a table, got {type(values).__name__}")
    given = given or {}
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)} - set(given)
    for key, value in values.items():
        if key in given:
            raise RecipeError(f"{section}.{key}", "is set by the command that runs this section, not by the recipe")
        if key not in known:
            if _SECRET.search(key):
                raise RecipeError(f"{section}.{key}", SECRETS_GO_ELSEWHERE)
            raise RecipeError(f"{section}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
        if not _type_ok(value, hints[key]):
            raise RecipeError(
                f"{section}.{key}", f"expected {_type_name(hints[key])}, got {type(value).__name__} {value!r}"
            )
        try:
            _check_finite(value, key)
        except RecipeError as e:
            raise RecipeError(f"{section}.{key}", e.reason) from None
    try:
        return cls(**values, **given)
    except RecipeError as e:
        raise RecipeError(f"{section}.{e.key}", e.reason) from None
    except ValueError as e:  # e.g. trainer.config.TrainConfig's own checks
        named = [k for k in sorted(known, key=len, reverse=True) if re.search(rf"\b{re.escape(k)}\b", str(e))]
        raise RecipeError(f"{section}.{named[0]}" if named else section, str(e)) from None
