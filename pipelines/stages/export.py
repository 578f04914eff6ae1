"""`crawlproc export`: a token set -> files other trainers read (tokenizer/exports.py), streamed shard by
shard, row group by row group, to a local folder or an object store.

    llmc      <out>/<split>_NNNNNN.bin   llm.c's files (1,024-byte header), at most --max-tokens tokens each
    nanogpt   <out>/train.bin, val.bin   nanoGPT's raw uint16 files (no header), what its train.py memmaps
    megatron  <out>/<split>_text_document.bin + .idx   one Megatron indexed dataset per split

Every export also holds the token set's tokenizer.json (the ids mean nothing without it: nanoGPT's sample.py
would decode them as GPT-2's).

The new files are written into a staging folder beside the previous export (each file whole or not at all:
Storage.open_output), then moved into place; `export.json` (the files, their sizes and counts, the token
set's manifest sha256) is written last: it is the commit point. Only then are the files of the previous
export that the new record does not list removed, so a refusal, a crash or a failure before the commit
leaves the previous export whole, and after it the folder holds exactly what its record lists.
"""

from __future__ import annotations

import pickle
import tempfile
import time
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow.parquet as pq

from crawlproc.store.fingerprint import digest
from crawlproc.store.layout import ExportDir
from crawlproc.store.storage import Storage, clean_stage_partials, normalize
from tokenizer.exports import ExportError, LlmcWriter, MegatronWriter, NanoGPTWriter
from tokenizer.formats import HF_FILE
from tokenizer.shards import SPLITS
from tokenizer.tokenset import ShardError, open_token_set

FORMATS = ("llmc", "nanogpt", "megatron")
NANOGPT_DEFAULT_VOCAB = 50304  # nanoGPT's train.py builds this many ids unless meta.pkl says otherwise
DEFAULT_LLMC_MAX_TOKENS = 100_000_000  # llm.c's own shard size for FineWeb
Log = Callable[[str], None]
READERS = {  # what reads each format as it is
    "llmc": "llm.c: train_gpt2.py / train_gpt2.c --input_bin '<out>/train_*.bin' (header: magic 20240520, version 1)",
    "nanogpt": "nanoGPT: copy train.bin and val.bin to data/<dataset>/ and run train.py --dataset=<dataset>",
    "megatron": "Megatron-LM: --data-path <out>/train_text_document (megatron.core IndexedDataset)",
}


def documents(storage: Storage, uri: str, vocab_size: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(values, offsets) of each row group of a shard's tokens column; an id at or above `vocab_size` is a
    ShardError (the footers were checked when the set was opened; this covers shards without statistics)."""
    with storage.open_input(uri) as f:
        pf = pq.ParquetFile(f)
        for g in range(pf.num_row_groups):
            arr = pf.read_row_group(g, columns=["tokens"]).column("tokens").combine_chunks()
            values = arr.values.to_numpy(zero_copy_only=False)
            if vocab_size is not None and values.size and int(values.max()) >= vocab_size:
                raise ShardError(f"{uri} row group {g}: token id {int(values.max())} is outside the vocabulary of "
                                 f"{vocab_size} its manifest declares")
            yield values, arr.offsets.to_numpy()


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
    try:
        tokset = open_token_set(normalize(tokens), storage)
    except ShardError as e:
        raise ExportError(str(e)) from None
    tok = tokset.tokenizer
    dest = ExportDir(normalize(out), storage)
    clean_stage_partials(storage, dest.uri)  # what killed exports left half-written
    previous = storage.read_json(dest.record_uri) or {}
    plan = digest({"manifest": tokset.digest, "format": fmt, "max_tokens": max_tokens})[:12]
    storage.delete_tree(dest.staging(plan))  # a staging folder of a crashed export of the same plan: start it over
    try:
        files = _write_files(tokset, fmt, storage, dest, plan, max_tokens, log)
        extra = _write_extra(tokset, fmt, storage, dest, plan)
    except BaseException:
        storage.delete_tree(dest.staging(plan))  # an export that failed (a damaged shard, ...) leaves nothing
        raise
    record = {"format": fmt, "tokens": tokset.uri, "manifest_sha256": tokset.digest, "name": tokset.manifest.get("name"),
              "tokenizer": {k: tok.get(k) for k in ("sha256", "vocab_size", "eot_id", "eot_token")},
              "separator": "eot before each document" if fmt == "llmc" else
              ("eot after each document" if fmt == "nanogpt" else "eod after each document"),
              "reader": READERS[fmt], "files": files, "extra_files": extra, "mix": (tokset.mix or {}).get("digest")}
    # the switch: every new file into place, then the record; the previous record's other files go last
    names = [n for f in files for n in (f["file"], f.get("index")) if n] + extra
    for name in names:
        storage.move(dest.staging(plan, name), dest.file(name))
    storage.write_json(dest.record_uri, record)
    for f in (previous.get("files") or []) + [{"file": n} for n in previous.get("extra_files") or []]:
        for name in (f.get("file"), f.get("index")):
            if isinstance(name, str) and name not in names and ExportDir.plain(name):
                storage.delete(dest.file(name))
    storage.delete_tree(dest.staging(plan))
    log(f"export: {len(files)} file(s) in {dest.uri} in {time.perf_counter() - started:.1f}s")
    return record


def _write_extra(tokset, fmt: str, storage: Storage, dest: ExportDir, plan: str) -> list[str]:
    """Beside the token files: the tokenizer, and nanoGPT's meta.pkl when its default vocab is too short."""
    extra = []
    data = tokset.read(HF_FILE)
    if data is not None:
        storage.write_bytes(dest.staging(plan, HF_FILE), data)
        extra.append(HF_FILE)
    if fmt == "nanogpt" and tokset.tokenizer["vocab_size"] > NANOGPT_DEFAULT_VOCAB:
        storage.write_bytes(dest.staging(plan, "meta.pkl"), pickle.dumps({"vocab_size": tokset.tokenizer["vocab_size"]}))
        extra.append("meta.pkl")
    return extra


def _write_files(tokset, fmt: str, storage: Storage, dest: ExportDir, plan: str, max_tokens: int, log: Log) -> list[dict]:
    """Every file of the export into the plan's staging folder; their records."""
    tok = tokset.tokenizer
    files = []
    if fmt == "nanogpt" and not tokset.has_split("val"):
        raise ExportError(f"{tokset.uri} has no val split, and nanoGPT's train.py reads val.bin: tokenize more "
                          "documents or raise tokenize.val_fraction")
    for split in SPLITS:
        shards = tokset.shards(split)
        if not shards:
            continue
        if fmt == "nanogpt":
            name = f"{split}.bin"
            with storage.open_output(dest.staging(plan, name)) as sink:
                w = NanoGPTWriter(sink, tok["eot_id"], tok["vocab_size"])
                for s in shards:
                    for values, offsets in documents(storage, tokset.dir.path(s["file"]), tokset.vocab_size):
                        w.add(values, offsets)
            files.append({"file": name, "split": split, "tokens": w.tokens, "documents": w.documents,
                          "bytes": 2 * w.tokens})
            log(f"export: {name}: {w.tokens:,} tokens")
        elif fmt == "llmc":
            for i, group in enumerate(plan_llmc_files(shards, max_tokens)):
                name = f"{split}_{i:06d}.bin"
                n = sum(s["tokens"] + s["documents"] for s in group)
                with storage.open_output(dest.staging(plan, name)) as sink:
                    w = LlmcWriter(sink, n, tok["eot_id"], tok["vocab_size"])
                    for s in group:
                        for values, offsets in documents(storage, tokset.dir.path(s["file"]), tokset.vocab_size):
                            w.add(values, offsets)
                    w.close()
                files.append({"file": name, "split": split, "tokens": n, "documents": sum(s["documents"] for s in group),
                              "bytes": 1024 + n * w.dtype.itemsize})
                log(f"export: {name}: {n:,} tokens")
        else:
            prefix = f"{split}_text_document"
            with tempfile.TemporaryFile(prefix="crawlproc-idx-") as spill:
                with storage.open_output(dest.staging(plan, f"{prefix}.bin")) as sink:
                    w = MegatronWriter(sink, spill, tok["eot_id"], tok["vocab_size"])
                    for s in shards:
                        for values, offsets in documents(storage, tokset.dir.path(s["file"]), tokset.vocab_size):
                            w.add(values, offsets)
                with storage.open_output(dest.staging(plan, f"{prefix}.idx")) as idx:
                    info = w.finish(idx)
            files.append({"file": f"{prefix}.bin", "index": f"{prefix}.idx", "split": split, **info})
            log(f"export: {prefix}: {info['documents']:,} documents, {info['tokens']:,} tokens")
    return files
