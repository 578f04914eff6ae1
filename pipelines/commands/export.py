"""`crawlproc export`: a token set -> llm.c/nanoGPT .bin files or a Megatron indexed dataset."""

from __future__ import annotations

import sys

from pipelines.commands.common import add_quiet_option, add_recipe_option, guarded, load_recipe, preflight


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a token set for another trainer: llm.c .bin files, nanoGPT's train.bin/val.bin, or a "
        "Megatron indexed dataset (.bin/.idx)",
        description="Stream a token set (tokens/<name>, local or a URI) shard by shard into files other "
        "trainers read as they are. --format llmc: <out>/<split>_NNNNNN.bin with llm.c's 1,024-byte header "
        "(magic 20240520, version 1, token count; uint16 tokens; the end-of-text token before each document), "
        "what llm.c's train_gpt2.py/.c read. --format nanogpt: <out>/train.bin and val.bin, raw uint16 with no "
        "header and the end-of-text token after each document, what nanoGPT's train.py memmaps (copy them to "
        "its data/<dataset>/). --format megatron: <out>/<split>_text_document.{bin,idx} for megatron.core's "
        "IndexedDataset (end-of-document after each document). The token set's tokenizer.json goes beside "
        "them. --out may be an object-store URI. export.json is written last.",
    )
    p.add_argument("--tokens", required=True, help="the token set: a tokens/<name> folder or URI")
    p.add_argument("--format", required=True, choices=["llmc", "nanogpt", "megatron"],
                   help="llmc (llm.c), nanogpt (nanoGPT's train.py) or megatron (Megatron-LM)")
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
    print(f"export: {record['format']}, {len(record['files'])} file(s), {n:,} tokens -> {args.out}\n"
          f"  read by {record['reader']}")
    return 0
