"""A cluster-wide cap on concurrent downloads (`download.concurrency`), as Common Crawl asks of its readers:
one Ray actor hands out leases; a task holds one while it downloads.

A lease is renewed by a thread of the holder while it is held and expires LEASE_TTL_S after its last
renewal, so a worker killed mid-download (OOM, SIGKILL, a lost node) gives its slot back by itself instead of
leaking it. The actor holds only the leases (a few dozen entries), never data.
"""

from __future__ import annotations

import threading
import time
import uuid

import ray

LEASE_TTL_S = 30.0
POLL_S = 0.2


@ray.remote(num_cpus=0)
class _Slots:
    def __init__(self, n: int):
        self.n = n
        self.leases: dict[str, float] = {}
        self.max_held = 0

    def _expire(self) -> None:
        now = time.monotonic()
        for token in [t for t, until in self.leases.items() if until < now]:
            del self.leases[token]

    def acquire(self, token: str, ttl: float) -> bool:
        self._expire()
        if token in self.leases or len(self.leases) < self.n:
            self.leases[token] = time.monotonic() + ttl
            self.max_held = max(self.max_held, len(self.leases))
            return True
        return False

    def renew(self, token: str, ttl: float) -> None:
        if token in self.leases:
            self.leases[token] = time.monotonic() + ttl

    def release(self, token: str) -> None:
        self.leases.pop(token, None)

    def stats(self) -> dict:
        self._expire()
        return {"held": len(self.leases), "max_held": self.max_held, "limit": self.n}


class ClusterSlots:
    """Picklable handle the stage passes to its tasks: `with slots():` holds one of the cluster's slots."""

    def __init__(self, limit: int, ttl: float = LEASE_TTL_S):
        self.limit, self.ttl = limit, ttl
        self.name = f"crawlproc-download-slots-{uuid.uuid4().hex[:12]}"
        self._actor = _Slots.options(name=self.name).remote(limit)

    def __getstate__(self):
        return {"limit": self.limit, "ttl": self.ttl, "name": self.name}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._actor = None

    @property
    def actor(self):
        if self._actor is None:
            self._actor = ray.get_actor(self.name)
        return self._actor

    def __call__(self) -> _Lease:
        return _Lease(self)

    def stats(self) -> dict:
        return ray.get(self.actor.stats.remote())

    def close(self) -> None:
        ray.kill(self.actor)


class _Lease:
    def __init__(self, slots: ClusterSlots):
        self.slots = slots
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Lease:
        actor, ttl = self.slots.actor, self.slots.ttl
        while not ray.get(actor.acquire.remote(self.token, ttl)):
            time.sleep(POLL_S)
        self._thread = threading.Thread(target=self._renew, daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.slots.ttl / 3):
            try:
                self.slots.actor.renew.remote(self.token, self.slots.ttl)
            except Exception:  # noqa: BLE001 -- a missed renewal only shortens the lease
                pass

    def __exit__(self, *exc) -> None:
        self._stop.set()
        ray.get(self.slots.actor.release.remote(self.token))
