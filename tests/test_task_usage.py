"""crawlproc.dedup.usage: a task's peak memory and CPU, and what the measurement itself costs.

Each check runs in a fresh Python process: gc.freeze is process-wide, and the first task of a process is
the one that freezes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_peak_memory_of_a_task_is_seen():
    out = _run("""
        import numpy as np
        from crawlproc.dedup.usage import TaskUsage
        with TaskUsage() as u:
            a = np.ones(80 * 2**20 // 8)  # 80 MB, touched
            del a
        s = u.stats()
        print(s["peak_rss_mb"] - s["rss_start_mb"])
    """)
    assert float(out) >= 60


def test_first_task_freezes_what_exists_and_later_garbage_is_still_collected():
    # Without the freeze every task's collection scans all of Ray's and the modules' objects (15-19 ms);
    # with it, cycles made by tasks must still be freed when the next task starts.
    out = _run("""
        import gc, weakref
        from crawlproc.dedup.usage import TaskUsage
        assert gc.get_freeze_count() == 0
        with TaskUsage():
            pass
        frozen = gc.get_freeze_count()

        class Node:
            pass
        gc.disable()  # only the task's own collection may free the cycle
        a, b = Node(), Node()
        a.other, b.other = b, a
        ref = weakref.ref(a)
        del a, b
        alive_before = ref() is not None
        with TaskUsage():
            pass
        print(frozen, alive_before, ref() is None, gc.get_freeze_count() == frozen)
    """)
    frozen, alive_before, freed, same = out.split()
    assert int(frozen) > 1000  # the modules' objects
    assert (alive_before, freed, same) == ("True", "True", "True")
