"""C4's line and document rules (Raffel et al. 2020), with datatrove 0.10.1's C4QualityFilter semantics.

Unlike the other filters this one edits the text: it strips citation marks and drops lines that are too
short, hold an over-long word, mention javascript or a cookie/terms policy (and, when enabled, lines without
terminal punctuation). What remains, joined by newlines, is the text the next filter sees.
"""

from __future__ import annotations

import re

from crawlproc.quality.verdict import Verdict
from crawlproc.quality.words import count_sentences
from crawlproc.recipe import C4Config

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
POLICY = re.compile("terms of use|privacy policy|cookie policy|uses cookies|use of cookies|use cookies")


def c4_quality(text: str, cfg: C4Config) -> Verdict:
    """Drop C4's bad lines; remove documents with "lorem ipsum", a curly bracket or too few sentences."""
    if not cfg.enabled:
        return Verdict(None, text, {})
    drops = {"too_long_word": 0, "no_terminal_punct": 0, "too_few_words": 0, "javascript": 0, "policy": 0}
    values: dict[str, float] = {}
    kept: list[str] = []
    sentences = 0
    # once the document has enough sentences the exact count no longer matters: stop counting
    need_sentences = cfg.min_num_sentences != -1
    lines = text.splitlines()

    def _values() -> dict[str, float]:
        values.update({f"lines_dropped_{k}": float(v) for k, v in drops.items()})
        values["lines"] = float(len(lines))
        values["lines_kept"] = float(len(kept))
        values["too_few_sentences"] = float(sentences)
        return values

    for line in lines:
        line = line.strip()
        words = line.split()
        if cfg.max_word_length != -1 and len(line) > cfg.max_word_length:
            if any(len(w) > cfg.max_word_length for w in words):
                drops["too_long_word"] += 1
                continue
        if cfg.remove_citations and "[" in line:
            line = CITATION.sub("", line)
        if cfg.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith("...")):
            drops["no_terminal_punct"] += 1
            continue
        if len(words) < cfg.min_words_per_line:  # words counted before citations were stripped, as C4
            drops["too_few_words"] += 1
            continue
        lower = line.lower()
        if cfg.filter_lorem_ipsum and "lorem ipsum" in lower:
            values["lorem_ipsum"] = 1.0
            return Verdict("lorem_ipsum", text, _values())
        if cfg.filter_javascript and "javascript" in lower:
            drops["javascript"] += 1
            continue
        if cfg.filter_curly_bracket and "{" in line:
            values["curly_bracket"] = 1.0
            return Verdict("curly_bracket", text, _values())
        if cfg.filter_policy and POLICY.search(lower) is not None:
            drops["policy"] += 1
            continue
        if need_sentences:
            sentences += count_sentences(line)
            need_sentences = sentences < cfg.min_num_sentences
        kept.append(line)
    if sentences < cfg.min_num_sentences:
        return Verdict("too_few_sentences", text, _values())
    return Verdict(None, "\n".join(kept).strip(), _values())
