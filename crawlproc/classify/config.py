"""The classifiers' recipe sections: `[classify]` (the stage) and one `[classifiers.<name>]` table per model.

    [classify]
    source = "final"            # what the classify stage reads: "final" (after dedup, as DCLM) or "docs"
    model_cache = ""            # where remote models are copied, once per machine ("": ~/.cache/crawlproc)

    [classifiers.dclm]          # the table's name names the score column: dclm_score
    kind = "fasttext"           # a kind of crawlproc/classify/__init__.py's KINDS
    model = "s3://bucket/models/dclm.bin"
    label = "hq"
    threshold = 0.018           # keep score >= threshold; or keep_fraction = 0.1; neither: score only

Each kind's own keys are its config dataclass (a subclass of ClassifierConfig, in the kind's module). Building
a section validates it, naming `classifiers.<name>.<key>` in every error; whether the model file exists and
has the label is checked when the stage prepares its classifiers, before any work starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from crawlproc.config import Section, build_section, fraction, one_of, require

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
SOURCES = ("final", "docs")
RESERVED_COLUMNS = {"text", "id", "dump", "url", "date", "file_path", "language", "language_score",
                    "token_count", "warc_offset", "removed_by", "removed_reason"}


@dataclass
class ClassifyConfig(Section):
    source: str = "final"
    model_cache: str = ""

    def check(self):
        one_of(self, "source", SOURCES)


@dataclass
class ClassifierConfig(Section):
    """What every kind shares. A document is kept when its score >= threshold; with keep_fraction the
    threshold is the score of the document at that fraction of the snapshot, from the top. (Section checks
    that every number is finite, then calls check().)"""

    kind: str = ""
    model: str = ""  # a local path or an object-store URI
    label: str = ""  # the label whose probability is the score ("" where the kind allows it)
    threshold: float | None = None
    keep_fraction: float | None = None

    def check(self) -> None:
        require(bool(self.model.strip()), "model", "is required: a model file or folder (local path or URI)")
        require(self.threshold is None or self.keep_fraction is None, "keep_fraction",
                "give either threshold or keep_fraction, not both")
        fraction(self, "keep_fraction")
        require(self.keep_fraction != 0.0, "keep_fraction", "must be > 0 (0 would keep nothing)")
        self.check_kind()

    def check_kind(self) -> None:
        """A kind's own rules; raise RecipeError(field, reason)."""


def check_classifier_name(name: str) -> str:
    key = f"classifiers.{name}"
    require(isinstance(name, str) and NAME.fullmatch(name) is not None, key,
            "a classifier's name is lower-case letters, digits and '_' (it names the score column)")
    require(f"{name}_score" not in RESERVED_COLUMNS, key, "its score column would replace a document column")
    return name


def classify_section(values: dict) -> ClassifyConfig:
    return build_section(ClassifyConfig, values, "classify")


def classifiers_section(values: dict, kinds: dict[str, type]) -> dict[str, ClassifierConfig]:
    """{name: config} from the `[classifiers]` table, in the recipe's order (the order removals are
    attributed in). `kinds` maps each kind to its config dataclass."""
    require(isinstance(values, dict), "classifiers", "must be a table of [classifiers.<name>] tables")
    out = {}
    for name, table in values.items():
        check_classifier_name(name)
        key = f"classifiers.{name}"
        require(isinstance(table, dict), key, f"must be a table, got {type(table).__name__}")
        kind = table.get("kind")
        require(kind in kinds, f"{key}.kind", f"must be one of {', '.join(map(repr, kinds))}, got {kind!r}")
        out[name] = build_section(kinds[kind], table, key)
    return out
