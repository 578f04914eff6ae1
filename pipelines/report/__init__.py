"""The run report: `collect_report(out)` gathers the numbers of an output root into a plain dict,
`render_html(data)` turns them into one self-contained HTML page, `write_report` does both."""

from __future__ import annotations

from pathlib import Path

from crawlproc.storage import atomic_write_bytes
from pipelines.report.collect import collect_report
from pipelines.report.render import render_html

__all__ = ["collect_report", "render_html", "write_report"]


def write_report(out: str | Path, html_path: str | Path | None = None,
                 train_runs: list[str | Path] | tuple = ()) -> tuple[Path, dict]:
    """Write the report for output root `out` (default `<out>/report.html`); return (path, data).
    `train_runs`: training run directories outside `<out>/train/` to include."""
    data = collect_report(out, train_runs)
    path = Path(html_path) if html_path else Path(out) / "report.html"
    atomic_write_bytes(path, render_html(data).encode("utf-8"))
    return path, data
