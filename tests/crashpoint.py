"""Run one real crawlproc command in its own process and SIGKILL it at a chosen point, or hold it there.

    python tests/crashpoint.py --kill "dedup edges:1" -- dedup --out OUT --snapshot S ...
    python tests/crashpoint.py --pause DIR -- tokenize --out OUT ...

`--kill STAGE:K` sends SIGKILL to the command's own process (no cleanup, no atexit, no finally: what `kill -9`
does) when the K-th unit of the stage runner's stage STAGE (a name, or the start of one: "extract",
"dedup edges", "dedup finalize", "tokenize") has come back to the driver, its marker written. K = 0 kills as
the stage starts. The tasks still in flight die with their driver, in the middle of their writes. A point
chosen this way always lands when the stage has at least K units to run: the caller knows, and asserts the
exit status -SIGKILL (a kill that came after the process exited would pass silently otherwise).

`--pause DIR` holds the command right after it has taken its lock (of a snapshot or a token set): it writes
DIR/paused (its pid), then waits until DIR/go exists. A test starts a second command meanwhile, which must
stop at once naming this one; then it lets this one go on, or SIGKILLs it.

Only the timing is arranged here: the command, its lock, its Ray tasks and its writes are the real ones.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE_MODULES = ("pipelines.stages.extract", "pipelines.stages.dedup", "pipelines.stages.tokenize",
                 "pipelines.stages.mix", "pipelines.stages.classify", "pipelines.stages.index",
                 "pipelines.stages.decontaminate")
LOCK_MODULES = ("pipelines.stages.run", "pipelines.stages.extract", "pipelines.stages.dedup",
                "pipelines.stages.tokenize", "pipelines.stages.mix", "pipelines.stages.decontaminate")


def _die(why: str) -> None:
    print(f"crashpoint: SIGKILL {why}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def install_kill(point: str) -> None:
    import importlib

    stage_name, _, k = point.rpartition(":")
    k = int(k)
    for name in STAGE_MODULES:
        module = importlib.import_module(name)
        real = module.run_stage

        def run_stage(stage, units, fn, *, _real=real, **kw):
            if not stage.startswith(stage_name):
                return _real(stage, units, fn, **kw)
            if k == 0:
                _die(f"at the start of {stage}")
            seen, theirs = [0], kw.get("on_result")

            def on_result(unit, stats):
                if theirs is not None:
                    theirs(unit, stats)
                seen[0] += 1
                if seen[0] >= k:
                    _die(f"after unit {seen[0]} of {stage} ({unit.key})")

            return _real(stage, units, fn, **{**kw, "on_result": on_result})

        module.run_stage = run_stage


def install_pause(folder: Path) -> None:
    import importlib

    for name in LOCK_MODULES:
        module = importlib.import_module(name)
        real = module.hold

        @contextmanager
        def hold(storage, lock_uri, what, _real=real):
            with _real(storage, lock_uri, what):
                if not (folder / "paused").exists():
                    (folder / "paused.tmp").write_text(str(os.getpid()))
                    (folder / "paused.tmp").rename(folder / "paused")
                    while not (folder / "go").exists():
                        time.sleep(0.02)
                yield

        module.hold = hold


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--kill", help="STAGE:K")
    p.add_argument("--pause", type=Path, help="a folder for the paused/go files")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.kill:
        install_kill(args.kill)
    if args.pause:
        install_pause(args.pause)
    from pipelines.cli import main as cli

    return cli(command)


# --- for tests ---------------------------------------------------------------------------------------------


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "RAY_DEDUP_LOGS": "0"}


@dataclass
class Killed:
    returncode: int
    stderr: str

    @property
    def landed(self) -> bool:
        return self.returncode == -signal.SIGKILL


def run_killed(command: list[str], point: str, timeout: float = 600) -> Killed:
    """Run `crawlproc <command>` and SIGKILL it at `point` (see the module docstring)."""
    proc = subprocess.run([sys.executable, str(Path(__file__)), "--kill", point, "--", *command], cwd=REPO,
                          env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=timeout)
    return Killed(proc.returncode, proc.stderr)


class Paused:
    """`crawlproc <command>` held right after it took its lock; `go()` lets it finish, `kill()` SIGKILLs it."""

    def __init__(self, command: list[str], folder: Path, timeout: float = 300):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__)), "--pause", str(folder), "--", *command],
                                     cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.monotonic() + timeout
        while not (folder / "paused").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"the command never reached its lock: {self.proc.stderr.read()[-2000:]}")
            time.sleep(0.05)
        assert int((folder / "paused").read_text()) == self.proc.pid

    @property
    def pid(self) -> int:
        return self.proc.pid

    def go(self, timeout: float = 600) -> tuple[int, str]:
        (self.folder / "go").touch()
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err

    def kill(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=60)
        return self.proc.returncode


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main(sys.argv[1:]))
