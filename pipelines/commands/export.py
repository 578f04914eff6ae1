"""`crawlproc export`: a token set -> llm.c/nanoGPT .bin files or a Megatron indexed dataset."""

from __future__ import annotations

import sys

from pipelines.commands.common import add_quiet_option, add_recipe_option, guarded, load_recipe, preflight


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a token set as llm.c .bin files or a Megatron indexed dataset (.bin/.idx)",
        description="Stream a token set (tokens/<name>, local or a URI) shard by shard into files other "
        "trainers read: --format llmc writes <out>/<split>_NNNNNN.bin with llm.c's header (magic 20240520, "
        "version 1, token count; uint16 tokens; the end-of-text token before each document); --format megatron "
        "writes <out>/<split>_text_document.{bin,idx} for megatron.core's IndexedDataset (end-of-document "
        "after each document). --out may be an object-store URI. export.json is written last.",
    )
    p.add_argument("--tokens", required=True, help="the token set: a tokens/<name> folder or URI")
    p.add_argument("--format", required=True, choices=["llmc", "megatron"])
    p.add_argument("--out", required=True, help="output folder or URI")
    p.add_argument("--max-tokens", default=None,
                   help="llmc: tokens per .bin file at most (default 100M, as llm.c's FineWeb files)")
    add_recipe_option(p)
    add_quiet_option(p)
    p.set_defaults(func=main)


def main(args) -> int:
    return guarded("export", lambda: _main(args))


def _main(args) -> int:
    from crawlproc.store.storage import storage_for
    from pipelines.stages.export import DEFAULT_LLMC_MAX_TOKENS, run_export
    from tokenizer.exports import ExportError
    from tokenizer.mix.decide import MixError, parse_tokens
    from tokenizer.shards import ShardError

    recipe = load_recipe(args)
    preflight(storage_for(recipe), reads=[("--tokens", args.tokens, "dir")], writes=[("--out", args.out)])
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
    try:
        max_tokens = parse_tokens(args.max_tokens) if args.max_tokens else DEFAULT_LLMC_MAX_TOKENS
        record = run_export(args.tokens, args.format, args.out, storage_for(recipe), max_tokens, log)
    except (ExportError, ShardError, MixError) as e:
        print(f"crawlproc export: {e}", file=sys.stderr)
        return 2
    n = sum(f.get("tokens", 0) for f in record["files"])
    print(f"export: {record['format']}, {len(record['files'])} file(s), {n:,} tokens -> {args.out}")
    return 0
