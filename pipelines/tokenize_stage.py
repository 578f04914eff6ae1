"""The tokenize stage: final documents -> token shards `<out>/tokens/<name>/{train,val}-NNNNN.parquet`.

One Ray task per input file encodes its documents (tiktoken over our ranks) into Arrow list arrays and sends
them to the driver, which takes the results in input order, splits train/val by a hash of the document id,
cuts shards of at most `shard_tokens` tokens at document boundaries (a longer document gets a shard of its
own) and writes each shard atomically. manifest.json lists the shards, their counts and the input files already
encoded: a rerun with a new snapshot encodes only the new inputs and numbers its shards after the old ones.
The manifest is written last; shards that a crashed run left behind (not in the manifest) are removed and
rewritten by the rerun.

Documents are stored without end-of-text tokens (the trainer's loader puts one between documents).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from crawlproc.recipe import TokenizeConfig
from crawlproc.storage import Layout, atomic_write_json, atomic_write_table
from tokenizer import BPETokenizer, load_tokenizer, train_bpe
from tokenizer.formats import HF_FILE, file_sha256, tokenizer_info

MANIFEST = "manifest.json"
ROW_GROUP_DOCS = 8192  # documents per Parquet row group: a loader can stream a shard in small pieces
Log = Callable[[str], None]


class TokenizeError(RuntimeError):
    """The stage cannot run as asked (no inputs, a tokenizer that does not match the shards, ...)."""


# --- pure parts (no Ray): split, encode one file's documents, cut shards ---------------------------------


def is_val(doc_id: str, val_fraction: float) -> bool:
    """Deterministic split: a document is in val when the 64-bit hash of its id falls in the first fraction."""
    return xxhash.xxh64_intdigest(doc_id.encode("utf-8")) < val_fraction * 2.0**64


def tokens_table(ids: list[str], arrays: list[np.ndarray], dtype: np.dtype) -> pa.Table:
    """(id, tokens) with tokens as list<uint16|uint32>, built from one flat array and offsets (no copies
    through Python lists)."""
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    if np.sum(lengths) >= 2**31:
        raise ValueError("more than 2**31 tokens in one table: split the input file")
    np.cumsum(lengths, out=offsets[1:])
    values = np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype)
    tokens = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
    return pa.table({"id": pa.array(ids, pa.string()), "tokens": tokens})


def encode_documents(
    tok: BPETokenizer, ids: list, texts: list, val_fraction: float, max_doc_chars: int
) -> dict:
    """Encode one file's documents. Returns {"train": table, "val": table, "skipped": {...},
    "repaired": {...}}; empty, missing-id and over-long documents are skipped and counted, never fatal."""
    dtype = tok.dtype
    out = {"train": ([], []), "val": ([], [])}
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
    result = {s: tokens_table(i, a, dtype) for s, (i, a) in out.items()}
    return {**result, "skipped": dict(skipped), "repaired": repaired}


def encode_file(tok: BPETokenizer, path: str, val_fraction: float, max_doc_chars: int) -> dict:
    """Read (id, text) of one docs Parquet file and encode it; a file that cannot be read is reported in
    "error" (the run goes on without it and a rerun retries it)."""
    started = time.perf_counter()
    try:
        table = pq.read_table(path, columns=["id", "text"])
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported, not fatal
        return {"error": f"{type(e).__name__}: {e}"}
    result = encode_documents(
        tok, table.column("id").to_pylist(), table.column("text").to_pylist(), val_fraction, max_doc_chars
    )
    result["bytes"] = int(pc.sum(pc.binary_length(table.column("text"))).as_py() or 0)
    result["seconds"] = time.perf_counter() - started
    return result


class ShardWriter:
    """Collects encoded documents per split and writes shards of at most `shard_tokens` tokens."""

    def __init__(self, directory: Path, shard_tokens: int, next_index: dict[str, int]):
        self.directory = directory
        self.shard_tokens = shard_tokens
        self.next_index = dict(next_index)
        self.pending: dict[str, list[pa.Table]] = {"train": [], "val": []}
        self.pending_tokens = {"train": 0, "val": 0}
        self.written: list[dict] = []

    def add(self, split: str, table: pa.Table, source: str) -> None:
        if table.num_rows == 0:
            return
        n_tokens = int(pc.sum(pc.list_value_length(table.column("tokens"))).as_py() or 0)
        table = table.append_column("source", pa.array([source] * table.num_rows, pa.string()))
        self.pending[split].append(table)
        self.pending_tokens[split] += n_tokens
        if self.pending_tokens[split] >= self.shard_tokens:
            self._cut(split, final=False)

    def flush(self) -> None:
        for split in ("train", "val"):
            self._cut(split, final=True)

    def _cut(self, split: str, final: bool) -> None:
        if not self.pending[split]:
            return
        table = pa.concat_tables(self.pending[split]).combine_chunks()
        lengths = pc.list_value_length(table.column("tokens")).to_numpy(zero_copy_only=False).astype(np.int64)
        cum = np.cumsum(lengths)
        start = 0
        while start < len(lengths):
            base = cum[start - 1] if start else 0
            if not final and cum[-1] - base < self.shard_tokens:
                break  # not a full shard yet: keep collecting
            # documents that fit in shard_tokens; at least one (a longer document gets its own shard)
            end = max(int(np.searchsorted(cum, base + self.shard_tokens, side="right")), start + 1)
            self._write(split, table.slice(start, end - start), int(cum[end - 1] - base))
            start = end
        rest = table.slice(start)
        self.pending[split] = [rest] if rest.num_rows else []
        self.pending_tokens[split] = int(cum[-1] - (cum[start - 1] if start else 0)) if rest.num_rows else 0

    def _write(self, split: str, shard: pa.Table, n_tokens: int) -> None:
        name = f"{split}-{self.next_index[split]:05d}.parquet"
        self.next_index[split] += 1
        sources = sorted(set(shard.column("source").to_pylist()))
        atomic_write_table(
            self.directory / name, shard.select(["id", "tokens"]), row_group_size=ROW_GROUP_DOCS
        )
        self.written.append(
            {
                "split": split,
                "file": name,
                "tokens": n_tokens,
                "documents": shard.num_rows,
                "sources": sources,
            }
        )


# --- inputs, tokenizer, manifest ------------------------------------------------------------------------


def list_snapshots(out: Path) -> list[str]:
    """Snapshot folders under `out` that hold final/ or docs/ Parquet files."""
    found = []
    for d in sorted(p for p in Path(out).iterdir() if p.is_dir() and p.name != "tokens"):
        if any((d / kind).glob("*.parquet") for kind in ("final", "docs")):
            found.append(d.name)
    return found


def find_inputs(out: Path, snapshots: list[str], log: Log) -> list[tuple[str, Path]]:
    """(snapshot, file) for each input, in a fixed order: final/ files, or docs/ where final/ is missing."""
    inputs = []
    for snap in snapshots:
        layout = Layout(out, snap)
        files = layout.files("final")
        if not files:
            files = layout.files("docs")
            if files:
                log(f"tokenize: {snap} has no final/ yet (dedup not run): using docs/ ({len(files)} files)")
        if not files:
            log(f"tokenize: {snap} has no final/ or docs/ Parquet files: nothing to encode")
        inputs.extend((snap, f) for f in files)
    return inputs


def input_key(out: Path, path: Path) -> str:
    return path.relative_to(out).as_posix()


def sample_texts(paths: list[Path], sample_bytes: int) -> list[str]:
    """An even sample across input files: each file contributes up to its share of `sample_bytes`."""
    if not paths:
        return []
    share = max(1, sample_bytes // len(paths))
    texts: list[str] = []
    for path in paths:
        taken = 0
        try:
            column = pq.read_table(path, columns=["text"]).column("text")
        except Exception:  # noqa: BLE001, S112 - the encoding pass reports unreadable files
            continue
        for text in column.to_pylist():
            if not text:
                continue
            texts.append(text)
            taken += len(text.encode("utf-8", "replace"))
            if taken >= share:
                break
    return texts


def train_from_files(paths: list[str], vocab_size: int, sample_bytes: int, name: str) -> BPETokenizer:
    texts = sample_texts([Path(p) for p in paths], sample_bytes)
    if not texts:
        raise TokenizeError("no text to train the tokenizer on (inputs are empty or unreadable)")
    return train_bpe(texts, vocab_size, name=name)


def read_manifest(directory: Path) -> dict | None:
    import json

    path = directory / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def remove_orphan_shards(directory: Path, manifest: dict | None, log: Log) -> int:
    listed = {s["file"] for s in (manifest or {}).get("shards", [])}
    orphans = [p for p in directory.glob("*-[0-9][0-9][0-9][0-9][0-9].parquet") if p.name not in listed]
    for p in orphans:
        p.unlink()
    if orphans:
        log(f"tokenize: removed {len(orphans)} shard(s) left by an unfinished run")
    return len(orphans)


@dataclass
class TokenizeSummary:
    manifest: dict
    new_inputs: int = 0
    new_shards: list[dict] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    trained: bool = False
    seconds: float = 0.0


def run_tokenize(
    out: str | Path,
    snapshots: list[str] | None = None,
    config: TokenizeConfig | None = None,
    tokenizer_path: str | Path | None = None,
    num_cpus_per_task: float = 1.0,
    max_retries: int = 3,
    log: Log = print,
) -> TokenizeSummary:
    """Encode the snapshots' final documents into token shards under <out>/tokens/<config.name>/.

    The tokenizer is, in order: the one already in that folder; `tokenizer_path` (copied in); or a new one
    trained on a sample of the inputs (config.vocab_size, config.sample_bytes). Ray must be initialised."""
    import ray

    started = time.perf_counter()
    out = Path(out)
    cfg = config or TokenizeConfig()
    directory = out / "tokens" / cfg.name
    snapshots = list(snapshots) if snapshots else list_snapshots(out)
    inputs = find_inputs(out, snapshots, log)

    manifest = read_manifest(directory)
    tok, trained, info = _ensure_tokenizer(out, directory, cfg, tokenizer_path, inputs, manifest, log)
    remove_orphan_shards(directory, manifest, log)

    manifest = manifest or _new_manifest(cfg.name, info, tok)
    if manifest.get("val_fraction", cfg.val_fraction) != cfg.val_fraction:
        log(
            f"tokenize: val_fraction {cfg.val_fraction} differs from the earlier runs' "
            f"{manifest['val_fraction']}: new documents are split with the new value"
        )
    manifest.update(val_fraction=cfg.val_fraction, shard_tokens=cfg.shard_tokens)
    done = set(manifest["inputs"])
    todo = [(snap, p) for snap, p in inputs if input_key(out, p) not in done]
    log(
        f"tokenize: {len(inputs)} input files, {len(inputs) - len(todo)} already encoded, {len(todo)} to encode"
    )

    next_index = {s: sum(1 for x in manifest["shards"] if x["split"] == s) for s in ("train", "val")}
    writer = ShardWriter(directory, cfg.shard_tokens, next_index)
    remote = ray.remote(encode_file).options(num_cpus=num_cpus_per_task, max_retries=max_retries)
    tok_ref = ray.put(tok)
    skipped: Counter = Counter(manifest["skipped"])
    repaired: Counter = Counter(manifest.get("repaired", {}))
    failed: dict[str, str] = {}
    encoded: list[str] = []
    window = max(2, int(2 * ray.available_resources().get("CPU", 2) / max(num_cpus_per_task, 0.01)))
    refs: list = []
    queue = list(todo)
    n_done = 0
    while queue or refs:
        while queue and len(refs) < window:
            snap, path = queue.pop(0)
            refs.append((snap, path, remote.remote(tok_ref, str(path), cfg.val_fraction, cfg.max_doc_chars)))
        snap, path, ref = refs.pop(0)  # in input order: shard contents do not depend on task timing
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as e:
            result = {"error": f"task failed: {e}"}
        key = input_key(out, path)
        n_done += 1
        if "error" in result:
            failed[key] = result["error"]
            log(f"tokenize: cannot encode {key}: {result['error']} (skipped; a rerun retries it)")
            continue
        skipped.update(result["skipped"])
        repaired.update(result["repaired"])
        for split in ("train", "val"):
            writer.add(split, result[split], snap)
        encoded.append(key)
        if n_done % 50 == 0 or n_done == len(todo):
            log(f"tokenize: {n_done}/{len(todo)} files encoded")
    writer.flush()

    manifest["shards"].extend(writer.written)
    manifest["inputs"] = sorted(done | set(encoded))
    manifest["skipped"] = dict(skipped)
    manifest["repaired"] = dict(repaired)
    manifest["totals"] = _totals(manifest["shards"])
    manifest["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    atomic_write_json(directory / MANIFEST, manifest)
    t = manifest["totals"]
    log(
        f"tokenize: wrote {len(writer.written)} shard(s); totals train {t['train']['tokens']} tokens / "
        f"{t['train']['documents']} docs, val {t['val']['tokens']} tokens / {t['val']['documents']} docs"
    )
    return TokenizeSummary(
        manifest=manifest,
        new_inputs=len(encoded),
        new_shards=writer.written,
        failed=failed,
        trained=trained,
        seconds=time.perf_counter() - started,
    )


def _ensure_tokenizer(out, directory, cfg, tokenizer_path, inputs, manifest, log):
    """Reuse the folder's tokenizer, else copy `tokenizer_path` in, else train one on the inputs."""
    import ray

    existing = directory / HF_FILE
    if existing.is_file():
        tok = load_tokenizer(existing, cfg.name)
        if manifest and manifest["tokenizer"]["sha256"] != file_sha256(existing):
            raise TokenizeError(
                f"{existing} does not match the tokenizer the shards in {directory} were encoded with "
                "(sha256 differs): use another --name"
            )
        if tokenizer_path is not None and load_tokenizer(tokenizer_path) != tok:
            raise TokenizeError(f"{directory} already has a different tokenizer: use another --name")
        if tok.vocab_size != cfg.vocab_size and tokenizer_path is None:
            log(f"tokenize: reusing the tokenizer in {directory} (vocabulary {tok.vocab_size})")
        info = tokenizer_info(tok, existing.read_bytes())
        return tok, False, info
    if manifest and manifest.get("shards"):
        raise TokenizeError(
            f"{directory} has shards but no {HF_FILE}: the tokenizer is lost, use another --name"
        )
    if tokenizer_path is not None:
        tok = load_tokenizer(tokenizer_path, cfg.name)
        log(f"tokenize: using tokenizer {tokenizer_path} (vocabulary {tok.vocab_size})")
        trained = False
    else:
        if not inputs:
            raise TokenizeError(f"no inputs under {out} to train a tokenizer on, and no --tokenizer given")
        log(f"tokenize: training a {cfg.vocab_size}-token BPE on up to {cfg.sample_bytes:,} bytes of text")
        t0 = time.perf_counter()
        paths = [str(p) for _s, p in inputs]
        tok = ray.get(ray.remote(train_from_files).remote(paths, cfg.vocab_size, cfg.sample_bytes, cfg.name))
        log(f"tokenize: trained in {time.perf_counter() - t0:.1f}s (vocabulary {tok.vocab_size})")
        trained = True
    info = tok.save(directory)
    return tok, trained, info


def _new_manifest(name: str, info: dict, tok: BPETokenizer) -> dict:
    return {
        "name": name,
        "tokenizer": info,
        "dtype": tok.dtype.name,
        "shards": [],
        "totals": _totals([]),
        "skipped": {},
        "repaired": {},
        "inputs": [],
    }


def _totals(shards: list[dict]) -> dict:
    totals = {s: {"tokens": 0, "documents": 0, "shards": 0} for s in ("train", "val")}
    for s in shards:
        totals[s["split"]]["tokens"] += s["tokens"]
        totals[s["split"]]["documents"] += s["documents"]
        totals[s["split"]]["shards"] += 1
    return totals
