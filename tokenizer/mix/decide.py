"""The pure parts of mixing token sets (pipelines/stages/mix.py runs them): what a source spec means, which
documents a source contributes and how often, the random keys of the global shuffle, and how a bucket of the
external shuffle becomes ordered output.

Every decision is a function of (seed, document id) only, never of the order in which files are read or of
which worker reads them, so a rerun (after a kill, on other machines) decides the same:

- selection key  u = xxh64("select" | id, seed): a weighted source contributes its documents in u order
  until its token target is reached (a uniform random sample without replacement, exact to one document);
- extra copy     xxh64("extra" | id, seed) < frac(K) * 2**64: the fractional part of an upsampling factor xK;
- shuffle key    s = xxh64("shuffle" | copy | id, seed): copies of one document get distinct keys; the same
  document met in two sources gets the same key, so it lands next to itself and is dropped once;
- bucket         the key's range: bucket b of N holds keys in [b, b+1) * 2**64 / N, so buckets in order,
  each sorted by key, are one global random permutation of everything selected.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

HIST_BITS = 10  # histogram of selection keys: 1024 bins, by the key's top bits
U64_MAX = (1 << 64) - 1
_SPEC = re.compile(r"^(?:(?P<all>all)|x(?P<factor>\d+(?:\.\d+)?)|(?P<weight>\d*\.?\d+(?:[eE][-+]?\d+)?))$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGbBtT]?)\s*$")
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9, "t": 10**12}


class MixError(ValueError):
    """A mix that cannot be made as asked; the message says which source or setting and why."""


@dataclass(frozen=True)
class Spec:
    """How much of a source goes into a mix: a weight of the budget, all of it once, or all of it K times."""

    kind: str  # "weight" | "all" | "upsample"
    value: float = 1.0  # the weight, or the factor K

    @property
    def text(self) -> str:
        return {"weight": f"{self.value:g}", "all": "all", "upsample": f"x{self.value:g}"}[self.kind]


def parse_spec(text: str) -> Spec:
    """`0.7` (a weight), `all`, `x2` / `x1.5` (every document 2 / 1.5 times on average)."""
    m = _SPEC.match(str(text).strip())
    if not m:
        raise MixError(f"bad source spec {text!r}: use a weight (0.7), 'all', or an upsampling factor (x2, x1.5)")
    if m.group("all"):
        return Spec("all")
    if m.group("factor"):
        k = float(m.group("factor"))
        if k <= 0:
            raise MixError(f"bad upsampling factor {text!r}: must be > 0")
        return Spec("upsample", k)
    w = float(m.group("weight"))
    if not w > 0 or not math.isfinite(w):
        raise MixError(f"bad weight {text!r}: must be a number > 0")
    return Spec("weight", w)


def split_source(arg: str) -> tuple[str, Spec]:
    """`PATH:SPEC` -> (PATH, Spec). PATH may be a URI (s3://b/tokens/a:0.7): the spec is after the last ':'."""
    path, sep, spec = str(arg).rpartition(":")
    if not sep or not path or not _SPEC.match(spec.strip()):
        raise MixError(f"bad --source {arg!r}: use PATH:WEIGHT, PATH:all or PATH:xK "
                       "(e.g. out/tokens/a:0.7, s3://bucket/tokens/b:all, out/tokens/c:x2)")
    return path, parse_spec(spec)


def parse_tokens(value) -> int:
    """A token count: 50000000, "50M", "1.5B", "200k"."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise MixError(f"bad token count {value!r}: use e.g. 50000000, 50M, 1.5B, 200k")
        n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n < 1:
        raise MixError(f"bad token count {value!r}: must be >= 1")
    return n


# --- keys ---------------------------------------------------------------------------------------------------


def _keys(prefix: bytes, ids: list[str], seed: int) -> np.ndarray:
    h = xxhash.xxh64_intdigest
    return np.fromiter((h(prefix + i.encode("utf-8"), seed) for i in ids), dtype=np.uint64, count=len(ids))


def select_keys(ids: list[str], seed: int) -> np.ndarray:
    return _keys(b"select\0", ids, seed)


def shuffle_keys(ids: list[str], copies: np.ndarray, seed: int) -> np.ndarray:
    h = xxhash.xxh64_intdigest
    return np.fromiter((h(f"shuffle\0{int(c)}\0".encode() + i.encode("utf-8"), seed) for i, c in zip(ids, copies)),
                       dtype=np.uint64, count=len(ids))


# FineWeb-2's rehydration (huggingface/fineweb-2 README): a kept document that stood for a duplicate cluster of N
# documents goes in max-key-<=-N times: alone 1, N = 2 or 3: N, 4: 3, 5-99: 5, 100-999: 8, >= 1000: 1 (very large
# clusters are boilerplate). Per-language tables (misc/rehydration/weights) are in crawlproc/data/languages.
FINEWEB2_REHYDRATION = {1: 1, 2: 2, 3: 3, 5: 5, 100: 8, 1000: 1}


def rehydration_factors(sizes: np.ndarray, weights: dict[int, int]) -> np.ndarray:
    """The repetition of each document from its duplicate-cluster size: the weight of the largest key <= size
    (1 below the smallest key)."""
    keys = np.array(sorted(weights), dtype=np.int64)
    values = np.array([weights[k] for k in sorted(weights)], dtype=np.int64)
    at = np.searchsorted(keys, np.asarray(sizes, dtype=np.int64), side="right") - 1
    return np.where(at >= 0, values[np.clip(at, 0, None)], 1)


def parse_rehydrate(value) -> dict[int, int] | None:
    """A mix's `rehydrate`: None/false (off), "fineweb2" / true (FineWeb-2's weights), or {cluster size: copies}."""
    if value in (None, False, "", "off"):
        return None
    if value is True or value == "fineweb2":
        return dict(FINEWEB2_REHYDRATION)
    if isinstance(value, dict) and value:
        try:
            out = {int(k): int(v) for k, v in value.items()}
        except (TypeError, ValueError):
            out = {}
        if out and all(k >= 1 and 0 <= v <= 1000 for k, v in out.items()):
            return out
    raise MixError(f"rehydrate must be \"fineweb2\", true, or a table {{cluster size = copies}} (sizes >= 1, "
                   f"copies 0..1000), got {value!r}")


def copies_of(spec: Spec, ids: list[str], u: np.ndarray, cut: int | None, seed: int, split: str) -> np.ndarray:
    """How many times each document goes into the mix. Validation documents go at most once: repeating
    held-out text measures nothing more."""
    n = len(ids)
    if spec.kind == "all":
        out = np.ones(n, dtype=np.int64)
    elif spec.kind == "weight":
        out = (u <= np.uint64(cut)).astype(np.int64) if cut is not None else np.zeros(n, dtype=np.int64)
    else:
        whole, frac = int(spec.value), spec.value - int(spec.value)
        out = np.full(n, whole, dtype=np.int64)
        if frac > 0:
            out += _keys(b"extra\0", ids, seed) < np.uint64(min(U64_MAX, int(frac * 2.0**64)))
    return np.minimum(out, 1) if split == "val" else out


def hist_bins(u: np.ndarray) -> np.ndarray:
    return (u >> np.uint64(64 - HIST_BITS)).astype(np.int64)


def bin_range(b: int) -> tuple[int, int]:
    """[lo, hi] (inclusive) of the selection keys in histogram bin b."""
    width = 1 << (64 - HIST_BITS)
    return b * width, (b + 1) * width - 1


def bucket_of(keys: np.ndarray, n: int) -> np.ndarray:
    """Bucket b of n holds the keys in [b, b+1) * 2**64 / n (the top 32 bits decide: no overflow)."""
    return ((keys >> np.uint64(32)) * np.uint64(n) >> np.uint64(32)).astype(np.int64)


def find_cut(target: int, before: int, keys: np.ndarray, tokens: np.ndarray) -> tuple[int, int]:
    """The selection-key threshold at which a source's documents, taken in key order, first reach `target`
    tokens: (cut, tokens taken). `before` is the tokens of the bins below the boundary bin (`boundary_bin`),
    (keys, tokens) the documents of that bin."""
    order = np.argsort(keys, kind="stable")
    keys, tokens = keys[order], tokens[order].astype(np.int64)
    cum = before + np.cumsum(tokens)
    i = int(np.searchsorted(cum, target, side="left"))
    cut = int(keys[min(i, len(keys) - 1)])
    taken = before + int(tokens[keys <= np.uint64(cut)].sum())  # documents sharing the cut key are all in
    return cut, taken


def boundary_bin(target: int, hist: np.ndarray) -> tuple[int, int]:
    """(the bin where cumulative tokens reach `target`, tokens in the bins before it)."""
    cum = np.cumsum(hist)
    b = int(np.searchsorted(cum, target, side="left"))
    return b, int(cum[b - 1]) if b else 0


# --- a bucket of the external shuffle -> ordered, deduplicated documents ----------------------------------


def order_bucket(table: pa.Table) -> tuple[pa.Table, int]:
    """Sort a bucket's rows (key, src, copy, id, tokens) by (key, src) and drop a document met again under
    the same key (the same id and copy from a second source). Returns (table, duplicates dropped)."""
    if table.num_rows == 0:
        return table, 0
    idx = pc.sort_indices(table, sort_keys=[("key", "ascending"), ("src", "ascending")])
    table = table.take(idx)
    keys = table.column("key").to_numpy()
    ids = table.column("id").to_pylist()
    copies = table.column("copy").to_numpy()
    same = np.zeros(len(keys), dtype=bool)
    same[1:] = keys[1:] == keys[:-1]
    for i in np.flatnonzero(same):  # rare: only the same document in two sources shares a key
        same[i] = ids[i] == ids[i - 1] and copies[i] == copies[i - 1]
    dropped = int(same.sum())
    if dropped:
        table = table.filter(pa.array(~same))
    return table, dropped
