"""Progress of a stage while it runs: units done of the total, what they processed and its rate, elapsed time
and the time left.

Every stage runner pass has one `Progress` (printed or quiet); the latest one is the command's `activity`, which
is what a Ctrl-C reports ("interrupted after 7 of 20 files of extract CC-MAIN-2024-10").

What a stage's units process is counted from their stats: by default documents (`kept` + `removed`, or
`documents`), else what `count` names (dedup's shuffle counts band keys, its edges wave edges).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass


@dataclass
class Activity:
    """What the command was doing last: a stage's units (done, total) or a step without units (total 0)."""

    label: str
    done: int = 0
    total: int = 0
    unit: str = "files"
    finished: bool = False

    def describe(self) -> str:
        if not self.total:
            return f"while {self.label}"
        if self.finished:
            return f"after {self.label} ({self.total} of {self.total} {self.unit})"
        return f"after {self.done} of {self.total} {self.unit} of {self.label}"


_activity: Activity | None = None


def activity() -> Activity | None:
    """The command's latest activity (None before any stage started)."""
    return _activity


def note_activity(label: str) -> None:
    """Record a step that has no units of its own (training a tokenizer, reading a listing)."""
    global _activity
    _activity = Activity(label)


def duration(seconds: float) -> str:
    """1:05:03, 4:07, 0:09: hours only when there are some."""
    s = int(round(max(seconds, 0)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """`total` units of which `already` were done before this command; `update(stats)` after each unit."""

    def __init__(self, total: int, label: str, stream=None, every_s: float = 2.0, *, already: int = 0,
                 unit: str = "files", count: tuple[str, str] | None = None, show: bool = True):
        global _activity
        self.total = total
        self.already = already
        self.label = label
        self.unit = unit
        self.count = count  # (stats key, noun) of what the units process; None: documents; (None, ""): units only
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.show = show
        self.done = self.failed = self.kept = self.removed = self.records = self.items = 0
        self.start = time.monotonic()
        self._last = 0.0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.activity = _activity = Activity(label, already, total, unit)

    def update(self, stats: dict | None, failed: bool = False) -> None:
        if failed:
            self.failed += 1
        else:
            self.done += 1
        if stats:
            if self.count is None:
                self.kept += _number(stats.get("kept", stats.get("documents", 0)))
                self.removed += _number(stats.get("removed", 0))
                self.records += _number(stats.get("records", 0))
            elif self.count[0] is not None:
                self.items += _number(stats.get(self.count[0], 0))
        self.activity.done = self.already + self.done + self.failed
        now = time.monotonic()
        finished = self.done + self.failed >= self.total - self.already
        if self.show and now - self._last >= self.every_s and not finished:  # close() prints the last line
            self._last = now
            self._print(final=False)

    def tick(self, quiet_s: float = 30.0) -> None:
        """Nothing finished: refresh the line (on a terminal), or print it every `quiet_s` (in a log)."""
        now = time.monotonic()
        if self.show and now - self._last >= (self.every_s if self._tty else quiet_s):
            self._last = now
            self._print(final=False)

    def left_s(self) -> float | None:
        """Seconds left at this command's pace (None before its first unit finished)."""
        ran = self.done + self.failed
        todo = self.total - self.already - ran
        if ran == 0:
            return None
        return (time.monotonic() - self.start) / ran * max(todo, 0)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        if self.count is None:
            n, noun = self.kept + self.removed, "docs"
            what = f"{n:,} docs (kept {self.kept:,})"
        elif self.count[0] is None:  # nothing to count but the units themselves
            n, noun = self.done + self.failed, self.unit
            what = ""
        else:
            n, noun = self.items, self.count[1]
            what = f"{n:,} {noun}"
        left = self.left_s()
        finished = self.done + self.failed >= self.total - self.already
        when = (f"{duration(elapsed)} elapsed" if finished else
                f"{duration(elapsed)} elapsed, {'~' + duration(left) if left is not None else '?'} left")
        return (
            f"[{self.label}] {self.unit} {self.already + self.done + self.failed}/{self.total}"
            + (f" ({self.failed} failed)" if self.failed else "")
            + (f" | {what}" if what else "") + f" | {n / elapsed:,.1f} {noun}/s | {when}"
        )

    def _print(self, final: bool) -> None:
        if self._tty and not final:
            self.stream.write("\r" + self.line() + "   ")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.activity.finished = self.done + self.failed >= self.total - self.already
        if not self.show:
            return
        if self._tty and self._last:
            self.stream.write("\n")
        self._print(final=True)


def _number(v) -> int | float:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else 0
