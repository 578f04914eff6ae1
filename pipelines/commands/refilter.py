"""`crawlproc refilter`: changed quality-filter settings applied to the text already extracted."""

from __future__ import annotations

import sys

from pipelines.commands.common import (
    add_quiet_option, add_ray_option, add_recipe_option, exit_code, fail, guarded, load_recipe, print_failures,
    start_ray,
)


def register(sub) -> None:
    p = sub.add_parser(
        "refilter",
        help="re-apply changed quality-filter settings to a snapshot's extracted text (no download, no extraction)",
        description="Run the quality filters of --recipe again on the documents a snapshot's extract stored "
        "(docs/, removed/ and the text before any filter edited it, extracted/), and rewrite each file's docs/ "
        "and removed/ as an extract with that recipe would have. Only filter sections may differ from the "
        "recipe the files were extracted with (gopher_repetition, gopher_quality, c4, fineweb_quality, your "
        "plugins' and extract.plugins); any other change is refused, naming the keys. Documents removed before "
        "the filters (URL filter, extraction, language) stay removed. Resumable file by file; then run dedup "
        "(or the same `crawlproc run` with this recipe) to update final/ and the token shards.",
    )
    p.add_argument("--out", required=True, help="output root: a folder or URI")
    p.add_argument("--snapshot", required=True, help="snapshot name: the folder under --out")
    add_recipe_option(p)
    add_ray_option(p)
    add_quiet_option(p)
    p.set_defaults(func=main)


def main(args) -> int:
    return guarded("refilter", lambda: _main(args))


def _main(args) -> int:
    from crawlproc.extract.refilter import RefilterError
    from pipelines.stages.refilter import run_refilter

    recipe = load_recipe(args)
    start_ray(args, recipe)
    try:
        s = run_refilter(args.out, args.snapshot, recipe, progress=not args.quiet)
    except RefilterError as e:
        return fail("refilter", str(e))
    if s.finished:
        print(f"refilter {args.snapshot}: finished {s.finished} switch(es) a stopped refilter had left")
    if not s.refiltered and not s.failed:
        print(f"refilter {args.snapshot}: all {s.files} files are already filtered with this recipe")
        return exit_code(s)
    b, a = s.before, s.after
    print(f"refilter {args.snapshot}: {s.refiltered} of {s.files} files refiltered in {s.seconds:.1f}s "
          f"(changed: {', '.join(s.changed) or 'nothing but the recipe file'}); documents kept "
          f"{b.get('kept', 0):,} -> {a.get('kept', 0):,}, removed {b.get('removed', 0):,} -> {a.get('removed', 0):,}")
    moved = {k: a.get("reasons", {}).get(k, 0) - b.get("reasons", {}).get(k, 0)
             for k in set(a.get("reasons", {})) | set(b.get("reasons", {}))}
    for reason, delta in sorted(((k, v) for k, v in moved.items() if v), key=lambda kv: -abs(kv[1]))[:12]:
        print(f"  {reason}: {delta:+,}")
    print(f"next: `crawlproc dedup --out {args.out} --snapshot {args.snapshot}` (and tokenize), or the same "
          "`crawlproc run` with this recipe: they redo what depends on the changed files", file=sys.stderr)
    print_failures(s, "refilter")
    return exit_code(s)
