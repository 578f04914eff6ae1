"""`crawlproc mix`: token sets -> a new token set of a token budget, sampled by weight, globally shuffled."""

from __future__ import annotations

import sys

from pipelines.commands.common import (
    add_quiet_option, add_ray_option, add_recipe_option, guarded, load_recipe, preflight, start_ray,
)


def register(sub) -> None:
    p = sub.add_parser(
        "mix",
        help="mix token sets by weight into a new token set of a token budget, globally shuffled",
        description="Sample whole documents from one or more token sets (same tokenizer) into <out>/tokens/NAME: "
        "each --source is PATH:WEIGHT (a share of the budget), PATH:all (every document once) or PATH:xK "
        "(every document K times; x1.5 = once, and a second time for half of them). PATH is a tokens/<name> "
        "folder, a URI, or a token set name under --out. Deterministic from --seed; an external shuffle on "
        "--out's storage, never everything in memory; resumable: the same command after a crash finishes the "
        "same output. Example: crawlproc mix --out OUT --name web --source a:0.7 --source b:0.3 --tokens 50M",
    )
    p.add_argument("--out", required=True, help="output root: a folder or URI (the mix goes to <out>/tokens/NAME)")
    p.add_argument("--name", default=None, help="the mix's token set name (default: [mix] name, else 'mix')")
    p.add_argument("--source", action="append", default=[], metavar="PATH:SPEC",
                   help="a token set and how much of it: PATH:0.7, PATH:all or PATH:x2 (repeatable)")
    p.add_argument("--tokens", default=None, help="train tokens of the mix (50M, 1.5B, 200k); needed with weights")
    p.add_argument("--seed", type=int, default=None, help="sampling and shuffling seed (default 0)")
    p.add_argument("--mix", metavar="FILE", help="a TOML file with a [mix] table (sources, tokens, seed, name)")
    p.add_argument("--bucket-tokens", default=None,
                   help="tokens per bucket of the external shuffle: a gather task's memory (default 25M)")
    p.add_argument("--shard-tokens", default=None, help="tokens per output shard at most (default: bucket)")
    p.add_argument("--rehydrate", default=None, metavar="WEIGHTS",
                   help="repeat each document by the size of the duplicate cluster it stood for (FineWeb-2's "
                   "rehydration): 'fineweb2' (its weights: 1, 2, 3, 3, 5 from 5, 8 from 100, 1 from 1000); per "
                   "source in a --mix file: rehydrate = \"fineweb2\" or {size = copies}")
    p.add_argument("--force", action="store_true", help="replace a token set of that name holding something else")
    add_recipe_option(p)
    add_ray_option(p)
    add_quiet_option(p)
    p.set_defaults(func=main)


def main(args) -> int:
    return guarded("mix", lambda: _main(args))


def _config(args, storage):
    import dataclasses

    from tokenizer.mix.config import config_from_args, load_mix_toml
    from tokenizer.mix.decide import MixError, parse_tokens

    if args.mix:
        cfg = load_mix_toml(args.mix, storage)
        if args.source:
            raise MixError("give the sources either with --source or in --mix's [mix] table, not both")
        changes = {k: v for k, v in {"name": args.name, "seed": args.seed,
                                     "budget": parse_tokens(args.tokens) if args.tokens else None,
                                     "bucket_tokens": parse_tokens(args.bucket_tokens) if args.bucket_tokens else None,
                                     "shard_tokens": parse_tokens(args.shard_tokens) if args.shard_tokens else None,
                                     }.items() if v is not None}
        if args.rehydrate:
            from tokenizer.mix.decide import parse_rehydrate

            weights = parse_rehydrate(args.rehydrate)
            changes["sources"] = [dataclasses.replace(s, rehydrate=weights) for s in cfg.sources]
        return dataclasses.replace(cfg, **changes)
    return config_from_args(args.source, args.name or "mix", args.tokens, args.seed or 0, args.bucket_tokens,
                            args.shard_tokens, args.rehydrate)


def _main(args) -> int:
    from crawlproc.store.storage import is_remote, storage_for
    from tokenizer.mix.decide import MixError
    from tokenizer.shards import ShardError

    recipe = load_recipe(args)
    storage = storage_for(recipe)
    preflight(storage, reads=[("--mix", args.mix, "file")] + [("--source", s.rsplit(":", 1)[0], "dir")
                                                              for s in args.source if is_remote(s)],
              writes=[("--out", args.out)])
    from pipelines.stages.mix import run_mix  # after the checks: they end in seconds

    try:
        cfg = _config(args, storage)
        start_ray(args, recipe)
        log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
        summary = run_mix(args.out, cfg, recipe, force=args.force, progress=not args.quiet, log=log)
    except (MixError, ShardError) as e:
        print(f"crawlproc mix: {e}", file=sys.stderr)
        return 2
    if summary.stopped:
        print(f"crawlproc mix: stopped: {summary.stopped}", file=sys.stderr)
        return 2
    if summary.failed:
        print("units that failed (the same command retries them):", file=sys.stderr)
        for key, err in summary.failed.items():
            print(f"  {key}: {err}", file=sys.stderr)
        return 1
    print(describe(summary.manifest))
    return 0


def describe(manifest: dict) -> str:
    mix = manifest["mix"]
    t = manifest["totals"]
    lines = [f"mix {manifest['name']} (digest {mix['digest']}, seed {mix['seed']}): train {t['train']['tokens']:,} "
             f"tokens / {t['train']['documents']:,} docs, val {t['val']['tokens']:,} tokens / "
             f"{t['val']['documents']:,} docs" + (f"; budget {mix['budget_tokens']:,}" if mix["budget_tokens"] else "")]
    for s in mix["sources"]:
        r = s["realized"]
        lines.append(f"  {s['spec']:>6}  {s['uri']}: train {r['train']['tokens']:,} tokens / "
                     f"{r['train']['documents']:,} docs (target {s['target_tokens']:,} of "
                     f"{s['available']['train']['tokens']:,}), val {r['val']['tokens']:,} tokens")
    if mix.get("duplicates_dropped"):
        lines.append(f"  {mix['duplicates_dropped']:,} document copies met in two sources dropped once")
    return "\n".join(lines)
