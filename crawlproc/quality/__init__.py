"""Quality filters of the FineWeb recipe: Gopher repetition, Gopher quality, C4 and FineWeb.

Each filter is a plain function `(text, cfg) -> Verdict`, with datatrove 0.10.1's semantics (same checks,
same order, same reasons) and the recipe's thresholds. Words are split by one fast regex that approximates
datatrove's spaCy tokenizer (see words.py), once per text and shared between the two Gopher filters.
A disabled filter keeps everything: `Verdict(None, text, {})`.
"""

from __future__ import annotations

from crawlproc.quality.c4 import c4_quality
from crawlproc.quality.fineweb import fineweb_quality
from crawlproc.quality.gopher import gopher_quality, gopher_repetition
from crawlproc.quality.verdict import Verdict
from crawlproc.quality.words import count_sentences, split_words

# in pipeline order: (stage name == recipe attribute name, function)
QUALITY_STAGES = [
    ("gopher_repetition", gopher_repetition),
    ("gopher_quality", gopher_quality),
    ("c4", c4_quality),
    ("fineweb_quality", fineweb_quality),
]


def explain_thresholds(stage: str, cfg) -> dict[str, tuple[str, float]]:
    """For each statistic a stage measures (keyed like its reason and like `Verdict.values`): the comparison
    that REMOVES the document and the threshold, e.g. {"dup_line_frac": (">", 0.3)}. Checks switched off in
    `cfg` are left out; a disabled stage has none."""
    if not getattr(cfg, "enabled", True):
        return {}
    out: dict[str, tuple[str, float]] = {}

    def put(name: str, op: str, thr) -> None:
        if thr:  # datatrove skips a check whose threshold is None or 0
            out[name] = (op, float(thr))

    if stage == "gopher_repetition":
        put("dup_para_frac", ">", cfg.dup_para_frac)
        put("dup_para_char_frac", ">", cfg.dup_para_char_frac)
        put("dup_line_frac", ">", cfg.dup_line_frac)
        put("dup_line_char_frac", ">", cfg.dup_line_char_frac)
        for n, frac in cfg.top_n_grams:
            out[f"top_{int(n)}_gram"] = (">", float(frac))
        for n, frac in cfg.dup_n_grams:
            out[f"duplicated_{int(n)}_n_grams"] = (">", float(frac))
    elif stage == "gopher_quality":
        put("gopher_short_doc", "<", cfg.min_doc_words)
        put("gopher_long_doc", ">", cfg.max_doc_words)
        put("gopher_below_avg_threshold", "<", cfg.min_avg_word_length)
        put("gopher_above_avg_threshold", ">", cfg.max_avg_word_length)
        put("gopher_too_many_hashes", ">", cfg.max_symbol_word_ratio)
        put("gopher_too_many_ellipsis", ">", cfg.max_symbol_word_ratio)
        put("gopher_too_many_bullets", ">", cfg.max_bullet_lines_ratio)
        put("gopher_too_many_end_ellipsis", ">", cfg.max_ellipsis_lines_ratio)
        put("gopher_below_alpha_threshold", "<", cfg.max_non_alpha_words_ratio)
        put("gopher_enough_stop_words", "<", cfg.min_stop_words)
    elif stage == "c4":
        if cfg.min_num_sentences != -1:
            out["too_few_sentences"] = ("<", float(cfg.min_num_sentences))
        if cfg.filter_lorem_ipsum:
            out["lorem_ipsum"] = (">=", 1.0)
        if cfg.filter_curly_bracket:
            out["curly_bracket"] = (">=", 1.0)
    elif stage == "fineweb_quality":
        out["line_punct_ratio"] = ("<", float(cfg.line_punct_thr))
        out["short_line_ratio"] = (">", float(cfg.short_line_thr))
        out["char_dup_ratio"] = (">", float(cfg.char_duplicates_ratio))
        out["list_ratio"] = (">", float(cfg.new_line_ratio))
    else:
        raise ValueError(f"unknown quality stage {stage!r} (known: {', '.join(n for n, _ in QUALITY_STAGES)})")
    return out


__all__ = [
    "QUALITY_STAGES",
    "Verdict",
    "c4_quality",
    "count_sentences",
    "explain_thresholds",
    "fineweb_quality",
    "gopher_quality",
    "gopher_repetition",
    "split_words",
]
