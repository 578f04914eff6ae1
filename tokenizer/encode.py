"""The tokenize stage's work, without Ray: one input file of documents -> its shards in a token set, and the
text sample a new tokenizer is trained on. pipelines/stages/tokenize.py runs `encode_part` as one unit per
input file and `train_from_inputs` as one task.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crawlproc.store.layout import TokenSetDir
from crawlproc.store.storage import Storage
from tokenizer.core import BPETokenizer
from tokenizer.shards import cut_shards, doc_lengths, is_val, shard_name, tokens_table_from_flat, val_shard_name
from tokenizer.tokenset import read_piece, write_piece, write_shard
from tokenizer.train import train_bpe


class EncodeError(RuntimeError):
    """Nothing to encode or to train on."""


_CHUNK_BYTES = 1 << 20  # text per tiktoken call: amortizes the per-call and per-chunk costs, bounds memory
# The characters for which str.isspace() is true (tests/test_tokenize_stage.py checks this against Python's)
PY_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
                 "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_WHITESPACE = pa.array(list(PY_WHITESPACE), pa.string())


# Whether a document's `language` value belongs to the token set (the recipe's tokenize.languages rule,
# crawlproc.recipe.language_matches, handed in: tokenizer/ does not import the recipe); None: every document
Wants = Callable[[str], bool]


def encode_documents(tok: BPETokenizer, ids, texts, val_fraction: float, max_doc_chars: int,
                     languages=None, wants: Wants | None = None) -> dict:
    """Encode one file's documents (`ids`, `texts`: Arrow string columns, or lists). Returns {"train": table,
    "val": table, "skipped": {...}, "repaired": {...}}; documents without an id, empty or whitespace-only
    (str.isspace) and longer than `max_doc_chars` characters are skipped and counted, never fatal. With `wants`,
    documents whose `languages` value it refuses are not encoded either and are counted as "other_language":
    they are not bad, they belong to another token set (tokenize.languages), and stay in the input for it.

    The documents stay in Arrow: the checks run on whole columns; the texts are joined into strings of
    about _CHUNK_BYTES, each encoded in one tiktoken call (BPETokenizer.encode_joined); the splits are cut
    from the token array and the input's id column. No Python object per document but its id (hashed for
    the split), unless a chunk needs the one-by-one path."""
    before = Counter(tok.stats)
    skipped: Counter = Counter()
    kept_ids, val, values, lengths = [], [], [], []
    # record batch by record batch: an Arrow string array holds at most 2 GB, a column may hold more
    columns = {"id": _strings(ids), "text": _strings(texts)}
    if wants is not None:
        columns["language"] = _strings(languages)
    for batch in pa.table(columns).to_batches():
        batch_ids, batch_texts = batch.column(0), batch.column(1)
        if wants is not None:  # first: a document of another language is that token set's, whatever its state
            mine = of_languages(batch.column(2), wants)
            if not mine.all():
                skipped["other_language"] += int((~mine).sum())
                batch_ids, batch_texts = batch_ids.filter(pa.array(mine)), batch_texts.filter(pa.array(mine))
        keep = _keep(batch_ids, batch_texts, max_doc_chars, skipped)
        if not keep.all():
            batch_ids, batch_texts = batch_ids.filter(pa.array(keep)), batch_texts.filter(pa.array(keep))
        kept_ids.append(batch_ids)
        val.append(np.fromiter((is_val(i, val_fraction) for i in batch_ids.to_pylist()), bool,
                               count=len(batch_ids)))
        batch_values, batch_lengths = _encode_texts(tok, batch_texts)
        values.append(batch_values)
        lengths.append(batch_lengths)
    ids = pa.concat_arrays(kept_ids) if kept_ids else pa.array([], pa.string())
    val = np.concatenate(val) if val else np.zeros(0, bool)
    values = np.concatenate(values) if values else np.zeros(0, tok.dtype)
    lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    tables = {name: _select(ids, values, lengths, mask) for name, mask in (("train", ~val), ("val", val))}
    repaired = {k: v - before.get(k, 0) for k, v in tok.stats.items() if v - before.get(k, 0)}
    return {**tables, "skipped": dict(skipped), "repaired": repaired}


def _encode_texts(tok: BPETokenizer, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(every text's ids one after the other, in the tokenizer's dtype; ids per text), encoded a chunk of
    about _CHUNK_BYTES at a time."""
    dtype, sep = tok.dtype, tok.separator  # dtype scans the vocabulary: once per file
    values, lengths = [], []
    ends = np.cumsum(pc.binary_length(texts).to_numpy(zero_copy_only=False))
    lo = 0
    while lo < len(texts):
        hi = max(lo + 1, int(np.searchsorted(ends, (ends[lo - 1] if lo else 0) + _CHUNK_BYTES, side="right")))
        chunk = texts.slice(lo, hi - lo)
        found = None
        if sep is not None:
            joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(chunk)], pa.int32()), chunk), sep)
            found = tok.encode_joined(joined[0].as_py(), len(chunk))
        chunk_values, offsets = found if found is not None else tok.encode_many(chunk.to_pylist())
        values.append(chunk_values.astype(dtype))  # the ids fit: dtype holds the whole vocabulary
        lengths.append(np.diff(offsets))
        lo = hi
    if not values:
        return np.zeros(0, dtype), np.zeros(0, np.int64)
    return np.concatenate(values), np.concatenate(lengths)


def _select(ids: pa.Array, values: np.ndarray, lengths: np.ndarray, mask: np.ndarray) -> pa.Table:
    """The (id, tokens) table of the documents in `mask`: their tokens copied run by run (a split's
    documents come in long runs: val is a small fraction)."""
    if mask.all():
        return tokens_table_from_flat(ids, values, lengths)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    edges = np.flatnonzero(np.diff(np.concatenate(([False], mask, [False])).astype(np.int8)))
    runs = [values[offsets[a]: offsets[b]] for a, b in zip(edges[0::2], edges[1::2])]
    picked = np.concatenate(runs) if runs else np.zeros(0, values.dtype)
    return tokens_table_from_flat(ids.filter(pa.array(mask)), picked, lengths[mask])


def _strings(values) -> pa.ChunkedArray | pa.Array:
    """A column of strings as Arrow (a list is converted; large_string read from Parquet becomes string)."""
    if isinstance(values, list):
        return pa.array(values, pa.string())
    return values.cast(pa.string()) if values.type != pa.string() else values


def _keep(ids: pa.Array, texts: pa.Array, max_doc_chars: int, skipped: Counter) -> np.ndarray:
    """Which documents to encode; the others counted in `skipped` by their first reason."""
    missing = _np(pc.or_kleene(pc.is_null(ids), pc.equal(ids, "")).fill_null(True))
    nbytes = _np(pc.binary_length(texts).fill_null(0))
    empty = nbytes == 0  # null or ""
    # whitespace only, exactly as str.isspace(): only a text that starts with whitespace can be
    first_space = _np(pc.is_in(pc.utf8_slice_codeunits(texts, 0, 1), value_set=_WHITESPACE))
    for i in np.flatnonzero(first_space & ~empty):
        empty[i] = texts[int(i)].as_py().isspace()
    too_long = np.zeros(len(nbytes), bool)
    if (nbytes > max_doc_chars).any():  # fewer bytes than the limit: fewer characters too
        too_long = _np(pc.greater(pc.utf8_length(texts), max_doc_chars).fill_null(False))
    for reason, n in (("missing_id", missing.sum()), ("empty", (empty & ~missing).sum()),
                      ("too_long", (too_long & ~empty & ~missing).sum())):
        if n:
            skipped[reason] += int(n)
    return ~(missing | empty | too_long)


def of_languages(languages: pa.Array | pa.ChunkedArray, wants: Wants) -> np.ndarray:
    """Which documents `wants` takes, by their language value (asked once per distinct value; null: none)."""
    values = [v for v in pc.unique(languages).to_pylist() if v is not None]
    taken = pa.array([v for v in values if wants(v)], pa.string())
    return _np(pc.is_in(languages, value_set=taken).fill_null(False))


def _np(mask: pa.Array) -> np.ndarray:
    return mask.to_numpy(zero_copy_only=False)


def encode_part(uri: str, part: str, tok: BPETokenizer, settings: dict, tokset: TokenSetDir,
                wants: Wants | None = None) -> dict:
    """Encode one input file into train shards `train-<part>-NNN.parquet` of the token set and its validation
    documents into the piece `val-<part>.parquet` (merge_val_pieces cuts the val shards from all pieces);
    return its part record. `part` names this version of the input (its key and fingerprint), so that a
    re-encoded input never overwrites what the token set's current manifest lists. `wants`: the documents of
    the token set's languages (settings["languages"]), by the input's `language` column; None: all."""
    started = time.perf_counter()
    table = _read_docs(tokset.storage, uri, wants is not None)
    enc = encode_documents(tok, table.column("id"), table.column("text"), settings["val_fraction"],
                           settings["max_doc_chars"], table.column("language") if wants else None, wants)
    shards = []
    for i, (shard, n_tokens) in enumerate(cut_shards(enc["train"], settings["shard_tokens"])):
        name = shard_name("train", part, i)
        write_shard(tokset, name, shard)
        shards.append({"split": "train", "file": name, "tokens": n_tokens, "documents": shard.num_rows})
    piece = None
    if enc["val"].num_rows:
        piece = {"file": f"val-{part}.parquet", "documents": enc["val"].num_rows,
                 "tokens": int(doc_lengths(enc["val"].column("tokens")).sum())}
        write_piece(tokset, piece["file"], enc["val"])
    counted = shards + ([piece] if piece else [])
    return {
        "source": uri, "shards": shards, "val_piece": piece, "skipped": enc["skipped"], "repaired": enc["repaired"],
        "documents": sum(s["documents"] for s in counted), "tokens": sum(s["tokens"] for s in counted),
        "bytes": int(pc.sum(pc.binary_length(table.column("text"))).as_py() or 0),
        "seconds": round(time.perf_counter() - started, 3),
    }


def merge_val_pieces(pieces: list[dict], digest: str, tokset: TokenSetDir, shard_tokens: int,
                     read_ahead: int = 8) -> dict:
    """Cut the val shards `val-<digest>-NNN.parquet` of at most `shard_tokens` tokens from the pieces, in order
    (cut at document boundaries; at most one shard's worth held at a time, plus `read_ahead` pieces being
    read). Returns {"shards": [{split, file, tokens, documents}]}."""
    from concurrent.futures import ThreadPoolExecutor

    shards: list[dict] = []
    held: list[pa.Table] = []
    held_tokens = 0

    def emit(final: bool) -> None:
        nonlocal held, held_tokens
        if not held:
            return
        table = pa.concat_tables(held)
        pieces = list(cut_shards(table, shard_tokens))
        keep = pieces if final else pieces[:-1]  # the last piece may still grow
        for shard, n in keep:
            name = val_shard_name(digest, len(shards))
            write_shard(tokset, name, shard)
            shards.append({"split": "val", "file": name, "tokens": n, "documents": shard.num_rows})
        rest = [] if final else [pieces[-1][0]]
        held, held_tokens = rest, sum(pieces[-1][1] for _ in rest)

    with ThreadPoolExecutor(max_workers=read_ahead) as pool:  # many small reads: an object store answers slowly
        futures = [pool.submit(read_piece, tokset, p["file"]) for p in pieces[:read_ahead]]
        for i in range(len(pieces)):
            table = futures[i].result()
            if i + read_ahead < len(pieces):
                futures.append(pool.submit(read_piece, tokset, pieces[i + read_ahead]["file"]))
            futures[i] = None
            held.append(table.select(["id", "tokens"]))
            held_tokens += int(doc_lengths(table.column("tokens")).sum())
            if held_tokens >= shard_tokens:
                emit(final=False)
    emit(final=True)
    return {"shards": shards}


def _read_docs(storage: Storage, uri: str, with_language: bool) -> pa.Table:
    """The id and text columns of an input file (and its language column, to select by language)."""
    if not with_language:
        return storage.read_table(uri, columns=["id", "text"])
    try:
        return storage.read_table(uri, columns=["id", "text", "language"])
    except (pa.ArrowInvalid, KeyError) as e:
        if "language" not in str(e):
            raise
        raise EncodeError(f"{uri} has no language column, so tokenize.languages cannot select its documents "
                          "(re-extract it, or set tokenize.languages = [])") from None


def sample_texts(storage: Storage, uris: list[str], sample_bytes: int, wants: Wants | None = None) -> list[str]:
    """An even sample across input files: each file contributes up to its share of `sample_bytes`; with
    `wants`, of the documents in the token set's languages only (its tokenizer is fitted to them)."""
    if not uris:
        return []
    share = max(1, sample_bytes // len(uris))
    texts: list[str] = []
    for uri in uris:
        taken = 0
        try:
            table = storage.read_table(uri, columns=["text", "language"] if wants else ["text"])
        except (pa.ArrowException, OSError, KeyError):
            continue  # the encoding pass reports the unreadable file with its cause
        column = table.column("text")
        if wants is not None:
            column = column.filter(pa.array(of_languages(table.column("language"), wants)))
        for text in column.to_pylist():
            if not text:
                continue
            texts.append(text)
            taken += len(text.encode("utf-8", "replace"))
            if taken >= share:
                break
    return texts


def train_from_inputs(storage: Storage, uris: list[str], vocab_size: int, sample_bytes: int,
                      name: str, wants: Wants | None = None, languages: list[str] | None = None) -> BPETokenizer:
    texts = sample_texts(storage, uris, sample_bytes, wants)
    if not texts:
        if wants is not None:
            raise EncodeError(f"no text to train the tokenizer on: no document of the inputs is in "
                              f"tokenize.languages {languages}")
        raise EncodeError("no text to train the tokenizer on (the inputs are empty)")
    return train_bpe(texts, vocab_size, name=name)
