"""A fastText quality classifier, DCLM-style: a supervised fastText model scores each document with the
probability of one label (e.g. `hq`, as `crawlproc classifier train` names its positives).

fastText reads one line: a document's newlines become spaces (fastText splits words on spaces anyway), the
same on training and on scoring (`fasttext_line`). Scoring sends a file's documents to fastText's C++ in a
few calls (`predict` on a list), not one call per document.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crawlproc.classify.base import Classifier, has_text
from crawlproc.classify.config import ClassifierConfig
from crawlproc.config import require
from crawlproc.classify.models import model_hash, local_model

LABEL_PREFIX = "__label__"
PREDICT_BATCH = 4096  # documents per call into fastText

_lock = threading.Lock()
_loaded: dict[str, object] = {}  # content hash -> loaded model, one per process


@dataclass
class FastTextConfig(ClassifierConfig):
    kind: str = "fasttext"
    label: str = "hq"

    def check_kind(self):
        require(self.kind == "fasttext", "kind", "must be 'fasttext'")
        require(bool(self.label.strip()), "label", "is required: the label whose probability is the score")


def fasttext_line(text: str) -> str:
    return text.replace("\n", " ")


def load(path: Path, expected_hash: str | None = None):
    """The fastText model at `path`, loaded once per process; `expected_hash` guards against a model file
    replaced after the stage checked it."""
    import fasttext  # the fasttext-numpy2 binding

    found = model_hash(path)
    if expected_hash is not None and found != expected_hash:
        raise RuntimeError(f"fastText model {path} changed since the stage started (content {found}, expected "
                           f"{expected_hash}): run the stage again")
    with _lock:
        if found not in _loaded:
            _loaded[found] = fasttext.load_model(str(path))
        return _loaded[found]


def full_label(model, label: str) -> str | None:
    """The model's label string for `label` ("hq" or "__label__hq"), or None when it has no such label."""
    labels = list(model.get_labels())
    for candidate in (label, LABEL_PREFIX + label):
        if candidate in labels:
            return candidate
    return None


def predict_label(model, lines: list[str], label: str) -> np.ndarray:
    """P(label) for each line (none may contain a newline)."""
    out = np.empty(len(lines), dtype=np.float64)
    for start in range(0, len(lines), PREDICT_BATCH):
        batch = lines[start:start + PREDICT_BATCH]
        try:
            labels, probs = model.predict(batch, k=-1, on_unicode_error="replace")
        except (TypeError, UnicodeError):  # lone surrogates cannot cross into C++: replace them and retry
            batch = [s.encode("utf-8", "replace").decode("utf-8") for s in batch]
            labels, probs = model.predict(batch, k=-1, on_unicode_error="replace")
        for i, (ls, ps) in enumerate(zip(labels, probs)):
            out[start + i] = min(1.0, float(ps[ls.index(label)])) if label in ls else 0.0
    return out


class FastTextClassifier(Classifier):
    kind = "fasttext"
    Config = FastTextConfig

    def _path(self) -> Path:
        return local_model(self.cfg.model, self.storage, self.cache)

    def prepare(self) -> dict:
        try:
            path = self._path()
        except (FileNotFoundError, OSError) as e:
            raise self.error("model", f"cannot read the model: {e}") from None
        if not path.is_file():
            raise self.error("model", f"{self.cfg.model!r} is a folder, not a fastText .bin/.ftz file")
        try:
            model = load(path)
        except ValueError as e:
            raise self.error("model", f"{self.cfg.model!r} is not a fastText model ({e})") from None
        try:
            model.predict("probe")
        except ValueError:  # "Model needs to be supervised for prediction!"
            raise self.error("model", f"{self.cfg.model!r} is not a supervised fastText model (no labels)") from None
        labels = [x.removeprefix(LABEL_PREFIX) for x in model.get_labels()]
        label = full_label(model, self.cfg.label)
        if label is None:
            raise self.error("label", f"the model has no label {self.cfg.label!r} (it has: {', '.join(labels)})")
        self.identity = {"model_hash": model_hash(path), "label": label}
        return self.identity

    def model(self):
        if self.identity is None:
            self.prepare()
        return load(self._path(), self.identity["model_hash"])

    def score(self, texts: list[str]) -> np.ndarray:
        model = self.model()
        out = np.full(len(texts), np.nan)
        idx = [i for i, t in enumerate(texts) if has_text(t)]
        if idx:
            out[idx] = predict_label(model, [fasttext_line(texts[i]) for i in idx], self.identity["label"])
        return out
