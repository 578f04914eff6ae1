"""`crawlproc extract`: WARC files (local or object-store) -> filtered documents in Parquet, on Ray."""

from __future__ import annotations

from pipelines.commands.common import (
    add_quiet_option, add_ray_option, add_recipe_option, exit_code, fail, guarded, load_recipe, preflight,
    print_failures, start_ray,
)


def register(sub) -> None:
    p = sub.add_parser(
        "extract",
        help="run the extract stage (URL filter, text extraction, language ID, quality filters) on WARC files",
        description="Read HTML responses from WARC files (local paths, globs or folders, or s3://... URIs), "
        "filter URLs, extract text with trafilatura, identify the language with fastText and apply the Gopher, "
        "C4 and FineWeb quality filters. Writes <out>/<dump>/docs/ (kept), removed/ (with the stage and reason), "
        "stats/ and _done/ per input file, one Ray task per file. Files already done (same content, same "
        "recipe) are skipped, so a rerun resumes.",
    )
    p.add_argument("inputs", nargs="+", metavar="WARC", help="WARC files, globs (quote them), folders or URIs")
    p.add_argument("--out", required=True, help="output root: a folder or an object-store URI (s3://bucket/prefix)")
    add_recipe_option(p)
    p.add_argument("--dump", default="local", help="snapshot name recorded in `dump` and used as the folder "
                   "name under --out (default: local)")
    p.add_argument("--force", action="store_true", help="redo the snapshot with this recipe when it was "
                   "extracted with another one (files of the old recipe not given here are removed)")
    add_ray_option(p)
    add_quiet_option(p)
    p.set_defaults(func=main)


def main(args) -> int:
    return guarded("extract", lambda: _main(args))


def _main(args) -> int:
    from crawlproc.store.layout import check_snapshot_name
    from crawlproc.store.storage import glob_base, is_remote, storage_for

    recipe = load_recipe(args)
    check_snapshot_name(args.dump, "--dump (snapshot name)")
    storage = storage_for(recipe)
    preflight(storage, reads=[("input", glob_base(p), "any") for p in args.inputs if is_remote(p)],
              writes=[("--out", args.out)])
    from pipelines.stages.extract import expand_inputs, run_extract  # after the checks: they end in seconds

    try:
        inputs = expand_inputs(args.inputs, storage)
    except FileNotFoundError as e:
        return fail("extract", str(e))
    start_ray(args, recipe)
    summary = run_extract(inputs, args.out, recipe, dump=args.dump, force=args.force, progress=not args.quiet)
    print(
        f"extract: {summary.files} files ({summary.skipped_done} already done, {summary.done} processed, "
        f"{len(summary.failed)} failed); documents kept {summary.kept}, removed {summary.removed}; "
        f"output in {summary.out}/{args.dump}/"
    )
    print_failures(summary, "extract")
    return exit_code(summary)
