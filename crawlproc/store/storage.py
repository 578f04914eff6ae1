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
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import uuid
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

    def local_path(self, uri: str) -> Path | None:
        """The local path of `uri`, or None for an object store."""
        return None if is_remote(uri) else Path(normalize(uri))

    def clean_partials(self, uri: str, stale_after_s: float = 24 * 3600) -> int:
        """Remove temporary files that crashed writers left under a local folder: those of processes of this
        host that no longer exist, and those of other hosts older than `stale_after_s`. Another live
        command's files are never touched. Object stores have no temporary files. Returns how many."""
        root = self.local_path(uri)
        if root is None or not root.is_dir():
            return 0
        n = 0
        now = time.time()
        for p in root.rglob(f".*{TMP_SUFFIX}"):
            here, pid = _tmp_owner(p.name)
            try:
                stale = (here and not pid_alive(pid)) or (not here and now - p.stat().st_mtime > stale_after_s)
                if stale:
                    p.unlink()
                    n += 1
            except FileNotFoundError:
                pass
        return n


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


