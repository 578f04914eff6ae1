"""The recipe's `[decontaminate]` section.

    [decontaminate]
    enabled = true              # on by default: the bundled evaluation suite is kept out of the data
    default_suite = true        # the tasks of crawlproc/data/evalsuite/ (crawlproc.evalsuite.default_suite)
    benchmarks = []             # more task files (JSONL, crawlproc/evalsuite.py's format), or folders of them;
                                # local paths or URIs
    n = 13                      # n-grams of normalized words (crawlproc/decontam/text.py)
    min_item_words = 8          # a part shorter than n words, but this long, is matched whole (0: never)
    strip_prompt_words = true   # words every context of a task starts or ends with ("Question:", "Answer:")
    coverage_n = 5              # edited copies: an item's own short n-grams (0: off) ...
    coverage = 0.5              # ... of which a document must hold this share ...
    coverage_min = 4            # ... and at least this many
    min_matches = 1             # distinct indexed n-grams a document must share to be contaminated (the
                                # coverage rule decides on its own)
    mode = "remove"             # or "cut": cut the matching spans, keep the rest if it is long enough
    min_words_after_cut = 50    # "cut": a document left with fewer words is removed
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crawlproc.config import Section, at_least, one_of, require

MAX_N = 64


@dataclass
class DecontaminateConfig(Section):
    enabled: bool = True
    default_suite: bool = True
    benchmarks: list[str] = field(default_factory=list)
    n: int = 13
    min_item_words: int = 8
    strip_prompt_words: bool = True
    coverage_n: int = 5
    coverage: float = 0.5
    coverage_min: int = 4
    min_matches: int = 1
    mode: str = "remove"
    min_words_after_cut: int = 50

    def check(self):
        require(2 <= self.n <= MAX_N, "n", f"must be in 2..{MAX_N}, got {self.n}")
        require(self.min_item_words == 0 or 2 <= self.min_item_words <= self.n, "min_item_words",
                f"must be 0 (off) or in 2..n ({self.n}), got {self.min_item_words}")
        require(self.coverage_n == 0 or 2 <= self.coverage_n <= self.n, "coverage_n",
                f"must be 0 (off) or in 2..n ({self.n}), got {self.coverage_n}")
        require(0 < self.coverage <= 1, "coverage", f"must be in (0, 1], got {self.coverage}")
        at_least(self, 1, "min_matches", "coverage_min")
        at_least(self, 0, "min_words_after_cut")
        one_of(self, "mode", ("remove", "cut"))
        for b in self.benchmarks:
            require(isinstance(b, str) and bool(b.strip()), "benchmarks", f"bad entry {b!r}: a path or URI")
        require(len(set(self.benchmarks)) == len(self.benchmarks), "benchmarks", "lists a file twice")

    def index_settings(self) -> dict:
        """What the index is built from besides the benchmark files (part of its fingerprint)."""
        return {"n": self.n, "min_item_words": self.min_item_words, "strip_prompt_words": self.strip_prompt_words,
                "coverage_n": self.coverage_n, "coverage": self.coverage, "coverage_min": self.coverage_min}
