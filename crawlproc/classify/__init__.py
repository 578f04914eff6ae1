"""Model-based quality classifiers: fastText (DCLM-style) and transformers (FineWeb-Edu-style).

A classifier gives each document a score (a column `<name>_score`) and keeps it when the score reaches its
threshold (or when it is in the top `keep_fraction` of the snapshot). Its recipe table is
`[classifiers.<name>]` (crawlproc/classify/config.py); its kind is one entry of KINDS below. A new kind is
one module (a Classifier and its config, see crawlproc/classify/base.py) and one line here.

Ray lives in pipelines/stages/classify.py; everything here works in one process.
"""

from __future__ import annotations

from crawlproc.classify.base import Classifier
from crawlproc.classify.config import ClassifierConfig, ClassifyConfig, classifiers_section, classify_section
from crawlproc.classify.fasttext import FastTextClassifier
from crawlproc.classify.hf import TransformersClassifier

KINDS: dict[str, type[Classifier]] = {
    "fasttext": FastTextClassifier,
    "transformers": TransformersClassifier,
}

__all__ = ["KINDS", "Classifier", "ClassifierConfig", "ClassifyConfig", "build", "classifiers_section",
           "classify_section", "parse_classifiers"]


def parse_classifiers(values: dict) -> dict[str, ClassifierConfig]:
    """The `[classifiers]` table of a recipe, validated (every error names `classifiers.<name>.<key>`)."""
    return classifiers_section(values, {kind: cls.Config for kind, cls in KINDS.items()})


def build(configs: dict[str, ClassifierConfig], storage=None, cache: str = "") -> list[Classifier]:
    """One Classifier per configured model, in the recipe's order."""
    return [KINDS[cfg.kind](name, cfg, storage, cache) for name, cfg in configs.items()]
