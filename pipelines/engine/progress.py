"""Progress of a stage while it runs: files done and failed, documents/s, elapsed time."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total_files: int, label: str, stream=None, every_s: float = 2.0, unit: str = "files"):
        self.total = total_files
        self.label = label
        self.unit = unit  # what is counted; documents are shown only for files
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.done = self.failed = self.kept = self.removed = self.records = 0
        self.start = time.monotonic()
        self._last = 0.0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, stats: dict | None, failed: bool = False) -> None:
        if failed:
            self.failed += 1
        else:
            self.done += 1
        if stats:
            self.kept += stats.get("kept", stats.get("documents", 0))
            self.removed += stats.get("removed", 0)
            self.records += stats.get("records", 0)
        now = time.monotonic()
        if now - self._last >= self.every_s and self.done + self.failed < self.total:  # close() prints the last
            self._last = now
            self._print(final=False)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        docs = self.kept + self.removed
        return (
            f"[{self.label}] {self.unit} {self.done + self.failed}/{self.total}"
            + (f" ({self.failed} failed)" if self.failed else "")
            + (f" | docs {docs} (kept {self.kept}) | {docs / elapsed:.1f} docs/s" if self.unit == "files" else "")
            + f" | {elapsed:.0f}s"
        )

    def _print(self, final: bool) -> None:
        if self._tty and not final:
            self.stream.write("\r" + self.line() + "   ")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._tty and self._last:
            self.stream.write("\n")
        self._print(final=True)
