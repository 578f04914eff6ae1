"""`crawlproc export`: a token set -> files other trainers read (tokenizer/exports.py), streamed shard by
shard, row group by row group, to a local folder or an object store.

    llmc      <out>/<split>_NNNNNN.bin   llm.c / nanoGPT-style files of at most --max-tokens tokens each
    megatron  <out>/<split>_text_document.bin + .idx   one Megatron indexed dataset per split

Every output file is written whole or not at all as far as a reader can tell: locally to a temporary name
renamed into place; on an object store as one multipart upload, deleted if the export fails. `export.json`
(the files, their sizes and counts, the token set's manifest sha256) is written last: it is the commit
point, and a folder without it is an unfinished export.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pyarrow.parquet as pq

from crawlproc.store.storage import Storage, join, normalize
from tokenizer.exports import ExportError, LlmcWriter, MegatronWriter
from tokenizer.shards import MANIFEST, SPLITS, manifest_digest, parse_manifest

FORMATS = ("llmc", "megatron")
DEFAULT_LLMC_MAX_TOKENS = 100_000_000  # llm.c's own shard size for FineWeb
Log = Callable[[str], None]


@contextmanager
def open_sink(storage: Storage, uri: str):
    """A binary stream to `uri`, committed only if the block ends without an exception."""
    local = storage.local_path(uri)
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                yield f
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)
        return
    fs, path = storage.resolve(uri)
    try:
        with fs.open_output_stream(path, compression=None) as f:  # multipart upload: bounded memory
            yield f
    except BaseException:
        storage.delete(uri)  # the stream published what it had when it closed: take it back
        raise


def documents(storage: Storage, uri: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(values, offsets) of each row group of a shard's tokens column."""
    with storage.open_input(uri) as f:
        pf = pq.ParquetFile(f)
        for g in range(pf.num_row_groups):
            arr = pf.read_row_group(g, columns=["tokens"]).column("tokens").combine_chunks()
            yield arr.values.to_numpy(zero_copy_only=False), arr.offsets.to_numpy()


def plan_llmc_files(shards: list[dict], max_tokens: int) -> list[list[dict]]:
    """Consecutive shards grouped into files of at most max_tokens tokens (documents + one eot each)."""
    files, current, size = [], [], 0
    for s in shards:
        n = s["tokens"] + s["documents"]
        if current and size + n > max_tokens:
            files.append(current)
            current, size = [], 0
        current.append(s)
        size += n
    if current:
        files.append(current)
    return files


def run_export(tokens: str, fmt: str, out: str, storage: Storage, max_tokens: int = DEFAULT_LLMC_MAX_TOKENS,
               log: Log = print) -> dict:
    """Export the token set at `tokens` to `out` in `fmt`; returns the export record (export.json)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    started = time.perf_counter()
    tokens, out = normalize(tokens), normalize(out)
    where = join(tokens, MANIFEST)
    if not storage.exists(where):
        raise ExportError(f"{where} not found: pass a tokens/<name> folder or URI")
    data = storage.read_bytes(where)
    manifest = parse_manifest(data, where, local_root=storage.local_path(tokens))
    tok = manifest["tokenizer"]
    storage.delete(join(out, "export.json"))  # from here on, the folder is an unfinished export
    files = []
    for split in SPLITS:
        shards = [s for s in manifest["shards"] if s["split"] == split]
        if not shards:
            continue
        if fmt == "llmc":
            for i, group in enumerate(plan_llmc_files(shards, max_tokens)):
                name = f"{split}_{i:06d}.bin"
                n = sum(s["tokens"] + s["documents"] for s in group)
                with open_sink(storage, join(out, name)) as sink:
                    w = LlmcWriter(sink, n, tok["eot_id"], tok["vocab_size"])
                    for s in group:
                        for values, offsets in documents(storage, join(tokens, s["file"])):
                            w.add(values, offsets)
                    w.close()
                files.append({"file": name, "split": split, "tokens": n, "documents": sum(s["documents"] for s in group),
                              "bytes": 1024 + n * w.dtype.itemsize})
                log(f"export: {name}: {n:,} tokens")
        else:
            prefix = f"{split}_text_document"
            with tempfile.TemporaryFile(prefix="crawlproc-idx-") as spill:
                with open_sink(storage, join(out, f"{prefix}.bin")) as sink:
                    w = MegatronWriter(sink, spill, tok["eot_id"], tok["vocab_size"])
                    for s in shards:
                        for values, offsets in documents(storage, join(tokens, s["file"])):
                            w.add(values, offsets)
                with open_sink(storage, join(out, f"{prefix}.idx")) as idx:
                    info = w.finish(idx)
            files.append({"file": f"{prefix}.bin", "index": f"{prefix}.idx", "split": split, **info})
            log(f"export: {prefix}: {info['documents']:,} documents, {info['tokens']:,} tokens")
    record = {"format": fmt, "tokens": tokens, "manifest_sha256": manifest_digest(data), "name": manifest.get("name"),
              "tokenizer": {k: tok.get(k) for k in ("sha256", "vocab_size", "eot_id", "eot_token")},
              "separator": "eot before each document" if fmt == "llmc" else "eod after each document",
              "files": files, "mix": (manifest.get("mix") or {}).get("digest")}
    storage.write_json(join(out, "export.json"), record)
    log(f"export: {len(files)} file(s) in {out} in {time.perf_counter() - started:.1f}s")
    return record
