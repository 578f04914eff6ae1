"""`crawlproc status`: per snapshot under an output root, files listed / done / failed / pending and documents."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "status",
        help="show per snapshot: files listed, done, failed (with the error), pending; documents kept/removed",
        description="Read the run state under --out (listing.json, _done/, _failed/, stats/) and print one row "
        "per snapshot, then the failed files with their errors. Reads files only: safe while a run is going.",
    )
    p.add_argument("--out", default="out", help="output root folder (default: out)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=main)


def _load_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a file being replaced right now, or damaged: counted as absent


def snapshot_status(snap: Path) -> dict:
    """Status of one snapshot folder (see `crawlproc status --json` for the keys)."""
    listing = _load_json(snap / "listing.json") or {}
    listed = [f["stem"] for f in listing.get("files", [])]
    done = {p.stem: _load_json(p) or {} for p in sorted((snap / "_done").glob("*.json"))}
    failed = {}
    for p in sorted((snap / "_failed").glob("*.json")):
        if p.stem not in done:  # a later success wins over an older failure record
            rec = _load_json(p) or {}
            failed[p.stem] = {"file": rec.get("file"), "error": rec.get("error"), "attempts": rec.get("attempts"),
                              "at": rec.get("at")}
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
        "kept": sum(int(d.get("kept", 0)) for d in done.values()),
        "removed": sum(int(d.get("removed", 0)) for d in done.values()),
        "updated_at": listing.get("updated_at"),
    }


def collect(out: Path) -> list[dict]:
    if not out.is_dir():
        return []
    snaps = [p for p in sorted(out.iterdir()) if p.is_dir() and ((p / "listing.json").is_file()
                                                                or (p / "_done").is_dir())]
    return [snapshot_status(p) for p in snaps]


def format_table(rows: list[dict]) -> str:
    head = ["snapshot", "listed", "done", "failed", "pending", "rejected", "kept", "removed"]
    body = [[r["snapshot"], r["listed"], r["done"], len(r["failed"]), r["pending"], len(r["rejected"]),
             r["kept"], r["removed"]] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths)))
             for row in [head, *body]]
    for r in rows:
        for stem, f in r["failed"].items():
            lines.append(f"failed {r['snapshot']}/{stem} ({f.get('attempts')} attempts): {f.get('error')}")
        for rej in r["rejected"]:
            lines.append(f"rejected {r['snapshot']} listing line {rej['index'] + 1}: {rej['reason']}")
    return "\n".join(lines)


def main(args) -> int:
    out = Path(args.out)
    if not out.is_dir():
        print(f"crawlproc: no output folder {str(out)!r}", file=sys.stderr)
        return 2
    rows = collect(out)
    if args.json:
        print(json.dumps(rows, indent=1))
    elif not rows:
        print(f"no snapshots under {out}")
    else:
        print(format_table(rows))
    return 0
