"""The compiled passes of decontamination (numba): the words of a batch of texts, straight from their UTF-8
bytes, and the n-gram matching of a batch of documents against an index.

Both walk the bytes once: decode a character, map it through crawlproc.decontam.text's table, and grow the
current word's hash (FNV-1a over mapped code points, as text.word_hash); a finished word's hash extends the
polynomial of the text's words, so the key of the n-gram that ends at any word (text.window_key) is two
multiplications away for any length up to n. No normalized text is ever written out. The plain-Python
reference is crawlproc.decontam.text; tests/test_decontam_text.py checks that both give the same words and
keys on real pages and generated text.

Matching probes a blocked Bloom filter first (one 64-bit word per key, three bits: a cache line, in a
filter of ~2 MB for a million n-grams), and looks a key up in the sorted keys only when the filter says it
may be there; most words of most documents stop at the filter.

numba is a declared dependency; without it (or with CRAWLPROC_NUMBA=0) crawlproc.decontam.match runs the
reference in Python, with the same results, far more slowly.
"""

from __future__ import annotations

import numpy as np

# numba, its cache fallback and MurmurHash3's finalizer have one owner: the MinHash kernels. Without numba (or
# with CRAWLPROC_NUMBA=0) the Python reference of crawlproc.decontam.match and .index runs instead
from crawlproc.dedup.kernels import AVAILABLE, compiled, fmix64
from crawlproc.decontam.text import (
    BOUNDARY, DELETE, DIGIT, FNV_OFFSET, FNV_PRIME, LENGTH_SALT, POLY_BASE, TABLE_SIZE, UNSPACED,
)

_FNV_OFFSET = np.uint64(FNV_OFFSET)
_FNV_PRIME = np.uint64(FNV_PRIME)
_BASE = np.uint64(POLY_BASE)
_SALT = np.uint64(LENGTH_SALT)
_BOUNDARY, _DELETE, _DIGIT, _UNSPACED = np.uint32(BOUNDARY), np.uint32(DELETE), np.uint32(DIGIT), np.uint32(UNSPACED)
_TABLE_SIZE = TABLE_SIZE
_PLANE3_END = 0x3FFFF


def _decode(data, pos, end):
    """(code point, bytes) of the UTF-8 character at `pos`; an invalid byte is (-1, 1)."""
    c = np.int64(data[pos])
    if c < 0x80:
        return c, 1
    if c >= 0xF8 or c < 0xC0:
        return -1, 1
    size = 2 if c < 0xE0 else (3 if c < 0xF0 else 4)
    if pos + size > end:
        return -1, 1
    cp = c & (0x1F if size == 2 else (0x0F if size == 3 else 0x07))
    for k in range(1, size):
        b = np.int64(data[pos + k])
        if b & 0xC0 != 0x80:
            return -1, 1
        cp = (cp << 6) | (b & 0x3F)
    return cp, size


def _class(table, cp):
    if cp < 0:
        return _BOUNDARY
    if cp < _TABLE_SIZE:
        return table[cp]
    if cp <= _PLANE3_END:
        return _UNSPACED | np.uint32(cp)
    return _BOUNDARY


def _text_words(data, start, end, table, hashes, starts, ends, m):
    """Append the words of data[start:end] (hash, byte start, byte end) at index m; return the new m.
    The state machine of text.iter_words."""
    pos = start
    h = _FNV_OFFSET
    in_word = in_number = held = False
    wstart = wend = 0
    while pos < end:
        cp = np.int64(data[pos])
        here = pos
        if cp < 0x80:  # ASCII: no decoding
            v = table[cp]
            pos += 1
            if v < _UNSPACED and v != _BOUNDARY and not held:  # a letter (most bytes): it grows the word
                if not in_word:
                    in_word, wstart = True, here
                h = (h ^ np.uint64(v)) * _FNV_PRIME
                in_number = False
                wend = pos
                continue
        else:
            cp, size = _decode(data, pos, end)
            v = _class(table, cp)
            pos += size
        if v == _DELETE:
            continue
        if held:
            held = False
            if v == _DIGIT:
                wend = pos
                continue
            if in_word:
                hashes[m], starts[m], ends[m] = fmix64(h), wstart, wend
                m += 1
                in_word = False
                h = _FNV_OFFSET
            in_number = False
        if v == _DIGIT:
            if not in_word:
                in_word, wstart = True, here
            if not in_number:
                h = (h ^ np.uint64(48)) * _FNV_PRIME
                in_number = True
            wend = pos
        elif v == _BOUNDARY:
            if in_number and (cp == 46 or cp == 44):
                held = True
                continue
            if in_word:
                hashes[m], starts[m], ends[m] = fmix64(h), wstart, wend
                m += 1
                in_word = False
                h = _FNV_OFFSET
            in_number = False
        elif v & _UNSPACED:
            if in_word:
                hashes[m], starts[m], ends[m] = fmix64(h), wstart, wend
                m += 1
                in_word = False
                h = _FNV_OFFSET
            in_number = False
            one = (_FNV_OFFSET ^ np.uint64(v & ~_UNSPACED)) * _FNV_PRIME
            hashes[m], starts[m], ends[m] = fmix64(one), here, pos
            m += 1
        else:
            if not in_word:
                in_word, wstart = True, here
            h = (h ^ np.uint64(v)) * _FNV_PRIME
            in_number = False
            wend = pos
    if in_word:
        hashes[m], starts[m], ends[m] = fmix64(h), wstart, wend
        m += 1
    return m


def _words(data, offsets, table, hashes, starts, ends, counts):
    """Every text's words, text after text: hashes and byte spans (relative to data); counts[t] = words
    of text t. The outputs hold at least as many entries as there are bytes."""
    m = 0
    for t in range(offsets.shape[0] - 1):
        before = m
        m = _text_words(data, offsets[t], offsets[t + 1], table, hashes, starts, ends, m)
        counts[t] = m - before
    return m


def _window_keys(hashes, length, out):
    """out[i] = the key of the n-gram hashes[i:i + length] (text.window_key), for every full window."""
    n = hashes.shape[0]
    power = np.uint64(1)
    for _ in range(length):
        power *= _BASE
    salt = np.uint64(length) * _SALT
    p = np.uint64(0)
    prefix = np.zeros(n + 1, dtype=np.uint64)
    for i in range(n):
        p = p * _BASE + hashes[i]
        prefix[i + 1] = p
    for i in range(n - length + 1):
        out[i] = prefix[i + length] - prefix[i] * power + salt


def _maybe(bloom, shift, key):
    word = bloom[key >> shift]
    bits = ((np.uint64(1) << (key & np.uint64(63))) | (np.uint64(1) << ((key >> np.uint64(6)) & np.uint64(63)))
            | (np.uint64(1) << ((key >> np.uint64(12)) & np.uint64(63))))
    return (word & bits) == bits


def _find(slots, slot_index, shift, key):
    """The index (in the sorted keys) of `key` in an open-addressing table (linear probing from the key's top
    bits; slot_index -1 is empty), or -1: one cache line for most lookups, where a binary search over a
    million keys takes twenty."""
    s = np.int64(key >> np.uint64(shift))
    mask = slots.shape[0] - 1
    while True:
        i = slot_index[s]
        if i < 0:
            return -1
        if slots[s] == key:
            return i
        s = (s + 1) & mask


def _fill_slots(keys, shift, slots, slot_index):
    mask = slots.shape[0] - 1
    for i in range(keys.shape[0]):
        s = np.int64(keys[i] >> np.uint64(shift))
        while slot_index[s] >= 0:
            s = (s + 1) & mask
        slots[s] = keys[i]
        slot_index[s] = i


def _match(data, offsets, table, n, short_min, short_lengths, bloom, shift, slots, slot_index, slot_shift, anchors,
           anchor_shift, cov_n, cov_bloom, cov_shift, cov_slots, cov_slot_index, cov_slot_shift, cov_item, cov_pos,
           s_total, c_total, c_words, coverage, cov_min,
           powers):
    """Every occurrence in the texts of an indexed n-gram (n words, or a short part's whole length: one of
    `short_lengths`, each >= short_min, whose last short_min words pass the `anchors` filter first), and every
    item a text covers: it holds at least `coverage` of the item's own cov_n-grams (and cov_min of them), of
    the whole item or of its context alone.
    Returns (hits, covered): one row per n-gram hit (text, index in `keys`, byte start, byte end) and one per
    item covered (text, global item number, cov_n-grams held, byte span from the first to the last)."""
    hits = np.empty((1024, 4), dtype=np.int64)
    cov = np.empty((64, 5), dtype=np.int64)
    found = covered = 0
    longest = 0
    for t in range(offsets.shape[0] - 1):
        longest = max(longest, offsets[t + 1] - offsets[t])
    hashes = np.empty(longest + 1, dtype=np.uint64)  # a text has at most one word per byte
    starts = np.empty(longest + 1, dtype=np.int64)
    ends = np.empty(longest + 1, dtype=np.int64)
    prefix = np.empty(longest + 2, dtype=np.uint64)  # prefix[c]: the polynomial of the text's first c words
    held = np.empty(longest + 1, dtype=np.int64)  # the text's cov_n-gram hits: index in cov_keys
    held_at = np.empty(longest + 1, dtype=np.int64)  # and the word where each ends
    n_salt = np.uint64(n) * _SALT
    short_salt = np.uint64(short_min) * _SALT
    cov_salt = np.uint64(cov_n) * _SALT
    for t in range(offsets.shape[0] - 1):
        words = _text_words(data, offsets[t], offsets[t + 1], table, hashes, starts, ends, 0)
        p = np.uint64(0)
        prefix[0] = p
        for c in range(1, words + 1):  # one loop per kind of window: short loops the CPU runs ahead in
            p = p * _BASE + hashes[c - 1]
            prefix[c] = p
        for c in range(n, words + 1):
            key = prefix[c] - prefix[c - n] * powers[n] + n_salt
            if _maybe(bloom, shift, key):
                i = _find(slots, slot_index, slot_shift, key)
                if i >= 0:
                    if found == hits.shape[0]:
                        hits = _grown(hits)
                    hits[found, 0], hits[found, 1], hits[found, 2], hits[found, 3] = t, i, starts[c - n], ends[c - 1]
                    found += 1
        if short_min > 0:
            for c in range(short_min, words + 1):
                p = prefix[c]
                key = p - prefix[c - short_min] * powers[short_min] + short_salt
                if not _maybe(anchors, anchor_shift, key):
                    continue
                for j in range(short_lengths.shape[0]):
                    length = short_lengths[j]
                    if c < length:
                        break
                    key = p - prefix[c - length] * powers[length] + np.uint64(length) * _SALT
                    if _maybe(bloom, shift, key):
                        i = _find(slots, slot_index, slot_shift, key)
                        if i >= 0:
                            if found == hits.shape[0]:
                                hits = _grown(hits)
                            hits[found, 0], hits[found, 1] = t, i
                            hits[found, 2], hits[found, 3] = starts[c - length], ends[c - 1]
                            found += 1
        if cov_n > 0:
            nheld = 0
            for c in range(cov_n, words + 1):
                key = prefix[c] - prefix[c - cov_n] * powers[cov_n] + cov_salt
                if _maybe(cov_bloom, cov_shift, key):
                    i = _find(cov_slots, cov_slot_index, cov_slot_shift, key)
                    if i >= 0:
                        held[nheld], held_at[nheld] = i, c
                        nheld += 1
            if nheld:
                cov, covered = _covered(t, held, held_at, nheld, starts, ends, cov_n, cov_item, cov_pos, s_total,
                                        c_total, c_words, coverage, cov_min, cov, covered)
    return hits[:found], cov[:covered]


def _grown(rows):
    """`rows` in an array twice as long (the kernels' outputs grow as they find more)."""
    out = np.empty((2 * rows.shape[0], rows.shape[1]), dtype=rows.dtype)
    out[: rows.shape[0]] = rows
    return out


def _covered(t, held, held_at, nheld, starts, ends, cov_n, cov_item, cov_pos, s_total, c_total, c_words,
             coverage, cov_min, cov, covered):
    """The items text t covers, from its cov_n-gram hits (held[:nheld]), appended to `cov` at row `covered`;
    returns (cov, covered), cov grown when full."""
    order = np.argsort(held[:nheld])  # by key: a key belongs to one item, so an item's keys are together...
    items = cov_item[held[order]]
    order = order[np.argsort(items, kind="mergesort")]  # ...and by item, keys ascending within each
    k = 0
    while k < nheld:
        g = cov_item[held[order[k]]]
        count = in_context = 0
        first, last = np.int64(1) << 62, np.int64(-1)
        previous = -1
        while k < nheld and cov_item[held[order[k]]] == g:
            key = held[order[k]]
            end_word = held_at[order[k]]
            first = min(first, starts[end_word - cov_n])
            last = max(last, ends[end_word - 1])
            if key != previous:
                count += 1
                if cov_pos[key] + cov_n <= c_words[g]:
                    in_context += 1
                previous = key
            k += 1
        need_all = max(cov_min, np.int64(np.ceil(coverage * s_total[g] - 1e-9)))
        need_context = max(cov_min, np.int64(np.ceil(coverage * c_total[g] - 1e-9)))
        if count >= need_all or (c_total[g] > 0 and in_context >= need_context):
            if covered == cov.shape[0]:
                cov = _grown(cov)
            cov[covered, 0], cov[covered, 1], cov[covered, 2], cov[covered, 3], cov[covered, 4] = \
                t, g, count, first, last
            covered += 1
    return cov, covered


if AVAILABLE:
    _decode = compiled(_decode, boundscheck=False)
    _class = compiled(_class, boundscheck=False)
    _text_words = compiled(_text_words, boundscheck=False)
    _maybe = compiled(_maybe, boundscheck=False)
    _find = compiled(_find, boundscheck=False)
    fill_slots = compiled(_fill_slots, boundscheck=False)
    words = compiled(_words, boundscheck=False)
    window_keys = compiled(_window_keys, boundscheck=False)
    _grown = compiled(_grown)
    _covered = compiled(_covered, boundscheck=False)
    match = compiled(_match, boundscheck=False)
else:
    words = window_keys = match = None
    fill_slots = _fill_slots
