"""The BPE tokenizer: mergeable ranks + a split regex + special tokens; encode and decode.

A token is a byte string; its rank is both its id and its merge priority (lower merges first), as in tiktoken.
Encoding splits text with the regex, then inside each piece repeatedly merges the adjacent pair whose
concatenation has the lowest rank (`bpe_merge`, the readable reference). The fast path hands the same ranks to
tiktoken's Rust core, which implements exactly this rule, so ids never depend on which path ran.

Text must be valid Unicode to be encoded. Python strings may hold lone surrogates (from a bad decoder or a
JSON escape); they are replaced with U+FFFD before encoding and counted in `stats["surrogates_replaced"]`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np

# GPT-4 style pre-tokenization: contractions, letters with one leading non-letter, numbers in groups of at most
# 3 digits, punctuation runs, newlines, whitespace (trailing whitespace stays off the next word).
GPT4_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
EOT = "<|endoftext|>"
_NONE: frozenset[str] = frozenset()


def replace_surrogates(text: str) -> tuple[str, bool]:
    """Return (valid Unicode text, whether anything was replaced). Surrogate pairs written as two code points
    become the character they stand for; lone surrogates become U+FFFD."""
    try:
        text.encode("utf-8")
        return text, False
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"), True


def bpe_merge(ranks: dict[bytes, int], piece: bytes, max_rank: int | None = None) -> list[bytes]:
    """Split one pre-tokenized piece into tokens: merge the lowest-ranked adjacent pair until none is left.
    With `max_rank`, only tokens ranked below it may be formed (used to recover a token's merge)."""
    parts = [bytes([b]) for b in piece]
    while len(parts) > 1:
        best_rank, best_i = None, -1
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            allowed = rank is not None and (max_rank is None or rank < max_rank)
            if allowed and (best_rank is None or rank < best_rank):
                best_rank, best_i = rank, i
        if best_rank is None:
            break
        parts[best_i : best_i + 2] = [parts[best_i] + parts[best_i + 1]]
    return parts


class BPETokenizer:
    """Byte-level BPE with a split regex and special tokens. Build with `train_bpe` or `load_tokenizer`."""

    def __init__(
        self,
        mergeable_ranks: dict[bytes, int],
        pattern: str = GPT4_PATTERN,
        special_tokens: dict[str, int] | None = None,
        name: str = "bpe",
    ):
        missing = [b for b in range(256) if bytes([b]) not in mergeable_ranks]
        if missing:
            raise ValueError(
                f"mergeable ranks lack {len(missing)} single bytes (e.g. {missing[0]}): not byte-level"
            )
        self.mergeable_ranks = dict(mergeable_ranks)
        self.pattern = pattern
        if special_tokens is None:
            special_tokens = {EOT: max(self.mergeable_ranks.values()) + 1}
        self.special_tokens = dict(special_tokens)
        self.name = name
        self.stats: Counter = Counter()
        self._enc = None
        self._decoder: dict[int, bytes] | None = None

    # --- identity -----------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Number of ids (largest id + 1), special tokens included."""
        return max([*self.mergeable_ranks.values(), *self.special_tokens.values()]) + 1

    @property
    def eot_id(self) -> int:
        if EOT not in self.special_tokens:
            raise KeyError(f"this tokenizer has no {EOT} token (special tokens: {list(self.special_tokens)})")
        return self.special_tokens[EOT]

    @property
    def dtype(self) -> np.dtype:
        """The smallest unsigned integer type that holds every id."""
        return np.dtype(np.uint16) if self.vocab_size <= 1 << 16 else np.dtype(np.uint32)

    def __repr__(self) -> str:
        return f"BPETokenizer(name={self.name!r}, vocab_size={self.vocab_size}, specials={list(self.special_tokens)})"

    def __eq__(self, other) -> bool:
        return isinstance(other, BPETokenizer) and (
            self.mergeable_ranks,
            self.pattern,
            self.special_tokens,
        ) == (other.mergeable_ranks, other.pattern, other.special_tokens)

    # tiktoken's Encoding is rebuilt after unpickling (Ray ships the tokenizer to workers).
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_enc"] = None
        state["_decoder"] = None
        return state

    @property
    def encoding(self):
        """The tiktoken Encoding over our ranks: the fast, exact encoder."""
        if self._enc is None:
            import tiktoken

            self._enc = tiktoken.Encoding(
                f"crawlproc-{self.name}",
                pat_str=self.pattern,
                mergeable_ranks=self.mergeable_ranks,
                special_tokens=self.special_tokens,
            )
        return self._enc

    # --- encode -------------------------------------------------------------------------------------------
    def encode(self, text: str, allowed_special: str | Iterable[str] = ()) -> list[int]:
        """Text -> ids. Special-token strings in `text` are ordinary text unless allowed (`"all"` or a set):
        web text containing "<|endoftext|>" must not end a document."""
        return self.encode_to_numpy(text, allowed_special).tolist()

    def encode_to_numpy(self, text: str, allowed_special: str | Iterable[str] = ()) -> np.ndarray:
        """Like `encode`, as a uint32 array (no Python list of ints: the fast path for shards)."""
        if not allowed_special:
            allowed = _NONE
        else:
            allowed = set(self.special_tokens) if allowed_special == "all" else set(allowed_special)
        try:
            ids = self.encoding.encode_to_numpy(text, allowed_special=allowed, disallowed_special=())
        except UnicodeEncodeError:  # lone surrogates: replace, count, encode the rest
            text, _ = replace_surrogates(text)
            self.stats["surrogates_replaced"] += 1
            return self.encode_to_numpy(text, allowed)
        except ValueError as e:
            if "regex" not in str(e).lower():
                raise
            # tiktoken's backtracking regex gives up on some huge inputs (a million spaces): split with
            # the `regex` module instead and merge each piece in tiktoken; the ids are the same.
            self.stats["regex_fallback"] += 1
            return np.asarray(self._encode_split_in_python(text, allowed), dtype=np.uint32)
        return ids

    @property
    def separator(self) -> str | None:
        """The special token that joins texts for `encode_many` (the lowest-numbered one), or None."""
        return min(self.special_tokens, key=self.special_tokens.__getitem__, default=None)

    def encode_many(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Encode texts as ordinary text (as `encode_to_numpy(t)` each): (ids of all texts one after the other,
        uint32; offsets, int64, len(texts) + 1, text i's ids being ids[offsets[i]:offsets[i + 1]]).

        One tiktoken call for the whole list (`encode_joined`), else (a text holding the separator's string,
        lone surrogates, a regex failure) one call per text, with the same ids and the repairs counted."""
        sep = self.separator
        if sep is not None and len(texts) > 1:
            found = self.encode_joined(sep.join(texts), len(texts))
            if found is not None:
                return found
        arrays = [self.encode_to_numpy(t) for t in texts]
        offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum([len(a) for a in arrays], out=offsets[1:])
        return (np.concatenate(arrays) if arrays else np.zeros(0, np.uint32)), offsets

    def encode_joined(self, joined: str, count: int) -> tuple[np.ndarray, np.ndarray] | None:
        """`count` texts joined by `separator`, encoded in one tiktoken call: (ids, offsets) as `encode_many`
        returns them, or None when that cannot give each text's own ids (then encode them one by one).

        tiktoken encodes the stretches between allowed special tokens independently (no piece or merge
        crosses one), so each text gets exactly the ids it gets alone; the separator's id, which no ordinary
        text produces, marks the boundaries. A text holding the separator's string shows as one boundary
        too many. This saves the per-call cost (argument conversion, a result buffer per text)."""
        sep = self.separator
        try:
            ids = self.encoding.encode_to_numpy(joined, allowed_special={sep}, disallowed_special=())
        except (UnicodeEncodeError, ValueError):  # lone surrogates, tiktoken's regex giving up: text by text
            return None
        at = np.flatnonzero(ids == self.special_tokens[sep])
        if len(at) != count - 1:
            return None
        offsets = np.empty(count + 1, dtype=np.int64)
        offsets[0], offsets[-1] = 0, len(ids) - len(at)
        offsets[1:-1] = at - np.arange(len(at))
        return np.delete(ids, at), offsets

    def _encode_split_in_python(self, text: str, allowed: set[str]) -> list[int]:
        import regex

        # Encoding._encode_single_piece (private: merges one piece without tiktoken's regex) is why pyproject.toml
        # pins tiktoken<1; test_nul_empty_and_huge_inputs fails if it changes
        encode_piece = self.encoding._encode_single_piece
        chunks = [text]
        if allowed:
            specials = "(" + "|".join(regex.escape(s) for s in sorted(allowed, key=len, reverse=True)) + ")"
            chunks = regex.split(specials, text)
        ids: list[int] = []
        for n, chunk in enumerate(chunks):
            if n % 2:  # odd chunks are the special tokens the split kept
                ids.append(self.special_tokens[chunk])
                continue
            for piece in regex.finditer(self.pattern, chunk):
                ids.extend(encode_piece(piece.group().encode("utf-8")))
        return ids

    def encode_reference(self, text: str) -> list[int]:
        """Pure-Python encoder (regex split + `bpe_merge`), no special tokens: slow, for reading and testing."""
        import regex

        text, _ = replace_surrogates(text)
        ids: list[int] = []
        for piece in regex.findall(self.pattern, text):
            ids.extend(
                self.mergeable_ranks[t] for t in bpe_merge(self.mergeable_ranks, piece.encode("utf-8"))
            )
        return ids

    # --- decode -------------------------------------------------------------------------------------------
    def token_bytes(self, token_id: int) -> bytes:
        if self._decoder is None:
            self._decoder = {i: t for t, i in self.mergeable_ranks.items()}
            self._decoder.update({i: s.encode("utf-8") for s, i in self.special_tokens.items()})
        try:
            return self._decoder[int(token_id)]
        except KeyError:
            raise ValueError(
                f"token id {token_id} is not in the vocabulary (size {self.vocab_size})"
            ) from None

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        return b"".join(self.token_bytes(i) for i in ids)

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """Ids -> text. A cut inside a multi-byte character decodes to U+FFFD (errors="replace")."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)
