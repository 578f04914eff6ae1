"""C4's line and document rules (Raffel et al. 2020), with datatrove 0.10.1's C4QualityFilter semantics.

Unlike the other filters this one edits the text: it strips citation marks and drops lines that are too
short, hold an over-long word, mention javascript or a cookie/terms policy (and, when enabled, lines without
terminal punctuation). What remains, joined by newlines, is the text the next filter sees. Its document
checks (too few sentences, "lorem ipsum", a curly bracket) come from the table like every filter's; the
line scan finds their values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from crawlproc.config import Section, require
from crawlproc.doc import Doc
from crawlproc.quality.filter import Check, Filter, check_lang_tables
from crawlproc.quality.verdict import Verdict
from crawlproc.quality.words import count_sentences

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
POLICY = re.compile("terms of use|privacy policy|cookie policy|uses cookies|use of cookies|use cookies")


@dataclass
class C4Config(Section):
    enabled: bool = True
    remove_citations: bool = True
    filter_no_terminal_punct: bool = False  # FineWeb turns C4's terminal-punctuation line filter off
    min_num_sentences: int = 5  # -1 disables
    min_words_per_line: int = 3  # -1 disables
    max_word_length: int = 1000  # -1 disables
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True
    lang: dict = field(default_factory=dict)  # [c4.lang.<code>]: values for one language

    def check(self):
        for name in ("min_num_sentences", "min_words_per_line"):
            v = getattr(self, name)
            require(v == -1 or v >= 0, name, f"must be >= 0 (or -1: off), got {v}")
        v = self.max_word_length
        require(v == -1 or v >= 1, "max_word_length", f"must be >= 1 (or -1: off), got {v}")
        check_lang_tables(self)


class C4Quality(Filter):
    name = "c4"
    Config = C4Config
    checks = (
        Check("too_few_sentences", "<", "min_num_sentences", off=(-1,)),
        Check("lorem_ipsum", ">=", 1, switch="filter_lorem_ipsum"),
        Check("curly_bracket", ">=", 1, switch="filter_curly_bracket"),
    )

    def __init__(self, cfg: C4Config | None = None):
        super().__init__(cfg)
        self._checks = {a.statistic: a for a in self.active}

    def _fails(self, statistic: str, value: float) -> bool:
        a = self._checks.get(statistic)
        return a is not None and a.fails(value, a.threshold)

    def filter(self, doc: Doc) -> Verdict:
        """Drop C4's bad lines; remove documents with "lorem ipsum", a curly bracket or too few sentences."""
        cfg, text = self.cfg, doc.text
        drops = {"too_long_word": 0, "no_terminal_punct": 0, "too_few_words": 0, "javascript": 0, "policy": 0}
        values: dict[str, float] = {}
        kept: list[str] = []
        sentences = 0
        lorem, curly = "lorem_ipsum" in self._checks, "curly_bracket" in self._checks
        # once the document has enough sentences the exact count no longer matters: stop counting
        need_sentences = "too_few_sentences" in self._checks
        lines = doc.lines

        def measured() -> dict[str, float]:
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
            if lorem and "lorem ipsum" in lower and self._fails("lorem_ipsum", 1.0):
                values["lorem_ipsum"] = 1.0
                return Verdict("lorem_ipsum", text, measured())
            if cfg.filter_javascript and "javascript" in lower:
                drops["javascript"] += 1
                continue
            if curly and "{" in line and self._fails("curly_bracket", 1.0):
                values["curly_bracket"] = 1.0
                return Verdict("curly_bracket", text, measured())
            if cfg.filter_policy and POLICY.search(lower) is not None:
                drops["policy"] += 1
                continue
            if need_sentences:
                sentences += count_sentences(line, doc.splitter.split)
                need_sentences = sentences < self._checks["too_few_sentences"].threshold
            kept.append(line)
        if self._fails("too_few_sentences", sentences):
            return Verdict("too_few_sentences", text, measured())
        return Verdict(None, "\n".join(kept).strip(), measured())
