"""Training a fastText quality classifier, as DCLM did: positives the user brings (a reference set of the text
wanted), negatives a random sample of the crawl's own documents; a held-out split measures it.

The texts are read from Parquet or JSONL files (or folders of them), or sampled from a snapshot's documents.
Exact duplicates are dropped within a class, and a text found in both classes is dropped from both (it cannot
teach anything). Each text goes to the held-out split by a hash of its content, so the split does not depend
on the order of the inputs. The text is prepared exactly as the classify stage prepares it
(crawlproc.classify.fasttext.fasttext_line).

Training runs at least MIN_THREADS fastText threads: the fasttext-numpy2 binding (0.10.4, as fastText's
master) fills the initial input matrix in ten blocks, one per thread, and leaves the blocks of threads that do
not exist uninitialized, so training with fewer than 11 threads starts from whatever the allocator returns
(NaN and divergence with recycled memory; tests/test_classify_train.py keeps a check that fails once the
binding no longer needs this). fastText's threads update the model without locks, so two trainings on the
same data differ slightly; the held-out figures in the card are those of the saved model.

Outputs, in one folder: model.bin (and model.ftz, quantized, on request), card.json (the data sources with
their document counts and sha256, the parameters, the held-out figures) and README.md (the same for people).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import xxhash

from crawlproc.classify.fasttext import LABEL_PREFIX, fasttext_line, predict_label
from crawlproc.store.layout import Layout
from crawlproc.store.storage import Storage, basename, clean_stage_partials, default_storage, parent, private_tmpdir

JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)


class TrainError(ValueError):
    """The training data cannot be used as given (no texts, a missing column, one class only)."""


MIN_THREADS = 11


@dataclass
class TrainParams:
    lr: float = 0.5
    epoch: int = 20
    word_ngrams: int = 2
    dim: int = 64
    min_count: int = 2
    bucket: int = 500_000
    threads: int = MIN_THREADS  # at least MIN_THREADS (see the module docstring)
    seed: int = 0
    holdout: float = 0.1
    max_chars: int = 100_000  # of each text (the start): a few huge documents cannot dominate training
    positive_label: str = "hq"
    negative_label: str = "cc"

    def check(self) -> None:
        if not 0.0 < self.holdout < 1.0:
            raise TrainError(f"holdout must be a fraction in (0, 1), got {self.holdout}")
        for name in ("epoch", "word_ngrams", "dim", "min_count", "bucket", "max_chars"):
            if getattr(self, name) < 1:
                raise TrainError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.threads < MIN_THREADS:
            raise TrainError(f"threads must be >= {MIN_THREADS}: the fastText binding leaves part of the initial "
                             "model uninitialized with fewer (see crawlproc/classify/train.py)")
        if self.lr <= 0:
            raise TrainError(f"lr must be > 0, got {self.lr}")
        if self.positive_label == self.negative_label or not all(
                lab and not any(c.isspace() for c in lab) for lab in (self.positive_label, self.negative_label)):
            raise TrainError("the two labels must be distinct words")


@dataclass
class Source:
    """Where one class's texts came from: a file (its sha256) or a sample of a snapshot."""

    label: str
    path: str
    documents: int
    sha256: str | None = None
    sampled_from: int | None = None  # documents in the snapshot, for a sample
    files: list[dict] = field(default_factory=list)  # each file read: path, bytes, sha256


# --- reading ------------------------------------------------------------------------------------------------


def _data_files(storage: Storage, uri: str) -> list[str]:
    entry = storage.info(uri)
    if entry is None:
        raise TrainError(f"{uri}: no such file or folder")
    if not entry.is_dir:
        return [uri]
    files = [e.uri for e in storage.list(uri, recursive=True)
             if e.name.endswith(JSONL_SUFFIXES + PARQUET_SUFFIXES)]
    if not files:
        raise TrainError(f"{uri}: no .parquet or .jsonl files in this folder")
    return files


def _read_file(storage: Storage, uri: str, text_field: str) -> tuple[list[str], bytes]:
    data = storage.read_bytes(uri)
    name = basename(uri).lower()
    if name.endswith(PARQUET_SUFFIXES):
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        if text_field not in table.column_names:
            raise TrainError(f"{uri}: no column {text_field!r} (has {', '.join(table.column_names)})")
        return [t for t in table.column(text_field).to_pylist() if t], data
    if name.endswith(JSONL_SUFFIXES):
        raw = gzip.decompress(data) if name.endswith(".gz") else data
        texts = []
        for n, line in enumerate(raw.decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise TrainError(f"{uri}:{n}: not JSON ({e})") from None
            if not isinstance(row, dict) or text_field not in row:
                raise TrainError(f"{uri}:{n}: no field {text_field!r}")
            if row[text_field]:
                texts.append(str(row[text_field]))
        return texts, data
    raise TrainError(f"{uri}: not a .parquet or .jsonl(.gz) file")


def read_texts(uri: str, label: str, text_field: str = "text", storage: Storage | None = None
               ) -> tuple[list[str], Source]:
    """The texts of a Parquet/JSONL file or folder, and its Source record."""
    storage = storage or default_storage()
    texts, files = [], []
    for f in _data_files(storage, uri):
        got, data = _read_file(storage, f, text_field)
        texts.extend(got)
        files.append({"path": f, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                      "documents": len(got)})
    sha = files[0]["sha256"] if len(files) == 1 else hashlib.sha256(
        "".join(f["sha256"] for f in files).encode()).hexdigest()
    return texts, Source(label, uri, len(texts), sha, files=files if len(files) > 1 else [])


def sample_snapshot(snapshot_uri: str, n: int, label: str, seed: int = 0, storage: Storage | None = None
                    ) -> tuple[list[str], Source]:
    """`n` documents drawn uniformly without replacement from a snapshot's final/ documents (docs/ when it
    has no final/), e.g. `OUT/CC-MAIN-2024-10`. Only the files holding a drawn document are read."""
    storage = storage or default_storage()
    snap = Layout(parent(snapshot_uri), storage).snapshot(basename(snapshot_uri))
    files = snap.files("final") or snap.files("docs")
    if not files:
        raise TrainError(f"{snapshot_uri}: no final/ or docs/ Parquet files to sample from")
    counts = np.array([storage.parquet_file(f).metadata.num_rows for f in files], dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        raise TrainError(f"{snapshot_uri}: its documents are empty")
    picks = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
    starts = np.concatenate([[0], np.cumsum(counts)])
    texts, digest = [], hashlib.sha256()
    for i, f in enumerate(files):
        rows = picks[(picks >= starts[i]) & (picks < starts[i + 1])] - starts[i]
        if len(rows):
            column = storage.read_table(f, columns=["text"]).column("text").take(rows)
            for t in column.to_pylist():
                texts.append(t or "")
                digest.update(xxhash.xxh3_128_digest((t or "").encode("utf-8", "replace")))
    kind = "final" if snap.files("final") else "docs"
    return texts, Source(label, f"{snapshot_uri}/{kind}", len(texts), digest.hexdigest(), sampled_from=total)


# --- the data set -----------------------------------------------------------------------------------------


def is_held_out(text: str, fraction: float) -> bool:
    return xxhash.xxh3_64_intdigest(text.encode("utf-8", "replace")) % 1_000_000 < fraction * 1_000_000


@dataclass
class DataSet:
    train: list[tuple[str, int]]  # (prepared line, 1 = positive)
    test: list[tuple[str, int]]
    dropped: dict


def build_dataset(positives: list[str], negatives: list[str], params: TrainParams) -> DataSet:
    """Prepared, deduplicated, split; a text in both classes is dropped from both."""
    def prepare(texts):
        out: dict[str, None] = {}
        for t in texts:
            line = " ".join(fasttext_line(t[: params.max_chars]).split())
            if line:
                out.setdefault(line)
        return out

    pos, neg = prepare(positives), prepare(negatives)
    both = pos.keys() & neg.keys()
    dropped = {"duplicates_positive": len(positives) - len(pos), "duplicates_negative": len(negatives) - len(neg),
               "in_both_classes": len(both)}
    train, test = [], []
    for lines, y in ((pos, 1), (neg, 0)):
        for line in lines:
            if line not in both:
                (test if is_held_out(line, params.holdout) else train).append((line, y))
    for part, name in ((train, "training"), (test, "held-out")):
        if not any(y for _, y in part) or all(y for _, y in part):
            raise TrainError(f"the {name} split needs texts of both classes (positives {len(pos)}, negatives "
                             f"{len(neg)} after dropping empty and duplicate texts)")
    return DataSet(train, test, dropped)


# --- figures ------------------------------------------------------------------------------------------------


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random negative
    (ties count half), by ranks."""
    labels = labels.astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # 1-based, ties share their mean rank
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def figures(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict:
    labels = labels.astype(bool)
    pred = scores >= threshold
    tp, fp = int((pred & labels).sum()), int((pred & ~labels).sum())
    fn = int((~pred & labels).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"documents": int(len(labels)), "positives": int(labels.sum()), "threshold": threshold,
            "precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
            "accuracy": round(float((pred == labels).mean()), 4), "auc": round(auc(scores, labels), 4)}


# --- training -----------------------------------------------------------------------------------------------


def _write_training_file(path: Path, rows: list[tuple[str, int]], params: TrainParams) -> None:
    order = np.random.default_rng(params.seed).permutation(len(rows))  # classes interleaved for SGD
    labels = (LABEL_PREFIX + params.negative_label, LABEL_PREFIX + params.positive_label)
    with open(path, "w", encoding="utf-8", errors="replace") as f:
        for i in order:
            line, y = rows[i]
            f.write(f"{labels[y]} {line}\n")


def _evaluate(model, rows: list[tuple[str, int]], label: str) -> dict:
    scores = predict_label(model, [line for line, _ in rows], label)
    return figures(scores, np.array([y for _, y in rows]))


def train_classifier(positives: list[str], negatives: list[str], sources: list[Source], out: str,
                     params: TrainParams | None = None, quantize: bool = False, storage: Storage | None = None,
                     log=print) -> dict:
    """Train, evaluate on the held-out split, save model.bin (+ model.ftz) and the card in `out` (a folder
    or URI); return the card."""
    import fasttext

    params = params or TrainParams()
    params.check()
    storage = storage or default_storage()
    data = build_dataset(positives, negatives, params)
    label = LABEL_PREFIX + params.positive_label
    counts = {split: {"positive": sum(y for _, y in rows), "negative": sum(1 - y for _, y in rows)}
              for split, rows in (("train", data.train), ("held_out", data.test))}
    log(f"classifier train: {counts['train']['positive']} positive / {counts['train']['negative']} negative "
        f"texts to train on, {counts['held_out']['positive']} / {counts['held_out']['negative']} held out")
    clean_stage_partials(storage, out)  # what a killed run of this command left
    with private_tmpdir("ft") as tmp:
        train_file = Path(tmp) / "train.txt"
        _write_training_file(train_file, data.train, params)
        started = time.perf_counter()
        model = fasttext.train_supervised(
            input=str(train_file), lr=params.lr, epoch=params.epoch, wordNgrams=params.word_ngrams,
            dim=params.dim, minCount=params.min_count, bucket=params.bucket, loss="softmax",
            thread=params.threads, seed=params.seed, verbose=0)
        seconds = time.perf_counter() - started
        metrics = {"train": _evaluate(model, data.train, label), "held_out": _evaluate(model, data.test, label)}
        files = {}
        model.save_model(str(Path(tmp) / "model.bin"))
        files["model.bin"] = Path(tmp) / "model.bin"
        if quantize:
            model.quantize(input=str(train_file), retrain=True, qnorm=True, thread=params.threads, verbose=0)
            model.save_model(str(Path(tmp) / "model.ftz"))
            files["model.ftz"] = Path(tmp) / "model.ftz"
            metrics["held_out_quantized"] = _evaluate(model, data.test, label)
        card = {
            "kind": "fasttext", "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "labels": {"positive": params.positive_label, "negative": params.negative_label},
            "score": f"P({label}), on text prepared by crawlproc.classify.fasttext.fasttext_line "
                     "(newlines -> spaces)",
            "sources": [asdict(s) for s in sources], "documents": counts, "dropped": data.dropped,
            "params": asdict(params), "train_seconds": round(seconds, 2), "metrics": metrics,
            "files": {},
        }
        for name, path in files.items():
            blob = path.read_bytes()
            card["files"][name] = {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
            storage.makedirs(out)
            storage.write_bytes(f"{out.rstrip('/')}/{name}", blob)
    storage.write_json(f"{out.rstrip('/')}/card.json", card)
    storage.write_bytes(f"{out.rstrip('/')}/README.md", model_card_markdown(card, out).encode())
    return card


def model_card_markdown(card: dict, out: str) -> str:
    pos, neg = card["labels"]["positive"], card["labels"]["negative"]
    lines = [
        f"# fastText quality classifier ({pos} vs {neg})", "",
        f"Trained by `crawlproc classifier train` on {card['created_at']}. Score: {card['score']}.", "",
        "## Data", "", "| class | source | documents | sha256 |", "|---|---|---:|---|",
    ]
    for s in card["sources"]:
        extra = f" (sampled from {s['sampled_from']:,})" if s.get("sampled_from") else ""
        lines.append(f"| {s['label']} | `{s['path']}` | {s['documents']:,}{extra} | `{(s['sha256'] or '')[:16]}` |")
    d = card["documents"]
    lines += ["", f"Used for training: {d['train']['positive']:,} positive, {d['train']['negative']:,} negative; "
              f"held out (by a hash of the text, {card['params']['holdout']:.0%}): {d['held_out']['positive']:,} "
              f"positive, {d['held_out']['negative']:,} negative. Dropped: "
              + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in card["dropped"].items()) + ".", "",
              "## Parameters", "", "| parameter | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in card["params"].items()]
    lines += ["", "## Held-out figures (threshold 0.5)", "",
              "| split | documents | precision | recall | F1 | accuracy | AUC |", "|---|---:|---:|---:|---:|---:|---:|"]
    for split, m in card["metrics"].items():
        lines.append(f"| {split} | {m['documents']:,} | {m['precision']} | {m['recall']} | {m['f1']} | "
                     f"{m['accuracy']} | {m['auc']} |")
    model = "model.ftz" if "model.ftz" in card["files"] else "model.bin"
    lines += ["", "## Files", ""]
    lines += [f"- `{name}`: {f['bytes']:,} bytes, sha256 `{f['sha256']}`" for name, f in card["files"].items()]
    lines += ["", "## Use in a recipe", "", "```toml", "[classifiers.quality]", 'kind = "fasttext"',
              f'model = "{out.rstrip("/")}/{model}"', f'label = "{pos}"', "keep_fraction = 0.1  # or threshold = 0.5",
              "```", ""]
    return "\n".join(lines)

