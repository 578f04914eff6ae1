"""One Ray task per input file, shared by `crawlproc extract` (local files) and `crawlproc run` (a listing).

Keeps a bounded window of tasks in flight (the driver stays small for listings of ~100k files), records each
file's failure in `_failed/<stem>.json` (cleared when it later succeeds), and shows progress.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import ray

from crawlproc.storage import Layout, atomic_write_json
from pipelines.progress import Progress


@dataclass
class FileOutcome:
    item: object
    stem: str
    stats: dict | None
    error: str | None


def record_failure(layout: Layout, stem: str, file: str, error: str, attempts: int = 1) -> None:
    atomic_write_json(
        layout.snapshot / "_failed" / f"{stem}.json",
        {"stem": stem, "file": file, "error": error, "attempts": attempts,
         "at": datetime.now(UTC).isoformat(timespec="seconds")},
    )


def clear_failure(layout: Layout, stem: str) -> None:
    (layout.snapshot / "_failed" / f"{stem}.json").unlink(missing_ok=True)


def run_per_file(
    items: list,
    submit: Callable[[object], ray.ObjectRef],
    *,
    layout: Layout,
    stem_of: Callable[[object], str],
    file_of: Callable[[object], str],
    label: str,
    progress: bool,
    num_cpus_per_task: float,
) -> Iterator[FileOutcome]:
    """Submit `submit(item)` for each item and yield outcomes as tasks finish.

    A task returns {"stats": dict | None, "error": str | None, "attempts": int}; a task that raises (its worker
    died after Ray's retries, out of memory, a bug) becomes an error outcome for that file alone.
    """
    cpus = ray.cluster_resources().get("CPU", 1)
    window = max(2, int(2 * cpus / max(num_cpus_per_task, 0.01)))
    queue = deque(items)  # popleft: O(1) per file, also for listings of ~100k files
    pending: dict = {}
    bar = Progress(len(items), label) if progress else None
    while queue or pending:
        while queue and len(pending) < window:
            item = queue.popleft()
            pending[submit(item)] = item
        ready, _ = ray.wait(list(pending), num_returns=1)
        item = pending.pop(ready[0])
        stem = stem_of(item)
        try:
            result = ray.get(ready[0])
            stats, error, attempts = result["stats"], result["error"], result.get("attempts", 1)
        except Exception as e:  # noqa: BLE001 -- one file's task died: record it, go on with the others
            stats, error, attempts = None, f"{type(e).__name__}: {str(e).splitlines()[0][:300]}", 1
        if error:
            record_failure(layout, stem, file_of(item), error, attempts)
        else:
            clear_failure(layout, stem)
        if bar:
            bar.update(stats, failed=bool(error))
        yield FileOutcome(item, stem, stats, error)
    if bar:
        bar.close()
