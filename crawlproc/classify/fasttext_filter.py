"""The fastText classifier as a filter of the extract pipeline, for a recipe that wants it there (before
dedup) rather than in the classify stage (after it, the default):

    [extract]
    plugins = ["crawlproc.classify.fasttext_filter"]

    [fasttext_quality]
    model = "models/quality/model.bin"   # local path or URI (copied once per machine)
    label = "hq"
    threshold = 0.5                      # removed when P(label) < threshold

A document it removes goes to removed/ with removed_by "fasttext_quality" and reason "fasttext_score";
`crawlproc explain` recomputes the score from the stored text against the threshold. A keep fraction needs
every score of the snapshot first: that is the classify stage's job. The model is loaded and checked (file,
supervised, label) when a worker builds its pipeline; a bad one fails the files as an environment error, so
the stage stops at its first files with that one message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from crawlproc.classify.fasttext import FastTextClassifier, FastTextConfig
from crawlproc.config import RecipeError, Section, fraction, require
from crawlproc.doc import Doc
from crawlproc.store.failure import SetupError
from crawlproc.quality.filter import Check, Filter


@dataclass
class FastTextFilterConfig(Section):
    enabled: bool = True
    model: str = ""
    label: str = "hq"
    threshold: float = 0.5
    model_cache: str = ""  # "" = $CRAWLPROC_MODEL_CACHE or ~/.cache/crawlproc

    def check(self):
        require(not self.enabled or bool(self.model.strip()), "model", "is required: a fastText .bin or .ftz file")
        fraction(self, "threshold")


_classifiers: dict[tuple, FastTextClassifier] = {}


def classifier(cfg: FastTextFilterConfig) -> FastTextClassifier:
    """The model of `cfg`, loaded and checked once per process."""
    key = (cfg.model, cfg.label, cfg.model_cache)
    if key not in _classifiers:
        c = FastTextClassifier(FastTextQuality.name, FastTextConfig(model=cfg.model, label=cfg.label),
                               cache=cfg.model_cache)
        try:
            c.prepare()
        except RecipeError as e:  # the same failure on every file: stop the stage, say it once
            raise SetupError(f"[{FastTextQuality.name}] {e.reason}") from None
        _classifiers[key] = c
    return _classifiers[key]


def fasttext_score(doc: Doc, cfg: FastTextFilterConfig) -> float | None:
    score = float(classifier(cfg).score([doc.text])[0])
    return None if math.isnan(score) else score


class FastTextQuality(Filter):
    name = "fasttext_quality"
    Config = FastTextFilterConfig
    checks = (Check("fasttext_score", "<", "threshold", fasttext_score),)

    def __init__(self, cfg: FastTextFilterConfig | None = None):
        super().__init__(cfg)
        if self.cfg.enabled:
            classifier(self.cfg)  # load and check the model when the pipeline is built, not on the first page


FILTERS = [FastTextQuality]
