"""`crawlproc extract`: local WARC files -> filtered documents in Parquet, on Ray."""

from __future__ import annotations

import sys

from crawlproc.recipe import RecipeError


def register(sub) -> None:
    p = sub.add_parser(
        "extract",
        help="run the extract stage (URL filter, text extraction, language ID, quality filters) on WARC files",
        description="Read HTML responses from WARC files (local paths, globs or folders), filter URLs, extract "
        "text with trafilatura, identify the language with fastText and apply the Gopher, C4 and FineWeb quality "
        "filters. Writes <out>/<dump>/docs/ (kept), removed/ (with the stage and reason), stats/ and _done/ per "
        "input file, one Ray task per file. Files already done are skipped, so a rerun resumes.",
    )
    p.add_argument("inputs", nargs="+", metavar="WARC", help="WARC files, globs (quote them) or folders")
    p.add_argument("--out", required=True, help="output root folder")
    p.add_argument("--recipe", help="recipe TOML file or bundled name (default: fineweb)")
    p.add_argument("--dump", default="local", help="snapshot name recorded in `dump` and used as the folder "
                   "name under --out (default: local)")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=main)


def main(args) -> int:
    from pipelines.extract_stage import expand_inputs, run_extract
    from pipelines.recipe_files import resolve_recipe

    try:
        recipe = resolve_recipe(args.recipe)
    except RecipeError as e:
        print(f"crawlproc: bad recipe: {e}", file=sys.stderr)
        return 2
    try:
        inputs = expand_inputs(args.inputs)
    except FileNotFoundError as e:
        print(f"crawlproc: {e}", file=sys.stderr)
        return 2
    summary = run_extract(inputs, args.out, recipe, dump=args.dump, address=args.address,
                          progress=not args.quiet)
    print(
        f"extract: {summary.files} files ({summary.skipped_done} already done, {summary.done} processed, "
        f"{len(summary.failed)} failed); documents kept {summary.kept}, removed {summary.removed}; "
        f"output in {args.out}/{args.dump}/"
    )
    if summary.failed:
        print("failed files:", file=sys.stderr)
        for path, err in summary.failed.items():
            print(f"  {path}: {err}", file=sys.stderr)
        return 1
    return 0
