"""Fetch selected records of one WARC with ranged reads, each record's gzip member verified.

`fetch_records(url, ranges, dest, ...)` reads every planned range (crawlproc.crawl.ccindex.plan_ranges) with
one HTTP `Range` request (or one object-store ranged read), cuts the records out of it and writes them, one
after the other, to `dest`: a WARC of the selected records, gzip per record as Common Crawl's are, that the
extract stage reads like any other. `offsets[local] = original` maps each record back to its offset in the
original file, so documents keep the offset Common Crawl's index uses.

- A read is retried with backoff and jitter on 429/5xx, resets, timeouts and short bodies; a retry asks only
  for the bytes still missing. A 200 answer (the server ignored `Range`) is refused, never sliced.
- Every record must be exactly one whole gzip member (CRC and length checked by zlib) that inflates to a WARC
  record, within `max_inflate` bytes. A record that fails is read once more (a corrupt transfer); a record
  that fails again is not what the index says it is: it is counted (`index:bad_record`) and left out, the
  others go on.
- Redirects stay on the origin or `allowed_hosts`, and every attempt has a deadline, as in download.py.
"""

from __future__ import annotations

import random
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from crawlproc.crawl import watchdog
from crawlproc.crawl.ccindex import Range
from crawlproc.crawl.download import (
    CHUNK,
    MAX_ATTEMPT_S,
    MIN_RATE_BYTES_S,
    NETWORK_ERRORS,
    OBJECT_SCHEMES,
    RETRYABLE_STATUS,
    DownloadError,
    _get,
    _parse_content_range,
    attempt_deadline_s,
    backoff_delay,
    retry_after_seconds,
)
from crawlproc.recipe import DownloadConfig


class _Retry(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class RangedResult:
    path: Path
    records: int = 0  # records written
    offsets: dict[int, int] = field(default_factory=dict)  # offset in `path` -> offset in the original file
    requests: int = 0  # every request sent, retries included
    ranges: int = 0
    bytes: int = 0  # bytes received (gaps between records included)
    record_bytes: int = 0  # bytes of the records written
    attempts: int = 0
    skipped: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)

    def to_stats(self) -> dict:
        return {"records": self.records, "requests": self.requests, "ranges": self.ranges, "bytes": self.bytes,
                "record_bytes": self.record_bytes, "retries": self.attempts - self.ranges,
                "skipped": dict(self.skipped)}


def check_member(data: bytes | memoryview, max_inflate: int) -> str | None:
    """None when `data` is exactly one whole gzip member inflating to a WARC record (at most `max_inflate`
    bytes); else why not."""
    if bytes(data[:2]) != b"\x1f\x8b":
        return "not a gzip member"
    d = zlib.decompressobj(wbits=31)
    view = memoryview(data)
    head = b""
    total = 0
    try:
        while len(view) and not d.eof:
            out = d.decompress(view, CHUNK)
            total += len(out)
            if len(head) < 5:
                head += out[: 5 - len(head)]
            if total > max_inflate:
                return f"inflates past {max_inflate} bytes"
            view = memoryview(d.unconsumed_tail) if d.unconsumed_tail else view[len(view):]
        while not d.eof and (out := d.decompress(b"", CHUNK)):
            total += len(out)
            if total > max_inflate:
                return f"inflates past {max_inflate} bytes"
    except zlib.error as e:
        return f"corrupt gzip: {e}"
    if not d.eof:
        return "truncated gzip member"
    if d.unused_data:
        return f"{len(d.unused_data)} bytes after the gzip member"
    if head[:5] != b"WARC/":
        return "not a WARC record"
    return None


def _read_http(session, url: str, r: Range, config: DownloadConfig, allowed_hosts, deadline_s: float,
               buf: bytearray, result: RangedResult) -> None:
    """Append to `buf` the bytes of `r` it still lacks (one request). Raises _Retry or DownloadError."""
    want_from = r.start + len(buf)
    headers = {"Accept-Encoding": "identity", "Range": f"bytes={want_from}-{r.end - 1}"}
    with watchdog.Watchdog(deadline_s, MIN_RATE_BYTES_S, MAX_ATTEMPT_S) as dog:
        try:
            result.requests += 1
            resp = _get(session, url, headers, config, allowed_hosts)
            with resp:
                status = resp.status_code
                if status in RETRYABLE_STATUS or 500 <= status < 600:
                    raise _Retry(f"HTTP {status}", retry_after_seconds(resp.headers.get("Retry-After")))
                if status == 200:
                    raise DownloadError(url, "the server ignored the Range request (HTTP 200): ranged reads "
                                        "need a server that honours Range; use fetch.mode = \"warc\"",
                                        permanent=True, status=200)
                if status != 206:
                    raise DownloadError(url, f"HTTP {status} for range {headers['Range']}", permanent=True,
                                        status=status)
                cr = _parse_content_range(resp.headers.get("Content-Range"))
                if cr is None or cr[0] != want_from or cr[1] != r.end - 1:
                    raise _Retry(f"server answered range {resp.headers.get('Content-Range')!r}, wanted "
                                 f"{headers['Range']}")
                got = 0
                try:
                    while chunk := resp.raw.read1(CHUNK, decode_content=False):
                        buf += chunk
                        got += len(chunk)
                        result.bytes += len(chunk)
                        dog.received = got
                        if len(buf) >= r.size:  # a server that sends more than asked: the rest is not ours
                            del buf[r.size:]
                            break
                        if why := dog.expired or dog.verdict():
                            raise _Retry(f"{why}, {got} bytes of the range received")
                except NETWORK_ERRORS as e:
                    raise _Retry(f"connection lost after {got} bytes of the range: {type(e).__name__}") from None
        except (_Retry, *NETWORK_ERRORS) as e:
            if dog.expired:
                raise _Retry(f"{dog.expired} ({e})") from None
            raise
        if dog.expired:
            raise _Retry(dog.expired)
    if len(buf) != r.size:
        raise _Retry(f"short range: {len(buf)} of {r.size} bytes")


def _read_object(f, r: Range, buf: bytearray, result: RangedResult) -> None:
    at = r.start + len(buf)
    result.requests += 1
    try:
        data = f.read_at(r.end - at, at)
    except OSError as e:
        raise _Retry(f"ranged read at byte {at} failed: {type(e).__name__}: {e}") from None
    buf += data
    result.bytes += len(data)
    if len(buf) != r.size:
        raise _Retry(f"short ranged read: {len(buf)} of {r.size} bytes (is the object shorter than the index says?)")


def fetch_records(url: str, ranges: list[Range], dest: str | Path, config: DownloadConfig | None = None, *,
                  allowed_hosts: set[str] | None = None, storage=None, max_inflate: int = 1 << 30,
                  rng: random.Random | None = None, sleep: Callable[[float], None] = time.sleep) -> RangedResult:
    """Read `ranges` of `url` (http(s):// or an object-store URI) and write their verified records to `dest`.
    Raises DownloadError when a range cannot be had (retries exhausted, 404, a server without Range)."""
    config = config or DownloadConfig()
    rng = rng or random.Random()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    result = RangedResult(dest)
    scheme = urlsplit(url).scheme
    session = obj = None
    if scheme in ("http", "https"):
        session = watchdog.session()
    elif scheme in OBJECT_SCHEMES:
        from crawlproc.store.storage import Storage

        storage = storage or Storage()
        try:
            obj = storage.open_input(url)
        except FileNotFoundError:
            raise DownloadError(url, "no such object", permanent=True, status=404) from None
    else:
        raise DownloadError(url, f"unsupported URL scheme {scheme!r} for ranged reads", permanent=True)
    deadline_s = attempt_deadline_s(config)
    try:
        with open(dest, "wb") as out:
            for r in ranges:
                result.ranges += 1
                good: dict[int, bytes] = {}
                todo, sub = list(r.records), r
                for round_ in range(2):  # a record that fails verification is read once more
                    data = _read_range(url, sub, session, obj, config, allowed_hosts, deadline_s, result, rng, sleep)
                    bad = []
                    for off, length in todo:
                        piece = data[off - sub.start: off - sub.start + length]
                        why = check_member(piece, max_inflate)
                        if why is None:
                            good[off] = piece
                        else:
                            bad.append((off, length, why))
                    if not bad:
                        break
                    if round_ == 1:
                        for off, _length, why in bad:
                            result.skipped["index:bad_record"] += 1
                            result.errors.append(f"record at {off}: {why}")
                        break
                    todo = [(off, length) for off, length, _ in bad]
                    sub = Range(min(o for o, _ in todo), max(o + n for o, n in todo), todo)
                for off in sorted(good):  # in the file's order, whatever was read again
                    result.offsets[out.tell()] = off
                    out.write(good[off])
                    result.records += 1
                    result.record_bytes += len(good[off])
    finally:
        if session is not None:
            session.close()
        if obj is not None:
            obj.close()
    return result


def _read_range(url, r: Range, session, obj, config, allowed_hosts, deadline_s, result, rng, sleep) -> bytes:
    buf = bytearray()
    tries = 0
    while True:
        tries += 1
        result.attempts += 1
        try:
            if session is not None:
                _read_http(session, url, r, config, allowed_hosts, deadline_s, buf, result)
            else:
                _read_object(obj, r, buf, result)
            return bytes(buf)
        except DownloadError as e:
            e.attempts = tries
            raise
        except (_Retry, *NETWORK_ERRORS) as e:
            message = str(e) if isinstance(e, _Retry) else f"{type(e).__name__}: {e}"
            result.errors.append(f"{r.header()}: {message}")
            if tries > config.retries:
                raise DownloadError(url, f"gave up on {r.header()}: {message}", attempts=tries) from None
            wait = backoff_delay(tries, config, rng, e.retry_after if isinstance(e, _Retry) else None)
            result.waits.append(wait)
            sleep(wait)
