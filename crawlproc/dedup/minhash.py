"""MinHash signatures and LSH band keys, vectorized with numpy over a whole batch of documents.

A document is normalized (lowercase, numbers -> "0", punctuation -> space, diacritics dropped), split into
words, and every run of `ngram` consecutive words is a shingle (a document shorter than that is one shingle).
Word hashes are polynomial hashes over the UTF-8 bytes, computed for the whole batch at once with one
numpy reduceat (no Python call per word; only non-ASCII texts take a regex pass first); shingle hashes
combine `ngram` word hashes; the signature is the minimum of
`num_bands * rows_per_band` random affine permutations mod 2**64 of the shingle hashes. Each band of
`rows_per_band` values is folded into one 64-bit band key, salted by the band index so that keys of
different bands never meet. Two documents are near-duplicate candidates when they share a band key.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import regex

from crawlproc.recipe import MinHashConfig

_UNI_NON_WORD = re.compile(r"[^\x00-\x7f\w]+")  # runs of non-ASCII punctuation, symbols and spaces
_MARKS = regex.compile(r"\p{Mn}+")
_SEP = "\x00"

_U64 = np.uint64
_FMIX1 = _U64(0xFF51AFD7ED558CCD)
_FMIX2 = _U64(0xC4CEB9FE1A85EC53)
_BASE = _U64(0x100000001B3)
_CHUNK_ROWS = 4096  # shingles per permutation block: 4096 x 112 x 8 bytes stays in cache


def normalize(text: str) -> str:
    """The text that shingles are taken from: lowercase, digits as 0, no punctuation, no diacritics."""
    return " ".join(_batch_bytes([text]).tobytes().decode("utf-8", "surrogatepass").split())


def _unicode_normalize(text: str) -> str:
    """Only for non-ASCII texts: Unicode punctuation and spaces become spaces, letters lose their diacritics.
    ASCII punctuation, digits and case are left to the vectorized byte pass."""
    text = _UNI_NON_WORD.sub(" ", text.lower())
    if not text.isascii():
        text = _MARKS.sub("", unicodedata.normalize("NFD", text))
    return text


def _byte_tables() -> tuple[np.ndarray, np.ndarray]:
    mapping = np.full(256, 32, dtype=np.uint8)  # ASCII punctuation, symbols and whitespace -> space
    for c in b"abcdefghijklmnopqrstuvwxyz0123456789":
        mapping[c] = c
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        mapping[c] = c + 32
    mapping[128:] = np.arange(128, 256)  # UTF-8 bytes of the letters _unicode_normalize kept
    mapping[0] = 0
    digit = np.zeros(256, dtype=bool)
    digit[list(b"0123456789")] = True
    return mapping, digit


_BYTE_MAP, _IS_DIGIT = _byte_tables()


def _batch_bytes(texts: list[str]) -> np.ndarray:
    """The normalized UTF-8 bytes of all texts, separated by one 0 byte; ASCII texts stay in numpy."""
    parts = [t if t.isascii() else _unicode_normalize(t) for t in texts]
    big = _SEP.join(parts)
    if big.count(_SEP) != len(parts) - 1:  # a text contained the separator itself
        big = _SEP.join(p.replace(_SEP, " ") for p in parts)
    data = np.frombuffer(big.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    # Numbers -> "0": a run of digits, with "." or "," between digits, collapses to one "0".
    digit = _IS_DIGIT[data]
    if digit.any():
        inner = np.zeros(len(data), dtype=bool)
        inner[1:-1] = ((data[1:-1] == 46) | (data[1:-1] == 44)) & digit[:-2] & digit[2:]
        numeric = digit | inner
        run_start = numeric.copy()
        run_start[1:] &= ~numeric[:-1]
        data = np.where(run_start, np.uint8(48), data)[~numeric | run_start]
    return _BYTE_MAP[data]


def _fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's finalizer: every input bit affects every output bit (in place on a fresh array)."""
    x ^= x >> _U64(33)
    x *= _FMIX1
    x ^= x >> _U64(33)
    x *= _FMIX2
    x ^= x >> _U64(33)
    return x


_POW = np.cumprod(np.full(64, _BASE, dtype=np.uint64))  # BASE**(k+1) mod 2**64; positions past 64 wrap


@dataclass
class Shingles:
    hashes: np.ndarray  # uint64, the shingles of all documents, document after document
    starts: np.ndarray  # int64 (D,), index of each document's first shingle (meaningless when counts == 0)
    counts: np.ndarray  # int64 (D,), shingles per document; 0 for a document without words


def batch_shingles(texts: list[str], ngram: int = 5) -> Shingles:
    """Hashed word n-grams of every text, computed in one vectorized pass over the batch."""
    n_docs = len(texts)
    data = _batch_bytes(texts)
    is_word = (data != 32) & (data != 0)
    # Word boundaries: a word byte after a non-word byte starts a word, before one it ends a word.
    padded = np.concatenate(([False], is_word, [False]))
    edges = np.diff(padded.view(np.int8))
    word_start = np.flatnonzero(edges == 1)
    word_end = np.flatnonzero(edges == -1)  # exclusive
    doc_of_byte_sep = np.flatnonzero(data == 0)
    word_doc = np.searchsorted(doc_of_byte_sep, word_start)  # separators before the word = its document
    # Polynomial hash of each word over its bytes (position in the word -> power of BASE), non-word bytes
    # weigh 0; one reduceat sums each word's bytes (a word's segment runs to the next word's start).
    word_of_byte = np.cumsum(edges[:-1] == 1) - 1
    n_words = len(word_start)
    with np.errstate(over="ignore"):
        if n_words:
            pos = (np.arange(len(data)) - word_start[np.maximum(word_of_byte, 0)]) & 63
            weighted = np.where(is_word, data, 0).astype(np.uint64) * _POW[pos]
            words = np.add.reduceat(weighted[word_start[0]:], word_start - word_start[0])
        else:
            words = np.empty(0, np.uint64)
        words = _fmix64(words + (word_end - word_start).astype(np.uint64))
        words_per_doc = np.bincount(word_doc, minlength=n_docs)
        first_word = np.concatenate(([0], np.cumsum(words_per_doc)[:-1]))
        idx = np.arange(n_words)
        pos_in_doc = idx - first_word[word_doc]
        remaining = words_per_doc[word_doc] - pos_in_doc  # words from i to the end of its document
        # Shingle starting at word i: combine words i..i+ngram-1 of the same document (missing ones are 0).
        padded_words = np.concatenate((words, np.zeros(ngram, np.uint64)))
        combined = np.zeros(n_words, dtype=np.uint64)
        for k in range(ngram):
            mult = _U64((0x9E3779B97F4A7C15 * (2 * k + 1)) & 0xFFFFFFFFFFFFFFFF | 1)
            combined += np.where(remaining > k, padded_words[k: k + n_words], _U64(0)) * mult
        combined = _fmix64(combined)
    # Valid shingles: full windows, or the first word of a document shorter than the window.
    full = remaining >= ngram
    short = (words_per_doc[word_doc] < ngram) & (pos_in_doc == 0)
    keep = full | short
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

    def signatures(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(D, num_hashes) uint64 signatures and a (D,) bool mask of documents that have any word.
        Rows of documents without words are all ones (never used: they get no band keys)."""
        sh = batch_shingles(texts, self.config.ngram)
        return self.signatures_from_shingles(sh), sh.counts > 0

    def signatures_from_shingles(self, sh: Shingles) -> np.ndarray:
        n_docs = len(sh.counts)
        sig = np.full((n_docs, self.num_hashes), np.iinfo(np.uint64).max, dtype=np.uint64)
        nonempty = np.flatnonzero(sh.counts > 0)
        if len(nonempty) == 0:
            return sig
        # Walk the shingles in blocks; a block may cut a document, so minima are taken per (block, doc)
        # segment and then per document.
        total = len(sh.hashes)
        doc_starts = sh.starts[nonempty]
        block_starts = np.arange(0, total, _CHUNK_ROWS)
        seg_starts = np.union1d(doc_starts, block_starts)
        seg_doc = np.searchsorted(doc_starts, seg_starts, side="right") - 1
        seg_min = np.empty((len(seg_starts), self.num_hashes), dtype=np.uint64)
        buf = np.empty((_CHUNK_ROWS, self.num_hashes), dtype=np.uint64)
        seg_i = 0
        for b0 in block_starts:
            b1 = min(b0 + _CHUNK_ROWS, total)
            rows = b1 - b0
            view = buf[:rows]
            with np.errstate(over="ignore"):
                np.multiply(sh.hashes[b0:b1, None], self.a[None, :], out=view)
                np.add(view, self.b[None, :], out=view)
            seg_end = np.searchsorted(seg_starts, b1, side="left")
            local = seg_starts[seg_i:seg_end] - b0
            seg_min[seg_i:seg_end] = np.minimum.reduceat(view, local, axis=0)
            seg_i = seg_end
        first_seg = np.searchsorted(seg_doc, np.arange(len(nonempty)), side="left")
        sig[nonempty] = np.minimum.reduceat(seg_min, first_seg, axis=0)
        if self.config.hash_bits == 32:  # the minimum of the top 32 bits is the top of the minimum
            sig[nonempty] >>= _U64(32)
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


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Fraction of equal signature values: an unbiased estimate of the shingle sets' Jaccard similarity."""
    return float(np.mean(sig_a == sig_b))


def shingle_set(text: str, ngram: int = 5) -> set[int]:
    """The exact set of shingle hashes of one text (for brute-force Jaccard in tests and benchmarks)."""
    return set(batch_shingles([text], ngram).hashes.tolist())

