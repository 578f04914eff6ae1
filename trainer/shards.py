"""The token-shard directory (tokens/<name>/): read its manifest, list its shards, and write small ones.

The format is fixed by the tokenize stage: {train,val}-NNNNN.parquet with columns id (string) and tokens
(list<uint16|uint32>, documents WITHOUT end-of-text tokens), tokenizer.json and manifest.json. The writer
here produces exactly that format from token lists; tests and benchmarks use it to make their own shards.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath, PureWindowsPath

import pyarrow as pa
import pyarrow.parquet as pq

EOT_TOKEN = "<|endoftext|>"


class ShardError(ValueError):
    """A token directory the trainer cannot use; the message says which file and why."""


def read_manifest(tokens_dir: str | Path) -> dict:
    """manifest.json, checked: every value the trainer uses has its type and range, and every shard path
    stays inside the directory (a manifest is input like any other: it may be wrong or hostile)."""
    path = Path(tokens_dir) / "manifest.json"
    if not path.is_file():
        raise ShardError(f"{path} not found: pass a tokens/<name> directory written by `crawlproc tokenize`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ShardError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(manifest, dict):
        raise ShardError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    tok = manifest.get("tokenizer") or {}
    if not isinstance(tok, dict):
        raise ShardError(f"{path}: 'tokenizer' must be an object")
    for key in ("vocab_size", "eot_id"):
        if not isinstance(tok.get(key), int) or isinstance(tok.get(key), bool):
            raise ShardError(f"{path}: tokenizer.{key} must be an integer, got {tok.get(key)!r}")
    if tok["vocab_size"] <= 0:
        raise ShardError(f"{path}: tokenizer.vocab_size must be > 0, got {tok['vocab_size']}")
    if not 0 <= tok["eot_id"] < tok["vocab_size"]:
        raise ShardError(f"{path}: tokenizer.eot_id {tok['eot_id']} is outside the vocabulary "
                         f"(vocab_size {tok['vocab_size']}: ids 0..{tok['vocab_size'] - 1})")
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        raise ShardError(f"{path}: 'shards' must be a list")
    for i, shard in enumerate(shards):
        if not isinstance(shard, dict) or not isinstance(shard.get("file"), str) or not shard["file"]:
            raise ShardError(f"{path}: shards[{i}] must be an object with a 'file' name, got {shard!r:.100}")
        _check_inside(path, i, shard["file"])
    return manifest


def _check_inside(manifest_path: Path, i: int, name: str) -> None:
    rel = PurePosixPath(name)
    if rel.is_absolute() or PureWindowsPath(name).is_absolute() or ".." in rel.parts or "\\" in name:
        raise ShardError(f"{manifest_path}: shards[{i}].file {name!r:.200} points outside {manifest_path.parent}")
    root = manifest_path.parent.resolve()
    if not (root / name).resolve().is_relative_to(root):  # e.g. a symlink in the directory pointing out
        raise ShardError(f"{manifest_path}: shards[{i}].file {name!r:.200} resolves outside {root}")


def shard_files(tokens_dir: str | Path, split: str, manifest: dict | None = None) -> list[Path]:
    """The split's shard paths in manifest order; a listed shard that is missing is an error, not a skip."""
    manifest = manifest or read_manifest(tokens_dir)
    files = [Path(tokens_dir) / s["file"] for s in manifest["shards"] if s.get("split") == split]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ShardError(f"manifest lists shards that do not exist: {', '.join(missing)}")
    return files


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_token_shards(
    out_dir: str | Path,
    splits: dict[str, list[list[int]]],
    vocab_size: int,
    eot_id: int,
    docs_per_shard: int = 1000,
    docs_per_row_group: int = 100,
    tokenizer_file: str | Path | None = None,
    name: str | None = None,
) -> dict:
    """Write {split: [token list per document]} as shards + manifest.json in the tokenize stage's format."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dtype = pa.uint16() if vocab_size <= 65536 else pa.uint32()
    shards, totals = [], {}
    for split, docs in splits.items():
        totals[split] = {"tokens": sum(map(len, docs)), "documents": len(docs)}
        for n, start in enumerate(range(0, len(docs), docs_per_shard)):
            part = docs[start : start + docs_per_shard]
            table = pa.table(
                {
                    "id": pa.array([f"{split}-{start + i}" for i in range(len(part))], pa.string()),
                    "tokens": pa.array(part, pa.list_(dtype)),
                }
            )
            fname = f"{split}-{n:05d}.parquet"
            tmp = out / f".{fname}.tmp"
            pq.write_table(table, tmp, row_group_size=docs_per_row_group)
            os.replace(tmp, out / fname)
            shards.append(
                {"split": split, "file": fname, "tokens": sum(map(len, part)), "documents": len(part), "sources": []}
            )
    tok = {"file": None, "tiktoken_file": None, "sha256": None, "vocab_size": vocab_size,
           "eot_token": EOT_TOKEN, "eot_id": eot_id}
    if tokenizer_file is not None:
        data = Path(tokenizer_file).read_bytes()
        (out / "tokenizer.json").write_bytes(data)
        tok.update(file="tokenizer.json", sha256=hashlib.sha256(data).hexdigest())
    manifest = {
        "name": name or out.name,
        "tokenizer": tok,
        "dtype": "uint16" if dtype == pa.uint16() else "uint32",
        "shards": shards,
        "totals": totals,
        "skipped": {},
        "inputs": [],
    }
    _atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2))
    return manifest
