"""`crawlproc dedup`: exact + MinHash near-duplicate removal on Ray, then PII anonymization."""

from __future__ import annotations

import json
import sys

from pipelines.commands.common import guarded, load_recipe, preflight, start_ray


def register(sub) -> None:
    p = sub.add_parser(
        "dedup",
        help="remove exact and near duplicates (MinHash LSH on Ray), then anonymize e-mails and public IPs",
        description="Deduplicate one snapshot's documents: exact content hashes first, then MinHash (word "
        "5-grams, 14 bands x 8 rows by default) with band keys shuffled across Ray tasks, candidate pairs, "
        "connected components and one survivor per cluster (the first document in input order). Reads "
        "<out>/<snapshot>/docs/ or any folder of Parquet documents with `text` and `id` columns (--input-dir); "
        "writes signatures/, dedup/duplicates/, dedup/summary.json and final/ (PII applied). With "
        "`dedup.scope = \"all\"` in the recipe, documents also matching earlier snapshots' band index are "
        "dropped. A rerun resumes where a crashed run stopped.",
    )
    p.add_argument("--out", required=True, help="output root: a folder or URI")
    p.add_argument("--snapshot", required=True, help="snapshot name: the folder under --out")
    p.add_argument("--input-dir", help="folder or URI of Parquet documents (default: the snapshot's docs/ "
                   "files whose extract is done)")
    p.add_argument("--recipe", help="recipe TOML file or bundled name (default: fineweb)")
    p.add_argument("--scope", choices=["snapshot", "all"], help="override the recipe's dedup.scope")
    p.add_argument("--ids-from-content", action="store_true",
                   help="documents have no `id` column: make each one's id from its file, row and text hash "
                   "(<stem>:<row>:<xxh64>; recipe: dedup.ids = \"content\")")
    p.add_argument("--force", action="store_true", help="redo even if dedup/_done.json exists")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.set_defaults(func=main)


def main(args) -> int:
    return guarded("dedup", lambda: _main(args))


def _main(args) -> int:
    from crawlproc.dedup.signatures import check_input_dir
    from crawlproc.store.storage import storage_for

    overrides = {k: v for k, v in {"scope": args.scope, "ids": "content" if args.ids_from_content else None}.items()
                 if v is not None}
    recipe = load_recipe(args, {"dedup": overrides} if overrides else None)
    preflight(storage_for(recipe), reads=[("--input-dir", args.input_dir, "dir")], writes=[("--out", args.out)])
    if args.input_dir:  # a foreign folder: say what is wrong with it before Ray starts
        why = check_input_dir(args.input_dir, recipe.dedup.ids, storage_for(recipe))
        if why:
            print(f"crawlproc dedup: {why}", file=sys.stderr)
            return 2
    from pipelines.stages.dedup import DedupError, run_dedup  # after the checks: they end in seconds

    start_ray(args, recipe)
    try:
        summary = run_dedup(args.out, args.snapshot, recipe, input_dir=args.input_dir, force=args.force,
                            log=lambda m: print(m, file=sys.stderr))
    except DedupError as e:
        print(f"crawlproc dedup: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=1))
    return 0
