"""Where the dedup steps read and write: one Storage (crawlproc.store.storage) for a local folder or an object store.

Every step function takes paths as strings (local paths or URIs) and does its I/O through the helpers here.
The stage sets the Storage of its recipe once per task (`use`), so the functions' signatures stay about the
data; called directly (tests, benches), they use the environment's Storage.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from crawlproc.store.storage import Storage, basename, default_storage, join

_storage: Storage = default_storage()


def use(storage: Storage) -> None:
    global _storage
    _storage = storage


def storage() -> Storage:
    return _storage


def exists(uri: str) -> bool:
    return _storage.is_file(str(uri))


def read_bytes(uri: str) -> bytes:
    return _storage.read_bytes(str(uri))


def write_bytes(uri: str, data: bytes) -> None:
    _storage.write_bytes(str(uri), data)


def read_json(uri: str):
    return json.loads(_storage.read_bytes(str(uri)))


def write_json(uri: str, obj) -> None:
    _storage.write_json(str(uri), obj)


def parquet_file(uri: str) -> pq.ParquetFile:
    return _storage.parquet_file(str(uri))


def read_table(uri: str, columns: list[str] | None = None) -> pa.Table:
    return _storage.read_table(str(uri), columns=columns)


def write_table(uri: str, table: pa.Table, **parquet_options) -> None:
    _storage.write_table(str(uri), table, **parquet_options)


def parquet_files(folder: str, prefix: str = "") -> list[str]:
    """The Parquet files of a folder whose names start with `prefix`, sorted."""
    return [e.uri for e in _storage.list(str(folder), suffix=".parquet") if e.name.startswith(prefix)]


__all__ = ["basename", "exists", "join", "parquet_file", "parquet_files", "read_bytes", "read_json", "read_table", "storage",
           "use", "write_bytes", "write_json", "write_table"]
