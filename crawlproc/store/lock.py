"""One command at a time on a snapshot (or a token set): a second command stops at once with a message that
names the holder, instead of both rewriting the same files.

On a local or shared disk the lock is an OS file lock (fcntl.flock) on `<snapshot>/_lock`: the kernel drops
it when the holder dies, even by SIGKILL, so a crashed command never blocks the next one. Object stores have
no locks: there a holder keeps a lease object `_lock/<holder>.json` fresh (a heartbeat every
LEASE_BEAT_S seconds), and a lease not refreshed for LEASE_STALE_S seconds is ignored. Two commands starting
in the same instant may both see each other and both stop, which is safe.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime

from crawlproc.store.storage import Storage, StorageError, describe_os_error, join, pid_alive

LEASE_BEAT_S = 15.0
LEASE_STALE_S = 90.0


class Busy(RuntimeError):
    """Another command holds the lock."""


def _holder() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "command": " ".join(sys.argv)[:300],
            "since": datetime.now(UTC).isoformat(timespec="seconds")}


def _busy(what: str, holder: dict) -> Busy:
    return Busy(f"{what} is busy: another crawlproc command is working on it (pid {holder.get('pid')} on "
                f"{holder.get('host')}, since {holder.get('since')}: {holder.get('command') or '?'}). Wait for "
                "it to finish or stop it, then run this again; the lock of a command that died is released "
                "by itself.")


_held: set[str] = set()  # locks this process holds: taking one again (a stage inside a command) is a no-op


@contextmanager
def hold(storage: Storage, lock_uri: str, what: str):
    """Hold the lock at `lock_uri` for the duration of the block, or raise Busy. Re-entrant per process."""
    if lock_uri in _held:
        yield
        return
    path = storage.local_path(lock_uri)
    with _file_lock(path, what) if path is not None else _lease(storage, lock_uri, what):
        _held.add(lock_uri)
        try:
            yield
        finally:
            _held.discard(lock_uri)


@contextmanager
def _file_lock(path, what: str):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir() or (path.exists() and not path.is_file()):
            kind = "a folder" if path.is_dir() else "not a regular file"
            raise StorageError(f"the lock of {what}, {path}, is {kind}: crawlproc keeps a small file there. Remove "
                               f"it (if no crawlproc command is running) or use another --out")
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NONBLOCK, 0o644)
    except StorageError:
        raise
    except OSError as e:
        raise StorageError(f"cannot take the lock of {what}: {describe_os_error(e, str(path))}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except ValueError:
                holder = {}
            raise _busy(what, holder) from None
        data = json.dumps(_holder()).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _lease_alive(lease: dict) -> bool:
    """A lease counts while its holder beats; one of a process of this host that is gone counts no more
    (a command killed here is rerun at once, not LEASE_STALE_S later)."""
    if lease.get("host") == socket.gethostname() and isinstance(lease.get("pid"), int) \
            and not pid_alive(lease["pid"]):
        return False
    return time.time() - float(lease.get("beat", 0)) < LEASE_STALE_S


@contextmanager
def _lease(storage: Storage, lock_uri: str, what: str):
    me = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    mine = join(lock_uri, f"{me}.json")
    holder = _holder()

    def beat() -> None:
        storage.write_json(mine, {**holder, "beat": time.time()})

    beat()
    for e in storage.list(lock_uri, suffix=".json"):
        if e.uri == mine:
            continue
        other = storage.read_json(e.uri, {}) or {}
        if _lease_alive(other):
            storage.delete(mine)
            raise _busy(what, other)
    stop = threading.Event()

    def keep_fresh() -> None:
        while not stop.wait(LEASE_BEAT_S):
            try:
                beat()
            except OSError:
                pass  # a missed beat is retried; only LEASE_STALE_S of them lets another command in

    t = threading.Thread(target=keep_fresh, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(timeout=5)
        storage.delete(mine)
