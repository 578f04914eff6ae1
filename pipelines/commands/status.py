"""`crawlproc status`: per snapshot under an output root, files listed / done / failed / pending and documents."""

from __future__ import annotations

import json

from pipelines.commands.common import fail, guarded, preflight


def register(sub) -> None:
    p = sub.add_parser(
        "status",
        help="show per snapshot: files listed, done, failed (with the error), pending; documents kept/removed",
        description="Read the run state under --out (listing.json, _done/, _failed/) and print one row per "
        "snapshot, then the failed files with their root cause. Reads files only: safe while a run is going. "
        "Works on a local folder or an object-store URI.",
    )
    p.add_argument("--out", default="out", help="output root: a folder or URI (default: out)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=main)


def snapshot_status(snap) -> dict:
    """Status of one snapshot (crawlproc.store.layout.Snapshot); see `crawlproc status --json` for the keys."""
    from crawlproc.extract.stats import FileStats, snapshot_stats

    storage = snap.storage
    listing = storage.read_json(snap.listing_uri, {}) or {}
    listed = [f["stem"] for f in listing.get("files", [])]
    done = snap.markers.done()
    failed = {}
    for key, rec in snap.markers.failed().items():
        failure = rec.get("failure") or {}
        failed[key] = {"file": rec.get("source") or rec.get("file"), "error": rec.get("error"),
                       "type": failure.get("type"), "kind": failure.get("kind"), "frames": failure.get("frames"),
                       "at": rec.get("at")}
    stats, _ = snapshot_stats(snap, failed=False)
    total = FileStats.total(stats.values())
    kept, removed = total.kept, total.removed
    by_language = {k: {"kept": c["kept"], "removed": c["removed"], "kept_words": c["kept_words"]}
                   for k, c in total.by_language.items()}
    fallbacks = total.words_fallback
    universe = list(dict.fromkeys(listed + list(done) + list(failed)))
    return {
        "snapshot": snap.name,
        "listing_url": listing.get("url"),
        "listed": len(listed),
        "listed_total": listing.get("listed_total", len(listed)),
        "rejected": listing.get("rejected", []),
        "done": len(done),
        "failed": failed,
        "pending": sum(1 for s in universe if s not in done and s not in failed),
        "kept": kept,
        "removed": removed,
        # per language (ISO 639-3 + script), most documents first: kept, removed, words kept
        "by_language": dict(sorted(by_language.items(), key=lambda kv: -(kv[1]["kept"] + kv[1]["removed"]))),
        "words_fallback": fallbacks,  # languages split by the fallback splitter, with why
        "updated_at": listing.get("updated_at"),
    }


def collect(layout) -> list[dict]:
    return [snapshot_status(layout.snapshot(name)) for name in layout.snapshots()]


def format_table(rows: list[dict]) -> str:
    head = ["snapshot", "listed", "done", "failed", "pending", "rejected", "kept", "removed"]
    body = [[r["snapshot"], r["listed"], r["done"], len(r["failed"]), r["pending"], len(r["rejected"]),
             r["kept"], r["removed"]] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths)))
             for row in [head, *body]]
    for r in rows:
        langs = list((r.get("by_language") or {}).items())
        if langs:
            shown = ", ".join(f"{k} {c['kept']:,}/{c['kept'] + c['removed']:,}" for k, c in langs[:12])
            more = f" (+{len(langs) - 12} more: --json)" if len(langs) > 12 else ""
            lines.append(f"languages {r['snapshot']} (kept/seen): {shown}{more}")
        for lang, why in (r.get("words_fallback") or {}).items():
            lines.append(f"words {r['snapshot']} {lang}: {why}; split by spaCy's multi-language tokenizer")
        for stem, f in r["failed"].items():
            lines.append(f"failed {r['snapshot']}/{stem}: {f.get('error')}")
        for rej in r["rejected"]:
            lines.append(f"rejected {r['snapshot']} listing line {rej['index'] + 1}: {rej['reason']}")
    return "\n".join(lines)


def main(args) -> int:
    return guarded("status", lambda: _main(args))


def _main(args) -> int:
    from crawlproc.store.layout import Layout
    from crawlproc.store.storage import default_storage, is_remote, normalize
    from pathlib import Path

    if not is_remote(args.out) and not Path(normalize(args.out)).exists():
        return fail("status", f"no output folder {args.out!r}")
    preflight(default_storage(), reads=[("--out", args.out, "dir")])
    rows = collect(Layout(args.out))
    if args.json:
        print(json.dumps(rows, indent=1))
    elif not rows:
        print(f"no snapshots under {args.out}")
    else:
        print(format_table(rows))
    return 1 if any(r["failed"] for r in rows) else 0
