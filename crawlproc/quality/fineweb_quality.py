"""FineWeb's own quality rules (Penedo et al. 2024), with datatrove 0.10.1's FineWebQualityFilter semantics:
remove documents whose lines rarely end a sentence, are mostly short or repeat, or that read as a list
(many newlines per word).

In the FineWeb recipe it runs on C4's output. The word split, the one costly statistic, comes last and
only for documents that passed the line checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crawlproc.config import Section, at_least, fraction
from crawlproc.doc import Doc
from crawlproc.quality.filter import Check, Filter, Rule, check_lang_tables
from crawlproc.quality.textstats import duplicates
from crawlproc.quality.words import is_terminal


@dataclass
class FineWebQualityConfig(Section):
    enabled: bool = True
    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float | None = 0.67  # None: off (FineWeb-2)
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3
    lang: dict = field(default_factory=dict)  # [fineweb_quality.lang.<code>]: values for one language

    def check(self):
        fraction(self, "line_punct_thr", "short_line_thr", "char_duplicates_ratio")
        at_least(self, 0, "short_line_length", "new_line_ratio")
        check_lang_tables(self)


def _lines(doc: Doc) -> list[str]:  # the non-blank lines
    return doc.memo("fineweb_quality.lines", lambda: [s for s in doc.text.split("\n") if s.strip()])


def line_punct_ratio(doc: Doc, cfg) -> float:
    lines = _lines(doc)
    return sum(1 for line in lines if is_terminal(line[-1])) / len(lines)


def short_line_ratio(doc: Doc, cfg) -> float:
    lines, short = _lines(doc), cfg.short_line_length
    return sum(1 for line in lines if len(line) <= short) / len(lines)


def char_dup_ratio(doc: Doc, cfg) -> float:
    return duplicates(_lines(doc))[1] / (len(doc.text) - doc.text.count("\n"))


def list_ratio(doc: Doc, cfg) -> float:
    return doc.text.count("\n") / (len(doc.words) or 1)  # a non-blank line always has a word: never 0


class FineWebQuality(Filter):
    name = "fineweb_quality"
    Config = FineWebQualityConfig
    checks = (
        Rule("empty", lambda doc, cfg: not _lines(doc)),
        Check("line_punct_ratio", "<", "line_punct_thr", line_punct_ratio,
              unless=lambda ratio, cfg: ratio == 0 and cfg.line_punct_exclude_zero),
        Check("short_line_ratio", ">", "short_line_thr", short_line_ratio),
        Check("char_dup_ratio", ">", "char_duplicates_ratio", char_dup_ratio),
        Check("list_ratio", ">", "new_line_ratio", list_ratio),
    )
