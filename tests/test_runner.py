"""The stage runner on a real local Ray: resume by fingerprint, markers as commit points, root causes of
failures (a unit's exception, an import error on the worker, a worker killed), stopping early on an
environment error."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import ray.cloudpickle

from crawlproc.store.failure import PartialFailure
from crawlproc.store.layout import Markers
from crawlproc.store.storage import Storage
from pipelines.engine.runner import Unit, run_stage


# The workers cannot import this test module: ship its functions by value (the plugin test below relies on
# exactly that failing for a module that is not shipped).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def write_one(path: str, value: int) -> dict:
    Path(path).write_text(str(value))
    return {"written": 1, "value": value}


def fail_on_odd(path: str, value: int) -> dict:
    if value % 2:
        raise ValueError(f"odd value {value}")
    return write_one(path, value)


def missing_package(path: str, value: int) -> dict:
    import crawlproc_no_such_module  # noqa: F401  -- the broken environment

    return {}


def missing_package_noting_the_run(path: str, value: int) -> dict:
    Path(path + ".ran").touch()
    time.sleep(0.2)  # long enough that units wait in the window behind the first ones
    import crawlproc_no_such_module  # noqa: F401

    return {}


def half_done(path: str, value: int) -> dict:
    try:
        raise OSError("truncated input after 3 records")
    except OSError as e:
        raise PartialFailure("stopped after 3 records", {"kept": 3}) from e


def die(path: str, value: int) -> dict:
    os.kill(os.getpid(), signal.SIGKILL)


def markers(tmp_path) -> Markers:
    return Markers(Storage(), str(tmp_path / "_done"), str(tmp_path / "_failed"))


def units(tmp_path, n: int, fp: str = "0" * 16) -> list[Unit]:
    return [Unit(key=f"u{i}", args=(str(tmp_path / f"u{i}.txt"), i), source=f"input-{i}", fingerprint=fp)
            for i in range(n)]


def test_units_run_once_and_are_redone_when_their_fingerprint_changes(ray_local, tmp_path):
    m = markers(tmp_path)
    first = run_stage("write", units(tmp_path, 4), write_one, markers=m, progress=False)
    assert (first.done, first.skipped, first.totals["written"]) == (4, 0, 4)
    assert m.done() == {f"u{i}": "0" * 16 for i in range(4)}
    record = m.read("u2", "0" * 16)
    assert record["source"] == "input-2" and record["stats"]["value"] == 2 and record["stage"] == "write"
    again = run_stage("write", units(tmp_path, 5), write_one, markers=m, progress=False)
    assert (again.done, again.skipped) == (1, 4)  # only the new unit
    redo = run_stage("write", units(tmp_path, 5, fp="1" * 16), write_one, markers=m, progress=False)
    assert redo.done == 5
    assert m.done() == {f"u{i}": "1" * 16 for i in range(5)}  # old markers gone, one marker per unit
    assert len(list((tmp_path / "_done").iterdir())) == 5


def test_a_failing_unit_is_recorded_with_its_root_cause_and_cleared_when_it_succeeds(ray_local, tmp_path):
    m = markers(tmp_path)
    result = run_stage("odd", units(tmp_path, 4), fail_on_odd, markers=m, progress=False)
    assert result.done == 2 and set(result.failed) == {"u1", "u3"} and result.stopped is None
    f = result.failed["u1"]
    assert (f.type, f.message, f.kind) == ("ValueError", "odd value 1", "error")
    assert f.frames and "test_runner.py" in f.frames[-1] and "fail_on_odd" in f.frames[-1]
    rec = json.loads((tmp_path / "_failed" / "u1.json").read_text())
    assert rec["source"] == "input-1" and rec["failure"]["type"] == "ValueError"
    assert rec["error"].startswith("ValueError: odd value 1 (at ")
    assert set(m.failed()) == {"u1", "u3"}
    fixed = run_stage("odd", units(tmp_path, 4), write_one, markers=m, progress=False)
    assert fixed.done == 2 and fixed.skipped == 2 and m.failed() == {}


def test_partial_failure_counts_what_was_done_and_keeps_the_cause(ray_local, tmp_path):
    result = run_stage("half", units(tmp_path, 1), half_done, markers=markers(tmp_path), progress=False)
    f = result.failed["u0"]
    assert f.type == "OSError" and "truncated input" in f.message
    assert f.wrapped_by == ["PartialFailure: stopped after 3 records"]
    assert result.totals["kept"] == 3


def test_environment_error_stops_the_stage_after_the_first_units(ray_local, tmp_path):
    m = markers(tmp_path)
    result = run_stage("env", units(tmp_path, 40), missing_package, markers=m, progress=False, fail_fast=3)
    assert result.stopped is not None
    assert result.stopped.type == "ModuleNotFoundError" and "crawlproc_no_such_module" in result.stopped.message
    assert result.stopped.kind == "environment"
    assert 3 <= len(result.failed) < 40  # stopped submitting: not 40 identical failure records
    assert len(list((tmp_path / "_failed").iterdir())) == len(result.failed)
    assert not result.ok


def test_a_stopped_stage_cancels_no_task_and_units_not_started_are_not_run(ray_local, tmp_path, monkeypatch):
    """Ray's cancel races with a finishing task's reply and can abort the driver (a RAY_CHECK in its task
    manager, ray-project/ray#54846: it ended a CI run): stopping marks the stop instead, and every unit that
    ran is recorded as failed; those that had not started are neither run nor failures."""
    cancels = []
    monkeypatch.setattr(ray, "cancel", lambda *a, **k: cancels.append(a))
    m = markers(tmp_path)
    result = run_stage("env", units(tmp_path, 40), missing_package_noting_the_run, markers=m, progress=False,
                       fail_fast=3)
    ran = sorted(p.name for p in tmp_path.glob("u*.txt.ran"))
    assert result.stopped is not None and result.stopped.kind == "environment"
    assert cancels == []
    assert 3 <= len(ran) < 40
    assert sorted(f"{k}.txt.ran" for k in result.failed) == ran  # the units that ran, and only those, failed
    assert all(f.kind == "environment" for f in result.failed.values())
    assert _stop_marks_gone(within_s=30)  # the stage took its mark away


def _stop_marks_gone(within_s: float) -> bool:
    from ray.util import list_named_actors

    deadline = time.monotonic() + within_s
    while any(n.startswith("crawlproc-stop-") for n in list_named_actors()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_an_import_error_on_the_worker_keeps_its_cause(ray_local, tmp_path, monkeypatch):
    """The unit's function lives in a module the workers cannot import (the driver can): the task fails
    while Ray loads it, and the record still names the ImportError, not a bare RayTaskError."""
    plugin = tmp_path / "plugin_only_on_driver"
    plugin.mkdir()
    (plugin / "driver_only_mod.py").write_text("def work(path, value):\n    return {'ok': 1}\n")
    monkeypatch.syspath_prepend(str(plugin))
    import driver_only_mod

    result = run_stage("plugin", units(tmp_path, 2), driver_only_mod.work, markers=markers(tmp_path),
                       progress=False, fail_fast=0)
    assert set(result.failed) == {"u0", "u1"}
    f = result.failed["u0"]
    assert "driver_only_mod" in f.message or "driver_only_mod" in " ".join(f.wrapped_by), f
    assert f.type in ("ModuleNotFoundError", "ImportError", "RaySystemError"), f
    sys.modules.pop("driver_only_mod", None)


def test_a_killed_worker_is_retried_then_recorded_as_died(ray_local, tmp_path):
    result = run_stage("die", units(tmp_path, 1), die, markers=markers(tmp_path), progress=False, max_retries=1)
    f = result.failed["u0"]
    assert f.kind == "worker_died" and f.line().startswith("worker died: ")


@pytest.mark.parametrize("n", [0, 1])
def test_nothing_to_do_needs_no_ray(tmp_path, n):
    m = markers(tmp_path)
    for u in units(tmp_path, n):
        m.mark_done(u.key, u.fingerprint, {})
    result = run_stage("noop", units(tmp_path, n), write_one, markers=m, progress=False)
    assert result.skipped == n and result.done == 0 and result.ok
