"""`crawlproc explain --out DIR <url or id>`: why a document was kept or removed, with its measured values."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "explain",
        help="why one document was kept or removed: the stage, the reason, its values against the thresholds",
        description="Find a document by WARC-Record-ID (<urn:uuid:...>, brackets optional) or URL in an output "
        "folder and say what happened to it. For a quality-filter removal the filter's statistics are "
        "recomputed on the stored text and printed against the recipe's thresholds.",
    )
    p.add_argument("query", help="the document's id (WARC-Record-ID) or URL")
    p.add_argument("--out", required=True, help="the pipeline's output root: a folder or URI")
    p.add_argument("--recipe", default=None, help="judge by this recipe TOML (default: the recipe the document's "
                   "file was extracted with, as its _done marker records it, else FineWeb's)")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from pipelines.commands.common import guarded

    return guarded("explain", lambda: _run(args))


def _run(args) -> int:
    from crawlproc.recipe import RecipeError
    from crawlproc.store.storage import default_storage, is_remote
    from pipelines.commands.common import preflight
    from pipelines.inspect.explain import explain_document, format_explanation
    from pipelines.recipes import resolve_recipe

    if not is_remote(args.out) and not Path(args.out).exists():
        print(f"crawlproc explain: output folder {args.out} does not exist", file=sys.stderr)
        return 2
    preflight(default_storage(), reads=[("--out", args.out, "dir")])
    try:
        recipe = resolve_recipe(args.recipe) if args.recipe else None
    except RecipeError as e:
        print(f"crawlproc explain: {e}", file=sys.stderr)
        return 2
    result = explain_document(args.out, args.query, recipe)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        sys.stdout.write(format_explanation(result))
    return 0 if result["matches"] else 1
