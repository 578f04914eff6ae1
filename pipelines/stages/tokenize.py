"""The tokenize stage: the documents of each snapshot -> token shards in tokens/<name>/ (format: tokenizer/shards.py).

Exactly one version of each document is encoded: `decontaminated/` (deduplicated, PII removed, benchmark
items removed) by default, once the snapshot's dedup has finished (the decontaminate stage runs first when
its output is missing or out of date: no benchmark item reaches the shards unnoticed); `classified/` (what the
classifiers kept, of the decontaminated documents) by default when the recipe has classifiers, once their
stage has finished; `final/` or `docs/` (`tokenize.source = "docs"`, a recipe without dedup) only with
`[decontaminate] enabled = false`. Never two of them.

Each input file is a unit of the stage runner: its own task encodes it (tiktoken over our ranks) into its own
train shards and a val piece, and returns its part record; the runner writes that record as the unit's marker
(tokens/<name>/parts/<snapshot>~<stem>.<fp>.json), fp being the fingerprint of the tokenizer, the settings and
the input's identity (the snapshot's finished dedup, or the file's extract marker). So a crash after N of M
inputs redoes only the rest; an input whose identity changed (dedup redone, a file re-extracted) is encoded
again and its old shards dropped; an input that disappeared from a snapshot loses its shards. The val shards
are then cut by size from every input's val piece (one task; redone only when a part changed), and
manifest.json is merged from the parts, written last. With `tokenize.languages`, only the documents of those
languages (by their `language` column) are encoded, the others counted as skipped "other_language" (they belong
to another token set); the selection is part of the fingerprint, so a changed list re-encodes. The tokenizer is the token set's own (tokenizer.json), else the one given,
else trained on a sample of the inputs the first time. A command holds the token set's lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from crawlproc.recipe import Recipe
from crawlproc.store.fingerprint import digest
from crawlproc.store.layout import Layout, TokenSetDir
from crawlproc.store.lock import hold
from crawlproc.store.storage import basename, clean_stage_partials, storage_for
from pipelines.engine.runner import StageSummary, Unit, ensure_ray, run_stage
from tokenizer import BPETokenizer, load_tokenizer
from pipelines.engine.progress import note_activity
from tokenizer.encode import EncodeError, encode_part, merge_val_pieces, train_from_inputs
from tokenizer.formats import HF_FILE, tokenizer_from_json_bytes, tokenizer_info
from tokenizer.shards import merge_parts, new_manifest, val_pieces
from tokenizer.tokenset import (
    read_manifest, remove_unlisted_pieces, remove_unlisted_shards, write_manifest, write_tokenizer,
)

Log = Callable[[str], None]


class TokenizeError(RuntimeError):
    """The stage cannot run as asked (no inputs, dedup not finished, a tokenizer that does not match)."""


# --- inputs, tokenizer ---------------------------------------------------------------------------------


@dataclass
class Input:
    key: str  # <snapshot>~<stem>
    uri: str
    snapshot: str
    identity: str  # what the input's content is made of (see the module docstring)


def find_inputs(layout: Layout, snapshots: list[str], source: str, log: Log, recipe: Recipe,
                unready: dict | None = None) -> list[Input]:
    """The inputs of each snapshot, in a fixed order; a snapshot that is not ready is an error. Files of
    decontaminated/ whose decontamination failed are left out and named in `unready` with the cause."""
    inputs = []
    for name in snapshots:
        snap = layout.snapshot(name)
        if source == "decontaminated":
            from pipelines.stages.decontaminate import DecontaminateError, decontaminated_inputs

            try:
                ready, missing = decontaminated_inputs(snap, recipe.decontaminate_source(), recipe)
            except DecontaminateError as e:
                raise TokenizeError(str(e)) from None
            inputs += [Input(f"{name}~{i.stem}", i.uri, name, i.identity) for i in ready]
            if unready is not None:
                unready.update({basename(snap.path("decontaminated", stem)): why for stem, why in missing.items()})
        elif source == "classified":
            from pipelines.stages.classify import ClassifyError, classified_identity

            try:
                identity = classified_identity(snap, recipe.classify_input(), recipe.decontaminate_source(), recipe)
            except ClassifyError as e:
                raise TokenizeError(str(e)) from None
            for stem in snap.stems("classified"):
                inputs.append(Input(f"{name}~{stem}", snap.path("classified", stem), name, identity))
        elif source == "final":
            finished = snap.dedup.done()
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
            from pipelines.stages.dedup import stale_against_older

            why = stale_against_older(layout, name, recipe)
            if why:
                raise TokenizeError(f"snapshot {name!r} was deduplicated against {why}: run `crawlproc dedup "
                                    f"--snapshot {name} --scope all` again first")
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
            ready = layout.storage.exists(snap.classify.done_uri)
        elif source == "decontaminated":
            ready = layout.storage.exists(snap.decontam.plan_uri)
        else:
            ready = layout.storage.exists(snap.dedup.done_uri) if source == "final" else snap.markers.done()
        if ready:
            out.append(name)
    return out


def language_filter(cfg) -> Callable[[str], bool] | None:
    """tokenize.languages as the predicate encode_part and the tokenizer's sample take (None: every language):
    the config's own rule, TokenizeConfig.wants (a bound method of a dataclass: Ray ships it to the tasks)."""
    return cfg.wants if cfg.languages else None


def ensure_tokenizer(tokset: TokenSetDir, cfg, tokenizer_path: str | None, inputs: list[Input],
                     manifest: dict | None, log: Log) -> tuple[BPETokenizer, dict, bool]:
    """(tokenizer, its manifest entry, trained now): the token set's own, else `tokenizer_path` (copied in),
    else a new one trained on a sample of the inputs (of tokenize.languages only, when set)."""
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
        of = f" in {', '.join(cfg.selection())}" if cfg.languages else ""
        log(f"tokenize: training a {cfg.vocab_size}-token BPE on up to {cfg.sample_bytes:,} bytes of text{of}")
        note_activity(f"training the tokenizer of {tokset.uri}")
        t0 = time.perf_counter()
        ensure_ray()
        task = ray.remote(train_from_inputs).options(num_cpus=1, max_retries=1)
        try:
            tok = ray.get(task.remote(storage, [i.uri for i in inputs], cfg.vocab_size, cfg.sample_bytes,
                                      cfg.name, language_filter(cfg), cfg.selection()))
        except ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, EncodeError):
                raise TokenizeError(str(e.cause)) from None
            raise
        log(f"tokenize: trained in {time.perf_counter() - t0:.1f}s (vocabulary {tok.vocab_size})")
        trained = True
    return tok, write_tokenizer(tokset, tok), trained


# --- the stage -------------------------------------------------------------------------------------------


@dataclass
class TokenizeSummary(StageSummary):
    manifest: dict | None  # the committed manifest (the previous one, or None, when this command failed)
    inputs: int = 0
    encoded: int = 0  # inputs encoded by this command
    dropped: int = 0  # parts of inputs that no longer exist, removed
    trained: bool = False
    warnings: list[str] = field(default_factory=list)  # what the user should know about the result

    @property
    def other_language(self) -> int:
        """Documents left out of this token set for being in a language not in tokenize.languages."""
        return int(((self.manifest or {}).get("skipped") or {}).get("other_language", 0))


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
        clean_stage_partials(storage, tokset.uri)  # what killed runs left half-written
        if source == "decontaminated":
            snapshots = list(snapshots) if snapshots else snapshots_with(layout, recipe.decontaminate_source())
            _decontaminate_first(out, snapshots, recipe, log)
        snapshots = list(snapshots) if snapshots else snapshots_with(layout, source)
        unready: dict[str, str] = {}
        inputs = find_inputs(layout, snapshots, source, log, recipe, unready)
        found = read_manifest(tokset)
        manifest = found[0] if found else None
        tok, info, trained = ensure_tokenizer(tokset, cfg, tokenizer_path, inputs, manifest, log)
        settings = {"val_fraction": cfg.val_fraction, "shard_tokens": cfg.shard_tokens,
                    "max_doc_chars": cfg.max_doc_chars, "source": source, "languages": cfg.selection()}
        plan_fp = {"tokenizer": info["sha256"], **settings}
        if not cfg.languages:  # every language: the fingerprint of token sets made before the key, kept
            del plan_fp["languages"]
        units = []
        for i in inputs:
            fp = digest({**plan_fp, "input": i.identity})
            # the part's shards carry its fingerprint: a re-encoded input writes beside its listed shards
            units.append(Unit(key=i.key, args=(i.uri, f"{i.key}-{fp[:8]}"), source=i.uri, fingerprint=fp))
        fresh: dict[str, dict] = {}
        result = run_stage("tokenize", units, encode_part, shared=(tok, settings, tokset, language_filter(cfg)),
                           markers=tokset.markers, num_cpus=recipe.ray.num_cpus_per_task,
                           max_retries=recipe.ray.max_retries, force=force,
                           progress=f"tokenize {cfg.name}" if progress else False, unit="inputs",
                           on_result=lambda u, stats: fresh.__setitem__(u.key, stats))
        summary = TokenizeSummary(manifest=manifest, inputs=len(inputs), encoded=result.done, trained=trained)
        summary.absorb(result, basename)
        summary.failed.update(unready)  # not encoded: their decontamination failed (a rerun retries both)
        if not summary.ok:
            # No manifest for a token set whose inputs did not all encode: the previous one (and every shard it
            # lists) stays as it was, and no reader takes a partial set for a finished one.
            log(f"tokenize: {len(result.failed)} input(s) failed; {tokset.manifest_uri} "
                + ("keeps the previous version" if manifest else "is not written") + ": fix the cause and rerun")
            summary.seconds = time.perf_counter() - started
            return summary
        base = manifest or new_manifest(cfg.name, info, tok.dtype, settings)
        base.update(settings, tokenizer=info, name=cfg.name)
        parts, summary.dropped = _current_parts(tokset, base, fresh, {u.key for u in units}, set(snapshots), log)
        val = _val_shards(tokset, base, parts, cfg.shard_tokens, recipe, summary)
        if val is None:  # the merge task failed: the previous manifest stays
            summary.seconds = time.perf_counter() - started
            return summary
        merged = merge_parts(base, parts, val)
        t = merged["totals"]
        if result.ok and t["val"]["documents"] and not t["train"]["documents"]:
            raise TokenizeError(f"val_fraction {cfg.val_fraction} put every document ({t['val']['documents']:,}) in "
                                "the val split: the train split is empty. Lower [tokenize] val_fraction")
        merged["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_manifest(tokset, merged)
        remove_unlisted_shards(tokset, merged)
        remove_unlisted_pieces(tokset, merged)
    summary.manifest = merged
    summary.seconds = time.perf_counter() - started
    t = merged["totals"]
    log(f"tokenize: {result.done} input(s) encoded, {result.skipped} already encoded; totals train "
        f"{t['train']['tokens']} tokens / {t['train']['documents']} docs, val {t['val']['tokens']} tokens / "
        f"{t['val']['documents']} docs in {t['val']['shards']} shard(s)")
    if cfg.languages:
        log(f"tokenize: languages {', '.join(cfg.selection())}: {summary.other_language:,} document(s) in other "
            "languages left for other token sets")
    summary.warnings = sanity_warnings(merged, cfg, recipe, tokenizer_path)
    for w in summary.warnings:
        log(f"tokenize: warning: {w}")
    return summary


def _decontaminate_first(out: str, snapshots: list[str], recipe: Recipe, log: Log) -> None:
    """Run the decontaminate stage on each snapshot (it skips what is done) with one index for all: what is
    tokenized is never older than the benchmark files and the documents. A snapshot whose input is not ready
    is an error, as for the other sources; a file that fails is reported by find_inputs."""
    from pipelines.stages.decontaminate import DecontaminateError, build_index, find_inputs as inputs_of, \
        run_decontaminate

    layout = Layout(out, storage_for(recipe))
    try:
        for name in snapshots:  # every snapshot ready before the index is built
            inputs_of(layout.snapshot(name), recipe.decontaminate_source(), recipe)
        index = build_index(recipe, log) if snapshots else None
        for name in snapshots:
            run_decontaminate(out, name, recipe, log=log, index=index)
    except DecontaminateError as e:
        raise TokenizeError(str(e)) from None


def _val_shards(tokset: TokenSetDir, manifest: dict, parts: dict[str, dict], shard_tokens: int, recipe: Recipe,
                summary: TokenizeSummary) -> dict | None:
    """{"digest", "shards"}: the val shards cut from the parts' val pieces; those of the manifest when its pieces
    are the same (nothing to redo), else merged now in one task. None (summary.failed set) when it failed."""
    pieces, digest_ = val_pieces(parts)
    done = manifest.get("val_pieces") or {}
    if done.get("digest") == digest_:
        listed = {s["file"]: s for s in manifest.get("shards") or []}
        if all(name in listed for name in done.get("shards") or []):
            return {"digest": digest_, "shards": [listed[n] for n in done.get("shards") or []]}
    if not pieces:
        return {"digest": digest_, "shards": []}
    unit = Unit(key="val", args=([p for _, p in pieces], digest_), source=f"{len(pieces)} val pieces")
    result = run_stage("tokenize val", [unit], merge_val_pieces, shared=(tokset, shard_tokens), markers=None,
                       num_cpus=recipe.ray.num_cpus_per_task, max_retries=recipe.ray.max_retries, progress=False,
                       keep_stats=True, unit="merges")
    summary.absorb(result)
    return {"digest": digest_, "shards": result.stats["val"]["shards"]} if result.ok else None


def eval_tokens(recipe: Recipe) -> tuple[int, str]:
    """(tokens one evaluation of the trainer reads, how that is made up), with the recipe's [train] settings."""
    from pipelines.recipes import train_config
    from trainer.presets import PRESETS

    cfg = train_config(recipe, tokens="", out="")
    block = cfg.block_size or PRESETS[cfg.preset][3]
    return cfg.eval_iters * cfg.batch_size * (block + 1), (
        f"eval_iters {cfg.eval_iters} x batch_size {cfg.batch_size} x (block_size {block} + 1) with the recipe's "
        "[train] settings")


def sanity_warnings(manifest: dict, cfg, recipe: Recipe, tokenizer_path: str | None) -> list[str]:
    """What a user must hear about a token set: a vocabulary smaller than asked, a validation split that is
    empty or smaller than one evaluation of the trainer."""
    out = []
    vocab = (manifest.get("tokenizer") or {}).get("vocab_size") or 0
    if tokenizer_path is None and vocab < cfg.vocab_size:
        out.append(f"the tokenizer has {vocab:,} tokens, not the {cfg.vocab_size:,} asked for: its training text "
                   "was too small to learn more merges (every pair of tokens it holds is merged already). "
                   "Tokenize more text (more files or snapshots) with a new --name to get the full vocabulary")
    t = manifest["totals"]
    docs = t["train"]["documents"] + t["val"]["documents"]
    if t["val"]["tokens"] == 0:
        out.append(f"the validation split is empty: val_fraction {cfg.val_fraction} of {docs:,} documents drew "
                   "none, so training reports no validation loss. Tokenize more documents, or raise "
                   "tokenize.val_fraction (with a new --name)")
    else:
        need, how = eval_tokens(recipe)
        if t["val"]["tokens"] < need:
            out.append(f"the validation split has {t['val']['tokens']:,} tokens ({t['val']['documents']:,} "
                       f"documents), fewer than one evaluation reads ({need:,} = {how}): the validation loss "
                       "repeats the same text. Tokenize more documents or raise tokenize.val_fraction")
    return out


def _current_parts(tokset: TokenSetDir, base: dict, fresh: dict[str, dict], keys: set[str], scope: set[str],
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
