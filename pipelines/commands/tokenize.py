"""`crawlproc tokenize`: final documents -> BPE token shards in Parquet, on Ray."""

from __future__ import annotations

import sys

from pipelines.commands.common import (
    add_quiet_option, add_ray_option, add_recipe_option, guarded, load_recipe, preflight, start_ray,
)


def register(sub) -> None:
    p = sub.add_parser(
        "tokenize",
        help="train (or reuse) a BPE tokenizer and encode final documents into token shards",
        description="Encode <out>/<snapshot>/decontaminated/*.parquet (deduplicated, benchmark items removed: the "
        "decontaminate stage runs first when needed; classified/ when the recipe has classifiers; final/ or docs/ "
        "(tokenize.source = \"docs\") only with [decontaminate] enabled = false) into <out>/tokens/<name>/ shards with a manifest.json, one Ray task per input file. If the "
        "token set has no tokenizer yet, one is trained on a sample of the text (or --tokenizer is copied in). "
        "Inputs already encoded are skipped, changed ones re-encoded, vanished ones dropped: a crash or a new "
        "snapshot costs only the missing inputs.",
    )
    p.add_argument("--out", required=True, help="output root: a folder or URI")
    p.add_argument("--snapshot", action="append", metavar="S",
                   help="snapshot to encode (repeatable; default: every snapshot ready under --out)")
    p.add_argument("--name", help="token set name, the folder under <out>/tokens/ (default: recipe, 'bpe')")
    p.add_argument("--vocab-size", type=int, help="vocabulary size when training (default: recipe, 32000)")
    p.add_argument("--tokenizer", metavar="PATH",
                   help="use this tokenizer (folder, tokenizer.json or .tiktoken) instead of training one")
    p.add_argument("--shard-tokens", type=int, help="tokens per shard at most (default: recipe, 100M)")
    p.add_argument("--force", action="store_true", help="re-encode inputs already encoded")
    add_recipe_option(p)
    add_ray_option(p)
    add_quiet_option(p)
    p.set_defaults(func=main)


def main(args) -> int:
    return guarded("tokenize", lambda: _main(args))


def _main(args) -> int:

    overrides = {k: v for k, v in {"name": args.name, "vocab_size": args.vocab_size,
                                   "shard_tokens": args.shard_tokens}.items() if v is not None}
    from crawlproc.store.storage import storage_for

    recipe = load_recipe(args, {"tokenize": overrides} if overrides else None)
    preflight(storage_for(recipe), reads=[("--tokenizer", args.tokenizer, "any")], writes=[("--out", args.out)])
    from pipelines.stages.tokenize import TokenizeError, run_tokenize  # after the checks: they end in seconds
    from tokenizer.shards import ShardError

    start_ray(args, recipe)
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
    try:
        summary = run_tokenize(args.out, recipe, snapshots=args.snapshot, tokenizer_path=args.tokenizer,
                               force=args.force, progress=not args.quiet, log=log)
    except (TokenizeError, ShardError, FileNotFoundError, ValueError) as e:
        print(f"crawlproc tokenize: {e}", file=sys.stderr)
        return 2
    m = summary.manifest
    if summary.ok:
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(m["skipped"].items()) if k != "other_language") or "none"
        if m.get("languages"):  # not bad documents: those of the other token sets
            skipped += (f"; in languages other than {', '.join(m['languages'])} (left for other token sets): "
                        f"{summary.other_language:,}")
        print(f"tokenize: {summary.inputs} input files, {summary.encoded} encoded in {summary.seconds:.1f}s; "
              f"totals: train {m['totals']['train']['tokens']:,} tokens, val {m['totals']['val']['tokens']:,} "
              f"tokens; skipped documents: {skipped}")
        if args.quiet:  # otherwise the log said them already
            for w in summary.warnings:
                print(f"crawlproc tokenize: warning: {w}", file=sys.stderr)
    if summary.stopped:
        print(f"crawlproc tokenize: stopped: {summary.stopped}", file=sys.stderr)
        return 2
    if summary.failed:
        print("files not encoded (a rerun retries them):", file=sys.stderr)
        for key, err in summary.failed.items():
            print(f"  {key}: {err}", file=sys.stderr)
        return 1
    return 0
