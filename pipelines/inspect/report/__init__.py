"""The run report: `collect_report(out)` gathers the numbers of an output root into a plain dict,
`render_html(data)` turns them into one self-contained HTML page, `write_report` does both."""

from __future__ import annotations

from crawlproc.store.layout import Layout
from crawlproc.store.storage import Storage, normalize
from pipelines.inspect.report.collect import DEFAULT_PRICE, collect_report
from pipelines.inspect.report.render import render_html

__all__ = ["collect_report", "render_html", "write_report"]


def write_report(out, html_path=None, train_runs: list[str] | tuple = (), price: float = DEFAULT_PRICE,
                 snapshot_files: int | None = None) -> tuple[str, dict]:
    """Write the report for output root `out` (a folder or URI; default `<out>/report.html`, which may be a
    URI too); return (where, data). `train_runs`: training run directories outside `<out>/train/`; `price`
    per core-hour and `snapshot_files` (default: each snapshot's listing) for the whole-snapshot projection."""
    data = collect_report(str(out), train_runs, price=price, snapshot_files=snapshot_files)
    where = normalize(str(html_path)) if html_path else Layout(str(out)).report_uri
    Storage().write_bytes(where, render_html(data).encode("utf-8"))
    return where, data
