"""The k-th highest of a snapshot's scores, exactly, without holding them all: a radix selection over passes.

A keep_fraction threshold needs the k-th highest of every score in the snapshot (600M documents: 4.8 GB of
float64), but only one value of it. Each score maps to a uint64 key in the order of the values; a pass over
the score files counts the keys by their next 16 bits (65,536 counters) among those that share the prefix
found so far, which fixes 16 more bits of the answer's key and its rank inside them. When few enough keys
share the prefix (`collect_limit`), one more pass collects them and selects exactly. Memory: the counters,
one file's scores and at most `collect_limit` candidates; reading: at most five passes over the scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

BITS = 16
_SIGN = np.uint64(1 << 63)
_MASK = np.uint64((1 << BITS) - 1)


def order_keys(values: np.ndarray) -> np.ndarray:
    """uint64 keys that sort as the float64 values do (negatives: every bit flipped; others: the sign set)."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    return np.where((bits & _SIGN) != 0, ~bits, bits | _SIGN)


def from_key(key: np.uint64) -> float:
    key = np.uint64(key)
    bits = key & ~_SIGN if key & _SIGN else ~key
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def kth_highest_streamed(chunks: Callable[[], Iterable[np.ndarray]], fraction: float,
                         collect_limit: int = 1 << 20) -> float | None:
    """The threshold that keeps the top `fraction` of all values (ties at it kept too): the k-th highest with
    k = ceil(fraction * n), n the number of values; None when there are none. `chunks()` yields the values
    (NaN-free float arrays), the same ones on every call."""
    shift, prefix, rank, n, candidates = 64, np.uint64(0), None, 0, 0
    while True:
        if rank is not None and (candidates <= collect_limit or shift == 0):
            picked = [k[(k >> np.uint64(shift)) == prefix] if shift < 64 else k
                      for k in map(order_keys, chunks())]
            return from_key(np.partition(np.concatenate(picked), rank)[rank])
        shift -= BITS
        counts = np.zeros(1 << BITS, dtype=np.int64)
        for keys in map(order_keys, chunks()):
            if shift + BITS < 64:
                keys = keys[(keys >> np.uint64(shift + BITS)) == prefix]
            counts += np.bincount(((keys >> np.uint64(shift)) & _MASK).astype(np.int64), minlength=1 << BITS)
        if rank is None:  # the first pass also counts the values
            n = int(counts.sum())
            if n == 0:
                return None
            k = min(n, max(1, math.ceil(fraction * n - 1e-9)))
            rank = n - k  # the k-th highest is the value of ascending rank n - k (0-based)
        below = np.cumsum(counts)
        bucket = int(np.searchsorted(below, rank, side="right"))
        rank -= int(below[bucket - 1]) if bucket else 0
        prefix = (prefix << np.uint64(BITS)) | np.uint64(bucket)
        candidates = int(counts[bucket])
