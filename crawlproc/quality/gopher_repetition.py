"""Gopher's repetition rules (Rae et al. 2021, table A1), with datatrove 0.10.1's GopherRepetitionFilter
semantics: remove documents made of repeated paragraphs, lines or word n-grams.

Checks run in datatrove's order, so the first failing check gives the same reason; the word n-gram
statistics are computed only once the cheap paragraph and line checks have passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crawlproc.config import Section, fraction, require
from crawlproc.doc import Doc
from crawlproc.quality.filter import Check, Filter, Rule, check_lang_tables
from crawlproc.quality.textstats import LINE_SPLIT, NgramCounts, duplicates

MAX_NGRAM = 100  # n-gram sizes are a repetition measure up to a phrase, not a document


@dataclass
class GopherRepetitionConfig(Section):
    enabled: bool = True
    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: list[list[float]] = field(default_factory=lambda: [[2, 0.20], [3, 0.18], [4, 0.16]])
    dup_n_grams: list[list[float]] = field(
        default_factory=lambda: [[5, 0.15], [6, 0.14], [7, 0.13], [8, 0.12], [9, 0.11], [10, 0.10]]
    )
    lang: dict = field(default_factory=dict)  # [gopher_repetition.lang.<code>]: values for one language

    def check(self):
        fraction(self, "dup_line_frac", "dup_para_frac", "dup_line_char_frac", "dup_para_char_frac")
        for name in ("top_n_grams", "dup_n_grams"):
            for pair in getattr(self, name):
                require(
                    isinstance(pair, (list, tuple)) and len(pair) == 2 and int(pair[0]) == pair[0]
                    and 1 <= pair[0] <= MAX_NGRAM and 0 <= pair[1] <= 1,
                    name, f"each entry must be [n in 1..{MAX_NGRAM}, fraction in [0, 1]], got {pair!r}",
                )
        check_lang_tables(self)


def _paragraph_dups(doc: Doc) -> tuple[int, int]:
    return doc.memo("gopher_repetition.paragraph_dups", lambda: duplicates(doc.paragraphs))


def _line_parts(doc: Doc) -> list[str]:  # Gopher's lines: the text split at runs of newlines
    return doc.memo("gopher_repetition.lines", lambda: LINE_SPLIT.split(doc.text))


def _line_dups(doc: Doc) -> tuple[int, int]:
    return doc.memo("gopher_repetition.line_dups", lambda: duplicates(_line_parts(doc)))


def _ngrams(doc: Doc) -> NgramCounts:
    return doc.memo("ngrams", lambda: NgramCounts(doc.words))


def dup_para_frac(doc: Doc, cfg) -> float:
    return _paragraph_dups(doc)[0] / len(doc.paragraphs)


def dup_para_char_frac(doc: Doc, cfg) -> float:
    return _paragraph_dups(doc)[1] / len(doc.text)


def dup_line_frac(doc: Doc, cfg) -> float:
    return _line_dups(doc)[0] / len(_line_parts(doc))


def dup_line_char_frac(doc: Doc, cfg) -> float:
    return _line_dups(doc)[1] / len(doc.text)


def top_ngram_frac(doc: Doc, cfg, n: int) -> float | None:
    """Characters covered by the most frequent n-gram, per character; None with fewer than n words."""
    top = _ngrams(doc).top_chars(n)
    return None if top is None else top / len(doc.text)


def duplicated_ngram_frac(doc: Doc, cfg, n: int) -> float:
    return _ngrams(doc).repeated_chars(n) / len(doc.text)


OFF = (0,)  # datatrove skips a check whose threshold is None or 0


class GopherRepetition(Filter):
    name = "gopher_repetition"
    Config = GopherRepetitionConfig
    checks = (
        Rule("empty", lambda doc, cfg: not doc.text),
        Check("dup_para_frac", ">", "dup_para_frac", dup_para_frac, off=OFF),
        Check("dup_para_char_frac", ">", "dup_para_char_frac", dup_para_char_frac, off=OFF),
        Check("dup_line_frac", ">", "dup_line_frac", dup_line_frac, off=OFF),
        Check("dup_line_char_frac", ">", "dup_line_char_frac", dup_line_char_frac, off=OFF),
        Check("top_{n}_gram", ">", "top_n_grams", top_ngram_frac),
        Check("duplicated_{n}_n_grams", ">", "dup_n_grams", duplicated_ngram_frac),
    )
