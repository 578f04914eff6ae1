"""Matching documents against an index: which documents share indexed n-grams, with which items, where.

`find(index, texts)` scans a batch (an Arrow string column, as a Parquet file gives it, or a list of str) in
one compiled pass and returns a `Contamination` for each document with at least one indexed n-gram:
- `ngrams`: how many distinct indexed n-grams it holds (what `min_matches` counts);
- the item it shares the most of them with (ties: the one matched first in the text), its benchmark, and
  the first of those n-grams as normalized words (what explain shows);
- `items`: every (benchmark, item) any of its n-grams belongs to (the report's "items seen");
- `spans`: the byte spans of its UTF-8 text that matched (what the cut mode removes).
Documents without any match cost nothing past the scan.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from crawlproc.dedup.arrowtext import offsets_and_bytes
from crawlproc.decontam import kernels, text
from crawlproc.decontam.index import Index

BATCH_BYTES = 64 << 20  # text scanned per kernel call: the hit arrays and word buffers stay small


@dataclass
class Contamination:
    row: int
    ngrams: int  # distinct indexed n-grams found (what min_matches counts)
    task: int  # benchmark number (index.benchmarks)
    item: int  # item number in that benchmark
    ngram: str  # the first n-gram shared with that item (normalized words), or the span that covers it
    items: set[tuple[int, int]] = field(default_factory=set)
    spans: list[tuple[int, int]] = field(default_factory=list)  # byte spans of the UTF-8 text, merged
    covered: int = 0  # items the document covers (the coverage rule)
    via: str = "ngram"  # "ngram": the reported item shares n-grams; "coverage": it is covered

    def benchmark(self, index: Index) -> str:
        return index.benchmarks[self.task].name

    def item_id(self, index: Index) -> str:
        return index.benchmarks[self.task].ids[self.item]

    def contaminated(self, min_matches: int) -> bool:
        return self.ngrams >= min_matches or self.covered > 0


def utf8_column(texts) -> pa.Array:
    """An Arrow large_string (or large_binary) column of the texts, without a copy where it already is one."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if isinstance(texts, pa.Array):
        if texts.type in (pa.large_string(), pa.large_binary()):
            return texts
        return texts.cast(pa.large_binary() if pa.types.is_binary(texts.type) else pa.large_string())
    try:
        return pa.array(texts, pa.large_string())
    except (pa.ArrowInvalid, UnicodeEncodeError):  # lone surrogates: kept as bytes, read as boundaries
        return pa.array([(t or "").encode("utf-8", "surrogatepass") for t in texts], pa.large_binary())


def powers(n: int) -> np.ndarray:
    return np.array([pow(text.POLY_BASE, k, 1 << 64) for k in range(n + 1)], dtype=np.uint64)


def _hits_compiled(index: Index, offsets: np.ndarray, data: np.ndarray) -> tuple[tuple, tuple]:
    """((document, key index, byte start, byte end) of every n-gram hit, in text order per document;
    (document, global item, short n-grams held, byte start, byte end) of every item covered)."""
    hits, cov = kernels.match(
        data, offsets, index.table, index.n, index.min_item_words, index.short_lengths, index.bloom,
        index.bloom_shift, index.slots, index.slot_index, index.slot_shift, index.anchors, index.anchor_shift,
        index.coverage_n, index.cov_bloom, index.cov_shift, index.cov_slots, index.cov_slot_index,
        index.cov_slot_shift, index.cov_item, index.cov_pos, index.s_total, index.c_total, index.c_words,
        float(index.coverage), index.coverage_min, powers(max(index.n, index.coverage_n)))
    return tuple(hits[:, k] for k in range(4)), tuple(cov[:, k] for k in range(5))


def _hits_reference(index: Index, offsets: np.ndarray, data: np.ndarray) -> tuple[tuple, tuple]:
    """The same in plain Python (crawlproc.decontam.text), for a machine without numba."""
    lengths = [index.n] + ([int(x) for x in index.short_lengths] if index.min_item_words else [])
    hits: list[tuple[int, int, int, int]] = []
    cov: list[tuple[int, int, int, int, int]] = []
    raw = data.tobytes()

    def find(keys, key):
        i = int(np.searchsorted(keys, np.uint64(key)))
        return i if i < len(keys) and int(keys[i]) == key else -1

    for doc in range(len(offsets) - 1):
        body = raw[offsets[doc]: offsets[doc + 1]].decode("utf-8", "surrogatepass")
        spans = list(text.iter_words(body))
        hashes = [text.word_hash(w) for w, _, _ in spans]
        at = int(offsets[doc])  # spans are offsets into the batch's bytes, as the kernel gives them
        starts = [at + len(body[:s].encode("utf-8", "surrogatepass")) for _, s, _ in spans]
        ends = [at + len(body[:e].encode("utf-8", "surrogatepass")) for _, _, e in spans]
        held: dict[int, dict] = {}  # global item -> {key index: end word}
        for c in range(1, len(hashes) + 1):
            for length in lengths:
                if c >= length:
                    i = find(index.keys, text.window_key(hashes[c - length: c]))
                    if i >= 0:
                        hits.append((doc, i, starts[c - length], ends[c - 1]))
            m = index.coverage_n
            if m and c >= m:
                i = find(index.cov_keys, text.window_key(hashes[c - m: c]))
                if i >= 0:
                    held.setdefault(int(index.cov_item[i]), {}).setdefault(i, []).append(c)
        for g in sorted(held):
            got = held[g]
            count = len(got)
            in_context = sum(1 for i in got if index.cov_pos[i] + index.coverage_n <= index.c_words[g])
            need_all = max(index.coverage_min, int(np.ceil(index.coverage * index.s_total[g] - 1e-9)))
            need_context = max(index.coverage_min, int(np.ceil(index.coverage * index.c_total[g] - 1e-9)))
            if count >= need_all or (index.c_total[g] > 0 and in_context >= need_context):
                ends_at = [c for cs in got.values() for c in cs]
                cov.append((doc, g, count, min(starts[c - index.coverage_n] for c in ends_at),
                            max(ends[c - 1] for c in ends_at)))
    h = np.array(hits, dtype=np.int64).reshape(-1, 4)
    v = np.array(cov, dtype=np.int64).reshape(-1, 5)
    return tuple(h[:, k] for k in range(4)), tuple(v[:, k] for k in range(5))


def _batches(offsets: np.ndarray):
    """[first, last) document ranges of about BATCH_BYTES of text each."""
    first = 0
    while first < len(offsets) - 1:
        last = int(np.searchsorted(offsets, offsets[first] + BATCH_BYTES, side="right"))
        last = min(max(last - 1, first + 1), len(offsets) - 1)
        yield first, last
        first = last


def find(index: Index, texts) -> list[Contamination]:
    """The documents of `texts` (row numbers in the batch) that share an indexed n-gram or cover an item,
    each with what it matched; `Contamination.contaminated(min_matches)` decides."""
    column = utf8_column(texts)
    offsets, data = offsets_and_bytes(column)
    if not index.size and not len(index.cov_keys):
        return []
    hits_of = _hits_compiled if kernels.AVAILABLE else _hits_reference
    out: list[Contamination] = []
    for first, last in _batches(offsets):
        base = offsets[first]
        hits, cov = hits_of(index, offsets[first: last + 1] - base, data[base: offsets[last]])
        by_doc: dict[int, list] = {}
        for k, d in enumerate(hits[0].tolist()):
            by_doc.setdefault(d, [[], []])[0].append(k)
        for k, d in enumerate(cov[0].tolist()):
            by_doc.setdefault(d, [[], []])[1].append(k)
        for d in sorted(by_doc):
            row = d + first
            shift = base - offsets[row]
            h, c = by_doc[d]
            out.append(_contamination(
                index, row, hits[1][h], hits[2][h] + shift, hits[3][h] + shift,
                cov[1][c], cov[2][c], cov[3][c] + shift, cov[4][c] + shift, data[offsets[row]: offsets[row + 1]]))
    return out


MAX_SPAN_WORDS = 40  # a coverage match is shown as the span it covers, cut at this many words


def _contamination(index: Index, row: int, keys, starts, ends, cov_g, cov_count, cov_starts, cov_ends,
                   body: np.ndarray) -> Contamination:
    per_item: Counter = Counter()
    first_of: dict[tuple[int, int], int] = {}
    items: set[tuple[int, int]] = set()
    seen_keys: set[int] = set()
    for h, k in enumerate(keys.tolist()):
        for ref in index.items_of(k):
            items.add(ref)
            first_of.setdefault(ref, h)
            if k not in seen_keys:
                per_item[ref] += 1
        seen_keys.add(k)
    covered = [(index.item_of(int(g)), int(n), int(s), int(e))
               for g, n, s, e in zip(cov_g.tolist(), cov_count.tolist(), cov_starts.tolist(), cov_ends.tolist())]
    items.update(ref for ref, _, _, _ in covered)

    def words_of(start: int, end: int) -> str:
        return text.normalized(body[start:end].tobytes().decode("utf-8", "replace"))

    if per_item:
        best = max(per_item, key=lambda ref: (per_item[ref], -first_of[ref]))
        h = first_of[best]
        ngram, via = words_of(starts[h], ends[h]), "ngram"
    else:
        best, _, s, e = max(covered, key=lambda c: c[1])
        words = words_of(s, e).split()
        ngram = " ".join(words[:MAX_SPAN_WORDS]) + (" ..." if len(words) > MAX_SPAN_WORDS else "")
        via = "coverage"
    spans = merge_spans([*starts.tolist(), *(s for _, _, s, _ in covered)],
                        [*ends.tolist(), *(e for _, _, _, e in covered)])
    return Contamination(row, len(seen_keys), best[0], best[1], ngram, items, spans, len(covered), via)


def merge_spans(starts, ends) -> list[tuple[int, int]]:
    spans = sorted(zip(map(int, starts), map(int, ends)))
    merged: list[list[int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]
