"""The one stage runner: every per-unit step (extract a file, fetch and extract a listed file, signatures,
shuffle, edges, finalize, encode, classify) runs through `run_stage`.

It owns what every stage needs and none should re-implement:
- the window of Ray tasks in flight (bounded, so the driver stays small for listings of ~100k files);
- resume: a unit whose `_done` marker carries the unit's fingerprint is skipped; one with another
  fingerprint is redone (its old marker is removed before its outputs are replaced);
- the commit point: the task writes the unit's `_done` marker after the unit's function returned, so a
  crash anywhere before leaves the unit not done;
- failures with their root cause (crawlproc.store.failure): a unit's exception, a Ray task error (its cause),
  a worker that died (out-of-memory kill, SIGKILL, a lost node), each recorded in `_failed/<key>.json`;
- stopping early when the first units all fail with the same environment error (a missing package or
  model, no permission to write): the cause is reported once instead of once per file; a full, read-only
  or over-quota output disk stops the stage at its first failure, whatever was done before (no other unit
  can succeed), and when even the failure record cannot be written the cause still reaches the summary;
- retries of units whose worker died (Ray's max_retries), progress, and one typed summary.

A stage that stops early does not `ray.cancel` the units in flight: Ray's cancel races with a task's reply
and can abort the driver ("Check failed: it != submissible_tasks_.end()", ray-project/ray#54846, still in
2.60). It marks the stop instead (a named actor the tasks look up when they start): a unit that has not
started returns "cancelled" without running, one that is running finishes.

A unit's function is a plain function (it lives in crawlproc/, tokenizer/ or trainer/, knows nothing of Ray),
called as fn(*unit.args, *shared) in a task; it returns a dict of counters, or raises. `shared` values (the recipe,
the layout, a tokenizer) are put in Ray's object store once for all units.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import ray

from crawlproc.store.failure import Failure, PartialFailure
from crawlproc.store.layout import Markers
from pipelines.engine.progress import Progress

MAX_WINDOW = 1000
_ray_starter: Callable[[], None] | None = None


def start_ray_on_first_use(starter: Callable[[], None]) -> None:
    """Have `ensure_ray` call `starter` (a command's init_ray) the first time a stage needs Ray: a rerun
    with nothing left to do never pays for starting a cluster."""
    global _ray_starter
    _ray_starter = starter


def ensure_ray() -> None:
    if ray.is_initialized():
        return
    if _ray_starter is None:
        raise RuntimeError("Ray is not running: call pipelines.engine.ray_runtime.init_ray first")
    _ray_starter()


@dataclass
class Unit:
    key: str  # names its marker and its failure record (a file's stem, "part-00003", ...)
    args: tuple = ()  # the unit's own arguments: fn(*args, *shared)
    source: str = ""  # what it is, for people: a path or URL
    fingerprint: str = ""  # what produced it (recorded in its marker); "" = no marker


@dataclass
class StageResult:
    stage: str
    total: int = 0
    skipped: int = 0  # already done with the same fingerprint
    done: int = 0
    failed: dict[str, Failure] = field(default_factory=dict)  # key -> root cause
    sources: dict[str, str] = field(default_factory=dict)  # key -> source, for the failed ones
    stopped: Failure | None = None  # the environment failure that stopped the stage early
    totals: Counter = field(default_factory=Counter)  # numeric counters summed over the units run
    stats: dict[str, dict] = field(default_factory=dict)  # key -> the unit's counters (keep_stats=True)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and self.stopped is None

    def failure_lines(self) -> list[str]:
        return [f"{self.sources.get(k) or k}: {f.line()}" for k, f in self.failed.items()]


@dataclass(kw_only=True)
class StageSummary:
    """What one command did in one stage: the shape every stage returns, each adding its own counters. The
    runner's StageResult of each pass is folded in with `absorb`."""

    failed: dict[str, str] = field(default_factory=dict)  # input -> root cause, one line
    stopped: str | None = None  # the environment failure that stopped the stage early
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and self.stopped is None

    def absorb(self, result: StageResult, name: Callable[[str], str] = str) -> StageSummary:
        """Take a pass's failures (each input named by `name(source)`) and its stop; returns self."""
        self.failed.update({name(result.sources.get(k) or k): f.line() for k, f in result.failed.items()})
        if result.stopped and not self.stopped:
            self.stopped = result.stopped.line()
        return self


def _execute(fn, args, shared, markers, key, fp, previous_fp, source, stage, stop_mark=None):
    """Runs in the Ray task: the unit's function, then its marker. Never raises for the unit's own errors,
    so Ray retries only what kills the worker, and the root cause travels back as data. When the stage has
    stopped (`stop_mark` names an actor that exists), the unit is not run."""
    if stop_mark is not None and _marked(stop_mark):
        return {"ok": False, "failure": _CANCELLED.to_dict()}
    try:
        if markers is not None and previous_fp:
            markers.unmark(key, previous_fp)
        stats = fn(*args, *shared) or {}
        if markers is not None and fp:
            node = ray.get_runtime_context().get_node_id()  # which machine did it, for people reading markers
            markers.mark_done(key, fp, {"stage": stage, "source": source, "node": node, "stats": stats})
        return {"ok": True, "stats": stats}
    except PartialFailure as e:  # the unit wrote what it could read: its counters still count
        return {"ok": False, "failure": Failure.from_exception(e).to_dict(), "stats": e.stats}
    except Exception as e:  # noqa: BLE001 -- any error of one unit is that unit's failure
        return {"ok": False, "failure": Failure.from_exception(e).to_dict()}


_remote_execute = ray.remote(_execute)
_CANCELLED = Failure(type="TaskCancelledError", message="cancelled", kind="cancelled")


@ray.remote(num_cpus=0)
class _StopMark:
    """Exists (by its name) once a stage has stopped early; holds nothing."""


def _marked(name: str) -> bool:
    try:
        ray.get_actor(name)
    except ValueError:  # no actor of that name: the stage goes on
        return False
    return True

_TB_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def failure_from_ray_error(e: BaseException) -> Failure:
    """The root cause behind a Ray error: a task error's own cause, or that the worker died."""
    from ray import exceptions as rx

    if isinstance(e, rx.TaskCancelledError):  # also RayTaskError(TaskCancelledError): Ctrl-C stopped it
        return _CANCELLED
    died = tuple(getattr(rx, n) for n in ("WorkerCrashedError", "OutOfMemoryError", "NodeDiedError",
                                           "ActorDiedError", "ObjectLostError") if hasattr(rx, n))
    if isinstance(e, died):
        text = str(e).strip().splitlines()
        return Failure(type=type(e).__name__, message=" ".join(t.strip() for t in text[:3])[:500],
                       kind="worker_died")
    if isinstance(e, rx.RayTaskError):
        cause = getattr(e, "cause", None)
        if isinstance(cause, BaseException) and not isinstance(cause, rx.RayTaskError):
            f = Failure.from_exception(cause)
        else:
            f = Failure(type=type(e).__name__, message=str(e).strip().splitlines()[-1][:500])
        if not f.frames:  # a cause rebuilt on the driver has no traceback: take the frames from Ray's text
            frames = [f"{p}:{ln} in {fn}" for p, ln, fn in _TB_FRAME.findall(str(e))]
            f.frames = frames[-5:]
        return f
    return Failure.from_exception(e)


def _window(num_cpus: float) -> int:
    cpus = ray.cluster_resources().get("CPU", 1)
    return min(MAX_WINDOW, max(2, int(2 * cpus / max(num_cpus, 0.01))))


def run_stage(
    stage: str,
    units: Sequence[Unit],
    fn: Callable[..., dict | None],
    *,
    shared: tuple = (),
    markers: Markers | None = None,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    max_retries: int = 3,
    memory: int | None = None,
    progress: bool | str = True,
    count: tuple[str, str] | None = None,
    unit: str = "files",
    fail_fast: int = 3,
    force: bool = False,
    keep_stats: bool = False,
    on_result: Callable[[Unit, dict], None] | None = None,
) -> StageResult:
    """Run fn over `units` on Ray; see the module docstring. `force` redoes units already done. `num_gpus`:
    GPUs per unit (Ray sets each task's CUDA_VISIBLE_DEVICES to its own).
    `on_result(unit, stats)` is called in the driver for every unit that succeeded. `progress`: a label (or
    True: the stage's name) to print progress lines, False for none; `count` = (stats key, noun) of what the
    units process when it is not documents; `unit` names the units ("files", "partitions", "inputs")."""
    started = time.monotonic()
    result = StageResult(stage, total=len(units))
    done = markers.done() if markers is not None else {}
    had_failed = {e.name[: -len(".json")] for e in markers.storage.list(markers.failed_dir, suffix=".json")} \
        if markers is not None else set()
    todo = deque()
    for u in units:
        if not force and u.fingerprint and done.get(u.key) == u.fingerprint:
            result.skipped += 1
            if u.key in had_failed:  # a straggler or an earlier run finished it after all
                markers.clear_failed(u.key)
        else:
            todo.append(u)
    label = progress if isinstance(progress, str) else stage
    if not todo:
        result.seconds = time.monotonic() - started
        return result
    # always tracked (a Ctrl-C says how far the command got), printed only when asked
    bar = Progress(len(units), label, already=result.skipped, unit=unit, count=count, show=bool(progress))

    ensure_ray()
    options = {"num_cpus": num_cpus, "max_retries": max_retries, "retry_exceptions": False}
    if num_gpus:
        options["num_gpus"] = num_gpus
    if memory:
        options["memory"] = memory
    task = _remote_execute.options(**options)
    fn_ref = ray.put(fn)
    shared_ref = ray.put(tuple(shared))
    markers_ref = ray.put(markers)
    window = _window(num_cpus)
    pending: dict = {}
    first_failures: list[Failure] = []
    stop = False
    stop_name, stop_mark = f"crawlproc-stop-{uuid.uuid4().hex}", None
    try:
        while (todo and not stop) or pending:
            while todo and not stop and len(pending) < window:
                u = todo.popleft()
                previous = done.get(u.key) if markers is not None else None
                ref = task.remote(fn_ref, u.args, shared_ref, markers_ref, u.key, u.fingerprint, previous,
                                  u.source, stage, stop_name)
                pending[ref] = u
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=bar.every_s)
            if not ready:  # nothing finished yet: still say the time (the first unit waits for workers)
                bar.tick()
                continue
            u = pending.pop(ready[0])
            try:
                out = ray.get(ready[0])
            except Exception as e:  # noqa: BLE001 -- the task itself died or could not run
                out = {"ok": False, "failure": failure_from_ray_error(e).to_dict()}
            stats = out.get("stats") or {}
            if stop and not out["ok"] and out["failure"].get("kind") == "cancelled":
                continue  # cancelled because the stage stopped early: not run, not failed
            if out["ok"]:
                result.done += 1
                if markers is not None and u.key in had_failed:
                    try:
                        markers.clear_failed(u.key)
                    except OSError:
                        pass  # a stale record only: the unit's done marker wins (Markers.failed)
                if on_result is not None:
                    on_result(u, stats)
            else:
                failure = Failure.from_dict(out["failure"])
                result.failed[u.key] = failure
                result.sources[u.key] = u.source
                if markers is not None:
                    record = {"stage": stage, "source": u.source, "error": failure.line(), "failure": failure.to_dict()}
                    if stats:  # what a unit that broke part-way did count (its outputs before the fault)
                        record["stats"] = stats
                    try:
                        markers.mark_failed(u.key, record)
                    except OSError:
                        pass  # the disk that failed the unit may refuse its record too: the summary still has it
                if not stop and (failure.output_unusable or result.done == 0 and fail_fast):
                    first_failures.append(failure)
                    if failure.output_unusable or _same_environment_failure(first_failures, fail_fast, len(units)):
                        result.stopped = failure
                        stop = True
                        stop_mark = _StopMark.options(name=stop_name).remote()  # units not started skip
            _count(result.totals, stats)
            if keep_stats and out["ok"]:
                result.stats[u.key] = stats
            bar.update(stats, failed=not out["ok"])
    except KeyboardInterrupt:  # Ctrl-C: stop what is running (its unit has no marker, so a rerun redoes it)
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 -- a task that finished meanwhile, a lost connection
                pass
        raise
    finally:
        if stop_mark is not None:
            ray.kill(stop_mark)
    bar.close()
    result.seconds = time.monotonic() - started
    return result


def _same_environment_failure(failures: list[Failure], n: int, total: int) -> bool:
    """The first min(n, total) units all failed with one and the same environment error."""
    need = min(n, total)
    if len(failures) < need:
        return False
    first = failures[0]
    return first.kind == "environment" and all(f.signature == first.signature for f in failures[:need])


def _count(totals: Counter, stats: dict) -> None:
    for k, v in stats.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            totals[k] += v
