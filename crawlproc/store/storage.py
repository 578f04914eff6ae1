"""Where the pipeline's files live: a local folder or an object store, behind one small interface.

Every path the pipeline handles is a string that is either a local path or a URI: `s3://bucket/prefix`,
`gs://bucket/prefix`, or any other scheme fsspec knows (`az://`, `hf://`, ...). `Storage` resolves it to a
file system and does the few things the stages need: write a whole object, read it back, read Parquet, list
a folder, delete.

The layer is pyarrow.fs, with fsspec (through pyarrow's FSSpecHandler) only for schemes pyarrow lacks:
pyarrow's S3 and GCS clients are C++ (multi-threaded reads, no GIL), pyarrow.parquet reads and writes
through them without copies, and they need no extra package. bench/bench_storage.py measures it against
s3fs on the same server.

Writes are all-or-nothing. On a local disk a file is written under a temporary name private to the writing
process (`.<name>.<host>-<pid>-<random>.tmp`), fsynced and renamed into place. Object stores have no rename:
an object is produced completely in memory first and sent in one request, so an exception can never leave a
partial object behind (pyarrow's output streams publish whatever was written when they are closed, even by
an exception). Readers therefore see either nothing or a whole file; the `_done` markers (crawlproc.store.layout)
are the commit points on top of that.

Credentials never pass through here: they come from the environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, an
instance role, GOOGLE_APPLICATION_CREDENTIALS, ...), as each SDK finds them. The endpoint comes from the
recipe's [storage] endpoint_url or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (which pyarrow itself ignores).

Before any work, a command checks every place it reads or writes (`Storage.check_read`, `Storage.check_write`):
on an object store that the endpoint answers, the bucket exists, the credentials are accepted and (for
writes) that an object can be put under the prefix, with short timeouts and one retry, so that a mistake is
one StorageError line within seconds (naming the URI, the endpoint, where the credentials came from -- never
their values -- and what to check) instead of a client retrying for minutes; on a local disk that the folder
is a folder, can be created and written, and has room.
"""

from __future__ import annotations

import errno
import fnmatch
import glob
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

_URI = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://(.*)$")
_HOST = socket.gethostname()
TMP_SUFFIX = ".tmp"


class StorageError(OSError):
    """A path that cannot be used (unknown scheme, a bucket that does not exist, a failed request)."""


@dataclass
class Entry:
    """One file (or folder) found by `Storage.list`."""

    uri: str
    name: str
    size: int
    mtime: float | None
    is_dir: bool = False


def scheme_of(uri: str) -> str:
    m = _URI.match(str(uri))
    return m.group(1).lower() if m else ""


def is_remote(uri: str) -> bool:
    """True for an object-store (or any non-local) URI."""
    return scheme_of(uri) not in ("", "file")


def normalize(uri: str | Path) -> str:
    """A local path made absolute (workers may run in another directory), `file://` stripped, a URI kept
    with no trailing slash."""
    uri = str(uri)
    if scheme_of(uri) == "file":
        uri = urlsplit(uri).path
    if not is_remote(uri):
        return os.path.abspath(os.path.expanduser(uri))
    return uri.rstrip("/")


def join(base: str, *parts: str) -> str:
    """`base/part/part`; parts are plain names (no scheme)."""
    out = str(base).rstrip("/")
    for p in parts:
        p = str(p).strip("/")
        if p:
            out = f"{out}/{p}"
    return out


def basename(uri: str) -> str:
    return str(uri).rstrip("/").rsplit("/", 1)[-1]


def parent(uri: str) -> str:
    return str(uri).rstrip("/").rsplit("/", 1)[0]


def _opt(config, name: str, default):
    value = getattr(config, name, None) if config is not None else None
    return default if value in (None, "") else value


class Storage:
    """Resolves local paths and URIs to file systems (built lazily, once per process) and reads and writes
    through them. Picklable: Ray workers receive the configuration and build their own clients."""

    def __init__(self, config=None):
        self.config = config  # a recipe's [storage] section (endpoint_url, region, anonymous_buckets, ...)
        self._filesystems: dict[tuple, pafs.FileSystem] = {}

    def __getstate__(self):
        return {"config": self.config}

    def __setstate__(self, state):
        self.config = state["config"]
        self._filesystems = {}

    # ------------------------------------------------------------------ resolving

    def resolve(self, uri: str) -> tuple[pafs.FileSystem, str]:
        """(file system, path inside it) for a local path or URI."""
        uri = str(uri)
        scheme = scheme_of(uri)
        if scheme in ("", "file"):
            return self._fs(("local",), pafs.LocalFileSystem), normalize(uri)
        rest = _URI.match(uri).group(2).rstrip("/")
        bucket = rest.split("/", 1)[0]
        if not bucket:
            raise StorageError(f"{uri!r}: no bucket in the URI")
        if scheme in ("s3", "s3a"):
            return self._fs(("s3", self._anonymous(bucket)), lambda: self._s3(bucket)), rest
        if scheme in ("gs", "gcs"):
            return self._fs(("gs", self._anonymous(bucket)), lambda: self._gcs(bucket)), rest
        return self._fs(("fsspec", scheme), lambda: self._fsspec(scheme)), rest

    def _fs(self, key: tuple, make) -> pafs.FileSystem:
        fs = self._filesystems.get(key)
        if fs is None:
            fs = self._filesystems[key] = make()
        return fs

    def _anonymous(self, bucket: str) -> bool:
        return bucket in (_opt(self.config, "anonymous_buckets", None) or [])

    def endpoint(self) -> str:
        return (_opt(self.config, "endpoint_url", "") or os.environ.get("AWS_ENDPOINT_URL_S3")
                or os.environ.get("AWS_ENDPOINT_URL") or "")

    def _s3(self, bucket: str) -> pafs.S3FileSystem:
        kwargs: dict = {
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=int(_opt(self.config, "retries", 10))),
            "connect_timeout": float(_opt(self.config, "connect_timeout_s", 10.0)),
            "request_timeout": float(_opt(self.config, "request_timeout_s", 60.0)),
        }
        endpoint = self.endpoint()
        if endpoint:
            parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
            kwargs["endpoint_override"] = parts.netloc + parts.path.rstrip("/")
            kwargs["scheme"] = parts.scheme or "https"
        region = (_opt(self.config, "region", "") or os.environ.get("AWS_REGION")
                  or os.environ.get("AWS_DEFAULT_REGION") or ("us-east-1" if endpoint else ""))
        if region:
            kwargs["region"] = region
        elif self._anonymous(bucket):
            kwargs["region"] = "us-east-1"  # the public buckets (commoncrawl) live there
        if self._anonymous(bucket):
            kwargs["anonymous"] = True
        profile = _opt(self.config, "profile", "")
        if profile:
            os.environ.setdefault("AWS_PROFILE", profile)  # the SDK's credential chain reads it
        return pafs.S3FileSystem(**kwargs)

    def _gcs(self, bucket: str) -> pafs.FileSystem:
        return pafs.GcsFileSystem(anonymous=self._anonymous(bucket),
                                  retry_time_limit=float(_opt(self.config, "request_timeout_s", 60.0)))

    @staticmethod
    def _fsspec(scheme: str) -> pafs.FileSystem:
        try:
            import fsspec
        except ImportError:
            raise StorageError(f"{scheme}:// needs fsspec and its {scheme} implementation installed") from None
        try:
            return pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem(scheme)))
        except (ImportError, ValueError) as e:
            raise StorageError(f"no file system for {scheme}:// ({e})") from None

    # ------------------------------------------------------------------ writing

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Write a whole file: renamed into place (local) or sent in one request (object store)."""
        fs, path = self.resolve(uri)
        if isinstance(fs, pafs.LocalFileSystem):
            _local_atomic(path, lambda tmp: Path(tmp).write_bytes(data))
            return
        # compression=None: pyarrow would otherwise gzip a ".gz" name again (and gunzip it on reading)
        with fs.open_output_stream(path, compression=None) as f:
            f.write(data)

    def write_json(self, uri: str, obj) -> None:
        self.write_bytes(uri, json_bytes(obj))

    def write_table(self, uri: str, table: pa.Table, **kwargs) -> None:
        """Write a Parquet file (zstd by default) all-or-nothing. A table without rows gets no row group at
        all (`datasets` fails on an empty one)."""
        kwargs.setdefault("compression", "zstd")
        fs, path = self.resolve(uri)
        if isinstance(fs, pafs.LocalFileSystem):
            _local_atomic(path, lambda tmp: _write_parquet(tmp, table, kwargs))
            return
        sink = pa.BufferOutputStream()
        _write_parquet(sink, table, kwargs)
        self.write_bytes(uri, sink.getvalue().to_pybytes())

    @contextmanager
    def open_output(self, uri: str):
        """A binary stream to `uri` for a file too large to hold in memory, committed only when the block ends
        without an exception: locally a private temporary name renamed into place; on an object store a
        multipart upload, deleted again when the block fails (pyarrow publishes what it has on close)."""
        fs, path = self.resolve(uri)
        if isinstance(fs, pafs.LocalFileSystem):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = _tmp_path(path)
            try:
                with open(tmp, "wb") as f:
                    yield f
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return
        try:
            with fs.open_output_stream(path, compression=None) as f:
                yield f
        except BaseException:
            self.delete(uri)
            raise

    def upload(self, local: str | Path, uri: str, chunk: int = 8 << 20) -> None:
        """Put a local file at `uri` whole (a copy renamed into place, or a multipart upload), streamed."""
        with open(local, "rb") as src, self.open_output(uri) as out:
            while block := src.read(chunk):
                out.write(block)

    # ------------------------------------------------------------------ reading

    def read_bytes(self, uri: str) -> bytes:
        # a random-access file, not pyarrow's input stream: on S3 the stream reads in small requests, ~50x
        # slower for whole objects (bench/bench_storage.py); neither decompresses by name
        fs, path = self.resolve(uri)
        _not_special(fs, path)
        with fs.open_input_file(path) as f:
            return f.read()

    def read_json(self, uri: str, default=None):
        """The JSON object at `uri`, or `default` when it does not exist or is not valid JSON (a file being
        replaced or damaged reads as absent)."""
        try:
            return json.loads(self.read_bytes(uri))
        except (FileNotFoundError, ValueError):
            return default
        except OSError as e:
            if _not_found(e):
                return default
            raise

    def open_input(self, uri: str):
        """A random-access file (Parquet footers, ranged reads)."""
        fs, path = self.resolve(uri)
        _not_special(fs, path)
        return fs.open_input_file(path)

    def parquet_file(self, uri: str) -> pq.ParquetFile:
        fs, path = self.resolve(uri)
        return pq.ParquetFile(path, filesystem=fs)

    def read_table(self, uri: str, columns: list[str] | None = None, filters=None) -> pa.Table:
        fs, path = self.resolve(uri)
        return pq.read_table(path, columns=columns, filters=filters, filesystem=fs)

    def read_schema(self, uri: str) -> pa.Schema:
        return self.parquet_file(uri).schema_arrow

    # ------------------------------------------------------------------ listing, deleting

    def info(self, uri: str) -> Entry | None:
        fs, path = self.resolve(uri)
        fi = fs.get_file_info(path)
        if fi.type == pafs.FileType.NotFound:
            return None
        return _entry(uri, fi)

    def exists(self, uri: str) -> bool:
        return self.info(uri) is not None

    def is_file(self, uri: str) -> bool:
        e = self.info(uri)
        return e is not None and not e.is_dir

    def list(self, uri: str, recursive: bool = False, suffix: str | None = None,
             include_dirs: bool = False) -> list[Entry]:
        """The files of a folder (one paginated LIST on an object store), sorted by URI; temporary files are
        left out. A folder that does not exist is empty."""
        fs, path = self.resolve(uri)
        base = str(uri).rstrip("/")
        try:
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=recursive, allow_not_found=True))
        except (FileNotFoundError, NotADirectoryError):
            return []
        out = []
        for fi in infos:
            is_dir = fi.type == pafs.FileType.Directory
            if (is_dir and not include_dirs) or fi.base_name.endswith(TMP_SUFFIX):
                continue
            if suffix and not fi.base_name.endswith(suffix):
                continue
            rel = fi.path[len(path):].lstrip("/") if fi.path.startswith(path) else fi.base_name
            out.append(_entry(join(base, rel), fi))
        return sorted(out, key=lambda e: e.uri)

    def expand(self, pattern: str, in_folder: Callable[[str], bool]) -> list[str]:
        """The files `pattern` names, sorted: itself (a file), the files under it whose name passes `in_folder`
        (a folder), or what a glob matches, with glob.glob's rules on a local disk and in a bucket alike (`*`,
        `?`, `[...]` within one folder level, `**` across levels, names starting with a dot only when asked
        for); a folder the glob matches is expanded as one. Local paths come back absolute; [] when nothing
        matches: the callers say what that means (a WARC input, a columnar index)."""
        if not is_remote(pattern):
            named = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else \
                ([pattern] if os.path.lexists(pattern) else [])
            found = []
            for m in named:
                if os.path.isdir(m):
                    found += (str(x) for x in Path(m).rglob("*") if in_folder(x.name) and not x.is_dir())
                else:
                    found.append(m)
            return sorted(dict.fromkeys(os.path.abspath(m) for m in found))
        pattern = pattern.rstrip("/")
        if not glob.has_magic(pattern):
            entry = self.info(pattern)
            if entry is None:
                return []
            return [e.uri for e in self.list(pattern, recursive=True) if in_folder(e.name)] if entry.is_dir \
                else [pattern]
        base = glob_base(pattern)
        wanted = pattern[len(base) + 1:].split("/")
        found = []
        for e in self.list(base, recursive=True):
            rel = e.uri[len(base) + 1:].split("/")
            # the object itself, or an object under a folder the pattern names
            if _glob_matches(rel, wanted) or (in_folder(e.name) and any(
                    _glob_matches(rel[:k], wanted) for k in range(1, len(rel)))):
                found.append(e.uri)
        return found

    def delete(self, uri: str) -> None:
        fs, path = self.resolve(uri)
        try:
            fs.delete_file(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            if not _not_found(e):
                raise

    def move(self, src: str, dst: str) -> None:
        """Put the file `src` at `dst` (replacing it): a rename on a disk, a server-side copy and delete on an
        object store."""
        fs, path = self.resolve(src)
        fs2, path2 = self.resolve(dst)
        if isinstance(fs, pafs.LocalFileSystem):
            os.makedirs(os.path.dirname(path2), exist_ok=True)
            os.replace(path, path2)
            return
        fs.move(path, path2)

    def delete_tree(self, uri: str) -> None:
        fs, path = self.resolve(uri)
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return
        fs.delete_dir(path)

    def makedirs(self, uri: str) -> None:
        """Create a local folder (object stores have no folders: nothing to do)."""
        fs, path = self.resolve(uri)
        if isinstance(fs, pafs.LocalFileSystem):
            os.makedirs(path, exist_ok=True)

    # ------------------------------------------------------------------ preflight (see the end of the module)

    def check_read(self, uri: str, what: str = "input", expect: str = "any") -> None:
        """Before any work: `uri` can be read. An object store answers for this bucket with these credentials;
        a local path exists and is a regular file or a folder (`expect`: "file", "dir" or "any").
        Raises StorageError with one line naming the cause and what to check."""
        _check_read(self, uri, what, expect)

    def check_write(self, uri: str, what: str = "--out") -> None:
        """Before any work: the folder (or prefix) `uri`, where a command writes, can be written: created if
        missing, a probe written (and removed), room left. Raises StorageError naming the cause."""
        _check_write(self, uri, what)

    def local_path(self, uri: str) -> Path | None:
        """The local path of `uri`, or None for an object store."""
        return None if is_remote(uri) else Path(normalize(uri))

    def clean_partials(self, uri: str, stale_after_s: float = 24 * 3600) -> int:
        """Remove temporary files (and private temporary folders) that crashed writers left under a local
        folder: those of processes of this host that no longer exist, and those of other hosts older than
        `stale_after_s`. Another live command's files are never touched. Object stores have no temporary
        files. Returns how many. Every stage calls this when it starts (see `clean_stage_partials`)."""
        root = self.local_path(uri)
        if root is None or not root.is_dir():
            return 0
        return _clean_tmp(root.rglob(f".*{TMP_SUFFIX}"), stale_after_s)


def _not_special(fs: pafs.FileSystem, path: str) -> None:
    """A local path to be read as a file must not be a named pipe, a device or a socket (a FIFO blocks its
    reader forever, a device never ends): StorageError, one line. Missing files and folders are left to the
    caller's own error."""
    if not isinstance(fs, pafs.LocalFileSystem):
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise StorageError(f"{path} is {_kind_of(Path(path))}, not a regular file: give a file")


def json_bytes(obj) -> bytes:
    """How every JSON file of a run is written (sorted keys: the same object always gives the same bytes)."""
    return (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode()


def _local_atomic(path: str, write) -> None:
    """write(tmp) to a temporary name private to this process, fsync, rename into place; no trace on error."""
    tmp = _tmp_path(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_parquet(where, table: pa.Table, kwargs: dict) -> None:
    if table.num_rows == 0:
        pq.ParquetWriter(where, table.schema, **kwargs).close()
    else:
        pq.write_table(table, where, **kwargs)


def glob_base(pattern: str) -> str:
    """The folder levels of an object-store glob before the first one with a wildcard: what can be listed, and
    checked before any work (the pattern itself when it has none). A wildcard in the bucket's name is a
    StorageError: a listing needs the bucket."""
    levels = pattern.split("/")
    fixed = next((i for i, level in enumerate(levels) if glob.has_magic(level)), None)
    if fixed is None:
        return pattern
    if fixed < 3:  # scheme: / "" / bucket
        raise StorageError(f"{pattern}: a glob cannot stand for the bucket's name: name the bucket in full")
    return "/".join(levels[:fixed])


def _glob_matches(levels: list[str], wanted: list[str]) -> bool:
    """Whether a path's folder levels match a glob's, as glob.glob(recursive=True) decides: each level by
    fnmatch, `**` standing for any number of levels, a name starting with a dot matched only by a level that
    starts with one."""
    if not wanted:
        return not levels
    head, rest = wanted[0], wanted[1:]
    if head == "**":
        return any(_glob_matches(levels[k:], rest) for k in range(len(levels) + 1)
                   if not any(level.startswith(".") for level in levels[:k]))
    if not levels or (levels[0].startswith(".") and not head.startswith(".") and glob.has_magic(head)):
        return False
    return fnmatch.fnmatchcase(levels[0], head) and _glob_matches(levels[1:], rest)


def _entry(uri: str, fi: pafs.FileInfo) -> Entry:
    mtime = fi.mtime.timestamp() if fi.mtime is not None else None
    is_dir = fi.type == pafs.FileType.Directory
    return Entry(uri=str(uri), name=fi.base_name, size=0 if is_dir else int(fi.size or 0), mtime=mtime,
                 is_dir=is_dir)


def _not_found(e: OSError) -> bool:
    text = str(e)
    return "NotFound" in text or "NoSuchKey" in text or "does not exist" in text or "Path does not exist" in text


def _tmp_path(path: str) -> str:
    d, name = os.path.split(path)
    return os.path.join(d, f".{name}.{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


def tmp_path(path: str | Path) -> Path:
    """A temporary name beside local `path`, private to this process, that `clean_partials` recognises (and
    removes once this process is gone): every local writer that renames into place takes its name here."""
    return Path(_tmp_path(str(path)))


def _clean_tmp(paths, stale_after_s: float) -> int:
    n = 0
    now = time.time()
    for p in list(paths):
        here, pid = _tmp_owner(p.name)
        try:
            stale = (here and not pid_alive(pid)) or (not here and now - p.lstat().st_mtime > stale_after_s)
            if not stale:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink()
            n += 1
        except FileNotFoundError:
            pass
    return n


_TMPDIR_PREFIX = ".crawlproc-"


@contextmanager
def private_tmpdir(what: str):
    """A scratch folder in the system's temporary folder for this process only (`.crawlproc-<what>.<host>-
    <pid>-<random>.tmp`), removed when the block ends; if the process is killed, the next stage that starts on
    this machine removes it (`clean_local_temp`)."""
    base = tempfile.gettempdir()
    path = Path(_tmp_path(os.path.join(base, f"{_TMPDIR_PREFIX[1:]}{what}")))
    path.mkdir(mode=0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def clean_local_temp(stale_after_s: float = 24 * 3600) -> int:
    """Remove the private scratch folders (`private_tmpdir`) of this machine's dead processes."""
    base = Path(tempfile.gettempdir())
    try:
        found = [p for p in base.iterdir() if p.name.startswith(_TMPDIR_PREFIX) and p.name.endswith(TMP_SUFFIX)]
    except OSError:
        return 0
    return _clean_tmp(found, stale_after_s)


def clean_stage_partials(storage: Storage, *uris: str) -> int:
    """What every stage does when it starts: remove the temporaries of dead processes under the folders it
    writes, and their scratch folders on this machine."""
    return sum(storage.clean_partials(u) for u in uris) + clean_local_temp()


def _tmp_owner(name: str) -> tuple[bool, int | None]:
    """(written on this host, pid) of a temporary file named by `_tmp_path`; (False, None) for others."""
    if not name.endswith(TMP_SUFFIX):
        return False, None
    parts = name[: -len(TMP_SUFFIX)].rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False, None
    return parts[0].endswith(f".{_HOST}"), int(parts[1])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# The one Storage of a process for code that is handed only paths (CLI arguments, tests): it is configured
# from the environment. Stages use the Storage built from their recipe's [storage] section.
_DEFAULT = Storage()


def default_storage() -> Storage:
    return _DEFAULT


def storage_for(recipe) -> Storage:
    """The Storage configured by a recipe's [storage] section (the environment's defaults without one)."""
    return Storage(getattr(recipe, "storage", None))


def atomic_write_bytes(path, data: bytes) -> None:
    _DEFAULT.write_bytes(str(path), data)


def atomic_write_json(path, obj) -> None:
    _DEFAULT.write_json(str(path), obj)


def atomic_write_table(path, table: pa.Table, **kwargs) -> None:
    _DEFAULT.write_table(str(path), table, **kwargs)


def copy_to_local(uri: str, dest: str | Path, storage: Storage | None = None, chunk: int = 8 << 20) -> Path:
    """Stream a (remote) file to a local path, written all-or-nothing."""
    storage = storage or _DEFAULT
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(_tmp_path(str(dest)))
    try:
        with storage.open_input(uri) as src, open(tmp, "wb") as out:
            while True:
                block = src.read(chunk)
                if not block:
                    break
                out.write(block)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


# ---------------------------------------------------------------------------------------------------- preflight
# The checks a command makes before any work, on every place it reads or writes. An object-store mistake (no
# such bucket, an endpoint where nothing listens, refused credentials, no right to write) would otherwise
# surface minutes later from inside the client's retries, as a traceback; a local one (a full or read-only
# disk, --out naming a file) after the first files are processed.

PROBE_CONNECT_S = 3.0  # connection timeout of a preflight request
PROBE_REQUEST_S = 4.0  # and its response timeout: an endpoint that does not answer is reported after this
PROBE_ATTEMPTS = 1  # the client's own; a store's transient answer (503, 500) is retried once by `_twice`
MIN_FREE_BYTES = 1 << 20  # a local output with less room than this is full for our purposes
_PROBE_BYTES = 4096

_ERRNO_HINTS = {
    errno.ENOSPC: "the disk is full: free some space or give another --out",
    errno.EDQUOT: "the disk quota is used up: free some space or give another --out",
    errno.EROFS: "the file system is mounted read-only: give a writable --out",
    errno.EACCES: "no permission to write there: check the folder's owner and mode, or give another --out",
    errno.EPERM: "the operation is not permitted there: check the folder's owner and mode, or give another --out",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "the path is a folder where a file is expected",
    errno.EEXIST: "a file of that name exists already",
    errno.ENAMETOOLONG: "the path is too long",
}


def describe_os_error(e: OSError, path: str | None = None) -> str:
    """One line for an OSError (a local file system's, or an object store client's): what, where, and what
    to check. Object-store client messages (pyarrow's "AWS Error ...") are cut to their first line."""
    where = path or getattr(e, "filename", None)
    code = getattr(e, "errno", None)
    if code in _ERRNO_HINTS:
        name = errno.errorcode.get(code, str(code))
        return f"cannot use {where}: {os.strerror(code)} ({name}): {_ERRNO_HINTS[code]}" if where else \
            f"{os.strerror(code)} ({name}): {_ERRNO_HINTS[code]}"
    text = " ".join(str(e).split())
    if len(text) > 400:
        text = text[:400] + "..."
    kind = _classify_store_error(text)
    hint = f": {_STORE_HINTS[kind]}" if kind else ""
    return f"{type(e).__name__}: {text}{hint}"


_STORE_HINTS = {
    "network": "nothing answers at the endpoint: check [storage] endpoint_url / AWS_ENDPOINT_URL and the network",
    "credentials": "the credentials were refused: check AWS_ACCESS_KEY_ID / AWS_PROFILE / [storage] profile",
    "bucket": "the bucket does not exist: check its name, or create it",
    "denied": "access denied: the credentials lack permission on this bucket or prefix",
}


_REQUEST_ID = re.compile(r"\s*\(Request ID: [^)]*\)")


def _classify_store_error(text: str) -> str | None:
    t = text.upper()
    if "NETWORK_CONNECTION" in t or "CURLCODE" in t or "COULD NOT CONNECT" in t or "COULD NOT RESOLVE" in t \
            or "TIMED OUT" in t or "TIMEOUT" in t:
        return "network"
    if "INVALID_ACCESS_KEY_ID" in t or "SIGNATURE_DOES_NOT_MATCH" in t or "INVALIDACCESSKEYID" in t \
            or "SIGNATUREDOESNOTMATCH" in t or "EXPIRED_TOKEN" in t or "EXPIREDTOKEN" in t \
            or "INVALID_CLIENT_TOKEN" in t or "UNRECOGNIZEDCLIENT" in t or "NO_CREDENTIALS" in t:
        return "credentials"
    if "NO_SUCH_BUCKET" in t or "NOSUCHBUCKET" in t:
        return "bucket"
    if "ACCESS_DENIED" in t or "ACCESSDENIED" in t or "FORBIDDEN" in t or "HTTP RESPONSE CODE: 403" in t:
        return "denied"
    return None


def endpoint_of(storage: Storage, scheme: str) -> tuple[str, str]:
    """(endpoint, where it comes from) for an object-store scheme, for messages."""
    if scheme in ("s3", "s3a"):
        for source, value in (("[storage] endpoint_url", _opt(storage.config, "endpoint_url", "")),
                              ("AWS_ENDPOINT_URL_S3", os.environ.get("AWS_ENDPOINT_URL_S3")),
                              ("AWS_ENDPOINT_URL", os.environ.get("AWS_ENDPOINT_URL"))):
            if value:
                return value, source
        region = (_opt(storage.config, "region", "") or os.environ.get("AWS_REGION")
                  or os.environ.get("AWS_DEFAULT_REGION"))
        return "AWS S3", f"the SDK's default{f' for region {region}' if region else ''}"
    if scheme in ("gs", "gcs"):
        return "Google Cloud Storage", "the SDK's default"
    return f"{scheme}://", "fsspec"


def credentials_source(storage: Storage, scheme: str, bucket: str) -> str:
    """Where the credentials for `bucket` come from, in the SDK's order -- never their values."""
    if storage._anonymous(bucket):
        return "none: the bucket is read anonymously ([storage] anonymous_buckets)"
    if scheme in ("gs", "gcs"):
        if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
            return f"GOOGLE_APPLICATION_CREDENTIALS={os.environ['GOOGLE_APPLICATION_CREDENTIALS']}"
        adc = Path.home() / ".config" / "gcloud" / "application_default_credentials.json"
        return str(adc) if adc.is_file() else "none found (GOOGLE_APPLICATION_CREDENTIALS unset, no gcloud " \
            "application-default login): the metadata server's, if any"
    if scheme not in ("s3", "s3a"):
        return f"whatever the fsspec {scheme}:// implementation finds"
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        extra = " and AWS_SESSION_TOKEN" if os.environ.get("AWS_SESSION_TOKEN") else ""
        return f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY{extra} in the environment"
    profile = os.environ.get("AWS_PROFILE") or _opt(storage.config, "profile", "")
    files = os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or str(Path.home() / ".aws" / "credentials")
    if profile:
        origin = "[storage] profile" if _opt(storage.config, "profile", "") == profile else "AWS_PROFILE"
        return f"profile {profile!r} ({origin}) of {files} / ~/.aws/config"
    if os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        return "a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)"
    if os.environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        return "the container's credentials endpoint (AWS_CONTAINER_CREDENTIALS_*)"
    if Path(files).is_file():
        return f"the default profile of {files}"
    if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return "none found (no AWS_ACCESS_KEY_ID, AWS_PROFILE or ~/.aws/credentials; instance metadata disabled)"
    return "none found in the environment or ~/.aws: the instance role's, if this machine has one"


def _probe_fs(storage: Storage, scheme: str, bucket: str) -> pafs.FileSystem:
    """A client like the stages' own, with short timeouts and one retry: for the preflight only."""
    if scheme in ("s3", "s3a"):
        quick = Storage(_ProbeConfig(storage.config))
        return quick._s3(bucket)
    return storage.resolve(f"{scheme}://{bucket}")[0]


class _ProbeConfig:
    """A [storage] section with the preflight's timeouts and retries."""

    def __init__(self, config):
        self._config = config

    def __getattr__(self, name):
        if name == "retries":
            return PROBE_ATTEMPTS
        if name == "connect_timeout_s":
            return min(PROBE_CONNECT_S, float(_opt(self._config, name, PROBE_CONNECT_S)))
        if name == "request_timeout_s":
            return min(PROBE_REQUEST_S, float(_opt(self._config, name, PROBE_REQUEST_S)))
        return getattr(self._config, name, None) if self._config is not None else None


def _remote_problem(storage: Storage, uri: str, what: str, action: str, problem: str) -> StorageError:
    scheme = scheme_of(uri)
    bucket = _URI.match(uri).group(2).split("/", 1)[0]
    endpoint, origin = endpoint_of(storage, scheme)
    return StorageError(f"cannot {action} {what} {uri}: {problem} (endpoint {endpoint}, from {origin}; "
                        f"credentials: {credentials_source(storage, scheme, bucket)})")


def _store_check(storage: Storage, uri: str, what: str, write: bool) -> None:
    scheme = scheme_of(uri)
    action = "write" if write else "read"
    try:
        storage.resolve(uri)  # an unknown scheme or a URI without a bucket
    except StorageError as e:
        raise StorageError(f"{what} {uri}: {e}") from None
    rest = _URI.match(uri).group(2).rstrip("/")
    bucket = rest.split("/", 1)[0]
    fs = _probe_fs(storage, scheme, bucket)

    def _twice(call):
        """A transient answer (SlowDown, an internal error) is asked again once; no answer at all is not."""
        try:
            return call()
        except OSError as e:
            if _classify_store_error(str(e)) is not None:
                raise
            time.sleep(0.5)
            return call()

    def problem(e: OSError) -> str:
        kind = _classify_store_error(str(e))
        first = _REQUEST_ID.sub("", " ".join(str(e).split()))[:300]
        if kind == "network":
            return f"the endpoint does not answer ({first}). Check the endpoint URL and that the store is reachable"
        if kind == "credentials":
            return f"the credentials were refused ({first}). Check that they are this store's and not expired"
        if kind == "bucket":
            return f"bucket {bucket!r} does not exist. Check its name, or create it"
        if kind == "denied":
            return (f"access denied ({first}). Check that the credentials may {action} "
                    f"{'under this prefix' if write else 'this bucket'}")
        return f"{first}. Check the URI, the endpoint and the credentials"

    try:
        found = _twice(lambda: fs.get_file_info(bucket)).type != pafs.FileType.NotFound
    except OSError as e:
        if _classify_store_error(str(e)) != "denied":
            raise _remote_problem(storage, uri, what, action, problem(e)) from None
        found = True  # HeadBucket needs s3:ListBucket; object rights alone may still do: the probe below says
        if not write:
            try:
                fs.get_file_info(rest)
            except OSError as e2:
                raise _remote_problem(storage, uri, what, action, problem(_listing_error(fs, rest) or e2)) from None
    if not found:
        raise _remote_problem(storage, uri, what, action, f"bucket {bucket!r} does not exist. Check its name, "
                              "or create it")
    if write:
        probe = f"{rest}/{_TMPDIR_PREFIX}probe.{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"
        def put() -> None:
            with fs.open_output_stream(probe, compression=None) as f:
                f.write(b"crawlproc write check\n")

        try:
            _twice(put)
        except OSError as e:
            raise _remote_problem(storage, uri, what, action, problem(e)) from None
        try:
            fs.delete_file(probe)
        except OSError:
            pass  # a store that lets us write but not delete: the probe's .tmp name keeps it out of listings


def check_write_free(path: str, min_free: int, what: str, min_inodes: int = 0) -> None:
    """A local folder that can be created and written, with at least `min_free` bytes and `min_inodes` files
    free; StorageError."""
    _local_check_write(normalize(path), what, min_free, min_inodes)


def _listing_error(fs: pafs.FileSystem, path: str) -> OSError | None:
    """The error of a LIST under `path`, if any: unlike a HEAD answer (no body), it says why a request was
    refused (an unknown key id, a bad signature), for a better message."""
    try:
        fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except OSError as e:
        return e
    return None


def _local_check_write(path: str, what: str, min_free: int = MIN_FREE_BYTES, min_inodes: int = 0) -> None:
    p = Path(path)
    for q in (p, *p.parents):  # the nearest part of the path that exists must be a folder
        if q.exists() or q.is_symlink():
            if not q.is_dir():
                raise StorageError(f"{what} {path}: {q} is {_kind_of(q)}, not a folder. Give a folder (it is "
                                   "created if missing)")
            break
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"{what}: {describe_os_error(e, str(p))}") from None
    probe = tmp_path(p / f"{_TMPDIR_PREFIX[1:]}probe")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, b"\0" * _PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise StorageError(f"{what}: {describe_os_error(e, str(p))}") from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    try:
        st = os.statvfs(p)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if free < min_free:
        raise StorageError(f"{what}: cannot write {p}: only {free >> 10} KiB free on its disk (at least "
                           f"{min_free >> 20} MiB needed): free some space or give another folder")
    if st.f_files and st.f_favail < min_inodes:  # f_files 0: a file system without an inode limit
        raise StorageError(f"{what}: cannot write {p}: only {st.f_favail} free inodes on its disk (files it can "
                           f"still hold; at least {min_inodes} needed): remove files or give another folder")


def _kind_of(p: Path) -> str:
    try:
        mode = p.stat().st_mode
    except OSError:
        return "a broken link"
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def check_local_file(path: str | Path, what: str = "input") -> Path:
    """A local path that must be a regular file (or a link to one): a named pipe would block a reader
    forever, a device would never end, a socket or a folder cannot be read as a file. Raises StorageError."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise StorageError(f"{what} {p} does not exist") from None
    except OSError as e:
        raise StorageError(f"{what} {p}: {describe_os_error(e, str(p))}") from None
    if not stat.S_ISREG(mode):
        raise StorageError(f"{what} {p} is {_kind_of(p)}, not a regular file: give a file")
    return p


def _check_read(self: Storage, uri: str, what: str, expect: str) -> None:
    uri = str(uri)
    if is_remote(uri):
        _store_check(self, uri, what, write=False)
        return
    p = Path(normalize(uri))
    if not (p.exists() or p.is_symlink()):
        raise StorageError(f"{what} {p} does not exist")
    if expect == "dir" and not p.is_dir():
        raise StorageError(f"{what} {p} is {_kind_of(p)}, not a folder")
    if expect == "file":
        check_local_file(p, what)
    elif expect == "any" and not p.is_dir():
        check_local_file(p, what)


def _check_write(self: Storage, uri: str, what: str) -> None:
    uri = str(uri)
    if is_remote(uri):
        _store_check(self, uri, what, write=True)
    else:
        _local_check_write(normalize(uri), what)

