"""MinHash signatures and LSH band keys over a whole batch of documents at once.

A document is normalized (crawlproc.dedup.normalize: lowercase, every digit 0, punctuation a space,
diacritics dropped), split into words, and every run of `ngram` consecutive words is a shingle (a document
shorter than that is one shingle). Each word is hashed from its bytes read eight at a time, each shingle is
a mix of `ngram` word hashes. The signature is the minimum, over a document's shingles, of
`num_bands * rows_per_band` random affine permutations mod 2**64 (a*x + b, a odd) -- the classic sketch,
FineWeb's. The `one_permutation` sketch (a recipe choice) evaluates one permutation per shingle instead:
its value's top bits pick one of the k bins and each bin keeps its minimum (one-permutation hashing); a bin
no shingle reached borrows a filled bin's value along a seeded probe sequence shared by every document
(optimal densification, after Shrivastava 2017), so two documents agree on a bin with probability close to
their Jaccard, as with k permutations. It is about 100x fewer hash evaluations; for documents with fewer
shingles than bins the estimate is noisier. Each band of
`rows_per_band` values is folded into one 64-bit band key, salted by the band index so that keys of
different bands never meet. Two documents are near-duplicate candidates when they share a band key.

The loops run compiled (crawlproc.dedup.kernels, numba). The numpy code here computes the same values
with no Python call per word: it is the reference the kernels are tested against, and the fallback
without numba.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from crawlproc.dedup import kernels
from crawlproc.dedup.normalize import normalize_text, normalized_bytes
from crawlproc.recipe import MinHashConfig

__all__ = ["MinHasher", "compile_kernels_in_background", "Shingles", "batch_shingles", "estimate_jaccard", "normalize_text",
           "shingle_set", "shingles_numpy"]

_U64 = np.uint64
_FMIX1, _FMIX2 = kernels.FMIX_MULT
_CHUNK_SHINGLES = 32768  # per permutation pass: 256 KB of hashes stay in L2
_PROBES = 64  # densification probes per empty bin before the next filled bin is taken


def _fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's finalizer: every input bit affects every output bit (in place on a fresh array)."""
    x ^= x >> _U64(33)
    x *= _FMIX1
    x ^= x >> _U64(33)
    x *= _FMIX2
    x ^= x >> _U64(33)
    return x


_SHINGLE_MULT = [_U64((0x9E3779B97F4A7C15 * (2 * k + 1)) & 0xFFFFFFFFFFFFFFFF | 1) for k in range(100)]  # ngram <= 100
_SHINGLE_MULT_ARRAY = np.array(_SHINGLE_MULT, dtype=np.uint64)
_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [2**64 - 1], dtype=np.uint64)
_WORD_MULT = (_U64(0x9E3779B97F4A7C15), _U64(0xC2B2AE3D27D4EB4F))


@dataclass
class Shingles:
    hashes: np.ndarray  # uint64, the shingles of all documents, document after document
    starts: np.ndarray  # int64 (D,), index of each document's first shingle (meaningless when counts == 0)
    counts: np.ndarray  # int64 (D,), shingles per document; 0 for a document without words


def _word_hashes(data: np.ndarray, word_start: np.ndarray, word_end: np.ndarray) -> np.ndarray:
    """One 64-bit hash per word, from its bytes read 8 at a time: an unaligned uint64 view of the batch
    gives the 8 bytes at any offset, so a word of up to 8 bytes (most words) costs one gather."""
    padded = np.concatenate([data, np.zeros(8, np.uint8)])
    eight = np.ndarray(shape=(len(data),), dtype="<u8", buffer=padded, strides=(1,))  # eight[i]: bytes i..i+7
    length = word_end - word_start
    with np.errstate(over="ignore"):
        h = (eight[word_start] & _LOW_BYTES[np.minimum(length, 8)]) * _WORD_MULT[0] + length.astype(np.uint64)
        longer, offset = np.flatnonzero(length > 8), 8
        while len(longer):
            chunk = eight[word_start[longer] + offset] & _LOW_BYTES[np.minimum(length[longer] - offset, 8)]
            h[longer] = (h[longer] * _WORD_MULT[1]) ^ chunk
            offset += 8
            longer = longer[length[longer] > offset]
        return _fmix64(h)


def batch_shingles(texts: list[str], ngram: int = 5) -> Shingles:
    """Hashed word n-grams of every text (a list of str or an Arrow string column): crawlproc.dedup.kernels'
    compiled pass, or the same in numpy without it."""
    data = normalized_bytes(texts)
    if not kernels.AVAILABLE:
        return shingles_numpy(data, len(texts), ngram)
    hashes, counts = kernels.shingles(data, len(texts), ngram, _SHINGLE_MULT_ARRAY, *_WORD_MULT)
    return Shingles(hashes=hashes, starts=np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64),
                    counts=counts)


def shingles_numpy(data: np.ndarray, n_docs: int, ngram: int = 5) -> Shingles:
    """The shingles of normalized bytes (normalize.normalized_bytes) in one vectorized numpy pass over the
    batch: the reference for the compiled pass."""
    # Word boundaries: normalized bytes are 0 (between texts), 32 (space) or part of a word; a word starts
    # and ends (exclusive) where that changes, so starts and ends alternate.
    in_word = data > 32
    change = np.flatnonzero(in_word[1:] != in_word[:-1]) + 1
    if len(data) and in_word[0]:
        change = np.concatenate(([0], change))
    if len(data) and in_word[-1]:
        change = np.concatenate((change, [len(data)]))
    word_start, word_end = change[0::2], change[1::2]
    words = _word_hashes(data, word_start, word_end)
    n_words = len(words)
    # Text t's words start after its separator: one search per text (not per word) finds each first word.
    first_word = np.concatenate(([0], np.searchsorted(word_start, np.flatnonzero(data == 0))))
    words_per_doc = np.diff(first_word, append=n_words)
    word_doc = np.repeat(np.arange(n_docs), words_per_doc)
    pos_in_doc = np.arange(n_words) - first_word[word_doc]
    remaining = words_per_doc[word_doc] - pos_in_doc  # words from i to the end of its document
    # Shingle starting at word i: words i..i+ngram-1 combined; windows that run past their document are
    # dropped below, except for a document shorter than ngram: its one shingle is its words alone.
    padded = np.concatenate((words, np.zeros(ngram, np.uint64)))
    with np.errstate(over="ignore"):
        combined = words * _SHINGLE_MULT[0]
        for k in range(1, ngram):
            combined += padded[k: k + n_words] * _SHINGLE_MULT[k]
        short = np.flatnonzero((words_per_doc[word_doc] < ngram) & (pos_in_doc == 0))
        if len(short):
            combined[short] = 0
            for k in range(ngram):
                inside = remaining[short] > k
                combined[short[inside]] += padded[short[inside] + k] * _SHINGLE_MULT[k]
        combined = _fmix64(combined)
    keep = remaining >= ngram
    keep[short] = True
    counts = np.bincount(word_doc[keep], minlength=n_docs).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    return Shingles(hashes=combined[keep], starts=starts, counts=counts)


class MinHasher:
    """Signatures and band keys for a MinHashConfig; build once per worker, call on batches of texts."""

    def __init__(self, config: MinHashConfig | None = None):
        self.config = config or MinHashConfig()
        c = self.config
        self.num_hashes = c.num_bands * c.rows_per_band
        rng = np.random.Generator(np.random.PCG64(c.seed))
        info = np.iinfo(np.uint64)
        self.a = rng.integers(0, info.max, size=self.num_hashes, dtype=np.uint64, endpoint=True) | _U64(1)
        self.b = rng.integers(0, info.max, size=self.num_hashes, dtype=np.uint64, endpoint=True)
        self.band_salt = rng.integers(0, info.max, size=c.num_bands, dtype=np.uint64, endpoint=True)
        self.row_mult = rng.integers(0, info.max, size=c.rows_per_band, dtype=np.uint64, endpoint=True) | _U64(1)
        # drawn last: the classic sketch's numbers above stay what they were before this existed
        self.probes = rng.integers(0, self.num_hashes, size=(_PROBES, self.num_hashes), dtype=np.int64)

    def signatures(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(D, num_hashes) uint64 signatures and a (D,) bool mask of documents that have any word.
        Rows of documents without words are all ones (never used: they get no band keys)."""
        sh = batch_shingles(texts, self.config.ngram)
        return self.signatures_from_shingles(sh), sh.counts > 0

    def signatures_from_shingles(self, sh: Shingles) -> np.ndarray:
        """The recipe's sketch of each document's shingles (compiled, or in numpy)."""
        one = self.config.sketch == "one_permutation"
        if kernels.AVAILABLE:
            sig = np.empty((len(sh.counts), self.num_hashes), dtype=np.uint64)
            if one:
                kernels.one_permutation(sh.hashes, sh.starts, sh.counts, self.a[0], self.b[0], self.probes, sig)
            else:
                kernels.min_hashes(sh.hashes, sh.starts, sh.counts, self.a, self.b, sig)
        else:
            sig = self.one_permutation_numpy(sh) if one else self.minima_numpy(sh)
        if self.config.hash_bits == 32:  # the minimum of the top 32 bits is the top of the minimum
            sig[sh.counts > 0] >>= _U64(32)
        return sig

    def minima_numpy(self, sh: Shingles) -> np.ndarray:
        """The 64-bit minima in numpy, one permutation at a time over a cache-sized chunk of whole documents:
        contiguous 1-D multiply, add and minimum.reduceat (a 2-D block of shingles x permutations is 2-3x
        slower). Rows of documents without shingles are all ones."""
        n_docs = len(sh.counts)
        sig = np.full((n_docs, self.num_hashes), np.iinfo(np.uint64).max, dtype=np.uint64)
        docs = np.flatnonzero(sh.counts > 0)
        ends = np.cumsum(sh.counts[docs])  # shingles of the documents with words are contiguous
        first = 0
        while first < len(docs):
            lo = sh.starts[docs[first]]
            last = max(first + 1, int(np.searchsorted(ends, lo + _CHUNK_SHINGLES, side="right")))
            hi = ends[last - 1]
            chunk = sh.hashes[lo:hi]
            seg = sh.starts[docs[first:last]] - lo
            out = np.empty((last - first, self.num_hashes), dtype=np.uint64)
            tmp = np.empty(len(chunk), dtype=np.uint64)
            with np.errstate(over="ignore"):
                for i in range(self.num_hashes):
                    np.multiply(chunk, self.a[i], out=tmp)
                    np.add(tmp, self.b[i], out=tmp)
                    out[:, i] = np.minimum.reduceat(tmp, seg)
            sig[docs[first:last]] = out
            first = last
        return sig

    def one_permutation_numpy(self, sh: Shingles) -> np.ndarray:
        """The one-permutation sketch in numpy (kernels._one_permutation says what it is)."""
        n_docs, k = len(sh.counts), self.num_hashes
        sig = np.full((n_docs, k), np.iinfo(np.uint64).max, dtype=np.uint64)
        with np.errstate(over="ignore"):
            v = sh.hashes[: int(sh.counts.sum())] * self.a[0] + self.b[0]
        cell = np.repeat(np.arange(n_docs, dtype=np.int64), sh.counts) * k + (
            ((v >> _U64(32)) * _U64(k)) >> _U64(32)).astype(np.int64)
        np.minimum.at(sig.reshape(-1), cell, v)
        filled = sig != np.iinfo(np.uint64).max  # as the kernel decides it
        docs, bins = np.nonzero(~filled & (sh.counts > 0)[:, None])
        donor = np.full(len(docs), -1, dtype=np.int64)
        for t in range(len(self.probes)):
            wait = np.flatnonzero(donor < 0)
            if not len(wait):
                break
            src = self.probes[t, bins[wait]]
            found = filled[docs[wait], src]
            donor[wait[found]] = src[found]
        for j in np.flatnonzero(donor < 0):  # no probe hit: the next filled bin (rare; short documents)
            row = np.roll(filled[docs[j]], -(int(bins[j]) + 1))
            donor[j] = (int(bins[j]) + 1 + int(np.argmax(row))) % k
        sig[docs, bins] = sig[docs, donor]
        return sig

    def band_keys(self, sig: np.ndarray) -> np.ndarray:
        """(D, num_bands) uint64 keys: each band's rows folded into one salted 64-bit hash."""
        c = self.config
        bands = sig.reshape(len(sig), c.num_bands, c.rows_per_band)
        with np.errstate(over="ignore"):
            keys = np.broadcast_to(self.band_salt, (len(sig), c.num_bands)).copy()
            for r in range(c.rows_per_band):
                keys = _fmix64(keys ^ (bands[:, :, r] * self.row_mult[r]))
        return keys

    def band_keys_for_texts(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        sig, has_words = self.signatures(texts)
        return self.band_keys(sig), has_words


def compile_kernels_in_background(config: MinHashConfig | None = None) -> threading.Thread | None:
    """Compile (or load from numba's disk cache) the MinHash kernels in a thread of this process: a driver
    starts it before its cluster, so that the compilation runs while Ray starts and the workers on this
    machine load the cached code (under a second) instead of each compiling it (seconds of CPU apiece).
    Join it before the first task. None when the kernels are not in use."""
    if not kernels.AVAILABLE:
        return None
    thread = threading.Thread(target=lambda: MinHasher(config).band_keys_for_texts(["compile the minhash kernels now"]),
                              name="crawlproc-minhash-compile", daemon=True)
    thread.start()
    return thread


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Fraction of equal signature values: an unbiased estimate of the shingle sets' Jaccard similarity."""
    return float(np.mean(sig_a == sig_b))


def shingle_set(text: str, ngram: int = 5) -> set[int]:
    """The exact set of shingle hashes of one text (for brute-force Jaccard in tests and benchmarks)."""
    return set(batch_shingles([text], ngram).hashes.tolist())

