"""The run state: every path of a run under one output root, and the markers that say what is done.

The output root (a local folder or an object-store URI) is the whole state; no database is needed to resume.

    <out>/<snapshot>/docs/<stem>.parquet         kept documents           (written by the extract stage)
    <out>/<snapshot>/removed/<stem>.parquet      removed documents + stage and reason
    <out>/<snapshot>/extracted/<stem>.parquet    the text extraction gave, of documents a filter edited (refilter)
    <out>/<snapshot>/_done/<stem>.<fp>.json      commit point of a file, written last (with its FileStats)
    <out>/<snapshot>/_failed/<stem>.json         the root cause of a file that failed (retried on the next run)
    <out>/<snapshot>/listing.json                the validated listing of a `crawlproc run`
    <out>/<snapshot>/recipes/<fp>.json           each recipe files were processed with, by fingerprint
    <out>/<snapshot>/selection/...               fetch.mode = "index": the records selected from CC's index
    <out>/<snapshot>/signatures/<stem>.parquet   MinHash signatures
    <out>/<snapshot>/dedup/...                   dedup plan, work, duplicates/, summary.json, _done.json
    <out>/<snapshot>/final/<stem>.parquet        deduplicated, PII removed
    <out>/<snapshot>/decontam/...                decontamination plan.json, summary.json, _done.json, cuts/, work
    <out>/<snapshot>/decontaminated/<stem>.parquet   final/ without the documents that hold benchmark items:
                                                 what is classified and tokenized
    <out>/<snapshot>/decontaminated_removed/<stem>.parquet   removed by decontamination (benchmark, item, n-gram)
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

Nothing outside this module spells out these paths (tests/test_design.py checks it): a stage asks a Snapshot
(per-file folders), a StageDir (a stage's plan, summary, commit record and work waves), a TokenSetDir, a
TrainRunDir or an ExportDir. What the files hold is their writers' business.
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
FILE_KINDS = ("docs", "removed", "extracted", "signatures", "final", "decontaminated", "decontaminated_removed",
              "classified", "classified_removed")
# the names the output root itself uses: top-level folders and files that are not snapshots (the demo's crawl is
# built in minicc/, the report is written to report.html, ablations live in ablate/)
RESERVED = {"tokens", "train", "_index", "minicc", "ablate", "report.html"}
_SNAPSHOT_PARTS = ("docs", "removed", "extracted", "stats", "_done", "_failed", "final", "listing.json", "dedup",
                   "classify", "classified", "classified_removed", "decontam", "decontaminated",
                   "decontaminated_removed", "signatures", "recipes", "recipe.json")


class LayoutError(ValueError):
    """A name that cannot be used as a folder or file name (it would escape the output root)."""


def check_name(name: str, what: str = "name") -> str:
    """A single safe path segment: letters, digits and ._+=~@- ; no '/', no leading dot, at most 200 chars."""
    if not isinstance(name, str) or not SAFE_NAME.match(name) or name in (".", ".."):
        raise LayoutError(f"bad {what} {name!r}: use letters, digits and . _ + = ~ @ - (no '/', no leading "
                          "dot, at most 200 characters)")
    return name


def check_snapshot_name(name: str, what: str = "snapshot name") -> str:
    """A snapshot name a stage may write under: a safe path segment that is not one of the output root's own
    names (tokens, train, ...: a snapshot there would mix its documents with them, and `status` would not see
    it). Compared without case, for case-insensitive file systems."""
    check_name(name, what)
    if name.lower() in RESERVED:
        raise LayoutError(f"bad {what} {name!r}: the output folder uses that name for itself (reserved: "
                          f"{', '.join(sorted(RESERVED))}); pick another name")
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


class StageDir:
    """The folder of a stage that works on a whole snapshot or index: its plan, its summary, its commit point
    `_done.json` (written last), its work files (one folder per wave, with per-unit markers) and its own outputs."""

    DONE, SUMMARY, PLAN = "_done.json", "summary.json", "plan.json"

    def __init__(self, storage: Storage, uri: str):
        self.storage, self.uri = storage, uri

    def path(self, *parts: str) -> str:
        return join(self.uri, *parts)

    def file(self, kind: str, stem: str) -> str:
        """One Parquet file of an output folder of the stage (duplicates/, clusters/, ...)."""
        return self.path(kind, f"{stem}.parquet")

    @property
    def done_uri(self) -> str:
        return self.path(self.DONE)

    @property
    def summary_uri(self) -> str:
        return self.path(self.SUMMARY)

    @property
    def plan_uri(self) -> str:
        return self.path(self.PLAN)

    def work(self, *parts: str) -> str:
        return self.path("work", *parts)

    def wave_markers(self, wave: str) -> Markers:
        return Markers(self.storage, self.work(wave, "_done"), self.work(wave, "_failed"))

    def done(self) -> dict | None:
        """The stage's commit record, or None while it has not finished."""
        return self.storage.read_json(self.done_uri)


def done_record(folder: str) -> str:
    """The commit record of a folder written as a whole (a stage, a band index, a round of components)."""
    return join(folder, StageDir.DONE)


class Snapshot:
    """The folders of one snapshot (a `--dump` / `--snapshot` name) under the output root."""

    def __init__(self, layout: Layout, name: str):
        self.layout = layout
        self.storage = layout.storage
        self.name = check_name(name, "snapshot name")
        self.uri = join(layout.root, name)
        self.markers = Markers(self.storage, join(self.uri, "_done"), join(self.uri, "_failed"))

    def path(self, kind: str, stem: str) -> str:
        """One input file's Parquet file in docs/, removed/, signatures/, final/, classified/, ..."""
        return join(self.folder(kind), f"{stem}.parquet")

    def files(self, kind: str) -> list[str]:
        """URIs of the Parquet files of docs/, removed/, signatures/ or final/, sorted."""
        return [e.uri for e in self.storage.list(self.folder(kind), suffix=".parquet")]

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

    def folder(self, kind: str) -> str:
        """docs/, removed/, signatures/, final/, classified/, ...: a folder of one Parquet file per input."""
        if kind not in FILE_KINDS:
            raise LayoutError(f"{kind!r} is not a folder of a snapshot (one of {', '.join(FILE_KINDS)})")
        return join(self.uri, kind)

    def stage(self, name: str) -> StageDir:
        """The folder a snapshot-wide stage keeps its state in: <snapshot>/<name>/ (dedup, classify, ...)."""
        return StageDir(self.storage, join(self.uri, check_name(name, "stage name")))

    @property
    def dedup(self) -> StageDir:
        """dedup/: plan, summary, _done.json, duplicates/<stem>.parquet, clusters/<stem>.parquet, work/."""
        return self.stage("dedup")

    @property
    def decontam(self) -> StageDir:
        """decontam/: plan (each file's fingerprint), summary, _done.json, cuts/<stem>.parquet, work/files/."""
        return self.stage("decontam")

    def decontam_cuts(self, stem: str) -> str:
        """The documents of one input file kept after their matching spans were cut ("cut" mode)."""
        return self.decontam.file("cuts", stem)

    def decontam_markers(self) -> Markers:
        """One marker per decontaminated input file."""
        return self.decontam.wave_markers("files")

    @property
    def classify(self) -> StageDir:
        """classify/: summary, thresholds, _done.json, scores/<classifier>/<stem>.parquet, work/."""
        return self.stage("classify")

    @property
    def refilter(self) -> StageDir:
        """refilter/: staging/<fp>/<kind>/<stem>.parquet and ready/<fp>/<stem>.json while files are switched."""
        return self.stage("refilter")

    @property
    def selection(self) -> StageDir:
        """selection/ (fetch.mode = "index"): parts/<p>/ (wave 1), files/b<k>.parquet and .json (wave 2), work/."""
        return self.stage("selection")

    def scores_path(self, classifier: str, stem: str) -> str:
        """One classifier's scores of one input file (id, score)."""
        return self.classify.path("scores", check_name(classifier, "classifier name"), f"{stem}.parquet")

    @property
    def lock_uri(self) -> str:
        return join(self.uri, "_lock")


class TokenSetDir:
    """Where the files of one token set lie (tokens/<name>/, or any folder or URI holding one): its manifest
    (the commit point), its shards and tokenizer files side by side, one part marker per encoded unit under
    parts/, the work files of a mix under _work/, and its lock. What the files hold is tokenizer/shards.py's;
    tokenizer/tokenset.py reads and writes them."""

    MANIFEST = "manifest.json"

    def __init__(self, uri: str, storage: Storage, name: str | None = None):
        self.storage = storage
        self.uri = normalize(uri)
        self.name = check_name(name or basename(self.uri), "token set name")

    def path(self, *parts: str) -> str:
        """A file of the token set: a shard or a tokenizer file, by its plain name."""
        return join(self.uri, *parts)

    @property
    def manifest_uri(self) -> str:
        return self.path(self.MANIFEST)

    def piece(self, name: str) -> str:
        """pieces/<name>: an input's validation documents, merged into the val shards by size (tokenize)."""
        return self.path("pieces", check_name(name, "piece name"))

    @property
    def pieces_dir(self) -> str:
        return self.path("pieces")

    @property
    def markers(self) -> Markers:
        """One marker per encoded unit (an input of tokenize, a bucket of mix): its part record."""
        return Markers(self.storage, self.path("parts"), self.path("_failed"))

    def work(self, *parts: str) -> str:
        """A path under _work/: a command's files while it builds the token set, removed when it commits."""
        return self.path("_work", *parts)

    def work_markers(self, wave: str) -> Markers:
        return Markers(self.storage, self.work(wave, "_done"), self.work(wave, "_failed"))

    @property
    def work_recipe_uri(self) -> str:
        """What the command building the token set is making (a mix's recipe), while it works."""
        return self.work("recipe.json")

    @property
    def lock_uri(self) -> str:
        return self.path("_lock")


class TrainRunDir:
    """A training run's folder (<out>/train/<run>/, or any `crawlproc train --out`): its settings, its records
    (metrics, text samples), the loss plot, its checkpoints (ckpt/: their format is trainer/checkpoint.py's), the
    Hugging Face export (hf/) and its latest benchmark scores (eval.json: the trainer's last in-loop evaluation, or
    `crawlproc eval`'s)."""

    CONFIG, METRICS, SAMPLES, PLOT, EVAL = "config.json", "metrics.jsonl", "samples.jsonl", "loss.png", "eval.json"
    RECORDS = (METRICS, SAMPLES)

    def __init__(self, uri: str, storage: Storage):
        self.storage, self.uri = storage, normalize(uri)

    def path(self, name: str) -> str:
        return join(self.uri, name)

    @property
    def config_uri(self) -> str:
        return self.path(self.CONFIG)

    @property
    def eval_uri(self) -> str:
        return self.path(self.EVAL)

    @property
    def ckpt_dir(self) -> str:
        return self.path("ckpt")

    @property
    def hf_dir(self) -> str:
        return self.path("hf")

    @property
    def ray_dir(self) -> str:
        """Ray Train's own storage for `crawlproc train --ray`."""
        return self.path("ray")


class ExportDir:
    """An export's folder (`crawlproc export --out`): the files other trainers read, `export.json` (the record,
    written last: the commit point) and a staging folder per export plan while one is being written."""

    RECORD = "export.json"

    def __init__(self, uri: str, storage: Storage):
        self.storage, self.uri = storage, normalize(uri)

    @property
    def record_uri(self) -> str:
        return join(self.uri, self.RECORD)

    def file(self, name: str) -> str:
        return join(self.uri, check_name(name, "export file name"))

    def staging(self, plan: str, name: str | None = None) -> str:
        """The folder the export of `plan` is written into before it is moved into place, or a file of it."""
        folder = join(self.uri, f"_staging-{check_name(plan, 'export plan')}")
        return join(folder, check_name(name, "export file name")) if name else folder

    @staticmethod
    def plain(name: str) -> bool:
        """A record's file name that stays inside the folder (a hand-edited record is input like any other)."""
        return bool(SAFE_NAME.match(name)) and name != ExportDir.RECORD


class Ablation:
    """ablate/<name>/: one ablation's arms, runs (one per arm and seed), markers and tables. Each run is a
    TrainRunDir with three files more: what it was trained for (unit.json), its log and its final scores."""

    RUN_STATE, RUN_LOG, RUN_EVAL = "unit.json", "train.log", "ablate_eval.json"

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

    @property
    def tokens_root(self) -> str:
        return join(self.root, "tokens")

    def tokens(self, name: str) -> TokenSetDir:
        return TokenSetDir(join(self.tokens_root, check_name(name, "token set name")), self.storage, name)

    def index_dir(self, snapshot: str) -> str:
        """The persisted band index of one snapshot, for `dedup.scope = "all"` (its `_done.json` last)."""
        return join(self.root, "_index", "bands", check_name(snapshot, "snapshot name"))

    @property
    def index_root(self) -> str:
        return join(self.root, "_index", "bands")

    @property
    def train_root(self) -> str:
        return join(self.root, "train")

    def ablation(self, name: str) -> Ablation:
        return Ablation(self, name)

    def ablations(self) -> list[str]:
        return sorted(e.name for e in self.storage.list(join(self.root, "ablate"), include_dirs=True)
                      if e.is_dir and SAFE_NAME.match(e.name))

    def train_run(self, name: str) -> str:
        return join(self.train_root, check_name(name, "training run name"))

    @property
    def minicc_dir(self) -> str:
        """Where `crawlproc demo` builds the mini Common Crawl it serves."""
        return join(self.root, "minicc")

    @property
    def report_uri(self) -> str:
        return join(self.root, "report.html")

    def snapshots(self) -> list[str]:
        """Names of the snapshot folders under the root: every folder holding anything a stage writes
        (a snapshot with only `_failed/` markers counts: its failures must be shown). A folder of a reserved
        name counts when it holds done markers (documents written there before such names were refused)."""
        names = []
        for e in self.storage.list(self.root, include_dirs=True):
            if not e.is_dir or not SAFE_NAME.match(e.name):
                continue
            inside = {x.name for x in self.storage.list(e.uri, include_dirs=True)}
            if e.name.lower() in RESERVED or e.name in RESERVED:
                if "_done" in inside:
                    names.append(e.name)
            elif inside & set(_SNAPSHOT_PARTS):
                names.append(e.name)
        return sorted(names)
