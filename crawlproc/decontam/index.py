"""The n-gram index of benchmark items: which parts of an item are indexed, and the structure matching probes.

What is indexed, per item of a task (crawlproc/evalsuite.py: context, choices, gold):
- the item's text S = its context followed by its gold answer (the right choice), as normalized words
  (crawlproc/decontam/text.py): every n-gram of S (n = 13 by default). That covers the n-grams of the
  context alone, of the gold answer alone, and those that run from the context into the answer, which is
  what datatrove indexes with find_query_ngrams and find_overlap_ngrams;
- an item whose S has fewer than n words, but at least `min_item_words`, is indexed whole: a document holding
  those words in a row matches (GPT-3 picked a shorter n for benchmarks of short items for the same reason);
- a context shorter than n words (but at least `min_item_words`) is also indexed whole, so that a question
  copied without its answer (a quiz page listing the choices below it) is found.
- for edited copies of items of at most 2n words (a changed word breaks every n-gram that spans it, so an
  item of 20 words keeps no 13-gram whole when its middle word changes): the item's own short n-grams
  (coverage_n = 5 words; the ones no other item of any benchmark shares). A document that holds at least `coverage` (half) of an item's own
  short n-grams, and at least `coverage_min` of them, holds the item; the same over the context alone finds
  a question copied without its answer. As PaLM's 70% of 8-grams, but with shorter n-grams, since
  benchmark items are short.
Not indexed: the wrong choices (they are not what a model would learn to answer), the few-shot examples,
and the prompt words of a task: the words every context of a task (of 10 items or more) starts or ends with,
such as "Question:" and "Answer:", which the evaluation adds and a web page copying the item need not have.

An index is plain numpy arrays (shipped to Ray workers as one object and read there without a copy) and
the benchmarks' names, file digests and item ids:
- `keys`: the sorted distinct n-gram keys (crawlproc.decontam.text.window_key); `refs[starts[k]:starts[k+1]]`
  are the items that hold key k (task number << 32 | item number);
- `bloom`: a blocked Bloom filter over the keys (one 64-bit word per key, 3 bits), probed before `keys`;
- `anchors`: a small Bloom filter over the last `min_item_words` words of every part indexed whole, so that
  the longer whole-part windows are only computed where one may end;
- `cov_keys` (sorted), `cov_item`, `cov_pos`: each item's own short n-grams, the item (a global number:
  `item_base[task] + item`) and the n-gram's word position in the item; `s_total`, `c_total` and `c_words`
  per item: its own short n-grams, those inside its context, and its context's length in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from crawlproc.dedup.arrowtext import offsets_and_bytes
from crawlproc.decontam import kernels, text
from crawlproc.evalsuite import Task
from crawlproc.store.fingerprint import digest

VERSION = 1  # of the normalization and the keys: part of every index's fingerprint
TEMPLATE_MIN_ITEMS = 10  # a task needs this many items before words common to all its contexts are prompt words
BLOOM_BITS_PER_KEY = 16
ANCHOR_BITS_PER_KEY = 64


@dataclass
class Benchmark:
    """One task file the index was built from."""

    name: str
    path: str
    sha256: str
    ids: list[str]  # item ids, by item number
    indexed: int = 0  # items with at least one indexed n-gram (the others are too short)
    prompt_prefix: str = ""  # the prompt words left out (normalized), at the start and end of every context
    prompt_suffix: str = ""

    @property
    def items(self) -> int:
        return len(self.ids)

    def record(self) -> dict:
        return {"name": self.name, "path": self.path, "sha256": self.sha256, "items": self.items,
                "indexed_items": self.indexed, "prompt_prefix": self.prompt_prefix,
                "prompt_suffix": self.prompt_suffix}


@dataclass
class Index:
    n: int
    min_item_words: int
    benchmarks: list[Benchmark]
    keys: np.ndarray  # uint64, sorted, distinct
    starts: np.ndarray  # int64, len(keys) + 1
    refs: np.ndarray  # int64: task << 32 | item
    bloom: np.ndarray  # uint64
    bloom_shift: int
    anchors: np.ndarray  # uint64
    anchor_shift: int
    short_lengths: np.ndarray  # int64, ascending: the word counts of the parts indexed whole
    table: np.ndarray = field(repr=False)  # crawlproc.decontam.text.table(), so workers need not build it
    fingerprint: str = ""
    slots: np.ndarray = field(default_factory=lambda: np.zeros(16, np.uint64), repr=False)
    slot_index: np.ndarray = field(default_factory=lambda: np.full(16, -1, np.int64), repr=False)
    slot_shift: int = 60
    coverage_n: int = 0  # 0: no coverage rule
    coverage: float = 0.5
    coverage_min: int = 4
    cov_keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64), repr=False)
    cov_item: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64), repr=False)
    cov_pos: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64), repr=False)
    s_total: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64), repr=False)
    c_total: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64), repr=False)
    c_words: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64), repr=False)
    cov_bloom: np.ndarray = field(default_factory=lambda: np.zeros(64, np.uint64), repr=False)
    cov_shift: int = 58
    cov_slots: np.ndarray = field(default_factory=lambda: np.zeros(16, np.uint64), repr=False)
    cov_slot_index: np.ndarray = field(default_factory=lambda: np.full(16, -1, np.int64), repr=False)
    cov_slot_shift: int = 60
    item_base: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64), repr=False)

    @property
    def size(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.keys, self.starts, self.refs, self.bloom, self.anchors, self.table,
                                      self.cov_keys, self.cov_item, self.cov_pos, self.s_total, self.c_total,
                                      self.c_words, self.cov_bloom, self.slots, self.slot_index, self.cov_slots,
                                      self.cov_slot_index))

    def items_of(self, key_index: int) -> list[tuple[int, int]]:
        """(task number, item number) of every item holding the key at `key_index`."""
        refs = self.refs[self.starts[key_index]: self.starts[key_index + 1]]
        return [(int(r) >> 32, int(r) & 0xFFFFFFFF) for r in refs]

    def item_of(self, g: int) -> tuple[int, int]:
        """(task number, item number) of the global item number g."""
        task = int(np.searchsorted(self.item_base, g, side="right")) - 1
        return task, int(g - self.item_base[task])

    def record(self) -> dict:
        """What the data was cleaned against: the benchmark files (with sha256) and the settings."""
        return {"fingerprint": self.fingerprint, "n": self.n, "min_item_words": self.min_item_words,
                "coverage_n": self.coverage_n, "coverage": self.coverage, "coverage_min": self.coverage_min,
                "ngrams": self.size, "coverage_ngrams": len(self.cov_keys),
                "benchmarks": [b.record() for b in self.benchmarks]}


# --- words of many texts at once -----------------------------------------------------------------------------


def word_hashes(texts: list[str]) -> list[np.ndarray]:
    """The word hashes of each text (crawlproc.decontam.text.word_hash of each normalized word)."""
    if not kernels.AVAILABLE:
        return [np.array([text.word_hash(w) for w in text.words(t)], dtype=np.uint64) for t in texts]
    column = pa.array(texts, pa.large_string())
    offsets, data = offsets_and_bytes(column)
    room = len(data) + 1
    hashes = np.empty(room, np.uint64)
    spans = np.empty(room, np.int64), np.empty(room, np.int64)
    counts = np.zeros(len(texts), np.int64)
    kernels.words(data, offsets, text.table(), hashes, *spans, counts)
    ends = np.cumsum(counts)
    return [hashes[e - c: e] for c, e in zip(counts, ends)]


def window_keys(hashes: np.ndarray, length: int) -> np.ndarray:
    """The keys of every `length`-word window of one text's word hashes."""
    if len(hashes) < length:
        return np.empty(0, np.uint64)
    if not kernels.AVAILABLE:
        h = [int(x) for x in hashes]
        return np.array([text.window_key(h[i: i + length]) for i in range(len(h) - length + 1)], dtype=np.uint64)
    out = np.empty(len(hashes) - length + 1, np.uint64)
    kernels.window_keys(np.ascontiguousarray(hashes, dtype=np.uint64), length, out)
    return out


# --- building ------------------------------------------------------------------------------------------------


def _common_prefix(seqs: list[np.ndarray]) -> int:
    first = seqs[0]
    p = len(first)
    for s in seqs[1:]:
        m = min(p, len(s))
        diff = np.flatnonzero(first[:m] != s[:m])
        p = int(diff[0]) if len(diff) else m
        if p == 0:
            break
    return p


def prompt_words(contexts: list[np.ndarray]) -> tuple[int, int]:
    """(prefix, suffix): how many words every context starts and ends with (0, 0 below TEMPLATE_MIN_ITEMS)."""
    if len(contexts) < TEMPLATE_MIN_ITEMS:
        return 0, 0
    prefix = _common_prefix(contexts)
    suffix = _common_prefix([c[prefix:][::-1] for c in contexts])
    return prefix, suffix


def _slots(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """An open-addressing table of the sorted `keys` at most half full (as kernels._find reads it): the
    slots' keys, each slot's index into `keys` (-1: empty), and the shift that takes a key to its slot."""
    bits = max(4, int(np.ceil(np.log2(max(1, len(keys)) * 2))))
    slots = np.zeros(1 << bits, np.uint64)
    index = np.full(1 << bits, -1, np.int64)
    kernels.fill_slots(keys, 64 - bits, slots, index)
    return slots, index, 64 - bits


def _bloom(keys: np.ndarray, bits_per_key: int) -> tuple[np.ndarray, int]:
    """A blocked Bloom filter over `keys` (as kernels._maybe probes it): its words and the key shift."""
    words = 1 << max(6, int(np.ceil(np.log2(max(1, len(keys)) * bits_per_key / 64))))
    shift = 64 - int(np.log2(words))
    bloom = np.zeros(words, np.uint64)
    if len(keys):
        one = np.uint64(1)
        bits = (one << (keys & np.uint64(63))) | (one << ((keys >> np.uint64(6)) & np.uint64(63))) \
            | (one << ((keys >> np.uint64(12)) & np.uint64(63)))
        np.bitwise_or.at(bloom, (keys >> np.uint64(shift)).astype(np.int64), bits)
    return bloom, shift


def _coverage_keys(parts: list[tuple[np.ndarray, int]], cov_n: int, cov_min: int, longest: int) -> dict:
    """The coverage arrays from each item's (words, context length), in global item order, for the items of
    at most `longest` words (2n: one changed word can break every n-gram of those; a longer item keeps an
    n-gram whole on one side of the change)."""
    keys, items, pos = [], [], []
    for g, (whole, _) in enumerate(parts):
        if len(whole) > longest:
            continue
        k = window_keys(whole, cov_n)
        keys.append(k)
        items.append(np.full(len(k), g, np.int64))
        pos.append(np.arange(len(k), dtype=np.int64))
    keys = np.concatenate(keys) if keys else np.empty(0, np.uint64)
    items = np.concatenate(items) if items else np.empty(0, np.int64)
    pos = np.concatenate(pos) if pos else np.empty(0, np.int64)
    order = np.lexsort((pos, items, keys))
    keys, items, pos = keys[order], items[order], pos[order]
    first = np.ones(len(keys), bool)  # an item's repeated n-gram: its first place only
    first[1:] = (keys[1:] != keys[:-1]) | (items[1:] != items[:-1])
    keys, items, pos = keys[first], items[first], pos[first]
    own = np.ones(len(keys), bool)  # n-grams of more than one item are nobody's own
    same = keys[1:] == keys[:-1]
    own[1:] &= ~same
    own[:-1] &= ~same
    keys, items, pos = keys[own], items[own], pos[own]
    words = np.array([lc for _, lc in parts], np.int64)
    s_total = np.bincount(items, minlength=len(parts)).astype(np.int64)
    c_total = np.bincount(items[pos + cov_n <= words[items]], minlength=len(parts)).astype(np.int64)
    enough = s_total[items] >= cov_min  # an item with fewer own n-grams than cov_min can never be covered
    keys, items, pos = keys[enough], items[enough], pos[enough]
    bloom, shift = _bloom(keys, BLOOM_BITS_PER_KEY)
    slots, slot_index, slot_shift = _slots(keys)
    return {"cov_keys": keys, "cov_item": items, "cov_pos": pos, "s_total": s_total, "c_total": c_total,
            "c_words": words, "cov_bloom": bloom, "cov_shift": shift, "cov_slots": slots,
            "cov_slot_index": slot_index, "cov_slot_shift": slot_shift}


def build_index(tasks: list[Task], n: int = 13, min_item_words: int = 8, strip_prompt_words: bool = True,
                coverage_n: int = 5, coverage: float = 0.5, coverage_min: int = 4) -> Index:
    """The index of `tasks`' items (see the module docstring); coverage_n = 0 leaves out the coverage rule."""
    key_parts, ref_parts, anchor_parts, short = [], [], [], set()
    benchmarks, cov_parts, item_base = [], [], [0]
    for t_no, task in enumerate(tasks):
        per_item = word_hashes([s for it in task.items for s in (it.context, it.answer)])
        contexts, answers = per_item[0::2], per_item[1::2]
        prefix, suffix = prompt_words(contexts) if strip_prompt_words else (0, 0)
        first = text.words(task.items[0].context)
        bench = Benchmark(task.name, task.path, task.sha256, [it.id for it in task.items],
                          prompt_prefix=" ".join(first[:prefix]),
                          prompt_suffix=" ".join(first[len(first) - suffix:]) if suffix else "")
        for i_no, (ctx, ans) in enumerate(zip(contexts, answers)):
            ctx = ctx[prefix: len(ctx) - suffix]
            whole = np.concatenate((ctx, ans))
            cov_parts.append((whole, len(ctx)))
            keys = [window_keys(whole, n)]
            parts = []
            if len(whole) < n and min_item_words and len(whole) >= min_item_words:
                parts.append(whole)
            if min_item_words <= len(ctx) < n and len(ctx) < len(whole) and min_item_words:
                parts.append(ctx)
            for part in parts:
                keys.append(window_keys(part, len(part)))
                anchor_parts.append(window_keys(part[len(part) - min_item_words:], min_item_words))
                short.add(len(part))
            keys = np.concatenate(keys)
            if len(keys):
                bench.indexed += 1
                key_parts.append(keys)
                ref_parts.append(np.full(len(keys), t_no << 32 | i_no, np.int64))
        benchmarks.append(bench)
        item_base.append(item_base[-1] + len(task.items))
    all_keys = np.concatenate(key_parts) if key_parts else np.empty(0, np.uint64)
    all_refs = np.concatenate(ref_parts) if ref_parts else np.empty(0, np.int64)
    order = np.lexsort((all_refs, all_keys))
    all_keys, all_refs = all_keys[order], all_refs[order]
    distinct_pair = np.ones(len(all_keys), bool)  # one ref per (key, item): an item may repeat an n-gram
    distinct_pair[1:] = (all_keys[1:] != all_keys[:-1]) | (all_refs[1:] != all_refs[:-1])
    all_keys, all_refs = all_keys[distinct_pair], all_refs[distinct_pair]
    new_key = np.ones(len(all_keys), bool)
    new_key[1:] = all_keys[1:] != all_keys[:-1]
    keys = all_keys[new_key]
    starts = np.append(np.flatnonzero(new_key), len(all_keys)).astype(np.int64)
    bloom, shift = _bloom(keys, BLOOM_BITS_PER_KEY)
    anchors = np.unique(np.concatenate(anchor_parts)) if anchor_parts else np.empty(0, np.uint64)
    anchor_bloom, anchor_shift = _bloom(anchors, ANCHOR_BITS_PER_KEY)
    fingerprint = digest({"version": VERSION, "n": n, "min_item_words": min_item_words,
                          "strip_prompt_words": strip_prompt_words, "coverage_n": coverage_n, "coverage": coverage,
                          "coverage_min": coverage_min, "tasks": [[t.name, t.sha256] for t in tasks]})
    cov = _coverage_keys(cov_parts, coverage_n, coverage_min, 2 * n) if coverage_n else {}
    slots, slot_index, slot_shift = _slots(keys)
    return Index(n, min_item_words, benchmarks, keys, starts, all_refs, bloom, shift, anchor_bloom, anchor_shift,
                 np.array(sorted(short), np.int64), text.table(), fingerprint, slots, slot_index, slot_shift,
                 coverage_n, coverage, coverage_min, item_base=np.array(item_base, np.int64), **cov)


_CACHE: dict[tuple, Index] = {}
CACHE_SIZE = 2


def cached_index(tasks: list[Task], **settings) -> Index:
    """build_index(tasks, **settings), reused while the same files (by sha256) and settings are asked for again
    in this process (a test session, a driver running several snapshots)."""
    key = (tuple((t.name, t.sha256) for t in tasks), tuple(sorted(settings.items())))
    if key not in _CACHE:
        while len(_CACHE) >= CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = build_index(tasks, **settings)
    return _CACHE[key]
