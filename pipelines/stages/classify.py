"""The classify stage on Ray: one snapshot's documents scored by the recipe's classifiers, then split into
classified/ (kept, one `<name>_score` column per classifier) and classified_removed/ (with the reason).

By default it reads decontaminated/ (after dedup, as DCLM: no model time is spent on duplicates, nor on
documents holding benchmark items), running the decontaminate stage first when its output is missing or out of
date; with `[decontaminate] enabled = false`, final/, or docs/ with `classify.source = "docs"` (recipes
without dedup). Every
classifier is checked before any work starts: a model that cannot be read, or lacks the label, is a
RecipeError naming its key.

Two passes over the input files, each a unit of the stage runner (pipelines/engine/runner.py), then a summary:
 1. score    per file: every classifier's scores (crawlproc.classify.apply.score_file). fastText models score
             in the file's task (loaded once per worker); transformers models score on a pool of actors, one
             model each (GPU when the cluster has one): the task sends its documents, longest first, in chunks
             that an ActorPool spreads over the actors. Marker fingerprint: the input's identity and each
             classifier's model content hash, label and scoring settings.
 2. apply    per file: the thresholds (a keep_fraction's is derived from every stored score of the snapshot
             between the passes) -> classified/ and classified_removed/. Marker fingerprint: the scores' and
             the rules' (thresholds included), so a new threshold redoes only this pass.
Then classify/summary.json (rules, counts, score histograms: the report reads it) and classify/_done.json,
the commit point that `tokenize.source = "classified"` waits for.

ActorPool (ray.util) rather than Ray Data's map_batches: the unit of work, of resume and of failure stays the
input file (the runner's markers and root-cause records), the actors are created only when some file still
needs scoring, and there is no streaming executor to start on a small machine.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial

from crawlproc.classify import ClassifierConfig, ClassifyConfig, build
from crawlproc.classify.apply import apply_file, resolve_rules, score_file
from crawlproc.classify.base import Classifier
from crawlproc.classify.hf import score_with
from crawlproc.store.fingerprint import digest
from crawlproc.store.layout import Layout, Snapshot, check_snapshot_name, now_iso
from crawlproc.recipe import Recipe, RecipeError
from crawlproc.store.storage import clean_stage_partials, storage_for
from pipelines.engine.runner import StageSummary, StageResult, Unit, ensure_ray, run_stage

CHUNK_BATCHES = 4  # batches per call to an actor: enough to amortize the call, few enough to balance


class ClassifyError(RuntimeError):
    """The stage cannot run as asked (dedup not finished, nothing to read)."""


def classify_settings(recipe: Recipe) -> tuple[ClassifyConfig, dict[str, ClassifierConfig]]:
    """The recipe's [classify] section and [classifiers.<name>] tables (none: the stage has nothing to do)."""
    return recipe.classify, dict(recipe.classifiers)


@dataclass
class Input:
    stem: str
    uri: str
    identity: str  # what the input's content is made of: the finished dedup, or the file's extract marker


def find_inputs(snap: Snapshot, source: str, decontaminate_source: str = "final",
                recipe: Recipe | None = None) -> list[Input]:
    if source == "decontaminated":
        from pipelines.stages.decontaminate import DecontaminateError, decontaminated_inputs

        try:
            ready, missing = decontaminated_inputs(snap, decontaminate_source, recipe)
        except DecontaminateError as e:
            raise ClassifyError(str(e)) from None
        if missing:  # a classifier's keep_fraction is over the whole snapshot: every file or none
            stem, why = next(iter(missing.items()))
            raise ClassifyError(f"snapshot {snap.name!r}: {len(missing)} file(s) not decontaminated ({stem}: {why}): "
                                f"run `crawlproc decontaminate --snapshot {snap.name}` again")
        return [Input(i.stem, i.uri, i.identity) for i in ready]
    if source == "final":
        finished = snap.dedup.done()
        if not finished:
            raise ClassifyError(f"snapshot {snap.name!r} has no finished dedup (its final/ is what is classified): "
                                f"run `crawlproc dedup --snapshot {snap.name}` first, or set classify.source = "
                                "\"docs\" in a recipe without dedup")
        deduped = finished.get("inputs")
        if deduped is not None and deduped != snap.markers.done():
            raise ClassifyError(f"snapshot {snap.name!r} changed since its dedup (files were extracted or redone "
                                f"after it): run `crawlproc dedup --snapshot {snap.name}` again first")
        identity = digest(finished)
        return [Input(s, snap.path("final", s), identity) for s in snap.stems("final")]
    return [Input(stem, snap.path("docs", stem), fp) for stem, fp in sorted(snap.markers.done().items())]


def inputs_digest(inputs: list[Input]) -> str:
    return digest(sorted((i.stem, i.identity) for i in inputs))


def classified_identity(snap: Snapshot, source: str = "decontaminated", decontaminate_source: str = "final",
                        recipe: Recipe | None = None) -> str:
    """What <snapshot>/classified/ is made of, for the tokenize stage (`tokenize.source = "classified"`):
    the digest of classify/_done.json. Raises ClassifyError when the classify stage has not finished, or when
    its input changed after it (dedup, decontamination or extraction redone): classified/ would then be stale."""
    done = snap.classify.done()
    if not done:
        raise ClassifyError(f"snapshot {snap.name!r} has no finished classify stage (its classified/ is what is "
                            f"tokenized): run `crawlproc classifier run --snapshot {snap.name}` first")
    again = f"run `crawlproc classifier run --snapshot {snap.name}` again first"
    try:
        now = inputs_digest(find_inputs(snap, source, decontaminate_source, recipe))
    except ClassifyError as e:  # its own input is out of date
        raise ClassifyError(f"snapshot {snap.name!r} changed since its classify stage ({e}): {again}") from None
    if done.get("inputs") != now:
        raise ClassifyError(f"snapshot {snap.name!r} changed since its classify stage ({source}/ was redone after "
                            f"it): {again}")
    return digest(done)


@dataclass
class ClassifySummary(StageSummary):
    snapshot: str
    inputs: int = 0
    scored: int = 0  # files scored by this command
    applied: int = 0  # files split by this command
    documents: int = 0
    kept: int = 0
    removed: int = 0
    rules: list[dict] = field(default_factory=list)
    pools: dict[str, dict] = field(default_factory=dict)  # transformers classifier -> actors, device, batch size


# --- the transformers actors -------------------------------------------------------------------------------


class ScorerActor:
    """One transformers model on one device (a Ray actor): built from the classifier, on the actor's host."""

    def __init__(self, classifier, device: str):
        self.scorer = classifier.scorer(device)

    def info(self) -> dict:
        return self.scorer.info()

    def score(self, texts: list[str]) -> list[float]:
        return self.scorer.score(texts)


def pool_size(cfg, resources: dict) -> tuple[int, float]:
    """(actors, GPUs per actor) for one transformers classifier on a cluster with `resources`."""
    gpus, cpus = resources.get("GPU", 0), resources.get("CPU", 1)
    num_gpus = cfg.num_gpus if cfg.num_gpus is not None else (1.0 if gpus >= 1 else 0.0)
    if num_gpus > 0:
        actors = cfg.actors or max(1, int(gpus // num_gpus))
    else:
        actors = cfg.actors or max(1, int(cpus // (2 * cfg.num_cpus)))
    return actors, num_gpus


def start_pools(classifiers: list[Classifier], task_cpus: float, log) -> dict[str, dict]:
    """Start the actors of every transformers classifier and wait until each holds its model; a model that
    does not load fails here, before any file is scored."""
    import ray

    ensure_ray()
    resources = ray.cluster_resources()
    pools, cpus_used = {}, 0.0
    for c in classifiers:
        if not c.remote:
            continue
        actors, num_gpus = pool_size(c.cfg, resources)
        cpus_used += actors * c.cfg.num_cpus
        if cpus_used + task_cpus > resources.get("CPU", 1):
            raise RecipeError(c.key("actors"), f"{actors} actor(s) x {c.cfg.num_cpus} CPU leave no CPU for the file "
                              f"tasks (the cluster has {resources.get('CPU', 1):g})")
        device = "cuda" if num_gpus > 0 else "cpu"
        cls = ray.remote(ScorerActor).options(num_cpus=c.cfg.num_cpus, num_gpus=num_gpus, max_restarts=1,
                                               max_task_retries=1)
        handles = [cls.remote(c, device) for _ in range(actors)]
        try:
            infos = ray.get([h.info.remote() for h in handles])
        except ray.exceptions.RayError as e:
            for h in handles:
                ray.kill(h)
            raise RecipeError(c.key("model"), f"the model does not load in a Ray actor: {e}") from None
        pools[c.name] = {"handles": handles, "actors": actors, "num_gpus": num_gpus, **infos[0]}
        log(f"classify: {c.name}: {actors} actor(s) on {device}, batch size {infos[0]['batch_size']}, "
            f"max length {infos[0]['max_length']} tokens")
    return pools


def _pool_scores(handles: list, chunk: int, texts: list[str]) -> list[float]:
    """Scores of non-empty texts from an actor pool: longest first, `chunk` texts per call, in order."""
    from ray.util import ActorPool

    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    chunks = [[texts[i] for i in order[s:s + chunk]] for s in range(0, len(order), chunk)]
    out = [0.0] * len(texts)
    results = ActorPool(handles).map(lambda actor, part: actor.score.remote(part), chunks)
    for s, part in zip(range(0, len(order), chunk), results):
        for i, v in zip(order[s:s + chunk], part):
            out[i] = v
    return out


def score_unit(uri: str, stem: str, identity: str, snap: Snapshot, classifiers: list[Classifier],
               pools: dict) -> dict:
    remote = {name: partial(score_with, score_batch=partial(_pool_scores, p["handles"], p["chunk"]))
              for name, p in pools.items()}
    return score_file(uri, stem, identity, snap, classifiers, remote)


# --- the stage ---------------------------------------------------------------------------------------------


def run_classify(out: str, snapshot: str, recipe: Recipe, *, force: bool = False, progress: bool = True,
                 log=print) -> ClassifySummary:
    """Classify one snapshot (see the module docstring); returns what it did. Ray must be initialisable."""
    started = time.perf_counter()
    cfg, configs = classify_settings(recipe)
    summary = ClassifySummary(snapshot)
    if not configs:
        log("classify: the recipe has no [classifiers.<name>]: nothing to do")
        return summary
    layout = Layout(out, storage_for(recipe))
    snap = layout.snapshot(check_snapshot_name(snapshot, "--snapshot"))
    clean_stage_partials(layout.storage, snap.uri)  # what killed runs left half-written
    classifiers = build(configs, layout.storage, cfg.model_cache)
    for c in classifiers:  # RecipeError (bad model, missing label) before any work
        c.prepare()
    source = recipe.classify_input()
    if source == "decontaminated":
        from pipelines.stages.decontaminate import DecontaminateError, run_decontaminate

        try:
            run_decontaminate(out, snapshot, recipe, progress=progress, log=log)  # a file that fails: find_inputs
        except DecontaminateError as e:
            raise ClassifyError(str(e)) from None
    inputs = find_inputs(snap, source, recipe.decontaminate_source(), recipe)
    summary.inputs = len(inputs)
    if not inputs:
        raise ClassifyError(f"snapshot {snapshot!r} has no {source}/ documents to classify")
    local = any(not c.remote for c in classifiers)
    task_cpus = recipe.ray.num_cpus_per_task if local else min(0.25, recipe.ray.num_cpus_per_task)
    options = {"max_retries": recipe.ray.max_retries, "force": force}

    # pass 1: scores
    score_fp = {i.stem: digest({"input": i.identity, "scores": [c.score_fingerprint for c in classifiers]})
                for i in inputs}
    units = [Unit(i.stem, (i.uri, i.stem, i.identity), i.uri, score_fp[i.stem]) for i in inputs]
    markers = snap.classify.wave_markers("score")
    done = markers.done()
    pools: dict = {}
    if force or any(done.get(u.key) != u.fingerprint for u in units):
        pools = start_pools(classifiers, task_cpus, log)
        for p in pools.values():
            p["chunk"] = p["batch_size"] * CHUNK_BATCHES
        summary.pools = {n: {k: v for k, v in p.items() if k != "handles"} for n, p in pools.items()}
    try:
        result = run_stage("classify-score", units, score_unit, shared=(snap, classifiers, pools), markers=markers,
                           num_cpus=task_cpus, progress="classify: score" if progress else False, **options)
    finally:
        _stop(pools)
    summary.scored = result.done
    if not _record_failures(summary, result):
        return _finish(summary, started)

    # between the passes: the rules (a keep_fraction's threshold from every stored score)
    rules = resolve_rules(snap, classifiers, [i.stem for i in inputs])
    summary.rules = [r.to_dict() for r in rules]
    rules_fp = digest(summary.rules)

    # pass 2: classified/ and classified_removed/
    units = [Unit(i.stem, (i.uri, i.stem), i.uri, digest({"scores": score_fp[i.stem], "rules": rules_fp}))
             for i in inputs]
    markers = snap.classify.wave_markers("apply")
    fresh: dict[str, dict] = {}
    result = run_stage("classify", units, apply_file, shared=(snap, rules), markers=markers,
                       num_cpus=recipe.ray.num_cpus_per_task, progress="classify: apply" if progress else False,
                       on_result=lambda u, stats: fresh.__setitem__(u.key, stats), **options)
    summary.applied = result.done
    if not _record_failures(summary, result):
        return _finish(summary, started)
    _drop_vanished(snap, {i.stem for i in inputs}, log)
    plan = digest(sorted((u.key, u.fingerprint) for u in units))  # what classified/ is made of
    previous = snap.storage.read_json(snap.classify.summary_uri) or {}
    if fresh or previous.get("plan") != plan:  # else the summary of this very plan is there: no marker reads
        stats = {u.key: fresh.get(u.key) or (markers.read(u.key, u.fingerprint) or {}).get("stats") or {}
                 for u in units}
        _write_summary(snap, source, classifiers, rules, stats, summary, plan, inputs_digest(inputs))
    else:
        summary.documents, summary.kept, summary.removed = (previous[k] for k in ("documents", "kept", "removed"))
    log(f"classify: {snapshot}: {summary.documents:,} documents, {summary.kept:,} kept, {summary.removed:,} "
        f"removed ({summary.scored} file(s) scored, {summary.applied} split by this run)")
    return _finish(summary, started)


def _stop(pools: dict) -> None:
    if pools:
        import ray

        for p in pools.values():
            for h in p["handles"]:
                ray.kill(h)


def _record_failures(summary: ClassifySummary, result: StageResult) -> bool:
    summary.absorb(result, lambda source: f"{result.stage} {source}")
    return result.ok


def _finish(summary: ClassifySummary, started: float) -> ClassifySummary:
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _drop_vanished(snap: Snapshot, stems: set[str], log) -> None:
    """Outputs of input files that no longer exist (a re-run dedup with fewer files)."""
    gone = 0
    for kind in ("classified", "classified_removed"):
        for stem in snap.stems(kind):
            if stem not in stems:
                snap.storage.delete(snap.path(kind, stem))
                gone += kind == "classified"
    for step in ("score", "apply"):
        m = snap.classify.wave_markers(step)
        for key, fp in m.done().items():
            if key not in stems:
                m.unmark(key, fp)
    if gone:
        log(f"classify: removed the outputs of {gone} input file(s) that no longer exist")


def _write_summary(snap: Snapshot, source: str, classifiers: list[Classifier], rules, stats: dict,
                   summary: ClassifySummary, plan: str, inputs: str) -> None:
    """summary.json (rewritten each run), and _done.json, rewritten only when the plan changed: its content
    is the identity of classified/ for the tokenize stage, so a rerun that changed nothing re-encodes nothing."""
    summary.documents = sum(s.get("documents", 0) for s in stats.values())
    summary.kept = sum(s.get("kept", 0) for s in stats.values())
    summary.removed = sum(s.get("removed", 0) for s in stats.values())
    if summary.kept + summary.removed != summary.documents:  # never lose documents silently
        raise ClassifyError(f"classify {snap.name}: kept {summary.kept} + removed {summary.removed} != "
                            f"{summary.documents} documents")
    per = []  # in recipe order (the order removals are attributed in; JSON objects are written sorted)
    for c, r in zip(classifiers, rules):
        hist: Counter = Counter()
        for s in stats.values():
            hist.update({int(k): v for k, v in (s.get("histograms") or {}).get(c.name, {}).items()})
        scored = sum(hist.values())
        per.append({
            "name": c.name, "kind": c.kind, "model": c.cfg.model, "label": c.cfg.label, "identity": c.identity, "rule": r.to_dict(),
            "scored": scored, "no_text": summary.documents - scored,
            "passed": sum((s.get("passed") or {}).get(c.name, 0) for s in stats.values()),
            "removed": sum((s.get("removed_by") or {}).get(c.name, 0) for s in stats.values()),
            "histogram": {"bin": r.bin, "counts": {str(k): hist[k] for k in sorted(hist)}},
            "pool": summary.pools.get(c.name),
        })
    record = {"snapshot": snap.name, "source": source, "files": len(stats), "documents": summary.documents,
              "kept": summary.kept, "removed": summary.removed, "classifiers": per, "plan": plan,
              "updated_at": now_iso()}
    snap.storage.write_json(snap.classify.summary_uri, record)
    done = snap.classify.done() or {}
    if done.get("plan") != plan:
        snap.storage.write_json(snap.classify.done_uri, {
            "snapshot": snap.name, "documents": summary.documents, "kept": summary.kept, "plan": plan,
            "inputs": inputs, "finished_at": now_iso()})

