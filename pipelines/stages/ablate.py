"""The ablate stage: FineWeb's method as one command. Each arm is a token set, or a snapshot (a Common Crawl
listing, or WARC files) that its own recipe processes first; every arm is tokenized with one shared
tokenizer; one model per arm and seed is trained with the same preset, token budget and schedule and scored
on the same benchmarks and reference sets; the result is a table per metric (trainer/ablate.py).

    <out>/ablate/<name>/spec.json          the ablation as run (arms, seeds, training, evaluation, tokenizer)
    <out>/ablate/<name>/tokenizer/         the shared tokenizer, when trained here
    <out>/ablate/<name>/arms/<arm>/        a snapshot arm's own output root (its snapshot, tokens/ablate/)
    <out>/ablate/<name>/runs/<arm>~s<seed>/  one training run: ckpt/, metrics.jsonl, hf/, ablate_eval.json
    <out>/ablate/<name>/_done/<arm>~s<seed>.<fp>.json   a finished unit and its scores (the commit point)
    <out>/ablate/<name>/table.json, table.md

Execution: arms x seeds are units of the stage runner (pipelines/engine/runner.py), one GPU each when the
cluster has GPUs, else packed onto its CPUs (`cpus_per_unit` each). Exactly once: a unit with its marker is
never trained again; a unit killed mid-training continues from its last checkpoint (ckpt_interval); a
worker that dies is retried by Ray, from the checkpoint too. Changing only the evaluation rescores the
finished runs without training them; changing the training settings or an arm's data starts that arm over.
Everything is written through the storage layer, so `--out s3://...` works like every other stage.
"""

from __future__ import annotations

import dataclasses
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from crawlproc.config import RecipeError, build_section
from crawlproc.store.fingerprint import digest
from crawlproc.store.layout import Ablation, Layout, check_name
from crawlproc.store.lock import hold
from crawlproc.store.storage import Storage, default_storage, join, normalize, private_tmpdir
from pipelines.engine.runner import Unit, ensure_ray, run_stage

Log = Callable[[str], None]
TOKENS_NAME = "ablate"  # the token set name inside each snapshot arm's root


class AblateError(ValueError):
    """An ablation that cannot run as specified; the message names the key or the arm."""


@dataclass
class Arm:
    name: str
    tokens: str | None = None  # a token set (folder or URI)
    recipe: str | None = None  # a recipe file or bundled name: the snapshot is processed with it first
    snapshot: str | None = None  # a Common Crawl snapshot id (listing under base_url) or the name of `warcs`
    base_url: str | None = None  # default: the recipe's download.base_url
    files: int | None = None  # the first N files of the listing or of `warcs`
    warcs: list[str] = field(default_factory=list)  # WARC files / globs / URIs instead of a listing
    # training settings of this arm over the ablation's [train] (an architecture, a learning rate, ...): never
    # the token budget, which is the same for every arm
    train: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "tokens" if self.tokens else "snapshot"


# Settings an ablation gives its runs unless its [train] table says otherwise: the final evaluation is what
# the table reads, so the loop's benchmarks are off, and checkpoints are frequent enough that a killed unit
# loses little.
TRAIN_DEFAULTS = {"eval_tasks": [], "eval_refs": [], "sample_tokens": 0}


@dataclass
class AblateSpec:
    arms: list[Arm]
    name: str = "ablation"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    train: dict = field(default_factory=dict)  # TrainConfig fields but tokens, out, seed, resume
    tasks: list[str] = field(default_factory=lambda: ["suite"])
    refs: list[str] = field(default_factory=lambda: ["suite"])
    limit: int = 0  # items per task (0: all)
    ref_limit: int = 0  # documents per reference set (0: all)
    fewshot: int = 0
    eval_batch_size: int = 32
    tokenizer: str | None = None  # a tokenizer.json / token set folder to share; default: trained here
    vocab_size: int = 8192
    sample_bytes: int = 50_000_000  # text the shared tokenizer is trained on, evenly from every arm
    cpus_per_unit: float = 1.0
    gpus_per_unit: float | None = None  # None: 1 when the cluster has GPUs, else 0

    def train_config(self, arm: Arm | None = None) -> dict:
        """The training settings of an arm's units (the ablation's, then the arm's own), validated by
        TrainConfig itself."""
        from trainer.config import TrainConfig

        own = arm.train if arm is not None else {}
        budget = sorted(set(own) & set(BUDGET_KEYS))
        if budget:
            raise AblateError(f"arm {arm.name}: train.{budget[0]} sets the token budget, which is the same for "
                              "every arm: set it in the ablation's [train] table")
        table = {**TRAIN_DEFAULTS, **self.train, **own}
        for k in ("tokens", "out", "seed", "resume"):
            if k in table:
                raise AblateError(f"train.{k} is set by the ablation for each unit, not in its [train] table")
        cfg = build_section(TrainConfig, table, "train", given={"tokens": "", "out": ""})
        values = dataclasses.asdict(cfg)
        for k in ("tokens", "out", "seed", "resume"):
            values.pop(k)
        if "ckpt_interval" not in table:
            values["ckpt_interval"] = max(1, cfg.max_steps // 10)
        if "log_interval" not in table:
            values["log_interval"] = max(1, cfg.max_steps // 10)
        return values

    def eval_spec(self) -> dict:
        from crawlproc.evalsuite import resolve_paths

        return {"tasks": resolve_paths(self.tasks, "task"), "references": resolve_paths(self.refs, "reference"),
                "limit": self.limit or None, "ref_limit": self.ref_limit or None, "fewshot": self.fewshot,
                "batch_size": self.eval_batch_size}


BUDGET_KEYS = ("max_steps", "batch_size", "block_size", "grad_accum", "preset")
ARM_KEYS = {f.name for f in dataclasses.fields(Arm)}
SPEC_KEYS = {f.name for f in dataclasses.fields(AblateSpec)} - {"arms", "train"}
DEFAULTABLE = ("snapshot", "base_url", "files", "warcs")  # [ablate] may set these for every snapshot arm


def parse_spec(data: dict, where: str = "spec") -> AblateSpec:
    """An ablation from TOML-shaped data: [ablate] settings, [train] (TrainConfig fields), [[arms]]."""
    unknown = set(data) - {"ablate", "train", "arms"}
    if unknown:
        raise AblateError(f"{where}: unknown table(s) {sorted(unknown)} (known: ablate, train, arms)")
    top = dict(data.get("ablate", {}))
    defaults = {k: top.pop(k) for k in DEFAULTABLE if k in top}
    bad = set(top) - SPEC_KEYS
    if bad:
        raise AblateError(f"{where}: unknown key(s) ablate.{sorted(bad)[0]} (known: {', '.join(sorted(SPEC_KEYS | set(DEFAULTABLE)))})")
    arms = []
    for i, raw in enumerate(data.get("arms", [])):
        if not isinstance(raw, dict):
            raise AblateError(f"{where}: arms[{i}] must be a table")
        bad = set(raw) - ARM_KEYS
        if bad:
            raise AblateError(f"{where}: arms[{i}]: unknown key {sorted(bad)[0]!r} (known: {', '.join(sorted(ARM_KEYS))})")
        values = {**({k: v for k, v in defaults.items()} if "tokens" not in raw else {}), **raw}
        arms.append(Arm(**values))
    if "seeds" in top and isinstance(top["seeds"], int) and not isinstance(top["seeds"], bool):
        top["seeds"] = list(range(top["seeds"]))
    spec = AblateSpec(arms=arms, train=dict(data.get("train", {})), **top)
    check_spec(spec)
    return spec


def load_spec(path: str) -> AblateSpec:
    p = Path(path)
    if not p.is_file():
        raise AblateError(f"ablation spec {path!r} does not exist")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise AblateError(f"{path}: not TOML ({e})") from None
    spec = parse_spec(data, path)
    for arm in spec.arms:  # relative paths in a spec file are relative to the file
        for attr in ("tokens", "recipe"):
            v = getattr(arm, attr)
            if v and "://" not in v and not Path(v).is_absolute() and (p.parent / v).exists():
                setattr(arm, attr, str(p.parent / v))
        arm.warcs = [w if "://" in w or Path(w).is_absolute() else str(p.parent / w) for w in arm.warcs]
    return spec


def check_spec(spec: AblateSpec) -> None:
    from crawlproc.store.layout import LayoutError

    try:
        _check_spec(spec)
    except LayoutError as e:
        raise AblateError(str(e)) from None


def _check_spec(spec: AblateSpec) -> None:
    if len(spec.arms) < 2:
        raise AblateError("an ablation compares at least 2 arms")
    names = [a.name for a in spec.arms]
    for n in names:
        check_name(n, "arm name")
    if len(set(names)) != len(names):
        raise AblateError(f"arm names must be unique: {names}")
    check_name(spec.name, "ablation name")
    if not spec.seeds or len(set(spec.seeds)) != len(spec.seeds) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in spec.seeds):
        raise AblateError(f"seeds must be distinct integers >= 0 (or a count), got {spec.seeds}")
    for a in spec.arms:
        if bool(a.tokens) == bool(a.recipe):
            raise AblateError(f"arm {a.name}: give either `tokens` (a token set) or `recipe` (with a snapshot "
                              "or warcs to process)")
        if a.recipe and not a.warcs and not a.snapshot:
            raise AblateError(f"arm {a.name}: a recipe arm needs `snapshot` (a listing) or `warcs` (files)")
        if a.snapshot:
            check_name(a.snapshot, f"arm {a.name} snapshot")
    for k in ("limit", "ref_limit", "fewshot"):
        if not isinstance(getattr(spec, k), int) or getattr(spec, k) < 0:
            raise AblateError(f"ablate.{k} must be an integer >= 0")
    if spec.cpus_per_unit <= 0 or (spec.gpus_per_unit is not None and spec.gpus_per_unit < 0):
        raise AblateError("ablate.cpus_per_unit must be > 0 and gpus_per_unit >= 0")
    if spec.vocab_size < 300:
        raise AblateError("ablate.vocab_size must be >= 300")
    try:
        for arm in spec.arms:
            spec.train_config(arm)
        spec.eval_spec()
    except RecipeError as e:
        raise AblateError(str(e)) from None
    except ValueError as e:
        raise AblateError(str(e)) from None


# --- preparing the arms ------------------------------------------------------------------------------------


def _arm_recipe(arm: Arm):
    from pipelines.recipes import resolve_recipe

    recipe = resolve_recipe(arm.recipe)
    return dataclasses.replace(recipe, tokenize=dataclasses.replace(recipe.tokenize, name=TOKENS_NAME))


def _snapshot_name(arm: Arm) -> str:
    return arm.snapshot or "local"


def check_arm_inputs(spec: AblateSpec) -> None:
    """What can be known of the recipe arms before Ray starts, in seconds: each recipe loads, and a recipe that
    selects from a given `fetch.index` names a part to read (a listing of it, as `crawlproc run` checks)."""
    from crawlproc.store.storage import storage_for
    from pipelines.stages.index import IndexSelectionError, check_given_index

    for arm in spec.arms:
        if not arm.recipe:
            continue
        try:
            recipe = _arm_recipe(arm)
        except (RecipeError, ValueError) as e:
            raise AblateError(f"arm {arm.name}: {e}") from None
        if arm.warcs:
            continue
        try:
            check_given_index(_snapshot_name(arm), recipe, arm.base_url or recipe.download.base_url,
                              storage_for(recipe))
        except IndexSelectionError as e:
            raise AblateError(f"arm {arm.name}: {e}") from e


def process_arm(ab: Ablation, arm: Arm, log: Log, progress: bool) -> dict:
    """Extract (from a listing or WARC files), dedup, decontaminate and classify as the arm's recipe says, each
    stage resuming where it stopped. Returns what happened, for the spec record."""
    from pipelines.stages.chain import classify_stage, decontaminate_stage, dedup_stage
    from pipelines.stages.extract import expand_inputs, run_extract
    from pipelines.stages.run import RunContext, run_snapshot

    recipe = _arm_recipe(arm)
    root = ab.arm_root(arm.name)
    snap = _snapshot_name(arm)
    log(f"ablate: arm {arm.name}: processing {'WARC files' if arm.warcs else f'snapshot {snap}'} with recipe "
        f"{arm.recipe}")
    if arm.warcs:
        inputs = expand_inputs(arm.warcs, ab.storage)
        summary = run_extract(inputs, root, recipe, dump=snap, progress=progress, storage=ab.storage)
    else:
        from crawlproc.crawl.download import DownloadError
        from crawlproc.crawl.listing import ListingError
        from pipelines.stages.index import IndexSelectionError

        try:
            summary = run_snapshot(snap, root, recipe, base_url=arm.base_url, limit=arm.files, progress=progress)
        except (ListingError, IndexSelectionError) as e:  # as `crawlproc run` reports them: one line
            raise AblateError(f"arm {arm.name}: {e}") from e
        except DownloadError as e:
            raise AblateError(f"arm {arm.name}: cannot read the listing of {snap}: {e}") from e
    if summary.failed:
        log(f"ablate: arm {arm.name}: {len(summary.failed)} file(s) failed (see `crawlproc status --out {root}`)")
    ctx = RunContext(snap, Layout(root, ab.storage), recipe, summary)
    if recipe.dedup.enabled:
        dedup_stage(ctx)
    decontaminate_stage(ctx)
    classify_stage(ctx)
    return {"files": summary.files, "failed": len(summary.failed), "stages": ctx.summary.stage_info}


def _tokenizer_bytes(spec: AblateSpec, token_arms: dict, ab: Ablation, snapshot_arms: list[Arm], log: Log,
                     storage: Storage) -> bytes:
    """tokenizer.json of the shared tokenizer: the token set arms' (they must agree), the one the spec names,
    the one this ablation trained before, or a new one trained on an even sample of the snapshot arms."""
    from tokenizer.formats import HF_FILE, tokenizer_files

    shas = {name: ts.manifest["tokenizer"].get("sha256") for name, ts in token_arms.items()}
    if len(set(shas.values())) > 1:
        raise AblateError("the token set arms have different tokenizers ("
                          + ", ".join(f"{k}: {v[:12]}" for k, v in shas.items())
                          + "): an ablation compares data under one tokenizer; encode them with one "
                          "(`crawlproc tokenize --tokenizer`)")
    chosen = None
    if spec.tokenizer:
        src = normalize(spec.tokenizer)
        path = src if src.endswith(".json") else join(src, HF_FILE)
        if not storage.exists(path):
            raise AblateError(f"ablate.tokenizer: {path} does not exist")
        chosen = storage.read_bytes(path)
    elif token_arms:
        chosen = next(iter(token_arms.values())).read(HF_FILE)
        if chosen is None:
            raise AblateError(f"token set {next(iter(token_arms))} has no {HF_FILE}")
    if chosen is not None:
        import hashlib

        digest_ = hashlib.sha256(chosen).hexdigest()
        wrong = [k for k, v in shas.items() if v != digest_]
        if wrong:
            raise AblateError(f"ablate.tokenizer is not the tokenizer of token set arm(s) {wrong}")
        return chosen
    saved = join(ab.tokenizer_dir, HF_FILE)
    if storage.exists(saved):
        return storage.read_bytes(saved)
    import ray

    from pipelines.stages.tokenize import find_inputs

    uris_by_arm = []
    for arm in snapshot_arms:
        recipe = _arm_recipe(arm)
        layout = Layout(ab.arm_root(arm.name), storage)
        inputs = find_inputs(layout, [_snapshot_name(arm)], recipe.tokenize_source(), log, recipe)
        if not inputs:
            raise AblateError(f"arm {arm.name} has no documents to train the shared tokenizer on")
        uris_by_arm.append([i.uri for i in inputs])
    log(f"ablate: training the shared {spec.vocab_size}-token BPE on up to {spec.sample_bytes:,} bytes, evenly "
        f"from {len(uris_by_arm)} arm(s)")
    ensure_ray()
    tok = ray.get(ray.remote(_train_shared).options(num_cpus=1, max_retries=1).remote(
        storage, uris_by_arm, spec.vocab_size, spec.sample_bytes))
    files = tokenizer_files(tok)
    for name, data in files.items():
        if name != HF_FILE:
            storage.write_bytes(join(ab.tokenizer_dir, name), data)
    storage.write_bytes(saved, files[HF_FILE])  # last: its presence means the tokenizer is complete
    return files[HF_FILE]


def _train_shared(storage: Storage, uris_by_arm: list[list[str]], vocab_size: int, sample_bytes: int):
    from tokenizer.encode import sample_texts
    from tokenizer import train_bpe

    share = max(1, sample_bytes // len(uris_by_arm))
    texts = [t for uris in uris_by_arm for t in sample_texts(storage, uris, share)]
    return train_bpe(texts, vocab_size, name=TOKENS_NAME)


def prepare_arms(ab: Ablation, spec: AblateSpec, log: Log, progress: bool) -> tuple[dict[str, str], dict]:
    """{arm: token set URI}, every one encoded with the shared tokenizer; and a record of what was done."""
    from pipelines.stages.tokenize import run_tokenize
    from tokenizer.tokenset import ShardError, open_token_set

    storage = ab.storage
    token_arms = {}
    for arm in spec.arms:
        if arm.tokens:
            try:
                token_arms[arm.name] = open_token_set(arm.tokens, storage)
            except ShardError as e:
                raise AblateError(f"arm {arm.name}: {e}") from None
    snapshot_arms = [a for a in spec.arms if not a.tokens]
    record = {"arms": {}}
    for arm in snapshot_arms:
        record["arms"][arm.name] = process_arm(ab, arm, log, progress)
    data = _tokenizer_bytes(spec, token_arms, ab, snapshot_arms, log, storage)
    import hashlib

    record["tokenizer_sha256"] = hashlib.sha256(data).hexdigest()
    uris = {name: ts.uri for name, ts in token_arms.items()}
    with private_tmpdir("ablate-tok") as d:
        local = Path(d) / "tokenizer.json"
        local.write_bytes(data)
        for arm in snapshot_arms:
            recipe = _arm_recipe(arm)
            root = ab.arm_root(arm.name)
            result = run_tokenize(root, recipe, [_snapshot_name(arm)], tokenizer_path=str(local), progress=progress,
                                  log=log)
            if not result.ok:
                raise AblateError(f"arm {arm.name}: tokenization failed ({result.stopped or result.failed})")
            uris[arm.name] = Layout(root, storage).tokens(TOKENS_NAME).uri
    return {a.name: uris[a.name] for a in spec.arms}, record


# --- running ------------------------------------------------------------------------------------------------


@dataclass
class AblationResult:
    uri: str
    table: dict
    trained: int = 0  # units run by this command
    skipped: int = 0  # units already done
    failed: dict = field(default_factory=dict)
    stopped: object = None

    @property
    def ok(self) -> bool:
        return not self.failed and self.stopped is None and not self.table["missing"]


def _gpus(spec: AblateSpec) -> float:
    if spec.gpus_per_unit is not None:
        return spec.gpus_per_unit
    import ray

    ensure_ray()
    return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def _tokens_info(uri: str, storage: Storage) -> dict:
    from tokenizer.tokenset import open_token_set

    ts = open_token_set(uri, storage)
    totals = ts.manifest.get("totals", {})
    return {"uri": uri, "manifest_sha256": ts.digest, "train_tokens": totals.get("train", {}).get("tokens"),
            "train_documents": totals.get("train", {}).get("documents"), "tokenizer_sha256":
            ts.manifest["tokenizer"].get("sha256")}


def run_ablation(out: str, spec: AblateSpec, storage: Storage | None = None, log: Log | None = None,
                 progress: bool = True) -> AblationResult:
    """Prepare the arms, run every arm x seed not yet done, and write the table. Ray starts on first use."""
    from crawlproc.evalsuite import load_reference, load_task
    from trainer.ablate import ablation_table, table_markdown, train_and_evaluate
    from trainer.config import WEIGHT_FIELDS
    from trainer.evaluate import storage_reader
    from tokenizer.tokenset import open_token_set

    storage = storage or default_storage()
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    ab = Layout(out, storage).ablation(spec.name)
    train = spec.train_config()
    eval_spec = spec.eval_spec()
    read = storage_reader(storage)
    eval_ids = {"tasks": [load_task(p, read).sha256 for p in eval_spec["tasks"]],
                "references": [load_reference(p, read).sha256 for p in eval_spec["references"]],
                **{k: eval_spec[k] for k in ("limit", "ref_limit", "fewshot")}}
    with hold(storage, ab.lock_uri, f"ablation {ab.uri}"):
        arm_tokens, prepared = prepare_arms(ab, spec, log, progress)
        tokens = {a: _tokens_info(u, storage) for a, u in arm_tokens.items()}
        tokens_per_step = train["batch_size"] * train["grad_accum"] * _block_size(train)
        units = []
        for arm in spec.arms:
            ts = open_token_set(arm_tokens[arm.name], storage)
            arm_train = spec.train_config(arm)
            for seed in spec.seeds:
                weights = {k: arm_train[k] for k in WEIGHT_FIELDS if k != "seed"}  # what the model depends on
                train_fp = digest({"tokens": ts.digest, "train": weights, "seed": int(seed)})
                units.append(Unit(key=ab.unit_key(arm.name, seed),
                                  args=(arm.name, seed, ts.uri, ab.run(arm.name, seed), arm_train, eval_spec,
                                        train_fp),
                                  source=f"arm {arm.name}, seed {seed}",
                                  fingerprint=digest({"train": train_fp, "eval": eval_ids})))
        storage.write_json(ab.spec_uri, {
            "name": spec.name, "arms": [dataclasses.asdict(a) for a in spec.arms], "seeds": spec.seeds,
            "train": train, "eval": eval_spec, "eval_ids": eval_ids, "tokens": tokens,
            "tokens_per_unit": tokens_per_step * train["max_steps"], **prepared})
        done = ab.markers.done()
        todo = [u for u in units if done.get(u.key) != u.fingerprint]
        gpus = _gpus(spec) if todo else 0.0  # a rerun with nothing to do starts no Ray
        threads = max(1, int(spec.cpus_per_unit))
        log(f"ablate: {len(spec.arms)} arms x {len(spec.seeds)} seeds = {len(units)} units, "
            f"{tokens_per_step * train['max_steps']:,} tokens each, "
            + (f"{gpus:g} GPU per unit" if gpus else f"{spec.cpus_per_unit:g} CPU per unit"))
        result = run_stage("ablate", units, train_and_evaluate, shared=(threads, storage), markers=ab.markers,
                           num_cpus=spec.cpus_per_unit, num_gpus=gpus, max_retries=3,
                           progress="ablate" if progress else False, unit="units", count=(None, ""),
                           fail_fast=len(units))
        records = _records(ab, units)
        table = ablation_table(records, [a.name for a in spec.arms], spec.seeds)
        table.update(name=spec.name, tokens=tokens, tokens_per_unit=tokens_per_step * train["max_steps"],
                     preset=train["preset"], arch=train["arch"], max_steps=train["max_steps"],
                     arm_train={a.name: a.train for a in spec.arms if a.train},
                     eval=eval_spec, records=records)
        storage.write_json(ab.table_uri, table)
        storage.write_bytes(ab.table_md_uri, table_markdown(table).encode())
    return AblationResult(ab.uri, table, trained=result.done, skipped=result.skipped,
                          failed={k: f.line() for k, f in result.failed.items()}, stopped=result.stopped)


def _block_size(train: dict) -> int:
    from trainer.presets import PRESETS

    return train.get("block_size") or PRESETS[train["preset"]][3]


def _records(ab: Ablation, units: list[Unit]) -> list[dict]:
    """The scores of every unit done with its current fingerprint (from the markers: one LIST, one GET each)."""
    done = ab.markers.done()
    out = []
    for u in units:
        if done.get(u.key) == u.fingerprint:
            marker = ab.markers.read(u.key, u.fingerprint) or {}
            stats = marker.get("stats")
            if isinstance(stats, dict) and isinstance(stats.get("metrics"), dict):
                out.append(stats)
    return out
