"""The run state: every path of a run under one output root, and the markers that say what is done.

The output root (a local folder or an object-store URI) is the whole state; no database is needed to resume.

    <out>/<snapshot>/docs/<stem>.parquet         kept documents           (written by the extract stage)
    <out>/<snapshot>/removed/<stem>.parquet      removed documents + stage and reason
    <out>/<snapshot>/stats/<stem>.json           per-file counters
    <out>/<snapshot>/_done/<stem>.<fp>.json      commit point of a file, written last; fp = its fingerprint
    <out>/<snapshot>/_failed/<stem>.json         the root cause of a file that failed (retried on the next run)
    <out>/<snapshot>/listing.json                the validated listing of a `crawlproc run`
    <out>/<snapshot>/recipes/<fp>.json           each recipe files were processed with, by fingerprint
    <out>/<snapshot>/signatures/<stem>.parquet   MinHash signatures
    <out>/<snapshot>/dedup/...                   dedup plan, work, duplicates/, summary.json, _done.json
    <out>/<snapshot>/final/<stem>.parquet        deduplicated, PII removed: what is tokenized
    <out>/<snapshot>/classify/...                classifier scores/<name>/, summary.json, _done.json, work
    <out>/<snapshot>/classified/<stem>.parquet   kept by the classifiers, with a score column per classifier
    <out>/<snapshot>/classified_removed/<stem>.parquet   removed by a classifier (reason and scores)
    <out>/_index/bands/<snapshot>/...            band index for cross-snapshot dedup
    <out>/tokens/<name>/...                      token shards, tokenizer, manifest
    <out>/train/<run>/...                        training runs
    <out>/ablate/<name>/...                      an ablation: spec.json, tokenizer/, arms/<arm>/ (each snapshot
                                                 arm's own output root), runs/<arm>~s<seed>/, _done/, table.json

A unit of work (a file, a partition) is done when its marker `_done/<key>.<fp>.json` exists, where fp is
the fingerprint of what produced it (the input's content and the recipe sections the stage reads). The
fingerprint is in the name so that one LIST of `_done/` tells which units are done and with what, without
reading every marker (on an object store a GET per file would cost as much as the work for small files).
A unit being redone loses its old marker before any of its outputs is replaced.
Nothing outside this module spells out these paths.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import UTC, datetime

from crawlproc.store.storage import Storage, basename, default_storage, join, normalize

_WARC_SUFFIX = re.compile(r"(\.warc)?(\.gz|\.zst|\.zstd)?$", re.IGNORECASE)
_MARKER = re.compile(r"^(?P<key>.+)\.(?P<fp>[0-9a-f]{16})\.json$")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=~@-]{0,199}$")
FILE_KINDS = ("docs", "removed", "signatures", "final", "classified", "classified_removed")
RESERVED = {"tokens", "train", "_index", "minicc", "ablate"}  # top-level folders that are not snapshots
_SNAPSHOT_PARTS = ("docs", "removed", "stats", "_done", "_failed", "final", "listing.json", "dedup", "classify",
                   "classified")


class LayoutError(ValueError):
    """A name that cannot be used as a folder or file name (it would escape the output root)."""


def check_name(name: str, what: str = "name") -> str:
    """A single safe path segment: letters, digits and ._+=~@- ; no '/', no leading dot, at most 200 chars."""
    if not isinstance(name, str) or not SAFE_NAME.match(name) or name in (".", ".."):
        raise LayoutError(f"bad {what} {name!r}: use letters, digits and . _ + = ~ @ - (no '/', no leading "
                          "dot, at most 200 characters)")
    return name


def warc_stem(path: str) -> str:
    """`.../CC-MAIN-2024...-00000.warc.gz` -> `CC-MAIN-2024...-00000`: the key of a file in every subfolder."""
    name = basename(str(path))
    return _WARC_SUFFIX.sub("", name) or name


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Markers:
    """The `_done/` and `_failed/` markers of one stage's units."""

    def __init__(self, storage: Storage, done_dir: str, failed_dir: str):
        self.storage, self.done_dir, self.failed_dir = storage, done_dir, failed_dir

    def done_uri(self, key: str, fp: str) -> str:
        return join(self.done_dir, f"{key}.{fp}.json")

    def failed_uri(self, key: str) -> str:
        return join(self.failed_dir, f"{key}.json")

    def done(self) -> dict[str, str]:
        """{key: fingerprint} of every done unit, from one LIST."""
        out: dict[str, str] = {}
        for e in self.storage.list(self.done_dir, suffix=".json"):
            m = _MARKER.match(e.name)
            if m:
                out[m.group("key")] = m.group("fp")
        return out

    def read(self, key: str, fp: str) -> dict | None:
        return self.storage.read_json(self.done_uri(key, fp))

    def read_any(self, key: str) -> dict | None:
        """The marker of `key` whatever its fingerprint (one LIST), or None."""
        fp = self.done().get(key)
        return self.read(key, fp) if fp else None

    def unmark(self, key: str, fp: str) -> None:
        """Forget that `key` was done (before its outputs are replaced by a redo)."""
        self.storage.delete(self.done_uri(key, fp))

    def mark_done(self, key: str, fp: str, info: dict) -> None:
        record = {"key": key, "fingerprint": fp, "finished_at": now_iso(), "host": socket.gethostname(),
                  "pid": os.getpid(), **info}
        self.storage.write_json(self.done_uri(key, fp), record)

    def mark_failed(self, key: str, record: dict) -> None:
        self.storage.write_json(self.failed_uri(key), {"key": key, "at": now_iso(), **record})

    def clear_failed(self, key: str) -> None:
        self.storage.delete(self.failed_uri(key))

    def failed(self) -> dict[str, dict]:
        """{key: failure record} of the units whose last attempt failed and that are not done since."""
        done = self.done()
        out = {}
        for e in self.storage.list(self.failed_dir, suffix=".json"):
            key = e.name[: -len(".json")]
            if key not in done:
                out[key] = self.storage.read_json(e.uri, {}) or {}
        return out

    def clear(self) -> None:
        for d in (self.done_dir, self.failed_dir):
            self.storage.delete_tree(d)


class Snapshot:
    """The folders of one snapshot (a `--dump` / `--snapshot` name) under the output root."""

    def __init__(self, layout: Layout, name: str):
        self.layout = layout
        self.storage = layout.storage
        self.name = check_name(name, "snapshot name")
        self.uri = join(layout.root, name)
        self.markers = Markers(self.storage, join(self.uri, "_done"), join(self.uri, "_failed"))

    def path(self, kind: str, stem: str) -> str:
        """docs / removed / signatures / final: Parquet; stats: JSON."""
        ext = "json" if kind == "stats" else "parquet"
        return join(self.uri, kind, f"{stem}.{ext}")

    def files(self, kind: str) -> list[str]:
        """URIs of the Parquet files of docs/, removed/, signatures/ or final/, sorted."""
        return [e.uri for e in self.storage.list(join(self.uri, kind), suffix=".parquet")]

    def stems(self, kind: str) -> list[str]:
        return [basename(u)[: -len(".parquet")] for u in self.files(kind)]

    @property
    def listing_uri(self) -> str:
        return join(self.uri, "listing.json")

    @property
    def recipe_uri(self) -> str:
        """The recipe of the latest run (JSON), for reading by people; files are judged by recipes/<fp>."""
        return join(self.uri, "recipe.json")

    def recipe_for(self, fp: str) -> str:
        return join(self.uri, "recipes", f"{fp}.json")

    def read_stats(self, stem: str) -> dict | None:
        return self.storage.read_json(self.path("stats", stem))

    # -- dedup ---------------------------------------------------------------------------------------------
    @property
    def dedup_dir(self) -> str:
        return join(self.uri, "dedup")

    def dedup(self, *parts: str) -> str:
        """A path under dedup/: plan.json, summary.json, _done.json, duplicates/<stem>.parquet, work/..."""
        return join(self.dedup_dir, *parts)

    def dedup_markers(self, step: str) -> Markers:
        work = self.dedup("work", step)
        return Markers(self.storage, join(work, "_done"), join(work, "_failed"))

    # -- classify ------------------------------------------------------------------------------------------
    def classify(self, *parts: str) -> str:
        """A path under classify/: summary.json, thresholds.json, _done.json."""
        return join(self.uri, "classify", *parts)

    def scores_path(self, classifier: str, stem: str) -> str:
        """One classifier's scores of one input file (id, score)."""
        return self.classify("scores", check_name(classifier, "classifier name"), f"{stem}.parquet")

    def classify_markers(self, step: str) -> Markers:
        work = self.classify("work", step)
        return Markers(self.storage, join(work, "_done"), join(work, "_failed"))

    @property
    def lock_uri(self) -> str:
        return join(self.uri, "_lock")


class TokenSet:
    """tokens/<name>/: shards, tokenizer files, part manifests (one per encoded input) and manifest.json."""

    def __init__(self, layout: Layout, name: str):
        self.storage = layout.storage
        self.name = check_name(name, "token set name")
        self.uri = join(layout.root, "tokens", name)

    def path(self, *parts: str) -> str:
        return join(self.uri, *parts)

    @property
    def manifest_uri(self) -> str:
        return self.path("manifest.json")

    @property
    def markers(self) -> Markers:
        """One marker per encoded input: its part manifest (the shards it produced)."""
        return Markers(self.storage, self.path("parts"), self.path("_failed"))

    @property
    def lock_uri(self) -> str:
        return self.path("_lock")


class Ablation:
    """ablate/<name>/: one ablation's arms, runs (one per arm and seed), markers and tables."""

    def __init__(self, layout: Layout, name: str):
        self.storage = layout.storage
        self.name = check_name(name, "ablation name")
        self.uri = join(layout.root, "ablate", name)

    def path(self, *parts: str) -> str:
        return join(self.uri, *parts)

    def arm_root(self, arm: str) -> str:
        """A snapshot arm's own output root: its snapshot folders and tokens/ live under it."""
        return self.path("arms", check_name(arm, "arm name"))

    def unit_key(self, arm: str, seed: int) -> str:
        return f"{check_name(arm, 'arm name')}~s{int(seed)}"

    def run(self, arm: str, seed: int) -> str:
        """The training run (checkpoints, metrics, hf/, eval) of one arm and seed."""
        return self.path("runs", self.unit_key(arm, seed))

    @property
    def tokenizer_dir(self) -> str:
        return self.path("tokenizer")

    @property
    def markers(self) -> Markers:
        """One marker per finished arm x seed unit, holding its scores."""
        return Markers(self.storage, self.path("_done"), self.path("_failed"))

    @property
    def spec_uri(self) -> str:
        return self.path("spec.json")

    @property
    def table_uri(self) -> str:
        return self.path("table.json")

    @property
    def table_md_uri(self) -> str:
        return self.path("table.md")

    @property
    def lock_uri(self) -> str:
        return self.path("_lock")


class Layout:
    """Every path under one output root, local or on an object store."""

    def __init__(self, out: str, storage: Storage | None = None):
        self.storage = storage or default_storage()
        self.root = normalize(out)

    def snapshot(self, name: str) -> Snapshot:
        return Snapshot(self, name)

    def tokens(self, name: str) -> TokenSet:
        return TokenSet(self, name)

    def index_dir(self, snapshot: str) -> str:
        """The persisted band index of one snapshot, for `dedup.scope = "all"`."""
        return join(self.root, "_index", "bands", check_name(snapshot, "snapshot name"))

    @property
    def index_root(self) -> str:
        return join(self.root, "_index", "bands")

    def ablation(self, name: str) -> Ablation:
        return Ablation(self, name)

    def ablations(self) -> list[str]:
        return sorted(e.name for e in self.storage.list(join(self.root, "ablate"), include_dirs=True)
                      if e.is_dir and SAFE_NAME.match(e.name))

    def train_run(self, name: str) -> str:
        return join(self.root, "train", check_name(name, "training run name"))

    @property
    def report_uri(self) -> str:
        return join(self.root, "report.html")

    def snapshots(self) -> list[str]:
        """Names of the snapshot folders under the root: every folder holding anything a stage writes
        (a snapshot with only `_failed/` markers counts: its failures must be shown)."""
        names = []
        for e in self.storage.list(self.root, include_dirs=True):
            if not e.is_dir or e.name in RESERVED or not SAFE_NAME.match(e.name):
                continue
            inside = {x.name for x in self.storage.list(e.uri, include_dirs=True)}
            if inside & set(_SNAPSHOT_PARTS):
                names.append(e.name)
        return sorted(names)
