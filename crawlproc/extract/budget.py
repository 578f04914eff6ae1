"""A CPU-time budget for a block of code: one per document across the extract stage's steps.

On the main thread (where Ray runs normal tasks) the budget is an ITIMER_VIRTUAL interval timer on the
process's CPU time: two system calls per document, no helper process, and the same pages run over on an idle
laptop and a busy cluster node, so reruns give the same output (a wall-clock limit made outputs depend on
machine load). Off the main thread, a timer thread raises the same exception asynchronously in the working
thread (there, the limit is wall time). Either way the exception arrives between Python bytecodes, so a
single long C call (e.g. lxml parsing one enormous page) finishes before it is raised: the steps keep their
C calls short (crawlproc/quality/words.py tokenizes long chunks in pieces).

Nothing is left behind: the timer and signal handler are restored, an outer timer gets back what is left
of it.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from contextlib import contextmanager


class OverBudget(BaseException):
    """Raised inside the block when the time is up. A BaseException, so that the `except Exception` blocks
    of the code inside (trafilatura has many) cannot swallow it."""


class _Limit:
    armed = True
    fired = False


def _disarm(limit: _Limit, lock: threading.Lock | None = None) -> None:
    # the deadline may strike while we disarm: retry until the flag is down (then the handler is a no-op)
    while True:
        try:
            if lock is None:
                limit.armed = False
            else:
                with lock:
                    limit.armed = False
            return
        except OverBudget:
            limit.fired = True


@contextmanager
def _alarm_limit(seconds: float):
    """Main thread: a one-shot ITIMER_VIRTUAL (CPU time) whose handler raises OverBudget. Restores any outer timer."""
    limit = _Limit()

    def on_alarm(signum, frame):
        if limit.armed:
            limit.fired = True
            raise OverBudget()

    start = time.process_time()
    outer_delay, outer_interval = 0.0, 0.0
    previous_handler = signal.signal(signal.SIGVTALRM, on_alarm)
    try:
        outer_delay, outer_interval = signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
        yield limit
    finally:
        _disarm(limit)
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous_handler)
        if outer_delay > 0:  # someone else's timer was running: give it back what is left of it
            left = max(outer_delay - (time.process_time() - start), 1e-3)
            signal.setitimer(signal.ITIMER_VIRTUAL, left, outer_interval)


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc


@contextmanager
def _thread_limit(seconds: float):
    """Any other thread: a timer thread raises OverBudget asynchronously in this thread."""
    limit = _Limit()
    lock = threading.Lock()
    tid = threading.get_ident()

    def fire():
        with lock:
            if limit.armed:
                limit.fired = True
                _set_async_exc(ctypes.c_ulong(tid), ctypes.py_object(OverBudget))

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield limit
    finally:
        _disarm(limit, lock)
        timer.cancel()
        if limit.fired:  # clear an exception still pending for this thread (None -> NULL clears it)
            _set_async_exc(ctypes.c_ulong(tid), None)


def cpu_budget(seconds: float):
    """Context manager raising OverBudget inside the block after `seconds` of CPU time; yields the budget's
    state, whose `fired` says whether it ran out (also when something inside swallowed the exception)."""
    if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
        return _alarm_limit(seconds)
    return _thread_limit(seconds)
