"""Model files: a local path is used where it lies; an object-store URI is copied once per machine into a local
cache (a worker on the same machine finds the copy), and every model is identified by its content hash, so
that a replaced model redoes the work it did.
"""

from __future__ import annotations

import os
from pathlib import Path

import xxhash

from crawlproc.store.fingerprint import digest, file_fingerprint
from crawlproc.store.storage import Storage, basename, copy_to_local, default_storage, is_remote, normalize

CHUNK = 8 << 20
_hashes: dict[tuple, str] = {}  # (path, size, mtime_ns) -> content hash, per process


def cache_root(configured: str = "") -> Path:
    return Path(configured or os.environ.get("CRAWLPROC_MODEL_CACHE") or Path.home() / ".cache" / "crawlproc"
                ) / "models"


def local_model(uri: str, storage: Storage | None = None, cache: str = "") -> Path:
    """The local path of a model file or folder: itself when local, else its copy in the cache (made the
    first time, all-or-nothing per file; keyed by the URI and each file's content fingerprint, so a replaced
    model is copied again). Raises FileNotFoundError naming the URI when there is nothing there."""
    storage = storage or default_storage()
    if not is_remote(uri):
        path = Path(normalize(uri))
        if not path.exists():
            raise FileNotFoundError(f"model {uri!r} does not exist")
        return path
    entry = storage.info(uri)
    if entry is None:
        raise FileNotFoundError(f"model {uri!r} does not exist")
    files = [entry] if not entry.is_dir else storage.list(uri, recursive=True)
    if not files:
        raise FileNotFoundError(f"model folder {uri!r} is empty")
    # content, not size: a model retrained with the same architecture has the same size
    key = digest({"uri": normalize(uri), "files": sorted((e.uri, file_fingerprint(storage, e.uri)) for e in files)})
    root = cache_root(cache) / key
    if not entry.is_dir:
        dest = root / basename(uri)
        if not (dest.is_file() and dest.stat().st_size == entry.size):
            copy_to_local(uri, dest, storage)
        return dest
    base = normalize(uri).rstrip("/") + "/"
    for e in files:
        dest = root / e.uri[len(base):]
        if not (dest.is_file() and dest.stat().st_size == e.size):
            copy_to_local(e.uri, dest, storage)
    return root


def model_hash(path: Path) -> str:
    """xxh3-128 of a file's whole content, or of a folder's files (relative names and contents); memoized
    per process by path, size and modification time."""
    path = Path(path)
    if path.is_dir():
        h = xxhash.xxh3_128()
        for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
            h.update(f"{f.relative_to(path).as_posix()}\0{model_hash(f)}\0".encode())
        return h.hexdigest()[:16]
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _hashes:
        h = xxhash.xxh3_128()
        with open(path, "rb") as f:
            while block := f.read(CHUNK):
                h.update(block)
        _hashes[key] = h.hexdigest()[:16]
    return _hashes[key]
