"""The storage layout and atomic writes. The output root is the run state: no database is needed to resume.

<out>/<snapshot>/{docs,removed,signatures,stats,final,_done}/<warc-stem>.<ext>
<out>/<snapshot>/dedup/...            duplicate ids and clusters
<out>/tokens/<name>/...               token shards, tokenizer, manifest

Every file is written under a temporary name in the same directory and renamed into place, so a crash leaves
either nothing or a whole file. `_done/<stem>.json` is written last: a file with a marker is complete.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SUBDIRS = ("docs", "removed", "signatures", "stats", "final", "_done")
_WARC_SUFFIX = re.compile(r"(\.warc)?(\.gz|\.zst|\.zstd)?$", re.IGNORECASE)


def warc_stem(path: str) -> str:
    """`.../CC-MAIN-2024...-00000.warc.gz` -> `CC-MAIN-2024...-00000`; the key of a file in every subdir."""
    name = os.path.basename(str(path).rstrip("/"))
    stem = _WARC_SUFFIX.sub("", name) or name
    return stem


class Layout:
    """Paths of one snapshot's outputs under an output root."""

    def __init__(self, out: str | Path, dump: str):
        self.root = Path(out)
        self.dump = dump
        self.snapshot = self.root / dump

    def path(self, kind: str, stem: str) -> Path:
        ext = {"stats": "json", "_done": "json"}.get(kind, "parquet")
        return self.snapshot / kind / f"{stem}.{ext}"

    @property
    def recipe_path(self) -> Path:
        """The recipe the snapshot was processed with (JSON), so `explain` can judge by the same thresholds."""
        return self.snapshot / "recipe.json"

    def done_stems(self) -> set[str]:
        d = self.snapshot / "_done"
        return {p.stem for p in d.glob("*.json")} if d.is_dir() else set()

    def is_done(self, stem: str) -> bool:
        return self.path("_done", stem).is_file()

    def files(self, kind: str) -> list[Path]:
        d = self.snapshot / kind
        return sorted(d.glob("*.parquet")) if d.is_dir() else []


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode())


def atomic_write_table(path: str | Path, table: pa.Table, **kwargs) -> None:
    """Write a Parquet file (zstd, stats on) under a temporary name and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    kwargs.setdefault("compression", "zstd")
    try:
        if table.num_rows == 0:
            # No row group at all: an empty row group makes `datasets` fail ("BatchSize must be greater than 0").
            pq.ParquetWriter(tmp, table.schema, **kwargs).close()
        else:
            pq.write_table(table, tmp, **kwargs)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def clean_partials(directory: str | Path) -> int:
    """Remove temporary files a crashed writer left behind; returns how many."""
    n = 0
    d = Path(directory)
    if d.is_dir():
        for p in d.rglob(".*.tmp"):
            p.unlink(missing_ok=True)
            n += 1
    return n
