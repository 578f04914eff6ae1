"""`crawlproc decontaminate`: the documents that hold benchmark items out of a snapshot, on Ray."""

from __future__ import annotations

import json
import sys

from pipelines.commands.common import (
    add_quiet_option, add_ray_option, add_recipe_option, guarded, load_recipe, preflight, start_ray,
)


def register(sub) -> None:
    p = sub.add_parser(
        "decontaminate",
        help="remove the documents that share n-grams with benchmark items (after dedup, before classify "
        "and tokenize)",
        description="Index the benchmark items (the bundled evaluation suite and the recipe's "
        "decontaminate.benchmarks, plus --benchmark files) as 13-grams of normalized words, then scan "
        "<out>/<snapshot>/final/ (one Ray task per file) and write decontaminated/ (kept) and "
        "decontaminated_removed/ (removed_by = decontaminate, removed_reason = the benchmark, with the item id "
        "and the shared n-gram). `crawlproc run` and `crawlproc tokenize` run this stage themselves; a rerun "
        "skips the files already done with the same benchmark files and settings.",
    )
    p.add_argument("--out", required=True, help="output root: a folder or URI")
    p.add_argument("--snapshot", required=True, action="append", metavar="S",
                   help="snapshot to decontaminate (repeatable)")
    p.add_argument("--benchmark", action="append", metavar="PATH",
                   help="one more task file (JSONL: id, context, choices, gold) or folder of them, local or URI "
                   "(repeatable; added to the recipe's decontaminate.benchmarks)")
    p.add_argument("--mode", choices=["remove", "cut"], help="override the recipe's decontaminate.mode")
    p.add_argument("--force", action="store_true", help="redo files already done")
    add_recipe_option(p)
    add_ray_option(p)
    add_quiet_option(p)
    p.set_defaults(func=main)


def main(args) -> int:
    return guarded("decontaminate", lambda: _main(args))


def _main(args) -> int:
    from pipelines.stages.decontaminate import DecontaminateError, build_index, run_decontaminate

    recipe = load_recipe(args)
    overrides = {}
    if args.benchmark:
        overrides["benchmarks"] = list(dict.fromkeys([*recipe.decontaminate.benchmarks, *args.benchmark]))
    if args.mode:
        overrides["mode"] = args.mode
    if overrides:
        recipe = load_recipe(args, {"decontaminate": overrides})
    if not recipe.decontaminate.enabled:
        print("crawlproc decontaminate: the recipe turns it off ([decontaminate] enabled = false)", file=sys.stderr)
        return 2
    from crawlproc.store.storage import storage_for

    preflight(storage_for(recipe), writes=[("--out", args.out)])
    start_ray(args, recipe)
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
    index = build_index(recipe, log)
    code = 0
    for snapshot in args.snapshot:
        try:
            summary = run_decontaminate(args.out, snapshot, recipe, force=args.force, progress=not args.quiet,
                                        log=log, index=index)
        except DecontaminateError as e:
            print(f"crawlproc decontaminate: {e}", file=sys.stderr)
            return 2
        print(json.dumps({"snapshot": snapshot, "documents": summary.documents, "kept": summary.kept,
                          "removed": summary.removed, "cut": summary.cut,
                          "benchmarks": {k: {"documents": v["documents"], "items_seen": v["items_seen"]}
                                         for k, v in summary.benchmarks.items()},
                          "files_done_now": summary.processed}, indent=1))
        if summary.stopped:
            print(f"crawlproc decontaminate: stopped: {summary.stopped}", file=sys.stderr)
            return 2
        if summary.failed:
            print("files not decontaminated (a rerun retries them):", file=sys.stderr)
            for key, err in summary.failed.items():
                print(f"  {key}: {err}", file=sys.stderr)
            code = 1
    return code
