"""Gopher's quality rules (Rae et al. 2021, table A1), with datatrove 0.10.1's GopherQualityFilter semantics:
remove documents too short or too long, of odd word lengths, symbol-heavy, list-like or without the stop
words of running English text.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from crawlproc.config import Section, at_least, fraction, not_above, require
from crawlproc.doc import Doc
from crawlproc.quality.filter import Check, Filter, Rule, check_lang_tables
from crawlproc.quality.words import has_alpha, is_symbol_word

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")  # Gopher's, English


@dataclass
class GopherQualityConfig(Section):
    enabled: bool = True
    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    max_non_alpha_words_ratio: float | None = 0.8  # i.e. >= 80% of words contain a letter
    min_stop_words: int | None = 2
    stop_words: list[str] = field(default_factory=lambda: list(STOP_WORDS))
    lang: dict = field(default_factory=dict)  # [gopher_quality.lang.<code>]: this section's values for one language

    def check(self):
        at_least(self, 0, "min_doc_words", "max_doc_words", "min_avg_word_length", "max_avg_word_length",
                 "max_symbol_word_ratio", "min_stop_words")
        fraction(self, "max_bullet_lines_ratio", "max_ellipsis_lines_ratio", "max_non_alpha_words_ratio")
        not_above(self, "min_stop_words", len(set(self.stop_words)), f" (the stop words listed: {len(set(self.stop_words))})")
        for low, high in (("min_doc_words", "max_doc_words"), ("min_avg_word_length", "max_avg_word_length")):
            a, b = getattr(self, low), getattr(self, high)
            require(a is None or b is None or a <= b, low, f"must be <= {high}")
        check_lang_tables(self)


def _word_stats(doc: Doc) -> tuple[int, int, int]:
    """(non-symbol words, their total length, words containing a letter), from the word counts: each
    distinct word is classified once."""
    def compute():
        n_real = real_chars = n_alpha = 0
        for w, c in _counts(doc).items():
            if w.isalnum() and "１" not in w:  # the common case: a plain word or number (a full-width 1 is a symbol)
                n_real += c
                real_chars += len(w) * c
                if not w.isnumeric():
                    n_alpha += c
                continue
            alpha = has_alpha(w)  # a letter is never a symbol: then the per-character symbol test is not needed
            if alpha or not is_symbol_word(w):
                n_real += c
                real_chars += len(w) * c
            if alpha:
                n_alpha += c
        return n_real, real_chars, n_alpha

    return doc.memo("gopher_quality.word_stats", compute)


def _counts(doc: Doc) -> Counter:
    return doc.memo("word_counts", lambda: Counter(doc.words))


def real_words(doc: Doc, cfg) -> int:
    return _word_stats(doc)[0]


def mean_word_length(doc: Doc, cfg) -> float:
    n_real, real_chars, _ = _word_stats(doc)
    return real_chars / n_real if n_real else float("nan")  # nan passes both bounds, as in datatrove


def hashes_per_word(doc: Doc, cfg) -> float:
    return doc.text.count("#") / len(doc.words)


def ellipses_per_word(doc: Doc, cfg) -> float:
    return (doc.text.count("...") + doc.text.count("…")) / len(doc.words)


def _lines(doc: Doc) -> list[str]:
    return doc.lines or [""]  # an empty text has no lines; datatrove would divide by zero


def bullet_lines(doc: Doc, cfg) -> float:
    lines = _lines(doc)
    return sum(1 for s in lines if s.lstrip().startswith(("•", "-"))) / len(lines)


def end_ellipsis_lines(doc: Doc, cfg) -> float:
    lines = _lines(doc)
    return sum(1 for s in lines if s.rstrip().endswith(("...", "…"))) / len(lines)


def alpha_words(doc: Doc, cfg) -> float:
    return _word_stats(doc)[2] / len(doc.words)


def stop_words(doc: Doc, cfg) -> int:
    return len(set(cfg.stop_words).intersection(_counts(doc)))


OFF = (0,)  # datatrove skips a check whose threshold is None or 0


class GopherQuality(Filter):
    name = "gopher_quality"
    Config = GopherQualityConfig
    checks = (
        Check("gopher_short_doc", "<", "min_doc_words", real_words, off=OFF),
        Check("gopher_long_doc", ">", "max_doc_words", real_words, off=OFF),
        Rule("empty", lambda doc, cfg: not doc.words),  # nothing to measure (datatrove would divide by zero)
        Check("gopher_below_avg_threshold", "<", "min_avg_word_length", mean_word_length, off=OFF),
        Check("gopher_above_avg_threshold", ">", "max_avg_word_length", mean_word_length, off=OFF),
        Check("gopher_too_many_hashes", ">", "max_symbol_word_ratio", hashes_per_word, off=OFF),
        Check("gopher_too_many_ellipsis", ">", "max_symbol_word_ratio", ellipses_per_word, off=OFF),
        Check("gopher_too_many_bullets", ">", "max_bullet_lines_ratio", bullet_lines, off=OFF),
        Check("gopher_too_many_end_ellipsis", ">", "max_ellipsis_lines_ratio", end_ellipsis_lines, off=OFF),
        Check("gopher_below_alpha_threshold", "<", "max_non_alpha_words_ratio", alpha_words, off=OFF),
        Check("gopher_enough_stop_words", "<", "min_stop_words", stop_words, off=OFF),
    )
