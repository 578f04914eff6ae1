"""The hot loops of MinHash compiled with numba: normalized bytes from the texts' UTF-8, shingle hashes from
those, and the minimum of every permutation over each document's shingles (or the one-permutation sketch).

They compute exactly what the numpy code of crawlproc.dedup.normalize and .minhash computes
(tests/test_minhash_kernels.py compares them on real pages and generated text), in one pass each instead
of one numpy pass per operation: the numpy permutation loop writes and reads every shingle's value once per
permutation (112 passes over memory); here a shingle's 112 values are made and compared in registers.
bench/bench_minhash.py measures both.

numba is a declared dependency. Where it cannot be imported (a numpy it does not support yet), or with
CRAWLPROC_NUMBA=0, the numpy code runs instead, with the same results. Compiled code is cached on disk
(numba's cache=True: beside this file, or in the user's cache directory when that is read-only), so a new
worker process loads it instead of compiling for about a second.
"""

from __future__ import annotations

import os

import numpy as np

try:
    from numba import njit
except ImportError:  # the numpy code of crawlproc.dedup.minhash and .normalize runs instead
    njit = None

# CRAWLPROC_NUMBA=0 runs the numpy code (to rule the kernels out when something looks wrong)
AVAILABLE = njit is not None and os.environ.get("CRAWLPROC_NUMBA", "1") != "0"

_ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
FMIX_MULT = (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))  # MurmurHash3's; minhash's too
_FMIX1, _FMIX2 = FMIX_MULT


def fmix64(x):
    """minhash._fmix64 on one value (decontamination's kernels hash with it too)."""
    x ^= x >> np.uint64(33)
    x *= _FMIX1
    x ^= x >> np.uint64(33)
    x *= _FMIX2
    x ^= x >> np.uint64(33)
    return x


def _shingles(data, num_docs, ngram, shingle_mult, word_mult0, word_mult1):
    """(hashes, counts): every document's shingle hashes, document after document, and how many each has.
    `data` is the batch's normalized bytes: 0 between documents, bytes <= 32 between words."""
    n = data.shape[0]
    out = np.empty(n // 2 + num_docs + 1, dtype=np.uint64)  # a word takes a byte and a separator
    counts = np.zeros(num_docs, dtype=np.int64)
    ring = np.zeros(ngram, dtype=np.uint64)  # the document's last `ngram` word hashes
    doc, words, pos, m, i = 0, 0, 0, 0, 0
    while i <= n:
        if i == n or data[i] == 0:  # the end of a document
            if 0 < words < ngram:  # shorter than a shingle: its words are its one shingle
                combined = np.uint64(0)
                for k in range(words):
                    combined += ring[k] * shingle_mult[k]
                out[m] = fmix64(combined)
                m += 1
                counts[doc] += 1
            doc += 1
            words = pos = 0
            i += 1
            continue
        if data[i] <= 32:
            i += 1
            continue
        start = i
        while i < n and data[i] > 32:
            i += 1
        length = i - start
        # the word's bytes 8 at a time, little-endian, as _word_hashes reads them
        h = np.uint64(0)
        for j in range(min(length, 8)):
            h |= np.uint64(data[start + j]) << np.uint64(8 * j)
        h = h * word_mult0 + np.uint64(length)
        offset = 8
        while length > offset:
            chunk = np.uint64(0)
            for j in range(min(length - offset, 8)):
                chunk |= np.uint64(data[start + offset + j]) << np.uint64(8 * j)
            h = (h * word_mult1) ^ chunk
            offset += 8
        ring[pos] = fmix64(h)
        pos = pos + 1 if pos + 1 < ngram else 0  # now the oldest word's place (no division in the loop)
        words += 1
        if words >= ngram:
            combined = np.uint64(0)
            for k in range(ngram):
                at = pos + k
                combined += ring[at if at < ngram else at - ngram] * shingle_mult[k]
            out[m] = fmix64(combined)
            m += 1
            counts[doc] += 1
    return out[:m].copy(), counts


def _normalize(values, offsets, table, bmp_enc, bmp_size, astral_at, astral_enc, astral_size, out):
    """normalize.normalized_bytes in one pass: texts `values[offsets[t]:offsets[t + 1]]` (UTF-8) into `out`,
    0 between texts; returns the length written. `table` maps an ASCII byte (digits already 0); the tables
    map a non-ASCII character to its new UTF-8 bytes (packed little-endian) and their number (0: deleted);
    characters outside the BMP were looked up by the caller, at the value offsets `astral_at`.
    Numbers collapse as normalize._NUMBER does over the digits-as-0 text: a 0 after a number's 0 is dropped,
    and so is a . or , between two of its 0s, held until the next byte shows which. `state`: 0 outside a
    number, 1 in one, 2 in one with a . or , held."""
    m, a = 0, 0
    for t in range(offsets.shape[0] - 1):
        if t > 0:
            out[m] = 0
            m += 1
        state = 0
        i, end = offsets[t], offsets[t + 1]
        while i < end:
            c = np.uint32(values[i])
            if c < 0x80:
                ch = np.uint32(48) if 49 <= c <= 57 else c
                i += 1
            else:
                size = 4 if c >= 0xF0 else 3 if c >= 0xE0 else 2 if c >= 0xC0 else 1
                if size == 1 or c >= 0xF8 or i + size > end:  # not a character's start (invalid UTF-8): kept
                    enc, n = c, 1
                elif size == 4:
                    while a < astral_at.shape[0] and astral_at[a] < i:
                        a += 1
                    enc, n = astral_enc[a], np.uint32(astral_size[a])
                else:
                    b1 = np.uint32(values[i + 1]) & np.uint32(0x3F)
                    if size == 2:
                        cp = (c & np.uint32(0x1F)) << np.uint32(6) | b1
                    else:
                        cp = ((c & np.uint32(0x0F)) << np.uint32(12) | b1 << np.uint32(6)
                              | np.uint32(values[i + 2]) & np.uint32(0x3F))
                    enc, n = bmp_enc[cp], np.uint32(bmp_size[cp])
                i += size
                if n == 0:  # a combining mark: gone before numbers are collapsed, so it never splits one
                    continue
                if n > 1 or enc >= 0x80:  # still non-ASCII: its bytes as they are
                    if state == 2:
                        out[m] = 32
                        m += 1
                    state = 0
                    for k in range(n):
                        out[m] = np.uint8((enc >> np.uint32(8 * k)) & np.uint32(0xFF))
                        m += 1
                    continue
                ch = enc  # became ASCII: "0" for a digit of any script, a space, a letter without its accent
            if ch == 48:
                if state == 0:
                    out[m] = 48
                    m += 1
                state = 1  # a held separator between two 0s goes with the second 0
            elif (ch == 46 or ch == 44) and state == 1:
                state = 2
            else:
                if state == 2:  # the held separator did not join two 0s: it stays, as a space
                    out[m] = 32
                    m += 1
                out[m] = table[ch]
                m += 1
                state = 0
        if state == 2:
            out[m] = 32
            m += 1
    return m


def _min_hashes(hashes, starts, counts, a, b, out):
    """out[d, k] = min over document d's shingles x of a[k] * x + b[k] (mod 2**64); all ones for a document
    without shingles. Four shingles per pass over the row: a quarter of the loads and stores of out."""
    num_hashes = a.shape[0]
    for d in range(counts.shape[0]):
        out[d, :] = _ALL_ONES
        j, end = starts[d], starts[d] + counts[d]
        while j + 3 < end:
            x0, x1, x2, x3 = hashes[j], hashes[j + 1], hashes[j + 2], hashes[j + 3]
            for k in range(num_hashes):
                ak, bk = a[k], b[k]
                v = min(min(ak * x0 + bk, ak * x1 + bk), min(ak * x2 + bk, ak * x3 + bk))
                if v < out[d, k]:
                    out[d, k] = v
            j += 4
        while j < end:
            x = hashes[j]
            for k in range(num_hashes):
                v = a[k] * x + b[k]
                if v < out[d, k]:
                    out[d, k] = v
            j += 1


def _one_permutation(hashes, starts, counts, a, b, probes, out):
    """The `one_permutation` sketch (crawlproc.dedup.minhash): one affine permutation v = a*x + b per
    shingle; its top 32 bits pick one of the k bins, each bin keeps its smallest v. A bin no shingle reached
    borrows the value of the first bin its row of `probes` names that one did (the same probes for every
    document, so two documents borrow alike), else of the next filled bin after it."""
    k = out.shape[1]
    kk = np.uint64(k)
    filled = np.empty(k, dtype=np.bool_)
    for d in range(counts.shape[0]):
        out[d, :] = _ALL_ONES
        if counts[d] == 0:
            continue
        row = out[d]
        for j in range(starts[d], starts[d] + counts[d]):
            v = a * hashes[j] + b
            i = ((v >> np.uint64(32)) * kk) >> np.uint64(32)
            row[i] = min(row[i], v)  # branchless: 3x faster than a compare and store
        for i in range(k):  # a bin whose minimum is all ones (odds 2**-64 a shingle) counts as empty
            filled[i] = row[i] != _ALL_ONES
        for i in range(k):
            if filled[i]:
                continue
            src = -1
            for t in range(probes.shape[0]):
                if filled[probes[t, i]]:
                    src = probes[t, i]
                    break
            if src < 0:
                src = (i + 1) % k
                while not filled[src]:
                    src = (src + 1) % k
            row[i] = row[src]


def compiled(fn, **options):
    """`fn` compiled by numba as every kernel of the project is (crawlproc.decontam.kernels too)."""
    try:
        return njit(cache=True, nogil=True, **options)(fn)
    except RuntimeError:  # no writable place for numba's cache (read-only code and home): compile per process
        return njit(cache=False, nogil=True, **options)(fn)


if AVAILABLE:
    fmix64 = compiled(fmix64)
    normalize = compiled(_normalize, boundscheck=False)
    shingles = compiled(_shingles, boundscheck=False)
    min_hashes = compiled(_min_hashes, boundscheck=False)
    one_permutation = compiled(_one_permutation, boundscheck=False)
else:
    normalize = shingles = min_hashes = one_permutation = None
