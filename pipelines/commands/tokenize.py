"""`crawlproc tokenize`: final documents -> BPE token shards in Parquet, on Ray."""

from __future__ import annotations

import sys

from crawlproc.recipe import RecipeError


def register(sub) -> None:
    p = sub.add_parser(
        "tokenize",
        help="train (or reuse) a BPE tokenizer and encode final documents into token shards",
        description="Encode <out>/<snapshot>/final/*.parquet (docs/ where a snapshot has no final/ yet) into "
        "<out>/tokens/<name>/{train,val}-NNNNN.parquet with a manifest.json, one Ray task per input file. "
        "If <out>/tokens/<name>/ has no tokenizer yet, one is trained on a sample of the text (or --tokenizer "
        "is copied in). Inputs already encoded are skipped: a new snapshot only adds shards.",
    )
    p.add_argument("--out", required=True, help="output root folder")
    p.add_argument(
        "--snapshot",
        action="append",
        metavar="S",
        help="snapshot to encode (repeatable; default: every snapshot folder under --out)",
    )
    p.add_argument("--name", help="token set name, the folder under <out>/tokens/ (default: recipe, 'bpe')")
    p.add_argument("--vocab-size", type=int, help="vocabulary size when training (default: recipe, 32000)")
    p.add_argument(
        "--tokenizer",
        metavar="PATH",
        help="use this tokenizer (folder, tokenizer.json or .tiktoken) instead of training one",
    )
    p.add_argument("--shard-tokens", type=int, help="tokens per shard at most (default: recipe, 100M)")
    p.add_argument("--recipe", help="recipe TOML file or bundled name (default: fineweb)")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.set_defaults(func=main)


def main(args) -> int:
    from pipelines.recipe_files import resolve_recipe

    overrides = {
        k: v
        for k, v in {
            "name": args.name,
            "vocab_size": args.vocab_size,
            "shard_tokens": args.shard_tokens,
        }.items()
        if v is not None
    }
    try:
        recipe = resolve_recipe(args.recipe, {"tokenize": overrides} if overrides else None)
    except RecipeError as e:
        print(f"crawlproc: bad recipe: {e}", file=sys.stderr)
        return 2

    from pipelines.ray_runtime import init_ray
    from pipelines.tokenize_stage import TokenizeError, run_tokenize

    init_ray(args.address, recipe)
    try:
        summary = run_tokenize(
            args.out,
            snapshots=args.snapshot,
            config=recipe.tokenize,
            tokenizer_path=args.tokenizer,
            num_cpus_per_task=recipe.ray.num_cpus_per_task,
            max_retries=recipe.ray.max_retries,
        )
    except (TokenizeError, FileNotFoundError, ValueError) as e:
        print(f"crawlproc tokenize: {e}", file=sys.stderr)
        return 2
    m = summary.manifest
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(m["skipped"].items())) or "none"
    print(
        f"tokenize: {summary.new_inputs} files encoded into {len(summary.new_shards)} new shards in "
        f"{summary.seconds:.1f}s; totals: train {m['totals']['train']['tokens']:,} tokens, "
        f"val {m['totals']['val']['tokens']:,} tokens; skipped documents: {skipped}"
    )
    if summary.failed:
        print("files not encoded (a rerun retries them):", file=sys.stderr)
        for key, err in summary.failed.items():
            print(f"  {key}: {err}", file=sys.stderr)
        return 1
    return 0
