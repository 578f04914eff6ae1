"""The tokenize stage: the documents of each snapshot -> token shards in tokens/<name>/ (format: tokenizer/shards.py).

Exactly one version of each document is encoded: `final/` (deduplicated, PII removed) by default, and only
for snapshots whose dedup has finished; `classified/` (what the classifiers kept) by default when the recipe
has classifiers, once their stage has finished; `docs/` only when the recipe says `tokenize.source = "docs"`
(a recipe without dedup). Never two of them.

Each input file is a unit of the stage runner: its own task encodes it (tiktoken over our ranks) into its own
shards and returns its part record; the runner writes that record as the unit's marker
(tokens/<name>/parts/<snapshot>~<stem>.<fp>.json), fp being the fingerprint of the tokenizer, the settings and
the input's identity (the snapshot's finished dedup, or the file's extract marker). So a crash after N of M
inputs redoes only the rest; an input whose identity changed (dedup redone, a file re-extracted) is encoded
again and its old shards dropped; an input that disappeared from a snapshot loses its shards. manifest.json
is then merged from the parts. The tokenizer is the token set's own (tokenizer.json), else the one given,
else trained on a sample of the inputs the first time. A command holds the token set's lock.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from crawlproc.store.fingerprint import digest
from crawlproc.store.layout import Layout, TokenSet
from crawlproc.store.lock import hold
from crawlproc.recipe import Recipe
from crawlproc.store.storage import Storage, basename, join, storage_for
from pipelines.engine.runner import StageResult, Unit, ensure_ray, run_stage
from tokenizer import BPETokenizer, load_tokenizer, train_bpe
from tokenizer.formats import HF_FILE, tokenizer_files, tokenizer_from_json_bytes, tokenizer_info
from tokenizer.shards import (
    MANIFEST, ROW_GROUP_DOCS, ShardError, check_manifest, cut_shards, is_val, merge_parts, new_manifest,
    shard_name, tokens_table,
)

Log = Callable[[str], None]


class TokenizeError(RuntimeError):
    """The stage cannot run as asked (no inputs, dedup not finished, a tokenizer that does not match)."""


# --- one input file -> its shards (a plain function: the runner calls it in a Ray task) --------------------


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


def encode_part(uri: str, key: str, tok: BPETokenizer, settings: dict, tokset_uri: str, storage: Storage) -> dict:
    """Encode one input file into shards `<split>-<key>-NNN.parquet` of the token set; return its part record."""
    started = time.perf_counter()
    table = storage.read_table(uri, columns=["id", "text"])
    enc = encode_documents(tok, table.column("id").to_pylist(), table.column("text").to_pylist(),
                           settings["val_fraction"], settings["max_doc_chars"])
    shards = []
    for split in ("train", "val"):
        for i, (shard, n_tokens) in enumerate(cut_shards(enc[split], settings["shard_tokens"])):
            name = shard_name(split, key, i)
            storage.write_table(join(tokset_uri, name), shard, row_group_size=ROW_GROUP_DOCS)
            shards.append({"split": split, "file": name, "tokens": n_tokens, "documents": shard.num_rows})
    return {
        "source": uri, "shards": shards, "skipped": enc["skipped"], "repaired": enc["repaired"],
        "documents": sum(s["documents"] for s in shards), "tokens": sum(s["tokens"] for s in shards),
        "bytes": int(pc.sum(pc.binary_length(table.column("text"))).as_py() or 0),
        "seconds": round(time.perf_counter() - started, 3),
    }


# --- inputs, tokenizer ---------------------------------------------------------------------------------


@dataclass
class Input:
    key: str  # <snapshot>~<stem>
    uri: str
    snapshot: str
    identity: str  # what the input's content is made of (see the module docstring)


def find_inputs(layout: Layout, snapshots: list[str], source: str, log: Log,
                classify_source: str = "final") -> list[Input]:
    """The inputs of each snapshot, in a fixed order; a snapshot that is not ready is an error."""
    inputs = []
    for name in snapshots:
        snap = layout.snapshot(name)
        if source == "classified":
            from pipelines.stages.classify import ClassifyError, classified_identity

            try:
                identity = classified_identity(snap, classify_source)
            except ClassifyError as e:
                raise TokenizeError(str(e)) from None
            for stem in snap.stems("classified"):
                inputs.append(Input(f"{name}~{stem}", snap.path("classified", stem), name, identity))
        elif source == "final":
            finished = layout.storage.read_json(snap.dedup("_done.json"))
            if not finished:
                raise TokenizeError(
                    f"snapshot {name!r} has no finished dedup (its final/ is what is tokenized): run "
                    f"`crawlproc dedup --snapshot {name}` first, or set tokenize.source = \"docs\" in a "
                    "recipe without dedup")
            deduped = finished.get("inputs")
            if deduped is not None and deduped != snap.markers.done():
                raise TokenizeError(
                    f"snapshot {name!r} changed since its dedup (files were extracted or redone after it): run "
                    f"`crawlproc dedup --snapshot {name}` again first")
            identity = digest(finished)
            for stem in snap.stems("final"):
                inputs.append(Input(f"{name}~{stem}", snap.path("final", stem), name, identity))
        else:
            for stem, fp in sorted(snap.markers.done().items()):
                inputs.append(Input(f"{name}~{stem}", snap.path("docs", stem), name, fp))
        if not any(i.snapshot == name for i in inputs):
            log(f"tokenize: {name} has no {source}/ files: nothing to encode")
    return inputs


def snapshots_with(layout: Layout, source: str) -> list[str]:
    """Every snapshot under the root that has something to tokenize from `source`."""
    out = []
    for name in layout.snapshots():
        snap = layout.snapshot(name)
        if source == "classified":
            ready = layout.storage.exists(snap.classify("_done.json"))
        else:
            ready = layout.storage.exists(snap.dedup("_done.json")) if source == "final" else snap.markers.done()
        if ready:
            out.append(name)
    return out


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
        raise TokenizeError("no text to train the tokenizer on (the inputs are empty)")
    return train_bpe(texts, vocab_size, name=name)


def ensure_tokenizer(tokset: TokenSet, cfg, tokenizer_path: str | None, inputs: list[Input],
                     manifest: dict | None, log: Log) -> tuple[BPETokenizer, dict, bool]:
    """(tokenizer, its manifest entry, trained now): the token set's own, else `tokenizer_path` (copied in),
    else a new one trained on a sample of the inputs."""
    import ray

    storage = tokset.storage
    own = tokset.path(HF_FILE)
    if storage.exists(own):
        data = storage.read_bytes(own)
        tok = tokenizer_from_json_bytes(data, cfg.name, own)
        info = tokenizer_info(tok, data)
        if manifest and manifest["tokenizer"].get("sha256") != info["sha256"]:
            raise TokenizeError(f"{own} is not the tokenizer the shards of {tokset.uri} were encoded with "
                                "(sha256 differs): use another --name")
        if tokenizer_path is not None and load_tokenizer(tokenizer_path) != tok:
            raise TokenizeError(f"{tokset.uri} already has a different tokenizer: use another --name")
        return tok, info, False
    if manifest and manifest.get("shards"):
        raise TokenizeError(f"{tokset.uri} has shards but no {HF_FILE}: the tokenizer is lost, use another --name")
    if tokenizer_path is not None:
        tok = load_tokenizer(tokenizer_path, cfg.name)
        log(f"tokenize: using tokenizer {tokenizer_path} (vocabulary {tok.vocab_size})")
        trained = False
    else:
        if not inputs:
            raise TokenizeError("no inputs to train a tokenizer on, and no --tokenizer given")
        log(f"tokenize: training a {cfg.vocab_size}-token BPE on up to {cfg.sample_bytes:,} bytes of text")
        t0 = time.perf_counter()
        ensure_ray()
        task = ray.remote(train_from_inputs).options(num_cpus=1, max_retries=1)
        tok = ray.get(task.remote(storage, [i.uri for i in inputs], cfg.vocab_size, cfg.sample_bytes, cfg.name))
        log(f"tokenize: trained in {time.perf_counter() - t0:.1f}s (vocabulary {tok.vocab_size})")
        trained = True
    files = tokenizer_files(tok)
    for name, data in files.items():
        storage.write_bytes(tokset.path(name), data)
    return tok, tokenizer_info(tok, files[HF_FILE]), trained


def read_manifest(storage: Storage, tokset_uri: str) -> dict | None:
    uri = join(tokset_uri, MANIFEST)
    if not storage.exists(uri):
        return None
    manifest = storage.read_json(uri)
    if manifest is None:
        raise ShardError(f"{uri} is not valid JSON")
    return check_manifest(manifest, uri)


# --- the stage -------------------------------------------------------------------------------------------


@dataclass
class TokenizeSummary:
    manifest: dict
    inputs: int = 0
    encoded: int = 0  # inputs encoded by this command
    dropped: int = 0  # parts of inputs that no longer exist, removed
    failed: dict[str, str] = field(default_factory=dict)  # input -> root cause
    stopped: str | None = None
    trained: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and self.stopped is None


def run_tokenize(
    out: str,
    recipe: Recipe,
    snapshots: list[str] | None = None,
    tokenizer_path: str | None = None,
    force: bool = False,
    progress: bool = True,
    log: Log = print,
) -> TokenizeSummary:
    """Encode the snapshots' documents into tokens/<recipe.tokenize.name>/; see the module docstring.
    Ray must be initialised."""
    started = time.perf_counter()
    cfg = recipe.tokenize
    source = recipe.tokenize_source()
    layout = Layout(out, storage_for(recipe))
    storage = layout.storage
    tokset = layout.tokens(cfg.name)
    with hold(storage, tokset.lock_uri, f"token set {tokset.uri}"):
        snapshots = list(snapshots) if snapshots else snapshots_with(layout, source)
        inputs = find_inputs(layout, snapshots, source, log, recipe.classify.source)
        manifest = read_manifest(storage, tokset.uri)
        tok, info, trained = ensure_tokenizer(tokset, cfg, tokenizer_path, inputs, manifest, log)
        settings = {"val_fraction": cfg.val_fraction, "shard_tokens": cfg.shard_tokens,
                    "max_doc_chars": cfg.max_doc_chars, "source": source}
        plan_fp = {"tokenizer": info["sha256"], **settings}
        units = [Unit(key=i.key, args=(i.uri, i.key), source=i.uri,
                      fingerprint=digest({**plan_fp, "input": i.identity})) for i in inputs]
        fresh: dict[str, dict] = {}
        result = run_stage("tokenize", units, encode_part, shared=(tok, settings, tokset.uri, storage),
                           markers=tokset.markers, num_cpus=recipe.ray.num_cpus_per_task,
                           max_retries=recipe.ray.max_retries, force=force,
                           progress=f"tokenize {cfg.name}" if progress else False,
                           on_result=lambda u, stats: fresh.__setitem__(u.key, stats))
        base = manifest or new_manifest(cfg.name, info, tok.dtype, settings)
        base.update(settings, tokenizer=info, name=cfg.name)
        parts, dropped = _current_parts(tokset, base, fresh, {u.key for u in units}, set(snapshots), log)
        merged = merge_parts(base, parts)
        merged["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        storage.write_json(tokset.manifest_uri, merged)
        _remove_unlisted_shards(tokset, merged)
    summary = TokenizeSummary(manifest=merged, inputs=len(inputs), encoded=result.done, dropped=dropped,
                              trained=trained, seconds=time.perf_counter() - started)
    _fill_failures(summary, result)
    t = merged["totals"]
    log(f"tokenize: {result.done} input(s) encoded, {result.skipped} already encoded; totals train "
        f"{t['train']['tokens']} tokens / {t['train']['documents']} docs, val {t['val']['tokens']} tokens / "
        f"{t['val']['documents']} docs")
    return summary


def _current_parts(tokset: TokenSet, base: dict, fresh: dict[str, dict], keys: set[str], scope: set[str],
                   log: Log) -> tuple[dict[str, dict], int]:
    """The parts that make the manifest: every done part, except those of snapshots in scope whose input is
    gone (their markers are removed; their shards are removed with the unlisted ones)."""
    known = base.get("parts") or {}
    parts, dropped = {}, 0
    for key, fp in tokset.markers.done().items():
        if key.split("~", 1)[0] in scope and key not in keys:
            tokset.markers.unmark(key, fp)
            dropped += 1
            continue
        if key in fresh:
            part = fresh[key]
        elif known.get(key, {}).get("fingerprint") == fp:
            part = known[key]
        else:  # finished by a run that stopped before merging
            part = (tokset.markers.read(key, fp) or {}).get("stats")
            if part is None:
                continue
        parts[key] = {**part, "fingerprint": fp}
    if dropped:
        log(f"tokenize: dropped the shards of {dropped} input(s) that no longer exist")
    return parts, dropped


def _remove_unlisted_shards(tokset: TokenSet, manifest: dict) -> None:
    """Shards no part lists (an input re-encoded into fewer shards, a dropped input, a crashed encode)."""
    listed = {s["file"] for s in manifest["shards"]}
    for e in tokset.storage.list(tokset.uri, suffix=".parquet"):
        if e.name not in listed:
            tokset.storage.delete(e.uri)


def _fill_failures(summary: TokenizeSummary, result: StageResult) -> None:
    summary.failed = {basename(result.sources.get(k) or k): f.line() for k, f in result.failed.items()}
    summary.stopped = result.stopped.line() if result.stopped else None
