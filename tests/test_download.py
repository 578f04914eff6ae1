"""The downloader against a real HTTP server on 127.0.0.1 serving real WARC files, with injected faults."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from crawlproc.crawl.download import (
    CorruptFileError,
    DownloadError,
    UnsafePathError,
    backoff_delay,
    download_file,
    download_slot,
    retry_after_seconds,
    safe_join,
    safe_relpath,
    verify_gzip,
)
from crawlproc.recipe import DownloadConfig
from pipelines.demo.minicc import Fault, MiniCCServer

WARC = "dolma_sample-0000.warc.gz"  # 214 KB, 48 gzip members (one per record)
# fast retries for tests; waits are still real sleeps
CFG = DownloadConfig(retries=3, backoff_s=0.01, max_backoff_s=2.0, timeout_s=5.0)


@pytest.fixture
def server(data_dir, tmp_path):
    root = tmp_path / "srv"
    (root / "w").mkdir(parents=True)
    (root / "w" / WARC).write_bytes((data_dir / "warc" / WARC).read_bytes())
    with MiniCCServer(root) as srv:
        yield srv


def _source(data_dir) -> bytes:
    return (data_dir / "warc" / WARC).read_bytes()


def _get(server, tmp_path, cfg=CFG, **kw):
    return download_file(f"{server.base_url}/w/{WARC}", tmp_path / "got" / WARC, cfg, **kw)


def test_plain_download_is_whole_and_verified(server, tmp_path, data_dir):
    r = _get(server, tmp_path)
    assert r.path.read_bytes() == _source(data_dir)
    assert r.attempts == 1 and r.resumed == 0 and not r.from_cache
    assert r.gzip_members == 48
    assert not (tmp_path / "got" / f"{WARC}.part").exists()


def test_503_then_success(server, tmp_path, data_dir):
    server.add_fault(f"w/{WARC}", Fault("status", status=503), Fault("status", status=502))
    r = _get(server, tmp_path)
    assert r.path.read_bytes() == _source(data_dir)
    assert r.attempts == 3 and len(r.waits) == 2
    assert r.errors == ["HTTP 503", "HTTP 502"]


def test_429_retry_after_is_honoured(server, tmp_path, data_dir):
    server.add_fault(f"w/{WARC}", Fault("status", status=429, retry_after="1"))
    r = _get(server, tmp_path)
    assert r.path.read_bytes() == _source(data_dir)
    assert r.waits[0] >= 1.0  # the server's Retry-After is a floor for the wait


def test_connection_reset_mid_body_resumes_with_range(server, tmp_path, data_dir):
    server.add_fault(f"w/{WARC}", Fault("reset", after_bytes=100_000))
    r = _get(server, tmp_path)
    assert r.path.read_bytes() == _source(data_dir)
    reqs = server.requests_for(f"w/{WARC}")
    assert len(reqs) == 2 and reqs[0]["range"] is None
    # the server resets once the client has every byte sent (minicc waits for the acknowledgements)
    assert r.resumed == 1 and reqs[1]["range"] == "bytes=100000-"
    assert any("reset" in e.lower() or "connection" in e.lower() for e in r.errors), r.errors


def test_truncated_body_resumes_exactly_where_it_stopped(server, tmp_path, data_dir):
    server.add_fault(f"w/{WARC}", Fault("truncate", after_bytes=70_000))
    r = _get(server, tmp_path)
    assert r.path.read_bytes() == _source(data_dir)
    assert r.resumed == 1
    assert server.requests_for(f"w/{WARC}")[1]["range"] == "bytes=70000-"
    assert "truncated" in r.errors[0] or "connection lost" in r.errors[0]


def test_server_without_range_support_restarts_from_zero(data_dir, tmp_path):
    root = tmp_path / "srv"
    (root / "w").mkdir(parents=True)
    (root / "w" / WARC).write_bytes(_source(data_dir))
    with MiniCCServer(root, range_support=False) as srv:
        srv.add_fault(f"w/{WARC}", Fault("truncate", after_bytes=50_000))
        r = download_file(f"{srv.base_url}/w/{WARC}", tmp_path / "got" / WARC, CFG)
    assert r.path.read_bytes() == _source(data_dir)
    assert r.resumed == 0 and r.attempts == 2  # the 200 answer to the Range request replaced the partial file


def test_ignored_range_is_never_spliced(server, tmp_path, data_dir):
    server.add_fault(f"w/{WARC}", Fault("truncate", after_bytes=30_000), Fault("ignore_range"))
    r = _get(server, tmp_path)
    assert r.path.read_bytes() == _source(data_dir)


def test_slow_response_past_the_read_timeout_is_retried(server, tmp_path, data_dir):
    cfg = DownloadConfig(retries=3, backoff_s=0.01, timeout_s=0.3)
    server.add_fault(f"w/{WARC}", Fault("slow", delay_s=1.0, chunk=65536))
    r = _get(server, tmp_path, cfg)
    assert r.path.read_bytes() == _source(data_dir)
    assert r.attempts == 2 and ("Timeout" in r.errors[0] or "connection lost" in r.errors[0]), r.errors


def test_a_cached_download_is_reused_and_a_damaged_one_fetched_again(server, tmp_path, data_dir):
    server.add_fault(f"w/{WARC}", Fault("slow", delay_s=0.02, chunk=32768))
    r = _get(server, tmp_path)
    assert r.path.read_bytes() == _source(data_dir) and r.attempts == 1


def test_404_fails_at_once_and_leaves_nothing(server, tmp_path):
    with pytest.raises(DownloadError) as e:
        download_file(f"{server.base_url}/w/missing.warc.gz", tmp_path / "got" / "missing.warc.gz", CFG)
    assert e.value.permanent and e.value.status == 404 and e.value.attempts == 1
    assert "HTTP 404" in str(e.value)
    assert not (tmp_path / "got" / "missing.warc.gz").exists()
    assert not (tmp_path / "got" / "missing.warc.gz.part").exists()


def test_retries_exhausted_is_a_clear_error(server, tmp_path):
    server.add_fault(f"w/{WARC}", Fault("status", status=503, repeat=True))
    with pytest.raises(DownloadError) as e:
        _get(server, tmp_path)
    assert not e.value.permanent and e.value.attempts == CFG.retries + 1
    assert "HTTP 503" in str(e.value) and "4 attempts" in str(e.value)
    assert not (tmp_path / "got" / WARC).exists()


def test_corrupt_body_is_refetched_once_then_refused(server, tmp_path, data_dir):
    server.add_fault(f"w/{WARC}", Fault("corrupt", after_bytes=120_000))
    r = _get(server, tmp_path)
    assert r.path.read_bytes() == _source(data_dir) and r.attempts == 2
    server.add_fault(f"w/{WARC}", Fault("corrupt", after_bytes=120_000, repeat=True))
    with pytest.raises(DownloadError) as e:
        download_file(f"{server.base_url}/w/{WARC}", tmp_path / "again" / WARC, CFG)
    assert e.value.permanent and "corrupt" in str(e.value)
    assert not (tmp_path / "again" / WARC).exists()


def test_redirect_to_another_host_is_refused(server, tmp_path):
    server.add_fault(f"w/{WARC}", Fault("redirect", location=f"http://localhost:{server.server_address[1]}/w/{WARC}"))
    with pytest.raises(DownloadError) as e:
        _get(server, tmp_path, allowed_hosts={"127.0.0.1"})
    assert e.value.permanent and "localhost" in str(e.value)


def test_redirect_on_the_same_host_is_followed(server, tmp_path, data_dir):
    (server.root / "w" / "moved.warc.gz").write_bytes(_source(data_dir))
    server.add_fault(f"w/{WARC}", Fault("redirect", location="/w/moved.warc.gz"))
    r = _get(server, tmp_path, allowed_hosts={"127.0.0.1"})
    assert r.path.read_bytes() == _source(data_dir)


def test_cache_is_reused_and_a_damaged_entry_refetched(server, tmp_path, data_dir):
    first = _get(server, tmp_path)
    n = len(server.requests)
    again = _get(server, tmp_path)
    assert again.from_cache and len(server.requests) == n
    first.path.write_bytes(_source(data_dir)[:-10])  # damaged cache entry
    third = _get(server, tmp_path)
    assert not third.from_cache and third.path.read_bytes() == _source(data_dir)


def test_partial_file_from_a_killed_run_is_resumed(server, tmp_path, data_dir):
    dest = tmp_path / "got" / WARC
    dest.parent.mkdir(parents=True)
    Path(f"{dest}.part").write_bytes(_source(data_dir)[:90_000])  # what a SIGKILLed download leaves
    r = _get(server, tmp_path)
    assert r.path.read_bytes() == _source(data_dir) and r.resumed == 1
    assert server.requests_for(f"w/{WARC}")[0]["range"] == "bytes=90000-"


def test_verify_gzip_finds_truncation(tmp_path, data_dir):
    good = _source(data_dir)
    p = tmp_path / "t.warc.gz"
    p.write_bytes(good)
    assert verify_gzip(p).members == 48
    p.write_bytes(good[: len(good) // 2])
    with pytest.raises(CorruptFileError, match="truncated"):
        verify_gzip(p)
    p.write_bytes(good + b"garbage")
    with pytest.raises(CorruptFileError):
        verify_gzip(p)
    p.write_bytes(gzip.compress(b"x") + b"")
    assert verify_gzip(p).members == 1


@pytest.mark.parametrize("bad", ["../x.warc.gz", "a/../../x", "/etc/passwd", "a//b", "./a", "a\\..\\b", "~/x",
                                 "a/%2e%2e/b", "a/.hidden", "", "a/b\x00c", "C:/x"])
def test_safe_relpath_rejects_escapes(bad):
    with pytest.raises(UnsafePathError):
        safe_relpath(bad)


def test_safe_join_stays_under_root(tmp_path):
    target = safe_join(tmp_path, "crawl-data/CC-MAIN-2024-10/segments/1.2/warc/x.warc.gz")
    assert target.resolve().is_relative_to(tmp_path.resolve())
    (tmp_path / "link").symlink_to("/")
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, "link/etc/passwd")


def test_retry_after_and_backoff():
    import random

    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    cfg = DownloadConfig(backoff_s=1.0, max_backoff_s=10.0)
    rng = random.Random(0)
    delays = [backoff_delay(a, cfg, rng) for a in range(1, 8)]
    assert all(0.5 * min(10, 2 ** (a - 1)) <= d <= min(10, 2 ** (a - 1)) for a, d in zip(range(1, 8), delays))
    assert backoff_delay(1, cfg, rng, retry_after=5) >= 5
    assert backoff_delay(1, cfg, rng, retry_after=3600) == 10.0  # capped: a hostile Retry-After cannot stall


def test_download_slots_bound_concurrency_and_survive_a_killed_holder(tmp_path):
    lock_dir = tmp_path / "slots"
    with download_slot(2, lock_dir) as a, download_slot(2, lock_dir) as b:
        assert {a, b} == {0, 1}
    # a process holding the only slot is SIGKILLed: the kernel drops its lock, the slot is free again
    code = ("import sys, time; from crawlproc.crawl.download import download_slot\n"
            f"with download_slot(1, {str(lock_dir)!r}):\n    print('held', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parents[1])
    try:
        assert holder.stdout.readline().strip() == "held"
        got = []
        t = threading.Thread(target=lambda: got.append(download_slot(1, lock_dir, poll_s=0.05).__enter__()))
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        t.start()
        t.join(30)
        assert got == [0]
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_partial_file_of_an_older_version_is_not_spliced(server, tmp_path, data_dir):
    import requests

    url = f"{server.base_url}/w/{WARC}"
    old_etag = requests.head(url, timeout=10).headers["ETag"]
    dest = tmp_path / "got" / WARC
    dest.parent.mkdir(parents=True)
    Path(f"{dest}.part").write_bytes(_source(data_dir)[:90_000])  # a crashed run's partial file
    Path(f"{dest}.part.meta").write_text(json.dumps({"etag": old_etag}))
    newer = (data_dir / "warc" / "dolma_sample-0001.warc.gz").read_bytes()
    (server.root / "w" / WARC).write_bytes(newer)  # the file changed on the server since
    r = download_file(url, dest, CFG)
    assert r.path.read_bytes() == newer and r.attempts == 1 and r.resumed == 0
    assert server.requests_for(f"w/{WARC}")[-1]["range"] == "bytes=90000-"  # asked to resume, got it whole
    assert not Path(f"{dest}.part.meta").exists()


# ---------------------------------------------------------------------------------------------- hostile servers


class DripServer:
    """A raw TCP server on 127.0.0.1 that answers any request with `response`, one byte every `interval`
    seconds, for at most `for_s` seconds (so that a client without a deadline fails slowly, never hangs)."""

    def __init__(self, response: bytes, interval: float = 0.5, for_s: float = 20.0):
        import socket

        self.response, self.interval, self.for_s = response, interval, for_s
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/x.warc.gz"
        self.stop = threading.Event()
        self.sent: list[int] = []  # bytes sent per connection

    def _serve(self, conn) -> None:
        import time

        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                started, n = time.monotonic(), 0
                for i in range(len(self.response)):
                    if self.stop.is_set() or time.monotonic() - started > self.for_s:
                        break
                    conn.sendall(self.response[i:i + 1])
                    n += 1
                    self.sent[-1] = n
                    self.stop.wait(self.interval)
            except OSError:
                pass  # the client hung up

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.sent.append(0)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.sock.close()


DRIP_CFG = DownloadConfig(retries=1, backoff_s=0.01, max_backoff_s=0.1, timeout_s=2.0)  # reads never time out


def test_a_body_dripping_a_byte_every_half_second_is_cut_at_the_attempt_deadline(tmp_path):
    body = gzip.compress(os.urandom(60))
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nContent-Type: application/gzip\r\n\r\n".encode()
    with DripServer(head + body, interval=0.5) as drip:
        with pytest.raises(DownloadError) as e:
            download_file(drip.url, tmp_path / "x.warc.gz", DRIP_CFG, deadline_s=1.5)
    assert not e.value.permanent and e.value.attempts == 2
    assert "attempt deadline" in str(e.value), str(e.value)
    assert not (tmp_path / "x.warc.gz").exists()


def test_headers_dripping_a_byte_at_a_time_are_cut_at_the_attempt_deadline(tmp_path):
    """The drip is in the status line and headers, where the downloader's own loop never runs: only the
    watchdog (which relies on urllib3's pool/connection classes) can stop it."""
    head = b"HTTP/1.1 200 OK\r\n" + b"X-Drip: " + b"a" * 10_000 + b"\r\n\r\n"
    with DripServer(head, interval=0.2) as drip:
        with pytest.raises(DownloadError) as e:
            download_file(drip.url, tmp_path / "x.warc.gz", DRIP_CFG, deadline_s=1.0)
        sent = list(drip.sent)
    assert "attempt deadline" in str(e.value), str(e.value)
    assert len(sent) == 2 and max(sent) < 40, sent  # each attempt was stopped after a few bytes


@pytest.fixture
def other_port(server, data_dir, tmp_path):
    """A second server on another port of the same host; `server` redirects the WARC there."""
    root = tmp_path / "other"
    (root / "w").mkdir(parents=True)
    (root / "w" / WARC).write_bytes(_source(data_dir))
    with MiniCCServer(root) as other:
        server.add_fault(f"w/{WARC}", Fault("redirect", location=f"{other.base_url}/w/{WARC}"))
        yield other


def test_a_redirect_to_another_port_of_the_same_host_is_refused(server, other_port, tmp_path):
    with pytest.raises(DownloadError) as e:
        _get(server, tmp_path, allowed_hosts={"127.0.0.1"})
    assert e.value.permanent and "not allowed" in str(e.value)
    assert not other_port.requests  # never asked


def test_an_allowed_host_with_its_port_may_be_redirected_to(server, other_port, tmp_path, data_dir):
    r = _get(server, tmp_path, allowed_hosts={f"127.0.0.1:{other_port.server_address[1]}"})
    assert r.path.read_bytes() == _source(data_dir)


def test_max_bytes_refuses_a_larger_file_at_once(server, tmp_path):
    with pytest.raises(DownloadError) as e:
        _get(server, tmp_path, max_bytes=10_000)
    assert e.value.permanent and "10000-byte limit" in str(e.value) and e.value.attempts == 1
    assert not (tmp_path / "got" / WARC).exists() and not (tmp_path / "got" / f"{WARC}.part").exists()


def test_attempt_deadline_rule():
    from crawlproc.crawl.download import DEADLINE_TIMEOUTS, attempt_deadline_s

    assert attempt_deadline_s(DownloadConfig(timeout_s=7.0)) == DEADLINE_TIMEOUTS * 7.0


@pytest.mark.parametrize("bad", ["a/" + "b" * 201 + ".warc.gz", "/".join(["abcdefgh"] * 120) + ".warc.gz"])
def test_safe_relpath_rejects_what_the_file_system_cannot_hold(bad):
    with pytest.raises(UnsafePathError, match="bytes"):
        safe_relpath(bad)
    safe_relpath("a/" + "b" * 192 + ".warc.gz")  # 200 bytes: fine
