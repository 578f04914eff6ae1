"""Real Ray clusters for tests: `ray start` heads and worker nodes, each in its own RAY_TMPDIR and HOME, on
127.0.0.1, stopped through their own process group (`ray stop` would stop every Ray on the machine, this
test session's included)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RAY_CLI = [sys.executable, "-m", "ray.scripts.scripts"]
AUTH_VARS = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(home: Path, ray_tmp: Path, **extra: str) -> dict[str, str]:
    """This session's environment without any Ray address or auth setting, with its own HOME and RAY_TMPDIR."""
    env = {k: v for k, v in os.environ.items() if k not in AUTH_VARS}
    home.mkdir(parents=True, exist_ok=True)
    ray_tmp.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), RAY_TMPDIR=str(ray_tmp), PYTHONPATH=str(REPO), RAY_DEDUP_LOGS="0",
               RAY_USAGE_STATS_ENABLED="0", RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0", **extra)
    return env


@pytest.fixture
def short_tmp():
    """Folders for RAY_TMPDIR: Ray's socket paths under it must stay within 107 bytes (pytest's tmp_path is long)."""
    made: list[str] = []

    def make() -> Path:
        made.append(tempfile.mkdtemp(prefix="cpr-", dir="/tmp"))
        return Path(made[-1])

    yield make
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


def write_token(home: Path, token: str) -> Path:
    path = home / ".ray" / "auth_token"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token)
    return path


def address_file(ray_tmp: Path) -> Path:
    return ray_tmp / "ray" / "ray_current_cluster"


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


class Head:
    """`ray start --head --block` in its own process group; `stop(sig)` ends the group (SIGTERM: at once, as
    RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0; SIGKILL: no cleanup, as when a head is killed, leaving Ray's
    address file behind)."""

    def __init__(self, env: dict[str, str], log: Path, num_cpus: int = 1, tries: int = 2, cwd: Path | None = None,
                 name: str | None = None):
        self.cwd = cwd  # the node's working folder (default: this process's)
        self.name = name  # a machine name, given to the node as a resource (see node_names)
        for attempt in range(1, tries + 1):  # on an overloaded machine a head's own start can time out once
            self.port = free_port()
            self.address = f"127.0.0.1:{self.port}"
            self._start(env, log, ["--head", "--port", str(self.port), "--num-cpus", str(num_cpus),
                                   "--include-dashboard", "false"])
            deadline = time.monotonic() + 120
            while not (address_file(Path(env["RAY_TMPDIR"])).is_file() and accepts(self.port)):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            else:
                return
            self.stop(signal.SIGKILL)
            if attempt == tries:
                pytest.fail(f"ray start --head did not come up: {log.read_text()[-3000:]}")

    def _start(self, env: dict[str, str], log: Path, args: list[str]) -> None:
        self.env = {k: v for k, v in env.items() if k != "PYTHONPATH"}  # our code reaches workers via py_modules
        self.log = log.open("w")
        if self.name:
            args = [*args, "--resources", json.dumps({f"machine:{self.name}": 1})]
        self.proc = subprocess.Popen(
            [*RAY_CLI, "start", "--block", "--node-ip-address", "127.0.0.1", "--disable-usage-stats", *args],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.cwd,
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """End the node's processes and return once they have exited (their sockets closed): a killed
        process's memory, and with it its command line, goes before its files, so a port can still accept
        connections just after every process seems gone."""
        pids = self._pids()
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        for pid in self._pids():  # what outlived the group's leader, in its group or not (none expected)
            _signal(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while any(_started(pid) == started for pid, started in pids.items()) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.log.close()

    def _pids(self) -> dict[int, int]:
        """{pid: start time} of the running processes of this node: its process group, and any carrying its
        unique temp dir."""
        marker, found = self.env["RAY_TMPDIR"].encode(), {}
        for pid_dir in Path("/proc").glob("[0-9]*"):
            try:
                fields = _stat_fields(int(pid_dir.name))
                if fields[0] not in "ZX" and (int(fields[2]) == self.proc.pid
                                              or marker in (pid_dir / "cmdline").read_bytes()):
                    found[int(pid_dir.name)] = int(fields[19])
            except (OSError, ValueError, IndexError):
                pass
        return found


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: state, ppid, pgrp, ... (field 22, the start time, is [19])."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2:].split()


def _started(pid: int) -> int | None:
    """The start time of `pid` while it runs; None once it has exited (a zombie, Z, has closed its files)."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return None
    return None if fields[0] in "ZX" else int(fields[19])


class Worker(Head):
    """A second node: `ray start --address HEAD --block`, in its own RAY_TMPDIR."""

    def __init__(self, head: Head, env: dict[str, str], log: Path, num_cpus: int = 1, cwd: Path | None = None,
                 name: str | None = None):
        self.address, self.cwd, self.name = head.address, cwd, name
        self._start(env, log, ["--address", head.address, "--num-cpus", str(num_cpus)])


def wait_for_nodes(address: str, env: dict[str, str], n: int, timeout: float = 180) -> int:
    """Wait until the cluster has `n` alive nodes (a worker takes a while to join); returns how many it has."""
    deadline = time.monotonic() + timeout
    while True:
        have = cluster_nodes(address, env)
        if have >= n or time.monotonic() > deadline:
            return have
        time.sleep(2)


def node_names(address: str, env: dict[str, str]) -> dict[str, str]:
    """{node id: machine name} of the cluster's alive nodes started with a `name` (every node of a test cluster
    has the address 127.0.0.1: the name, a custom resource of the node, tells which is which)."""
    code = (f"import json, ray; ray.init(address={address!r}, logging_level='ERROR');"
            "print(json.dumps({n['NodeID']: [k for k in n['Resources'] if k.startswith('machine:')]"
            " for n in ray.nodes() if n['Alive']}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    nodes = json.loads(out.stdout.strip().splitlines()[-1])
    return {node: names[0].removeprefix("machine:") for node, names in nodes.items() if names}


def cluster_nodes(address: str, env: dict[str, str]) -> int:
    """How many alive nodes the cluster at `address` has (asked by a short-lived client)."""
    code = (f"import ray; ray.init(address={address!r}, logging_level='ERROR');"
            "print(sum(1 for n in ray.nodes() if n['Alive']))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0


@pytest.fixture
def head_factory():
    heads: list[Head] = []

    def start(env: dict[str, str], log: Path) -> Head:
        heads.append(Head(env, log))
        return heads[-1]

    yield start
    for h in heads:
        h.stop()
