"""The tokenize stage's work, without Ray: one input file of documents -> its shards in a token set, and the
text sample a new tokenizer is trained on. pipelines/stages/tokenize.py runs `encode_part` as one unit per
input file and `train_from_inputs` as one task.
"""

from __future__ import annotations

import time
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from crawlproc.store.layout import TokenSetDir
from crawlproc.store.storage import Storage
from tokenizer.core import BPETokenizer
from tokenizer.shards import cut_shards, doc_lengths, is_val, shard_name, tokens_table, val_shard_name
from tokenizer.tokenset import read_piece, write_piece, write_shard
from tokenizer.train import train_bpe


class EncodeError(RuntimeError):
    """Nothing to encode or to train on."""


def encode_documents(tok: BPETokenizer, ids: list, texts: list, val_fraction: float, max_doc_chars: int) -> dict:
    """Encode one file's documents. Returns {"train": table, "val": table, "skipped": {...}, "repaired": {...}};
    empty, missing-id and over-long documents are skipped and counted, never fatal."""
    out: dict[str, tuple[list, list]] = {"train": ([], []), "val": ([], [])}
    skipped: Counter = Counter()
    before = Counter(tok.stats)
    for doc_id, text in zip(ids, texts):
        if doc_id is None or doc_id == "":
            skipped["missing_id"] += 1
            continue
        if not text or text.isspace():  # isspace stops at the first visible character; strip would copy
            skipped["empty"] += 1
            continue
        if len(text) > max_doc_chars:
            skipped["too_long"] += 1
            continue
        split = "val" if is_val(doc_id, val_fraction) else "train"
        out[split][0].append(doc_id)
        out[split][1].append(tok.encode_to_numpy(text))
    repaired = {k: v - before.get(k, 0) for k, v in tok.stats.items() if v - before.get(k, 0)}
    return {**{s: tokens_table(i, a, tok.dtype) for s, (i, a) in out.items()}, "skipped": dict(skipped),
            "repaired": repaired}


def encode_part(uri: str, part: str, tok: BPETokenizer, settings: dict, tokset: TokenSetDir) -> dict:
    """Encode one input file into train shards `train-<part>-NNN.parquet` of the token set and its validation
    documents into the piece `val-<part>.parquet` (merge_val_pieces cuts the val shards from all pieces);
    return its part record. `part` names this version of the input (its key and fingerprint), so that a
    re-encoded input never overwrites what the token set's current manifest lists."""
    started = time.perf_counter()
    table = tokset.storage.read_table(uri, columns=["id", "text"])
    enc = encode_documents(tok, table.column("id").to_pylist(), table.column("text").to_pylist(),
                           settings["val_fraction"], settings["max_doc_chars"])
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


def sample_texts(storage: Storage, uris: list[str], sample_bytes: int) -> list[str]:
    """An even sample across input files: each file contributes up to its share of `sample_bytes`."""
    if not uris:
        return []
    share = max(1, sample_bytes // len(uris))
    texts: list[str] = []
    for uri in uris:
        taken = 0
        try:
            column = storage.read_table(uri, columns=["text"]).column("text")
        except (pa.ArrowException, OSError):
            continue  # the encoding pass reports the unreadable file with its cause
        for text in column.to_pylist():
            if not text:
                continue
            texts.append(text)
            taken += len(text.encode("utf-8", "replace"))
            if taken >= share:
                break
    return texts


def train_from_inputs(storage: Storage, uris: list[str], vocab_size: int, sample_bytes: int,
                      name: str) -> BPETokenizer:
    texts = sample_texts(storage, uris, sample_bytes)
    if not texts:
        raise EncodeError("no text to train the tokenizer on (the inputs are empty)")
    return train_bpe(texts, vocab_size, name=name)
