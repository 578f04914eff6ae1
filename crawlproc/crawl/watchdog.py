"""A deadline for one HTTP download attempt, enforced wherever the attempt blocks.

A read timeout bounds one socket read; a server that sends one byte every few seconds resets it forever, in
the response headers as well as in the body. `Watchdog` runs beside the attempt and, when the attempt breaks
its rule, shuts down the attempt's sockets: the blocked read returns at once and the attempt fails (and is
retried, resuming from what it already has).

The rule: the response must have started arriving by `grace_s`, and from then on the body must keep an
average of at least `min_rate` bytes/s since the attempt began; no attempt lasts more than `max_s`. A slow but
honest server keeps its download; a drip is cut at `grace_s`, whatever Content-Length it announced.

The sockets are found through `session()`: a requests Session whose connections register themselves with the
watchdog of the thread that uses them. That relies on urllib3's PoolManager.pool_classes_by_scheme and
HTTPConnectionPool.ConnectionCls (urllib3 2.x, tested with 2.8); tests/test_download.py fails if they change.
"""

from __future__ import annotations

import socket
import threading
import time

import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_CURRENT = threading.local()


class Watchdog:
    def __init__(self, grace_s: float, min_rate: float, max_s: float):
        self.grace_s, self.min_rate, self.max_s = grace_s, min_rate, max(grace_s, max_s)
        self.started = time.monotonic()
        self.received = 0  # body bytes so far: the attempt's loop updates it
        self.expired: str | None = None  # why the attempt was stopped
        self._conns: list = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="download-deadline", daemon=True)

    def __enter__(self) -> Watchdog:
        _CURRENT.watchdog = self
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        _CURRENT.watchdog = None
        self._stop.set()
        self._thread.join()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def verdict(self) -> str | None:
        """Why the attempt must stop now, or None."""
        t = self.elapsed()
        if t >= self.max_s:
            return f"attempt deadline: over {self.max_s:.0f} s"
        if t >= self.grace_s and self.received < self.min_rate * t:
            return (f"attempt deadline: {self.received} bytes in {t:.1f} s, under {self.min_rate / 1024:.0f} KiB/s "
                    f"after the first {self.grace_s:g} s")
        return None

    def _watch(self) -> None:
        wait = self.grace_s
        while not self._stop.wait(max(0.0, wait)):
            why = self.verdict()
            if why:
                with self._lock:
                    self.expired = why
                    conns = list(self._conns)
                for conn in conns:
                    _shut(conn)
                return
            # next look: when the average would fall under the floor if nothing more arrived, at most 1 s on
            wait = min(max(self.received / self.min_rate - self.elapsed(), 0.05), 1.0, self.max_s - self.elapsed())

    def track(self, conn) -> None:
        with self._lock:
            self._conns.append(conn)
            expired = self.expired
        if expired:
            _shut(conn)


def _shut(conn) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket call, also for a TLS socket
        except OSError:
            pass


class _Watched:
    """Mixed into urllib3's connections: register with the current thread's watchdog."""

    def connect(self):
        super().connect()
        watchdog = getattr(_CURRENT, "watchdog", None)
        if watchdog is not None:
            watchdog.track(self)  # shut at once if the deadline passed while connecting

    def request(self, *args, **kwargs):
        watchdog = getattr(_CURRENT, "watchdog", None)
        if watchdog is not None:
            watchdog.track(self)  # a kept-alive connection is not connected again
        return super().request(*args, **kwargs)


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme.get("http") is HTTPConnectionPool:  # not SOCKS: its own classes
            manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager


def session() -> requests.Session:
    """A requests Session whose connections a Watchdog can shut down."""
    s = requests.Session()
    s.mount("http://", _Adapter())
    s.mount("https://", _Adapter())
    return s
