"""Counting what repeats, for the repetition rules: duplicated lines or paragraphs, and word n-grams."""

from __future__ import annotations

import re
from itertools import accumulate, count

import numpy as np


def duplicates(parts: list[str]) -> tuple[int, int]:
    """(elements, characters) that repeat an earlier element: every occurrence after the first counts."""
    unique = set(parts)
    dup_chars = sum(map(len, parts)) - sum(map(len, unique))
    return len(parts) - len(unique), dup_chars


LINE_SPLIT = re.compile(r"\n+")


class NgramCounts:
    """Word n-gram statistics of one text for Gopher's repetition rules, computed level by level.

    Words become integers (first-seen position), and each n-gram level is numbered from the level below:
    n-gram i is (number of (n-1)-gram i, word i+n-1), so one sort per level (numpy) counts all n-grams
    without building strings or tuples. The duplicated n-gram rules need only the n-grams that repeat, found
    one level at a time among the positions that repeat a level below (`_repeating`).
    """

    def __init__(self, words: list[str]):
        self.words = words
        self.n_words = len(words)
        index: dict[str, int] = {}
        self._ids = np.fromiter(map(index.setdefault, words, count()), dtype=np.int64, count=self.n_words)
        self._levels: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._prefix: list[int] | None = None
        self._repeats: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _level(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(number of the n-gram at each position, first position of each number, count of each number)."""
        if n not in self._levels:
            if n == 1:
                keys = self._ids
            else:
                below = self._level(n - 1)[0]
                keys = below[:-1] * (self.n_words + 1) + self._ids[n - 1:]
            _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
            self._levels[n] = (inverse.reshape(-1), first, counts)
        return self._levels[n]

    def chars(self, start: int, n: int) -> int:
        """Characters of words start..start+n-1, concatenated."""
        if self._prefix is None:
            self._prefix = list(accumulate(map(len, self.words), initial=0))
        return self._prefix[start + n] - self._prefix[start]

    def top_chars(self, n: int) -> int | None:
        """Characters covered by the most frequent n-gram: its length with single spaces, times its count
        (ties go to the n-gram seen first, as Counter.most_common). None when there are fewer than n words."""
        if self.n_words < n:
            return None
        _, first, counts = self._level(n)
        top = counts.max()
        start = int(first[counts == top].min())
        return (self.chars(start, n) + n - 1) * int(top)

    def _repeating(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(the positions whose n-gram occurs more than once, ascending; a number per position, equal where the
        n-grams are). An n-gram can only repeat where its first n-1 words do, so above the levels already
        counted in full each level is numbered on the positions that repeat one level below: a sort of a few
        candidates instead of the whole document."""
        if n not in self._repeats:
            if n == 1 or n in self._levels:
                inverse, _, counts = self._level(n)
                positions = np.flatnonzero(counts[inverse] > 1)
                numbers = inverse[positions]
            else:
                below, below_numbers = self._repeating(n - 1)
                fits = below <= self.n_words - n
                below, below_numbers = below[fits], below_numbers[fits]
                keys = below_numbers * (self.n_words + 1) + self._ids[below + n - 1]
                _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
                inverse = inverse.reshape(-1)
                again = counts[inverse] > 1
                positions, numbers = below[again], inverse[again]
            self._repeats[n] = (positions, numbers)
        return self._repeats[n]

    def repeated_chars(self, n: int) -> int:
        """Characters in repeated n-grams by datatrove's left-to-right scan: an n-gram seen before adds its
        characters (words concatenated) and the scan jumps past it; otherwise the scan moves one word on.

        Only positions whose n-gram occurs more than once can count, so the scan visits just those
        (`_repeating`). N-grams are compared word by word; datatrove compares the words glued together, which
        differs only when two different word sequences spell the same letters ("ab c" and "a bc").
        """
        if self.n_words < n:
            return 0
        positions, numbers = self._repeating(n)
        seen: set[int] = set()
        repeated = 0
        next_idx = 0
        for p, key in zip(positions.tolist(), numbers.tolist()):
            if p < next_idx:  # inside an n-gram already counted: the scan jumped over it
                continue
            if key in seen:
                repeated += self.chars(p, n)
                next_idx = p + n
            else:
                seen.add(key)
                next_idx = p + 1
        return repeated
