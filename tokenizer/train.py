"""Training: learn BPE merges from a corpus. Separate from encoding (core.py), which only needs the ranks.

`train_bpe` uses rustbpe (Rust, parallel counting) when it is installed and the small pure-Python trainer
below otherwise; both implement the same rule: split each text with the regex, count the pieces, then repeatedly
merge the most frequent adjacent pair of tokens into a new token whose rank is the next free id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import pairwise

import regex

from tokenizer.core import EOT, GPT4_PATTERN, BPETokenizer, replace_surrogates


def _clean(texts: Iterable[str], counts: Counter) -> Iterator[str]:
    for text in texts:
        if not isinstance(text, str) or not text:
            counts["empty"] += 1
            continue
        text, replaced = replace_surrogates(text)
        counts["surrogates_replaced"] += replaced
        yield text


def train_bpe(
    texts: Iterable[str],
    vocab_size: int,
    special_tokens: list[str] | tuple[str, ...] = (EOT,),
    pattern: str = GPT4_PATTERN,
    name: str = "bpe",
    engine: str = "auto",
) -> BPETokenizer:
    """Learn a byte-level BPE with `vocab_size` ids in total (256 bytes + merges + special tokens).

    A corpus too small to support that many merges yields fewer (the vocabulary is then smaller). `engine` is
    "rustbpe", "python" or "auto" (rustbpe if importable)."""
    n_merges = vocab_size - 256 - len(special_tokens)
    if n_merges < 0:
        raise ValueError(f"vocab_size {vocab_size} is below 256 bytes + {len(special_tokens)} special tokens")
    if len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"duplicate special tokens: {special_tokens}")
    counts: Counter = Counter()
    if engine == "auto":
        try:
            import rustbpe  # noqa: F401

            engine = "rustbpe"
        except ImportError:
            engine = "python"
    if engine == "rustbpe":
        ranks = _train_rustbpe(_clean(texts, counts), n_merges, pattern)
    elif engine == "python":
        ranks = train_merges_python(_clean(texts, counts), n_merges, pattern)
    else:
        raise ValueError(f"unknown training engine {engine!r} (rustbpe, python, auto)")
    first_special = max(ranks.values()) + 1
    specials = {s: first_special + i for i, s in enumerate(special_tokens)}
    tok = BPETokenizer(ranks, pattern=pattern, special_tokens=specials, name=name)
    tok.stats.update(counts)
    return tok


def _train_rustbpe(texts: Iterator[str], n_merges: int, pattern: str) -> dict[bytes, int]:
    import rustbpe

    trainer = rustbpe.Tokenizer()
    trainer.train_from_iterator(texts, 256 + n_merges, pattern=pattern)
    return {bytes(token): rank for token, rank in trainer.get_mergeable_ranks()}


def train_merges_python(texts: Iterable[str], n_merges: int, pattern: str = GPT4_PATTERN) -> dict[bytes, int]:
    """The readable trainer: count distinct pieces once, then merge the most frequent pair n_merges times
    (ties go to the smallest pair of ids). Fine for small corpora and tests; rustbpe does the same, faster."""
    piece_counts: Counter = Counter()
    for text in texts:
        piece_counts.update(regex.findall(pattern, text))
    words = [[*p.encode("utf-8")] for p in piece_counts]
    freqs = list(piece_counts.values())
    ranks = {bytes([b]): b for b in range(256)}
    vocab = [bytes([b]) for b in range(256)]
    while len(vocab) < 256 + n_merges:
        pairs: Counter = Counter()
        for word, freq in zip(words, freqs):
            for pair in pairwise(word):
                pairs[pair] += freq
        if not pairs:
            break  # every piece is a single token: the corpus supports no more merges
        best = max(pairs.items(), key=lambda kv: (kv[1], (-kv[0][0], -kv[0][1])))[0]
        merged = vocab[best[0]] + vocab[best[1]]
        if merged in ranks:  # same bytes reached by another split: reuse that id, add no duplicate token
            new_id = ranks[merged]
        else:
            new_id = len(vocab)
            vocab.append(merged)
            ranks[merged] = new_id
        for word in words:
            i = 0
            while i < len(word) - 1:
                if word[i] == best[0] and word[i + 1] == best[1]:
                    word[i : i + 2] = [new_id]
                i += 1
    return ranks
