"""What a classifier is: a named model that gives each document one score, and the rule that keeps it.

A kind (fastText, transformers, ...) is one module with a subclass of `Classifier` and of
crawlproc.classify.config.ClassifierConfig, and one line in crawlproc/classify/__init__.py's KINDS.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from crawlproc.classify.config import ClassifierConfig
from crawlproc.store.fingerprint import digest
from crawlproc.config import RecipeError


class Classifier:
    """A subclass sets `kind` and `Config`, and implements `prepare` and `score`.

    `remote = True` says the stage scores it on a pool of model-holding actors (its `scorer()` is what an
    actor holds) rather than in each file's task."""

    kind: ClassVar[str]
    Config: ClassVar[type[ClassifierConfig]]
    remote: ClassVar[bool] = False

    def __init__(self, name: str, cfg: ClassifierConfig, storage=None, cache: str = ""):
        self.name, self.cfg, self.storage, self.cache = name, cfg, storage, cache
        self.identity: dict | None = None  # set by prepare()

    @property
    def column(self) -> str:
        return f"{self.name}_score"

    @property
    def reason(self) -> str:
        return f"classifier:{self.name}"

    def key(self, field: str) -> str:
        return f"classifiers.{self.name}.{field}"

    def error(self, field: str, reason: str) -> RecipeError:
        return RecipeError(self.key(field), reason)

    def prepare(self) -> dict:
        """Check, before any work starts, that the model can be had and has the label; return what
        identifies the scores it gives (the model's content hash, the label, the settings that change a
        score). Raises RecipeError naming the key."""
        raise NotImplementedError

    def score(self, texts: list[str]) -> np.ndarray:
        """One float64 score per text, NaN for a text with nothing in it."""
        raise NotImplementedError

    @property
    def score_fingerprint(self) -> str:
        """What the scores are made of (the input aside): the model, the label, the scoring settings."""
        if self.identity is None:
            self.identity = self.prepare()
        return digest({"kind": self.kind, **self.identity})


def has_text(text: str | None) -> bool:
    return bool(text) and not text.isspace()
