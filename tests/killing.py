"""Killing a command in the middle of a write, for real: the command runs in a session of its own; the kernel
tells us (inotify) the moment a temporary file appears under the folders it writes, and every process of the
session (the driver, its local Ray, the Ray worker that is writing) gets SIGKILL at once. The temporaries that
exist after the kill prove that it landed mid-write.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import struct
import subprocess
import time
from pathlib import Path

_IN_CREATE, _IN_MOVED_TO, _IN_ISDIR = 0x100, 0x80, 0x40000000
_IN_NONBLOCK, _IN_CLOEXEC = 0o4000, 0o2000000
_EVENT = struct.Struct("iIII")


def is_temporary(name: str) -> bool:
    """A temporary name of the storage layer: `.<name>.<host>-<pid>-<random>.tmp` (files and scratch folders)."""
    return name.startswith(".") and name.endswith(".tmp")


class TreeWatch:
    """inotify on every folder under some roots (new folders are watched as they appear)."""

    def __init__(self, roots: list[Path]):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.dirs: dict[int, Path] = {}
        self.seen: list[Path] = []
        for r in roots:
            r.mkdir(parents=True, exist_ok=True)
            self._watch_tree(r)

    def _watch_tree(self, d: Path) -> None:
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(d), _IN_CREATE | _IN_MOVED_TO)
        if wd >= 0:
            self.dirs[wd] = d
        try:
            entries = list(os.scandir(d))
        except OSError:
            return
        for e in entries:  # what appeared before the watch was in place
            if is_temporary(e.name):
                self.seen.append(Path(e.path))
            if e.is_dir(follow_symlinks=False):
                self._watch_tree(Path(e.path))

    def temporaries(self, timeout: float) -> list[Path]:
        """Temporaries created since the last call (waiting up to `timeout` seconds for an event)."""
        if not self.seen:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if ready:
                self._drain()
        out, self.seen = self.seen, []
        return out

    def _drain(self) -> None:
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        at = 0
        while at < len(data):
            wd, mask, _cookie, size = _EVENT.unpack_from(data, at)
            name = data[at + _EVENT.size: at + _EVENT.size + size].rstrip(b"\0").decode()
            at += _EVENT.size + size
            path = self.dirs.get(wd, Path("?")) / name
            if is_temporary(name):
                self.seen.append(path)
            if mask & _IN_ISDIR:
                self._watch_tree(path)

    def close(self) -> None:
        os.close(self.fd)


def session_pids(sid: int) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state ppid pgrp session ...
        if int(fields[3]) == sid:
            pids.append(int(p.name))
    return pids


def kill_session(sid: int) -> None:
    for _ in range(20):  # processes may fork while we kill: until none is left
        pids = session_pids(sid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def kill_mid_write(cmd: list[str], env: dict, roots: list[Path], cwd: Path, timeout: float = 240,
                   wanted=lambda p: True) -> list[Path]:
    """Run `cmd`; the moment a temporary `wanted(path)` appears under `roots`, SIGKILL its whole session.
    Returns the temporaries still there after the kill (empty: the command ended before one appeared)."""
    watch = TreeWatch(roots)
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    hit: list[Path] = []
    try:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            found = [p for p in watch.temporaries(0.2) if wanted(p)]
            if found:
                kill_session(proc.pid)
                hit = found
                break
    finally:
        kill_session(proc.pid)
        proc.wait()
        watch.close()
    return [p for p in hit if p.exists()]


def files_under(root: Path) -> set[str]:
    """Every file under `root` (hidden ones included), relative."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}
