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


def test_peak_memory_of_a_task_is_seen_however_short_the_spike():
    # every_s=60: a sampling thread would never wake inside this task; the kernel's own peak sees the spike
    out = _run("""
        import numpy as np
        from crawlproc.dedup.usage import TaskUsage
        with TaskUsage(every_s=60) as u:
            a = np.ones(80 * 2**20 // 8)  # 80 MB, touched, freed at once
            del a
        s = u.stats()
        print(s["peak_rss_mb"] - s["rss_start_mb"])
    """)
    assert float(out) >= 75


def test_nested_measurements_each_keep_the_peak_they_saw():
    # the inner task resets the process's one peak counter; the outer one must not lose what came before it
    out = _run("""
        import numpy as np
        from crawlproc.dedup.usage import TaskUsage
        with TaskUsage(every_s=60) as outer:
            a = np.ones(120 * 2**20 // 8); del a  # 120 MB before the inner task
            with TaskUsage(every_s=60) as inner:
                b = np.ones(40 * 2**20 // 8); del b  # 40 MB inside it
        o, i = outer.stats(), inner.stats()
        print(o["peak_rss_mb"] - o["rss_start_mb"], i["peak_rss_mb"] - i["rss_start_mb"])
    """)
    outer, inner = map(float, out.split())
    assert outer >= 115
    assert 35 <= inner < 80  # its own spike, not the outer one's


def test_where_the_kernel_peak_is_not_used_a_held_allocation_is_sampled():
    out = _run("""
        import time
        import numpy as np
        from crawlproc.dedup.usage import TaskUsage
        with TaskUsage(every_s=0.005, kernel_peak=False) as u:
            a = np.ones(80 * 2**20 // 8)
            time.sleep(0.3)  # many sampling intervals: the sampler sees it however loaded the machine
            del a
        s = u.stats()
        print(s["peak_rss_mb"] - s["rss_start_mb"])
    """)
    assert float(out) >= 75


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
