"""FineWeb's own quality rules (Penedo et al. 2024), with datatrove 0.10.1's FineWebQualityFilter semantics.

In the FineWeb recipe it runs on C4's output. The word split, the one costly statistic, comes last and
only for documents that passed the line checks.
"""

from __future__ import annotations

from crawlproc.quality.textstats import duplicates, words_of
from crawlproc.quality.verdict import Verdict
from crawlproc.quality.words import is_terminal
from crawlproc.recipe import FineWebQualityConfig


def fineweb_quality(text: str, cfg: FineWebQualityConfig) -> Verdict:
    """Remove documents whose lines rarely end a sentence, are mostly short or repeat, or that read as a
    list (many newlines per word)."""
    if not cfg.enabled:
        return Verdict(None, text, {})
    values: dict[str, float] = {}
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return Verdict("empty", text, values)
    n_lines = len(lines)

    ratio = sum(1 for line in lines if is_terminal(line[-1])) / n_lines
    values["line_punct_ratio"] = ratio
    if ratio < cfg.line_punct_thr and not (ratio == 0 and cfg.line_punct_exclude_zero):
        return Verdict("line_punct_ratio", text, values)

    short = cfg.short_line_length
    values["short_line_ratio"] = ratio = sum(1 for line in lines if len(line) <= short) / n_lines
    if ratio > cfg.short_line_thr:
        return Verdict("short_line_ratio", text, values)

    n_newlines = text.count("\n")
    values["char_dup_ratio"] = ratio = duplicates(lines)[1] / (len(text) - n_newlines)
    if ratio > cfg.char_duplicates_ratio:
        return Verdict("char_dup_ratio", text, values)

    n_words = len(words_of(text)) or 1  # a non-blank line always has a word; never divide by zero
    values["list_ratio"] = ratio = n_newlines / n_words
    if ratio > cfg.new_line_ratio:
        return Verdict("list_ratio", text, values)
    return Verdict(None, text, values)
