"""`crawlproc run`: a Common Crawl snapshot from its listing to filtered documents (and later stages)."""

from __future__ import annotations

import sys

from pipelines.commands.common import (
    add_quiet_option, add_ray_option, add_recipe_option, exit_code, fail, guarded, load_recipe, preflight,
    print_failures, start_ray,
)


def register(sub) -> None:
    p = sub.add_parser(
        "run",
        help="process a Common Crawl snapshot: download its WARCs and run the pipeline (resumable)",
        description="Read <base-url>/crawl-data/<snapshot>/warc.paths.gz, download each listed WARC (retried, "
        "resumed with HTTP Range, gzip-verified) and process it on Ray into <out>/<snapshot>/. Rerunning the "
        "same command after a crash finishes the job with exactly the output of an uninterrupted run; files "
        "added to the listing later cost only their own work. Exits 1 when a file failed (see `crawlproc "
        "status`), 2 when nothing could start.",
    )
    p.add_argument("--snapshot", required=True, metavar="CC-MAIN-YYYY-WW", help="snapshot name, e.g. CC-MAIN-2024-10")
    p.add_argument("--base-url", help="where crawl-data/ lives (default: the recipe's download.base_url, "
                   "https://data.commoncrawl.org; s3://commoncrawl maps to it)")
    p.add_argument("--out", default="out", help="output root: a folder or an object-store URI (default: out)")
    p.add_argument("--limit", "--max-files", dest="limit", type=int, metavar="N",
                   help="process only the first N files of the listing")
    add_recipe_option(p)
    p.add_argument("--cache-dir", help="keep downloaded WARCs here and reuse them (default: the recipe's "
                   "download.cache_dir; none = delete after processing)")
    add_ray_option(p)
    p.add_argument("--stages", default="extract,dedup,tokenize",
                   help="comma-separated stages to run after the listing: extract,dedup,decontaminate,classify,"
                   "tokenize,train (default: extract,dedup,tokenize; dedup includes PII anonymization; "
                   "decontaminate runs whenever classify or tokenize runs, unless the recipe turns it off; classify "
                   "runs the recipe's [classifiers.<name>], also whenever tokenize runs, and does nothing without "
                   "them)")
    p.add_argument("--force", action="store_true", help="redo the snapshot with this recipe when it was "
                   "processed with another one")
    p.add_argument("--train-preset", help="model preset for the train stage (default: the recipe's [train], "
                   "else tiny)")
    p.add_argument("--train-steps", type=int, help="optimizer steps for the train stage (default: the recipe's "
                   "[train] max_steps, else 100)")
    add_quiet_option(p)
    p.set_defaults(func=main)


def main(args) -> int:
    return guarded("run", lambda: _main(args))


def _main(args) -> int:
    from pipelines.stages.chain import build_chain

    if args.limit is not None and args.limit < 0:
        return fail("run", "--limit must be >= 0")
    recipe = load_recipe(args)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    try:
        if "extract" not in stages:
            raise ValueError("the stages must include extract (it is skipped per file when already done)")
        chain = build_chain(stages, train_preset=args.train_preset, train_steps=args.train_steps)
    except ValueError as e:
        return fail("run", f"--stages: {e}")
    from crawlproc.store.storage import storage_for

    base = args.base_url or recipe.download.base_url
    cache = args.cache_dir if args.cache_dir is not None else recipe.download.cache_dir
    preflight(storage_for(recipe),
              reads=[("--base-url", base, "dir")] if base.startswith("s3://") and recipe.download.s3 == "store" else [],
              writes=[("--out", args.out), ("--cache-dir", cache)])
    from crawlproc.crawl.download import DownloadError  # after the checks: they end in seconds
    from crawlproc.crawl.listing import ListingError
    from pipelines.stages.index import IndexSelectionError, check_given_index
    from pipelines.stages.run import print_summary, run_snapshot

    try:
        check_given_index(args.snapshot, recipe, base, storage_for(recipe))
    except IndexSelectionError as e:
        return fail("run", str(e))
    start_ray(args, recipe)
    try:
        summary = run_snapshot(args.snapshot, args.out, recipe, base_url=args.base_url, limit=args.limit,
                               cache_dir=args.cache_dir, progress=not args.quiet, force=args.force, chain=chain)
    except (ListingError, IndexSelectionError) as e:
        return fail("run", str(e))
    except DownloadError as e:
        return fail("run", f"cannot read the listing of {args.snapshot}: {e}")
    print_summary(summary)
    for r in summary.rejected:
        print(f"  rejected listing line {r['index'] + 1}: {r['line']!r}: {r['reason']}", file=sys.stderr)
    print_failures(summary, "run")
    return exit_code(summary)
