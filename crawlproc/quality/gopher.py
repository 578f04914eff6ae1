"""Gopher's repetition and quality rules (Rae et al. 2021, table A1), with datatrove 0.10.1's semantics.

Checks run in datatrove's order, so the first failing check gives the same reason; the expensive word
statistics are computed only once the cheap line and paragraph checks have passed.
"""

from __future__ import annotations

from collections import Counter

from crawlproc.quality.textstats import (
    LINE_SPLIT,
    PARAGRAPH_SPLIT,
    NgramCounts,
    duplicates,
    words_of,
)
from crawlproc.quality.verdict import Verdict
from crawlproc.quality.words import has_alpha, is_symbol_word
from crawlproc.recipe import GopherQualityConfig, GopherRepetitionConfig

STOP_WORDS = frozenset(["the", "be", "to", "of", "and", "that", "have", "with"])


def gopher_repetition(text: str, cfg: GopherRepetitionConfig) -> Verdict:
    """Remove documents made of repeated paragraphs, lines or word n-grams."""
    if not cfg.enabled:
        return Verdict(None, text, {})
    values: dict[str, float] = {}
    if not text:
        return Verdict("empty", text, values)
    n_chars = len(text)

    paragraphs = PARAGRAPH_SPLIT.split(text.strip())
    dup_paras, dup_para_chars = duplicates(paragraphs)
    values["dup_para_frac"] = dup_paras / len(paragraphs)
    if cfg.dup_para_frac and values["dup_para_frac"] > cfg.dup_para_frac:
        return Verdict("dup_para_frac", text, values)
    values["dup_para_char_frac"] = dup_para_chars / n_chars
    if cfg.dup_para_char_frac and values["dup_para_char_frac"] > cfg.dup_para_char_frac:
        return Verdict("dup_para_char_frac", text, values)

    lines = LINE_SPLIT.split(text)
    dup_lines, dup_line_chars = duplicates(lines)
    values["dup_line_frac"] = dup_lines / len(lines)
    if cfg.dup_line_frac and values["dup_line_frac"] > cfg.dup_line_frac:
        return Verdict("dup_line_frac", text, values)
    values["dup_line_char_frac"] = dup_line_chars / n_chars
    if cfg.dup_line_char_frac and values["dup_line_char_frac"] > cfg.dup_line_char_frac:
        return Verdict("dup_line_char_frac", text, values)

    ngrams = NgramCounts(words_of(text))
    for n, frac in cfg.top_n_grams:
        n = int(n)
        top = ngrams.top_chars(n)
        if top is None:
            continue
        name = f"top_{n}_gram"
        values[name] = top / n_chars
        if values[name] > frac:
            return Verdict(name, text, values)

    if cfg.dup_n_grams:
        smallest = min(int(n) for n, _ in cfg.dup_n_grams)
        for n, frac in cfg.dup_n_grams:
            n = int(n)
            name = f"duplicated_{n}_n_grams"
            values[name] = ngrams.repeated_chars(n, smallest) / n_chars
            if values[name] > frac:
                return Verdict(name, text, values)
    return Verdict(None, text, values)


def _word_stats(counts: Counter) -> tuple[int, int, int]:
    """(non-symbol words, their total length, words containing a letter), from the word counts: each
    distinct word is classified once."""
    n_real = real_chars = n_alpha = 0
    for w, c in counts.items():
        if w.isalnum() and "１" not in w:  # the common case: a plain word or number (a full-width 1 is a symbol)
            n_real += c
            real_chars += len(w) * c
            if not w.isnumeric():
                n_alpha += c
            continue
        if not is_symbol_word(w):
            n_real += c
            real_chars += len(w) * c
        if has_alpha(w):
            n_alpha += c
    return n_real, real_chars, n_alpha


def gopher_quality(text: str, cfg: GopherQualityConfig) -> Verdict:
    """Remove documents too short or too long, of odd word lengths, symbol-heavy, list-like or without
    the stop words of running English text."""
    if not cfg.enabled:
        return Verdict(None, text, {})
    values: dict[str, float] = {}
    words = words_of(text)
    n_words = len(words)
    counts = Counter(words)
    n_real, real_chars, n_alpha = _word_stats(counts)

    values["gopher_short_doc"] = values["gopher_long_doc"] = n_real
    if cfg.min_doc_words and n_real < cfg.min_doc_words:
        return Verdict("gopher_short_doc", text, values)
    if cfg.max_doc_words and n_real > cfg.max_doc_words:
        return Verdict("gopher_long_doc", text, values)
    if n_words == 0:  # nothing to measure (datatrove would divide by zero here)
        return Verdict("empty", text, values)

    mean_len = real_chars / n_real if n_real else float("nan")  # nan passes both bounds, as in datatrove
    values["gopher_below_avg_threshold"] = values["gopher_above_avg_threshold"] = mean_len
    if cfg.min_avg_word_length and mean_len < cfg.min_avg_word_length:
        return Verdict("gopher_below_avg_threshold", text, values)
    if cfg.max_avg_word_length and mean_len > cfg.max_avg_word_length:
        return Verdict("gopher_above_avg_threshold", text, values)

    values["gopher_too_many_hashes"] = text.count("#") / n_words
    if cfg.max_symbol_word_ratio and values["gopher_too_many_hashes"] > cfg.max_symbol_word_ratio:
        return Verdict("gopher_too_many_hashes", text, values)
    values["gopher_too_many_ellipsis"] = (text.count("...") + text.count("…")) / n_words
    if cfg.max_symbol_word_ratio and values["gopher_too_many_ellipsis"] > cfg.max_symbol_word_ratio:
        return Verdict("gopher_too_many_ellipsis", text, values)

    lines = text.splitlines() or [""]  # an empty text has no lines; datatrove would divide by zero
    if cfg.max_bullet_lines_ratio:
        bullets = 0
        for s in lines:
            s = s.lstrip()
            if s.startswith(("•", "-")):
                bullets += 1
        values["gopher_too_many_bullets"] = bullets / len(lines)
        if values["gopher_too_many_bullets"] > cfg.max_bullet_lines_ratio:
            return Verdict("gopher_too_many_bullets", text, values)
    if cfg.max_ellipsis_lines_ratio:
        ellipsis = 0
        for s in lines:
            if s.rstrip().endswith(("...", "…")):
                ellipsis += 1
        values["gopher_too_many_end_ellipsis"] = ellipsis / len(lines)
        if values["gopher_too_many_end_ellipsis"] > cfg.max_ellipsis_lines_ratio:
            return Verdict("gopher_too_many_end_ellipsis", text, values)

    values["gopher_below_alpha_threshold"] = n_alpha / n_words
    if cfg.max_non_alpha_words_ratio and values["gopher_below_alpha_threshold"] < cfg.max_non_alpha_words_ratio:
        return Verdict("gopher_below_alpha_threshold", text, values)

    values["gopher_enough_stop_words"] = len(STOP_WORDS.intersection(counts))
    if cfg.min_stop_words and values["gopher_enough_stop_words"] < cfg.min_stop_words:
        return Verdict("gopher_enough_stop_words", text, values)
    return Verdict(None, text, values)
