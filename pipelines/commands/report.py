"""`crawlproc report --out DIR`: one self-contained HTML page on what the pipeline did to the data."""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report of a run (funnel, removals, languages, dedup, tokens, training)",
        description="Read an output folder and write one HTML file (no network needed to view it): the filter "
        "funnel per snapshot, removal reasons with examples, languages, document lengths, dedup cluster sizes, "
        "tokens per shard, the training loss curve and samples. Parts not run yet are shown as 'not run'.",
    )
    p.add_argument("--out", required=True, help="the pipeline's output root (the folder or URI given to "
                   "`crawlproc run`)")
    p.add_argument("--html", default=None, help="where to write the report (default: <out>/report.html)")
    p.add_argument("--train", action="append", default=[], metavar="RUN_DIR",
                   help="a training run directory outside <out>/train/ to include (repeatable)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the collected numbers as JSON")
    p.add_argument("--core-hour-price", type=float, default=None, metavar="PRICE",
                   help="price of one core-hour for the whole-snapshot cost projection (default: 0.05)")
    p.add_argument("--snapshot-files", type=int, default=None, metavar="N",
                   help="WARC files in a whole snapshot, for the projection (default: the snapshot's listing, "
                   "else 90,000)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pipelines.commands.common import guarded

    return guarded("report", lambda: _run(args))


def _run(args) -> int:
    from crawlproc.store.layout import Layout
    from crawlproc.store.storage import atomic_write_json, default_storage, is_remote, parent
    from pipelines.commands.common import preflight
    from pipelines.inspect.report import write_report

    if not is_remote(args.out) and not Path(args.out).exists():
        print(f"crawlproc report: output folder {args.out} does not exist", file=sys.stderr)
        return 2
    from pipelines.inspect.report.collect import DEFAULT_PRICE

    price = DEFAULT_PRICE if args.core_hour_price is None else args.core_hour_price
    if price < 0 or (args.snapshot_files is not None and args.snapshot_files < 1):
        print("crawlproc report: --core-hour-price must be >= 0 and --snapshot-files >= 1", file=sys.stderr)
        return 2
    html = args.html or Layout(args.out).report_uri
    preflight(default_storage(), reads=[("--out", args.out, "dir")],
              writes=[("--html", parent(html)), ("--json", parent(args.json) if args.json else None)])
    path, data = write_report(args.out, args.html, args.train, price, args.snapshot_files)
    if args.json:
        atomic_write_json(args.json, data)
    snaps = ", ".join(s["name"] for s in data["snapshots"]) or "none"
    print(f"report written to {path} (snapshots: {snaps}; token sets: {len(data['tokens'])}; "
          f"training runs: {len(data['training'])})")
    for problem in data["problems"]:
        print(f"  warning: {problem}", file=sys.stderr)
    if args.json:
        print(f"numbers written to {args.json}")
    return 0
