"""The token-shard format, owned here and read by the trainer: what a token set (tokens/<name>/) holds.

    tokens/<name>/manifest.json                  the shards to train on, token counts, the tokenizer
    tokens/<name>/tokenizer.json, .tiktoken      the tokenizer (see formats.py)
    tokens/<name>/<split>-<part>-NNN.parquet     shards: columns id (string) and tokens (list<uint16|uint32>)

A shard holds whole documents WITHOUT end-of-text tokens (the loader puts one between documents), in row
groups of ROW_GROUP_DOCS documents so that a loader can stream it. Train shards are produced per input (a
"part": one final/ file of a snapshot), so that each input is encoded, resumed and replaced on its own; the
manifest is merged from the parts. An input's validation documents (a small fraction) go to a piece
(pieces/val-<part>.parquet), and the val shards are cut from all the pieces by size (`val_shard_names`): a
snapshot of 90,000 inputs gives a few val shards, not 90,000 tiny ones. Everything here is pure (tables and dicts): tokenizer/tokenset.py reads and writes
the files, crawlproc.store.layout.TokenSetDir says where they lie.

A mix (pipelines/stages/mix.py) is a token set like any other, whose manifest also has a "mix" entry: its
sources (with their manifest digests), weights, realized token counts and seed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

ROW_GROUP_DOCS = 8192
SPLITS = ("train", "val")
FORMAT_VERSION = 2
_SHARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=~@-]*\.parquet$")


class ShardError(ValueError):
    """A token set that cannot be used; the message names the file and why."""


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def is_val(doc_id: str, val_fraction: float) -> bool:
    """Deterministic split: a document is in val when the 64-bit hash of its id falls in the first fraction."""
    return xxhash.xxh64_intdigest(doc_id.encode("utf-8")) < val_fraction * 2.0**64


def tokens_table(ids: list[str], arrays: list[np.ndarray], dtype: np.dtype) -> pa.Table:
    """(id, tokens) with tokens as list<uint16|uint32>, from one token array per document."""
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    values = np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype)
    return tokens_table_from_flat(ids, values, lengths)


def parquet_options(names) -> dict:
    """How a table with a `tokens` column is written (pyarrow.parquet writer keywords; zstd is the storage
    default): the token ids with BYTE_STREAM_SPLIT (their bytes regrouped by position; the high bytes of
    uint16 ids stored as INT32 are zeros, which zstd all but removes) and no dictionary. On real and Zipf
    token streams that writes 1.6-1.9x faster and 7-21% smaller than the dictionary pyarrow picks by
    default, and reads as fast (pyarrow 17, pyproject.toml's floor, reads it back whole). The other columns keep
    the dictionary (it is pyarrow's default: a bucket or source column repeats)."""
    names = list(names)
    if "tokens" not in names:
        return {}
    return {"use_dictionary": [n for n in names if n != "tokens"],
            "column_encoding": {"tokens.list.element": "BYTE_STREAM_SPLIT"}}


def tokens_table_from_flat(ids: list[str] | pa.Array, values: np.ndarray, lengths: np.ndarray) -> pa.Table:
    """(id, tokens) from every document's tokens one after the other (`values`, already of the token dtype)
    and their counts: the list column is built on `values` as they are (no copy)."""
    if int(lengths.sum()) >= 2**31:
        raise ValueError("more than 2**31 tokens in one table: split the input file")
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.table({"id": pa.array(ids, pa.string()),
                     "tokens": pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))})


def cut_shards(table: pa.Table, shard_tokens: int) -> Iterator[tuple[pa.Table, int]]:
    """(shard, tokens) pieces of at most `shard_tokens` tokens, cut at document boundaries; a document longer
    than that gets a shard of its own."""
    if table.num_rows == 0:
        return
    lengths = doc_lengths(table.column("tokens"))
    cum = np.cumsum(lengths)
    start = 0
    while start < len(lengths):
        base = cum[start - 1] if start else 0
        end = max(int(np.searchsorted(cum, base + shard_tokens, side="right")), start + 1)
        yield table.slice(start, end - start), int(cum[end - 1] - base)
        start = end


def shard_name(split: str, part: str, index: int) -> str:
    return f"{split}-{part}-{index:03d}.parquet"


def new_manifest(name: str, tokenizer_info: dict, dtype: np.dtype, settings: dict) -> dict:
    return {"format": FORMAT_VERSION, "name": name, "tokenizer": tokenizer_info, "dtype": np.dtype(dtype).name,
            **settings, "parts": {}, "shards": [], "totals": totals([]), "skipped": {}, "repaired": {},
            "inputs": []}


def merge_parts(manifest: dict, parts: dict[str, dict], val: dict | None = None) -> dict:
    """The manifest with `parts` ({key: part}) as its parts: shards in key order, totals and counters summed.
    A part is {"fingerprint", "source", "shards": [{split, file, tokens, documents}], "skipped", "repaired"}
    and, when its validation documents went to a piece, "val_piece": {file, tokens, documents}. `val`: the
    val shards cut from the pieces, {"digest", "shards"} (listed after the parts' shards)."""
    out = dict(manifest)
    out["parts"] = {k: parts[k] for k in sorted(parts)}
    out["shards"] = [s for k in sorted(parts) for s in parts[k]["shards"]] + list((val or {}).get("shards") or [])
    if val is not None:
        out["val_pieces"] = {"digest": val["digest"], "shards": [s["file"] for s in val["shards"]]}
    out["totals"] = totals(out["shards"])
    out["inputs"] = [parts[k]["source"] for k in sorted(parts)]
    for field in ("skipped", "repaired"):
        acc: dict[str, int] = {}
        for p in parts.values():
            for reason, n in (p.get(field) or {}).items():
                acc[reason] = acc.get(reason, 0) + int(n)
        out[field] = dict(sorted(acc.items()))
    return out


def val_pieces(parts: dict[str, dict]) -> tuple[list[tuple[str, dict]], str]:
    """([(key, piece)] in key order, digest): the val pieces of the parts, and what identifies their merge (the
    parts' keys and fingerprints): the same digest means the same val shards."""
    pieces = [(k, parts[k]["val_piece"]) for k in sorted(parts) if parts[k].get("val_piece")]
    ident = json.dumps([[k, parts[k].get("fingerprint"), p["file"]] for k, p in pieces]).encode()
    return pieces, hashlib.sha256(ident).hexdigest()[:12]


def val_shard_name(digest: str, index: int) -> str:
    return f"val-{digest}-{index:03d}.parquet"


def totals(shards: list[dict]) -> dict:
    out = {s: {"tokens": 0, "documents": 0, "shards": 0} for s in SPLITS}
    for s in shards:
        t = out.setdefault(s["split"], {"tokens": 0, "documents": 0, "shards": 0})
        t["tokens"] += int(s["tokens"])
        t["documents"] += int(s["documents"])
        t["shards"] += 1
    return out


def check_manifest(manifest, where: str, local_root: str | Path | None = None) -> dict:
    """Validate a manifest read from `where`; raise ShardError naming the problem. A manifest is input like any
    other (it may be wrong or hostile): every value a reader uses has its type and range, shard names are plain
    file names (nothing outside the token set is ever followed: no '/', '..', absolute or Windows paths), and the
    end-of-text id is inside the vocabulary. With `local_root` (a token set on a local disk), a shard that is a
    symlink leading out of the folder is refused too."""
    if not isinstance(manifest, dict):
        raise ShardError(f"{where}: expected a JSON object, got {type(manifest).__name__}")
    tok = manifest.get("tokenizer")
    if not isinstance(tok, dict):
        raise ShardError(f"{where}: 'tokenizer' must be an object")
    for key in ("vocab_size", "eot_id"):
        if not isinstance(tok.get(key), int) or isinstance(tok.get(key), bool):
            raise ShardError(f"{where}: tokenizer.{key} must be an integer, got {tok.get(key)!r}")
    if tok["vocab_size"] < 1:
        raise ShardError(f"{where}: tokenizer.vocab_size must be > 0, got {tok['vocab_size']}")
    if not 0 <= tok["eot_id"] < tok["vocab_size"]:
        raise ShardError(f"{where}: tokenizer.eot_id {tok['eot_id']} is outside the vocabulary "
                         f"(vocab_size {tok['vocab_size']}: ids 0..{tok['vocab_size'] - 1})")
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        raise ShardError(f"{where}: 'shards' must be a list")
    for i, s in enumerate(shards):
        if not isinstance(s, dict) or not isinstance(s.get("file"), str) or not s["file"]:
            raise ShardError(f"{where}: shards[{i}] must be an object with a 'file' name, got {s!r:.100}")
        if not _SHARD_NAME.match(s["file"]):
            raise ShardError(f"{where}: shards[{i}].file {s['file']!r:.200} points outside the token set "
                             "(a shard must be a plain .parquet file name beside the manifest)")
        if s.get("split") not in SPLITS:
            raise ShardError(f"{where}: shard {s['file']}: split must be one of {SPLITS}, got {s.get('split')!r}")
        for key in ("tokens", "documents"):
            if not isinstance(s.get(key), int) or isinstance(s[key], bool) or s[key] < 0:
                raise ShardError(f"{where}: shard {s['file']}: {key} must be a count, got {s.get(key)!r}")
        if local_root is not None:
            root = Path(local_root).resolve()
            if not (root / s["file"]).resolve().is_relative_to(root):  # a symlink in the folder pointing out
                raise ShardError(f"{where}: shards[{i}].file {s['file']!r:.200} resolves outside {root}")
    return manifest


def manifest_digest(manifest_bytes: bytes) -> str:
    """What identifies a token set: the sha256 of its manifest.json bytes (check with sha256sum)."""
    return hashlib.sha256(manifest_bytes).hexdigest()


def parse_manifest(data: bytes, where: str, local_root: str | Path | None = None) -> dict:
    """manifest.json's bytes -> the checked manifest (ShardError naming `where` when it is not valid JSON)."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ShardError(f"{where} is not valid JSON: {e}") from None
    return check_manifest(manifest, where, local_root)


def doc_lengths(tokens: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Tokens per document of a `tokens` column, as int64."""
    return pc.list_value_length(tokens).to_numpy(zero_copy_only=False).astype(np.int64)
