"""`crawlproc classifier train|run`: train a fastText quality classifier; run the classify stage on a snapshot."""

from __future__ import annotations

import sys

from pipelines.commands.common import (
    add_quiet_option, add_ray_option, add_recipe_option, exit_code, fail, guarded, preflight, print_failures,
)


def register(sub) -> None:
    p = sub.add_parser("classifier", help="model-based quality classifiers: train a fastText one, run the "
                       "recipe's classifiers on a snapshot",
                       description="Model-based quality classifiers (DCLM-style fastText, FineWeb-Edu-style "
                       "transformers). See `crawlproc classifier train --help` and `crawlproc classifier run --help`.")
    cmds = p.add_subparsers(dest="classifier_command", metavar="<train|run>", required=True)

    t = cmds.add_parser(
        "train", help="train a fastText quality classifier from positive and negative texts",
        description="Train a supervised fastText classifier: positives (--positives, label hq) against negatives "
        "(--negatives, label cc; or --negatives-from OUT/SNAPSHOT: a random sample of that snapshot's own "
        "final/ documents, as DCLM did). Inputs are Parquet or JSONL(.gz) files or folders with a `text` "
        "field (local paths or URIs). A split held out by a hash of each text measures it: precision, recall "
        "and AUC are printed. Writes OUT/model.bin (and model.ftz with --quantize), OUT/card.json and "
        "OUT/README.md (the model card: data sources with counts and sha256, parameters, figures).")
    t.add_argument("--positives", action="append", required=True, metavar="PATH",
                   help="texts of the wanted kind (repeatable)")
    t.add_argument("--negatives", action="append", default=[], metavar="PATH", help="texts of the other kind (repeatable)")
    t.add_argument("--negatives-from", action="append", default=[], metavar="OUT/SNAPSHOT",
                   help="sample negatives from a snapshot's documents (repeatable)")
    t.add_argument("--negatives-sample", type=int, metavar="N",
                   help="documents to sample with --negatives-from (default: as many as there are positives)")
    t.add_argument("--out", required=True, help="folder (or URI) to write the model and its card to")
    t.add_argument("--text-field", default="text", help="the text column / JSON field (default: text)")
    t.add_argument("--quantize", action="store_true", help="also write a quantized model.ftz (much smaller)")
    from crawlproc.classify.train import TrainParams

    d = TrainParams()
    for name, help_ in (("lr", "learning rate"), ("epoch", "passes over the data"), ("word_ngrams", "word n-grams"),
                        ("dim", "vector size"), ("min_count", "minimum word count"), ("bucket", "n-gram buckets"),
                        ("threads", "fastText threads (>= 11)"), ("seed", "seed of the sample and the shuffle"),
                        ("holdout", "fraction of texts held out"), ("max_chars", "characters of each text used")):
        t.add_argument(f"--{name.replace('_', '-')}", type=type(getattr(d, name)), default=getattr(d, name),
                       help=f"{help_} (default: {getattr(d, name)})")
    t.add_argument("--positive-label", default=d.positive_label, help=f"default: {d.positive_label}")
    t.add_argument("--negative-label", default=d.negative_label, help=f"default: {d.negative_label}")
    t.set_defaults(func=train_main)

    r = cmds.add_parser(
        "run", help="run the recipe's classifiers on one snapshot (after dedup)",
        description="Score <out>/<snapshot>/decontaminated/ (the deduplicated documents without benchmark items; "
        "the decontaminate stage runs first when needed; final/ or docs/ with [decontaminate] enabled = false) "
        "with every "
        "[classifiers.<name>] of the recipe and write classified/ (kept, one <name>_score column each) and "
        "classified_removed/ (removed_by \"classify\", removed_reason \"classifier:<name>\"). Resumable; a "
        "changed model rescores, a changed threshold only re-splits.")
    r.add_argument("--out", required=True, help="output root: a folder or URI")
    r.add_argument("--snapshot", required=True, help="snapshot name: the folder under --out")
    add_recipe_option(r)
    add_ray_option(r)
    r.add_argument("--force", action="store_true", help="redo files already done")
    add_quiet_option(r)
    r.set_defaults(func=run_main)


def train_main(args) -> int:
    return guarded("classifier train", lambda: _train(args))


def _train(args) -> int:
    from crawlproc.classify.train import TrainError, TrainParams, read_texts, sample_snapshot, train_classifier

    from crawlproc.store.storage import default_storage

    params = TrainParams(**{k: getattr(args, k) for k in TrainParams.__dataclass_fields__})
    if not args.negatives and not args.negatives_from:
        return fail("classifier train", "give --negatives or --negatives-from")
    storage = default_storage()
    preflight(storage, reads=[*(("--positives", p, "any") for p in args.positives),
                              *(("--negatives", p, "any") for p in args.negatives),
                              *(("--negatives-from", p, "dir") for p in args.negatives_from)],
              writes=[("--out", args.out)])
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    try:
        params.check()
        positives, negatives, sources = [], [], []
        for path in args.positives:
            texts, src = read_texts(path, params.positive_label, args.text_field)
            positives += texts
            sources.append(src)
        for path in args.negatives:
            texts, src = read_texts(path, params.negative_label, args.text_field)
            negatives += texts
            sources.append(src)
        want = args.negatives_sample or len(positives)
        for i, snap in enumerate(args.negatives_from):
            share = want // len(args.negatives_from) + (i < want % len(args.negatives_from))
            texts, src = sample_snapshot(snap, share, params.negative_label, seed=params.seed + i)
            negatives += texts
            sources.append(src)
        card = train_classifier(positives, negatives, sources, args.out, params, quantize=args.quantize, log=log)
    except (TrainError, FileNotFoundError) as e:
        return fail("classifier train", str(e))
    for split, m in card["metrics"].items():
        print(f"{split:>18}: {m['documents']:,} texts ({m['positives']:,} positive): precision {m['precision']:.4f}, "
              f"recall {m['recall']:.4f}, F1 {m['f1']:.4f}, AUC {m['auc']:.4f} (threshold {m['threshold']})")
    print(f"model written to {args.out.rstrip('/')}/{'model.ftz' if args.quantize else 'model.bin'} "
          f"(card: {args.out.rstrip('/')}/card.json)")
    return 0


def run_main(args) -> int:
    return guarded("classifier run", lambda: _run(args))


def _run(args) -> int:
    from crawlproc.store.layout import Layout
    from crawlproc.store.lock import hold
    from crawlproc.store.storage import storage_for
    from pipelines.stages.classify import ClassifyError, classify_settings, run_classify
    from pipelines.commands.common import load_recipe, start_ray

    recipe = load_recipe(args)
    if not classify_settings(recipe)[1]:
        return fail("classifier run", "the recipe has no [classifiers.<name>] table: nothing to run")
    preflight(storage_for(recipe), writes=[("--out", args.out)])
    start_ray(args, recipe)
    snap = Layout(args.out, storage_for(recipe)).snapshot(args.snapshot)
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
    try:
        with hold(snap.storage, snap.lock_uri, f"snapshot {snap.uri}"):
            summary = run_classify(args.out, args.snapshot, recipe, force=args.force, progress=not args.quiet,
                                   log=log)
    except ClassifyError as e:
        return fail("classifier run", str(e))
    print(f"classify {args.snapshot}: {summary.inputs} files, {summary.documents:,} documents: {summary.kept:,} kept, "
          f"{summary.removed:,} removed ({summary.scored} scored, {summary.applied} split now, {summary.seconds:.1f}s)")
    for rule in summary.rules:
        thr = "score only" if not rule["active"] else f"score >= {rule['threshold']}"
        print(f"  {rule['name']}: {thr}" + (f" (keep_fraction {rule['keep_fraction']})" if rule["keep_fraction"] else ""))
    print_failures(summary, "classifier run")
    return exit_code(summary)
