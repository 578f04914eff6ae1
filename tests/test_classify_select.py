"""The streamed k-th highest: exactly the sorted values' answer (in total order), whatever the values, their
split into files and the number of refinement passes it needs; it reads the values in passes, not all at once."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crawlproc.classify.select import from_key, kth_highest_streamed, order_keys


def exact(values: np.ndarray, fraction: float) -> float:
    """The k-th highest in IEEE total order, -0.0 below 0.0. np.partition alone holds them equal and may
    answer either zero for a tie of the two (hypothesis found [0.0, -0.0]); the kept set is the same."""
    n = len(values)
    k = min(n, max(1, math.ceil(fraction * n - 1e-9)))
    ascending = values[np.lexsort((~np.signbit(values), values))]
    return float(ascending[n - k])


def split(values: np.ndarray, parts: int) -> list[np.ndarray]:
    return list(np.array_split(values, parts))


def test_keys_sort_as_the_values_and_map_back():
    v = np.array([-np.inf, -1e300, -2.5, -1e-300, -0.0, 0.0, 5e-324, 1e-300, 0.3, 1.0, 2.0, 1e300, np.inf])
    keys = order_keys(v)
    assert list(np.argsort(keys, kind="stable")) == list(range(len(v)))
    assert [from_key(k) for k in keys] == list(v)


@pytest.mark.parametrize("limit", [1, 7, 1 << 20])  # 1: every refinement pass down to the full 64 bits
@pytest.mark.parametrize("fraction", [1e-6, 0.1, 0.5, 0.999, 1.0])
def test_equals_the_exact_selection(limit, fraction):
    rng = np.random.default_rng(7)
    scores = np.concatenate([rng.random(3000), np.full(500, 0.25), rng.normal(0, 5, 800), [0.0, -0.0, 1.0] * 50])
    parts = split(rng.permutation(scores), 9)
    assert kth_highest_streamed(lambda: parts, fraction, collect_limit=limit) == exact(scores, fraction)


@settings(max_examples=200, deadline=None)
@example([0.0, -0.0], 1.0, 1, 1).via("discovered failure")
@given(st.lists(st.floats(allow_nan=False, width=64), min_size=1, max_size=300),
       st.floats(min_value=1e-9, max_value=1.0), st.integers(1, 5), st.sampled_from([1, 3, 100000]))
def test_any_values_any_split(values, fraction, parts, limit):
    arr = np.array(values, dtype=np.float64)
    chunks = split(arr, parts)
    got = kth_highest_streamed(lambda: chunks, fraction, collect_limit=limit)
    want = exact(arr, fraction)
    assert got == want and math.copysign(1, got) == math.copysign(1, want)  # -0.0 and 0.0 told apart


def test_no_values():
    assert kth_highest_streamed(lambda: [np.empty(0), np.empty(0)], 0.5) is None
    assert kth_highest_streamed(lambda: [], 0.5) is None


def test_it_never_holds_more_than_a_file_and_the_candidates(monkeypatch):
    """The values come in passes; what it gathers at the end is at most collect_limit of them."""
    rng = np.random.default_rng(1)
    parts = [rng.random(10_000) for _ in range(20)]
    passes = []

    def chunks():
        passes.append(0)
        for p in parts:
            passes[-1] += 1
            yield p

    picked_sizes = []
    real_concatenate = np.concatenate

    def watching_concatenate(arrays, *a, **kw):
        out = real_concatenate(arrays, *a, **kw)
        picked_sizes.append(len(out))
        return out

    monkeypatch.setattr(np, "concatenate", watching_concatenate)
    got = kth_highest_streamed(chunks, 0.1, collect_limit=1000)
    monkeypatch.undo()
    assert got == exact(real_concatenate(parts), 0.1)
    assert 2 <= len(passes) <= 5 and all(n == len(parts) for n in passes)
    assert picked_sizes and max(picked_sizes) <= 1000
