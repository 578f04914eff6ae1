"""Download one file over HTTP(S) safely: streamed, retried, resumed, verified.

Nothing partly downloaded is ever handed on as whole: bytes go to `<dest>.part`, and only a body whose length
matches what the server announced and whose gzip members all decompress to the end is renamed to `<dest>`.

- Retries with exponential backoff and jitter on 429, 5xx, 408, connection errors, timeouts and truncated
  bodies; `Retry-After` (seconds or an HTTP date) is honoured, capped at `max_backoff_s`.
- A retry resumes with `Range: bytes=<have>-` (and `If-Range` on the first response's validator); a server
  that ignores the range (200) or answers a different range makes us start over, never splice wrong bytes.
- 404, 410, 403, 401 and other 4xx fail at once: retrying cannot help.
- Redirects are followed by hand so that a redirect cannot send the downloader to an origin (scheme, host,
  port) it was not allowed.
- Every attempt has a deadline as well as the read timeout (which a server dripping one byte at a time resets
  forever): see `attempt_deadline_s`. A watchdog shuts the attempt's socket down when it passes, wherever the
  attempt is blocked (connecting, reading headers, reading the body); the partial file is kept and resumed.
- `max_bytes` caps what a download may bring (a listing is small; a server cannot make it fill the disk).
- `download_slot` bounds the number of concurrent downloads per machine with OS file locks, which the kernel
  releases when a process dies, so a killed worker never leaks a slot.
"""

from __future__ import annotations

import email.utils
import fcntl
import json
import os
import random
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from crawlproc.crawl import watchdog
from crawlproc.recipe import DownloadConfig

CHUNK = 1 << 20
VERIFY_BLOCK = 64 << 10
OBJECT_SCHEMES = ("s3", "s3a", "gs", "gcs")  # read through crawlproc.store.storage, not HTTP
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
MAX_REDIRECTS = 5
# what a flaky network raises (requests wraps some urllib3 errors, the raw body stream raises them as they are)
NETWORK_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)
# the attempt deadline (attempt_deadline_s): in read timeouts, and the slowest average rate accepted after it
DEADLINE_TIMEOUTS = 10
MIN_RATE_BYTES_S = 64 << 10
MAX_ATTEMPT_S = 3 * 3600.0
# file-system limits for a path from a listing: every segment must leave room for what we append to it
# (".part.meta", ".<stem>.parquet.<8 hex>.tmp", "-<8 hex>") inside the usual 255-byte NAME_MAX
MAX_SEGMENT_BYTES = 200
MAX_PATH_BYTES = 1024


class DownloadError(Exception):
    """A file that could not be fetched. `permanent` errors (404, bad gzip) are not worth another try."""

    def __init__(self, url: str, message: str, *, attempts: int = 1, permanent: bool = False,
                 status: int | None = None, unreachable: str | None = None):
        self.url = url
        self.unreachable = unreachable  # why no connection could be opened at all (DNS, refused, ...)
        self.attempts = attempts
        self.permanent = permanent
        self.status = status
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        n = self.attempts
        return f"{self.url}: {self.message} (after {n} attempt{'s' if n != 1 else ''})"


def unreachable(error: BaseException) -> str | None:
    """Why no connection to the server could be opened -- its name does not resolve, nothing listens, no route,
    the connection timed out -- or None for any other error (a reset, a slow body, an HTTP status)."""
    seen, todo = [], [error]
    while todo and len(seen) < 16:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None),
                 *(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))]
    for e in seen:
        if isinstance(e, urllib3.exceptions.NameResolutionError) or type(e).__name__ == "gaierror":
            host = getattr(e, "host", None) or getattr(getattr(e, "conn", None), "host", None)
            return f"the host name {host + ' ' if host else ''}does not resolve (DNS)"
    for e in seen:
        if isinstance(e, ConnectionRefusedError):
            return "the connection was refused (nothing listens there)"
        if isinstance(e, OSError) and e.errno in (101, 113):  # ENETUNREACH, EHOSTUNREACH
            return f"no route to the host ({e.strerror})"
    for e in seen:  # (urllib3's NewConnectionError is a ConnectTimeoutError too: the causes above come first)
        if isinstance(e, (urllib3.exceptions.ConnectTimeoutError, requests.exceptions.ConnectTimeout)) and not \
                isinstance(e, urllib3.exceptions.NewConnectionError):
            return "connecting timed out (no answer from the host)"
    for e in seen:
        if isinstance(e, urllib3.exceptions.NewConnectionError):
            return f"no connection could be opened ({str(e)[:200]})"
    return None


class CorruptFileError(ValueError):
    """A gzip file that does not decompress to its end (truncated, or not gzip at all)."""


class UnsafePathError(ValueError):
    """A path that would escape its root directory ('..', absolute, odd characters)."""


@dataclass
class DownloadResult:
    path: Path
    bytes: int
    attempts: int = 1
    resumed: int = 0  # how many attempts continued with a Range request
    from_cache: bool = False
    gzip_members: int | None = None
    waits: list[float] = field(default_factory=list)  # seconds slept before each retry
    errors: list[str] = field(default_factory=list)  # why each failed attempt failed


# ---------------------------------------------------------------------------------------------- paths

_SAFE_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+=~@")


def safe_relpath(path: str) -> PurePosixPath:
    """Validate a relative POSIX path from untrusted input (a listing line) and return it.

    Rejects absolute paths, '..' and '.' segments, empty segments, backslashes, drive letters, control and
    percent-escaped characters: the result joined to any root stays under that root."""
    if not isinstance(path, str) or not path:
        raise UnsafePathError(f"empty path {path!r}")
    shown = path if len(path) <= 120 else path[:120] + "..."
    if len(path) > MAX_PATH_BYTES:
        raise UnsafePathError(f"path {shown!r} is {len(path)} bytes long, over the {MAX_PATH_BYTES} allowed")
    if path.startswith(("/", "~")):
        raise UnsafePathError(f"absolute path {shown!r}")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafePathError(f"path {shown!r} has an empty, '.' or '..' segment")
        bad = set(part) - _SAFE_CHARS
        if bad:
            raise UnsafePathError(f"path {shown!r} has unsafe characters {''.join(sorted(bad))[:20]!r}")
        if part.startswith("."):
            raise UnsafePathError(f"path {shown!r} has a hidden segment {part[:40]!r}")
        if len(part) > MAX_SEGMENT_BYTES:
            raise UnsafePathError(f"path {shown!r} has a {len(part)}-byte segment: file names must fit in "
                                  f"{MAX_SEGMENT_BYTES} bytes")
    return PurePosixPath(*parts)


def safe_join(root: str | Path, rel: str) -> Path:
    """`root / rel` after `safe_relpath`, double-checked against the resolved root."""
    root = Path(root)
    target = root.joinpath(*safe_relpath(rel).parts)
    if not target.resolve().is_relative_to(root.resolve()):  # e.g. a symlink inside root pointing out
        raise UnsafePathError(f"path {rel!r} resolves outside {root}")
    return target


# ---------------------------------------------------------------------------------------------- gzip


@dataclass
class GzipInfo:
    members: int
    compressed_bytes: int
    uncompressed_bytes: int


def verify_gzip(path: str | Path) -> GzipInfo:
    """Decompress every gzip member of `path` to its end (CRC and length checked by zlib); raise
    CorruptFileError naming the member where it breaks."""
    path = Path(path)
    members = out = 0
    d = None
    with open(path, "rb") as f:
        # small reads + memoryview offsets: a member boundary costs a copy of at most one small block
        while block := f.read(VERIFY_BLOCK):
            view = memoryview(block)
            while len(view):
                if d is None:
                    d = zlib.decompressobj(wbits=31)
                    members += 1
                try:
                    out += len(d.decompress(view))
                except zlib.error as e:
                    raise CorruptFileError(f"{path.name}: gzip member {members} is corrupt: {e}") from None
                if not d.eof:
                    break
                out += len(d.flush())
                view = view[len(view) - len(d.unused_data):]
                d = None
    if members == 0:
        raise CorruptFileError(f"{path.name}: empty file")
    if d is not None:
        raise CorruptFileError(f"{path.name}: gzip member {members} is truncated (file ends mid-member)")
    return GzipInfo(members=members, compressed_bytes=path.stat().st_size, uncompressed_bytes=out)


def needs_gzip_check(name: str) -> bool:
    return name.lower().endswith(".gz")


# ---------------------------------------------------------------------------------------------- timing


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse a Retry-After header: delta seconds or an HTTP date. None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, config: DownloadConfig, rng: random.Random,
                  retry_after: float | None = None) -> float:
    """Exponential backoff with jitter (50-100% of base * 2^(attempt-1)); a server's Retry-After is a floor.
    Everything is capped at max_backoff_s so a hostile Retry-After cannot stall a job for hours."""
    base = min(config.max_backoff_s, config.backoff_s * (2 ** max(0, attempt - 1)))
    delay = base * rng.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, config.max_backoff_s)


# ---------------------------------------------------------------------------------------------- slots


@contextmanager
def download_slot(concurrency: int, lock_dir: str | Path | None = None, poll_s: float = 0.2) -> Iterator[int]:
    """Hold one of `concurrency` per-machine download slots (blocking until one is free)."""
    lock_dir = Path(lock_dir or Path(tempfile.gettempdir()) / f"crawlproc-download-slots-{os.getuid()}")
    lock_dir.mkdir(parents=True, exist_ok=True)
    while True:
        for i in range(max(1, concurrency)):
            fd = os.open(lock_dir / f"slot-{i}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            try:
                yield i
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            return
        time.sleep(poll_s)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock so that two tasks downloading the same file (a retry racing a straggler) take turns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# ---------------------------------------------------------------------------------------------- HTTP


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in; raises UnsafePathError for a bad port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise UnsafePathError(f"URL {url[:200]!r} has an invalid port") from None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def allowed_origin(url: str, base_url: str | None, allowed_hosts) -> bool:
    """True when `url` is on the origin of `base_url`, or on a host of `allowed_hosts`: "host" means that host
    on the default port of http/https, "host:port" that port only. Another port is another origin."""
    scheme, host, port = origin(url)
    if base_url is not None and (scheme, host, port) == origin(base_url):
        return True
    for entry in allowed_hosts or ():
        parts = urlsplit(f"//{entry.strip().lower()}")
        try:
            want = parts.port or _DEFAULT_PORTS.get(scheme)
        except ValueError:
            continue
        if host and parts.hostname == host and port == want:
            return True
    return False


def attempt_deadline_s(config: DownloadConfig) -> float:
    """The time an attempt has to get its response going: download.deadline_s when the recipe has it,
    else DEADLINE_TIMEOUTS read timeouts. After it, the attempt must keep an average of MIN_RATE_BYTES_S since
    it began (a drip is cut here, an honest slow server is not), and it never lasts more than MAX_ATTEMPT_S."""
    return float(getattr(config, "deadline_s", 0) or DEADLINE_TIMEOUTS * config.timeout_s)


class _Retry(Exception):
    def __init__(self, message: str, retry_after: float | None = None, fresh: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.fresh = fresh  # discard the partial file before the next attempt


def _get(session: requests.Session, url: str, headers: dict, config: DownloadConfig,
         allowed_hosts: set[str] | None) -> requests.Response:
    """GET with redirects followed by hand: each hop stays on the origin it came from or an allowed one."""
    original = url
    for _ in range(MAX_REDIRECTS + 1):
        r = session.get(url, headers=headers, stream=True, allow_redirects=False,
                        timeout=(min(10.0, config.timeout_s), config.timeout_s))
        if r.is_redirect and r.headers.get("Location"):
            r.close()
            target = urljoin(url, r.headers["Location"])
            if urlsplit(target).scheme not in ("http", "https"):
                raise DownloadError(original, f"redirect to unsupported URL {target[:200]!r}", permanent=True)
            try:
                ok = allowed_hosts is None or allowed_origin(target, url, allowed_hosts)
            except UnsafePathError as e:
                raise DownloadError(original, f"redirect: {e}", permanent=True) from None
            if not ok:
                s, h, p = origin(target)
                raise DownloadError(original, f"redirect to {s}://{h}:{p} is not allowed (another origin than "
                                    f"{url[:200]!r} and not in download.allowed_hosts)", permanent=True)
            url = target
            continue
        return r
    raise DownloadError(original, "too many redirects", permanent=True)


def _parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    # "bytes 100-199/1000" or "bytes 100-199/*"
    if not value or not value.startswith("bytes "):
        return None
    try:
        span, total = value[6:].split("/")
        start, end = span.split("-")
        return int(start), int(end), (None if total.strip() == "*" else int(total))
    except ValueError:
        return None


def _meta(part: Path) -> Path:
    return part.with_name(part.name + ".meta")


def _load_validator(part: Path) -> dict:
    try:
        v = json.loads(_meta(part).read_text())
        return v if isinstance(v, dict) else {}
    except (OSError, ValueError):
        return {}


def _attempt(session, url: str, part: Path, config: DownloadConfig, allowed_hosts, validator: dict,
             result: DownloadResult, deadline_s: float, max_bytes: int | None) -> None:
    """One HTTP attempt under a Watchdog (see attempt_deadline_s). Raises _Retry or DownloadError."""
    with watchdog.Watchdog(deadline_s, MIN_RATE_BYTES_S, MAX_ATTEMPT_S) as dog:
        try:
            _fetch(session, url, part, config, allowed_hosts, validator, result, dog, max_bytes)
        except (_Retry, *NETWORK_ERRORS) as e:
            if dog.expired:  # the watchdog shut the socket: say why, not what the cut read raised
                raise _Retry(f"{dog.expired} ({e})") from None
            raise
        if dog.expired:  # a body without Content-Length that the watchdog cut looks complete: it is not
            raise _Retry(dog.expired)


def _fetch(session, url: str, part: Path, config: DownloadConfig, allowed_hosts, validator: dict,
           result: DownloadResult, dog: watchdog.Watchdog, max_bytes: int | None) -> None:
    """Append to `part` (resuming if it has bytes)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # we want the file's own bytes, not a transfer re-encoding
    if have:
        headers["Range"] = f"bytes={have}-"
        if validator.get("etag") or validator.get("last_modified"):
            headers["If-Range"] = validator.get("etag") or validator["last_modified"]
    r = _get(session, url, headers, config, allowed_hosts)
    with r:
        status = r.status_code
        if status == 416 and have:
            cr = _parse_content_range(r.headers.get("Content-Range"))
            if cr is None and r.headers.get("Content-Range", "").startswith("bytes */"):
                total = r.headers["Content-Range"][8:]
                if total.isdigit() and int(total) == have:
                    return  # we already have it all
            raise _Retry(f"HTTP 416 for range from {have}", fresh=True)
        if status in RETRYABLE_STATUS or 500 <= status < 600:
            raise _Retry(f"HTTP {status}", retry_after=retry_after_seconds(r.headers.get("Retry-After")))
        if status not in (200, 206):
            raise DownloadError(url, f"HTTP {status}", permanent=True, status=status)
        if status == 206:
            cr = _parse_content_range(r.headers.get("Content-Range"))
            if cr is None or cr[0] != have:
                raise _Retry(f"server answered range {r.headers.get('Content-Range')!r}, wanted {have}-",
                             fresh=True)
            expected = cr[1] - cr[0] + 1
            mode, before = "ab", have
            result.resumed += 1
        else:  # 200: the whole file (a server that ignores Range lands here too)
            cl = r.headers.get("Content-Length")
            expected = int(cl) if cl and cl.isdigit() else None
            mode, before = "wb", 0
            validator["etag"] = r.headers.get("ETag")
            validator["last_modified"] = r.headers.get("Last-Modified")
            # kept beside the partial file, so that a rerun after a crash resumes only the same version
            _meta(part).write_text(json.dumps(validator))
        if max_bytes is not None and expected is not None and before + expected > max_bytes:
            raise DownloadError(url, f"the file is {before + expected} bytes, over the {max_bytes}-byte limit",
                                permanent=True)
        got = 0
        with open(part, mode) as f:
            try:
                while True:
                    # read1: whatever has arrived, so a broken connection loses nothing already received;
                    # raw bytes: a .gz file must not be "helpfully" decompressed on the way
                    chunk = r.raw.read1(CHUNK, decode_content=False)
                    if not chunk:
                        break
                    f.write(chunk)
                    got += len(chunk)
                    dog.received = got
                    if max_bytes is not None and before + got > max_bytes:
                        raise DownloadError(url, f"the body runs past the {max_bytes}-byte limit", permanent=True)
                    if why := dog.expired or dog.verdict():
                        raise _Retry(f"{why}, {got} bytes of the body received")
            except NETWORK_ERRORS as e:
                raise _Retry(f"connection lost after {got} bytes of the body: {type(e).__name__}") from None
        if expected is not None and got != expected:
            raise _Retry(f"truncated body: {got} of {expected} bytes")


def _copy_local(url: str, part: Path, max_bytes: int | None) -> None:
    src = Path(urlsplit(url).path)
    if not src.is_file():
        raise DownloadError(url, "no such local file", permanent=True, status=404)
    if max_bytes is not None and src.stat().st_size > max_bytes:
        raise DownloadError(url, f"the file is {src.stat().st_size} bytes, over the {max_bytes}-byte limit",
                            permanent=True)
    shutil.copyfile(src, part)


def _copy_object(url: str, part: Path, storage, max_bytes: int | None, result: DownloadResult) -> None:
    """An object-store URL (s3://, gs://, ...) through `storage` (crawlproc.store.storage.Storage): appended to
    `part` from where it stopped, so an interrupted read resumes with a ranged read. The store's own client
    retries each request (throttling, 503 SlowDown, resets); what it gives up on comes back here as a
    retry of the whole attempt, with backoff and jitter."""
    from crawlproc.store.storage import Storage

    storage = storage or Storage()
    try:
        entry = storage.info(url)
    except OSError as e:
        raise _Retry(f"cannot stat {url}: {e}") from None
    if entry is None or entry.is_dir:
        raise DownloadError(url, "no such object", permanent=True, status=404)
    if max_bytes is not None and entry.size > max_bytes:
        raise DownloadError(url, f"the object is {entry.size} bytes, over the {max_bytes}-byte limit", permanent=True)
    have = part.stat().st_size if part.exists() else 0
    if have > entry.size:  # the object changed under us: start over
        raise _Retry(f"partial file of {have} bytes is larger than the object ({entry.size})", fresh=True)
    if have:
        result.resumed += 1
    try:
        with storage.open_input(url) as src, open(part, "ab") as dst:
            src.seek(have)
            while have < entry.size:
                chunk = src.read(min(CHUNK, entry.size - have))
                if not chunk:
                    raise _Retry(f"object read ended at byte {have} of {entry.size}")
                dst.write(chunk)
                have += len(chunk)
    except OSError as e:  # what the store's client gave up on: resume from here next time
        raise _Retry(f"read failed at byte {have} of {entry.size}: {type(e).__name__}: {e}") from None


def download_file(url: str, dest: str | Path, config: DownloadConfig | None = None, *,
                  allowed_hosts: set[str] | None = None, session: requests.Session | None = None,
                  rng: random.Random | None = None, sleep: Callable[[float], None] = time.sleep,
                  verify: bool | None = None, max_bytes: int | None = None,
                  deadline_s: float | None = None, storage=None,
                  connect_retries: int | None = None) -> DownloadResult:
    """Download `url` to `dest` (renamed into place only when whole and verified). Reuses an existing,
    verified `dest` (the cache case). `allowed_hosts`: hosts redirects may go to besides the URL's own origin
    (None = any; see allowed_origin). `max_bytes`: a larger file fails at once (permanent). `deadline_s`:
    overrides attempt_deadline_s(config). `storage` (crawlproc.store.storage.Storage) reads object-store URLs
    (s3://, gs://, ...). `connect_retries`: how many times to retry when no connection opens at all (DNS,
    refused, unreachable; default: as any error); then DownloadError.unreachable says why. Raises DownloadError
    (with .permanent and .attempts) when it gives up."""
    config = config or DownloadConfig()
    deadline_s = attempt_deadline_s(config) if deadline_s is None else deadline_s
    rng = rng or random.Random()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    verify = needs_gzip_check(dest.name) if verify is None else verify
    part = dest.with_name(dest.name + ".part")
    with _file_lock(dest.with_name(dest.name + ".lock")):
        if dest.is_file():
            try:
                members = verify_gzip(dest).members if verify else None
                return DownloadResult(dest, dest.stat().st_size, attempts=0, from_cache=True,
                                      gzip_members=members)
            except CorruptFileError:
                dest.unlink()  # a damaged cache entry is fetched again
        result = DownloadResult(dest, 0, attempts=0)
        scheme = urlsplit(url).scheme
        own_session = session is None and scheme in ("http", "https")
        session = session or (watchdog.session() if own_session else None)
        validator: dict = _load_validator(part) if part.exists() else {}
        corrupt_tries = 0
        try:
            while True:
                result.attempts += 1
                try:
                    if scheme in ("http", "https"):
                        _attempt(session, url, part, config, allowed_hosts, validator, result, deadline_s,
                                 max_bytes)
                    elif scheme == "file":
                        _copy_local(url, part, max_bytes)
                    elif scheme in OBJECT_SCHEMES:
                        _copy_object(url, part, storage, max_bytes, result)
                    else:
                        raise DownloadError(url, f"unsupported URL scheme {scheme!r}", permanent=True)
                    if verify:
                        try:
                            result.gzip_members = verify_gzip(part).members
                        except CorruptFileError as e:
                            corrupt_tries += 1
                            if corrupt_tries >= 2:  # twice from scratch: the file itself is bad
                                raise DownloadError(url, f"corrupt download: {e}", permanent=True,
                                                    attempts=result.attempts) from None
                            raise _Retry(f"corrupt download: {e}", fresh=True) from None
                    os.replace(part, dest)
                    _meta(part).unlink(missing_ok=True)
                    result.bytes = dest.stat().st_size
                    return result
                except DownloadError as e:
                    e.attempts = result.attempts
                    part.unlink(missing_ok=True)  # a permanent failure: a partial file is of no further use
                    _meta(part).unlink(missing_ok=True)
                    raise
                except (_Retry, *NETWORK_ERRORS) as e:
                    message = str(e) if isinstance(e, _Retry) else f"{type(e).__name__}: {e}"
                    result.errors.append(message)
                    if isinstance(e, _Retry) and e.fresh:
                        part.unlink(missing_ok=True)
                    why = unreachable(e) if connect_retries is not None else None
                    if why and result.attempts > connect_retries:
                        raise DownloadError(url, f"cannot connect: {why}", attempts=result.attempts,
                                            unreachable=why) from None
                    if result.attempts > config.retries:
                        raise DownloadError(url, f"gave up: {message}", attempts=result.attempts) from None
                    wait = backoff_delay(result.attempts, config, rng,
                                         e.retry_after if isinstance(e, _Retry) else None)
                    result.waits.append(wait)
                    sleep(wait)
        finally:
            if own_session:
                session.close()


def fetch_bytes(url: str, config: DownloadConfig | None = None, *, allowed_hosts: set[str] | None = None,
                verify: bool | None = None, max_bytes: int | None = None, storage=None,
                connect_retries: int | None = None) -> bytes:
    """Small files (a listing): download_file into a temporary directory and return the bytes."""
    with tempfile.TemporaryDirectory(prefix="crawlproc-fetch-") as tmp:
        name = (os.path.basename(urlsplit(url).path) or "download")[:MAX_SEGMENT_BYTES]
        result = download_file(url, Path(tmp) / name, config, allowed_hosts=allowed_hosts, verify=verify,
                               max_bytes=max_bytes, storage=storage, connect_retries=connect_retries)
        return result.path.read_bytes()
