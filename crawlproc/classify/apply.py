"""The classify stage's per-file work and its one whole-snapshot step, as plain functions.

1. `score_file`: one input file's scores by every classifier, one file per classifier
   (classify/scores/<name>/<stem>.parquet: id, score), each reused while it was made from the same input by
   the same model and settings (its fingerprint is in the file's metadata).
2. `resolve_rules`: each classifier's threshold: the recipe's, or for `keep_fraction` f the k-th highest score
   of the snapshot with k = ceil(f * scored documents). It depends on the multiset of scores only (not on the
   order of files or how many workers scored them), and the scores are read back from what step 1 stored,
   so a rerun derives the same threshold. Ties at the threshold are all kept.
3. `apply_file`: one input file split into classified/<stem>.parquet (kept, a `<name>_score` column per
   classifier) and classified_removed/<stem>.parquet (removed_by "classify", removed_reason
   "classifier:<name>" for the first classifier, in recipe order, that the document fails; every score).

A document with no text has no score (null): it is removed by any classifier that has a rule, and kept by
one that only scores (neither threshold nor keep_fraction).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from crawlproc.classify.base import Classifier
from crawlproc.classify.select import kth_highest_streamed
from crawlproc.store.fingerprint import digest
from crawlproc.store.layout import Snapshot

FP_KEY = b"crawlproc.classify"
STAGE = "classify"
PROBABILITY_BIN = 0.05  # histogram bin width of scores that are probabilities (20 bins over [0, 1])
REGRESSION_BIN = 0.25


@dataclass
class KeepRule:
    """How one classifier decides: keep when score >= threshold (`active`), or keep all (score only)."""

    name: str
    column: str
    active: bool
    threshold: float | None  # None while active: nothing was scored, nothing passes
    keep_fraction: float | None = None
    bin: float = PROBABILITY_BIN

    def keeps(self, scores: np.ndarray) -> np.ndarray:
        if not self.active:
            return np.ones(len(scores), dtype=bool)
        if self.threshold is None:
            return np.zeros(len(scores), dtype=bool)
        with np.errstate(invalid="ignore"):
            return scores >= self.threshold  # NaN (no text) compares False

    def to_dict(self) -> dict:
        return asdict(self)


def score_fingerprint(c: Classifier, input_identity: str) -> str:
    return digest({"scores": c.score_fingerprint, "input": input_identity})


def _stored_fingerprint(snap: Snapshot, uri: str) -> str | None:
    if not snap.storage.exists(uri):
        return None
    try:
        return ((snap.storage.read_schema(uri).metadata or {}).get(FP_KEY) or b"").decode() or None
    except (pa.ArrowException, OSError):
        return None  # a damaged file is redone


def score_file(uri: str, stem: str, input_identity: str, snap: Snapshot, classifiers: list[Classifier],
               remote: dict | None = None) -> dict:
    """Step 1 for one file; `remote[name](texts) -> scores` scores a remote classifier (an actor pool)."""
    storage = snap.storage
    todo = []
    for c in classifiers:
        fp = score_fingerprint(c, input_identity)
        out = snap.scores_path(c.name, stem)
        if _stored_fingerprint(snap, out) != fp:
            todo.append((c, fp, out))
    stats: dict = {"rescored": len(todo)}
    if not todo:
        return stats
    table = storage.read_table(uri, columns=["id", "text"])
    texts = table.column("text").to_pylist()
    stats["documents"] = len(texts)
    for c, fp, out in todo:
        t = time.perf_counter()
        scores = np.asarray(remote[c.name](texts) if c.remote else c.score(texts), dtype=np.float64)
        if len(scores) != len(texts):
            raise RuntimeError(f"classifier {c.name} gave {len(scores)} scores for {len(texts)} documents")
        stats[f"{c.name}_seconds"] = round(time.perf_counter() - t, 4)
        scored = pa.table({"id": table.column("id"), "score": pa.array(scores, pa.float64(), from_pandas=True)})
        storage.write_table(out, scored.replace_schema_metadata({FP_KEY: fp.encode()}))
    return stats


def score_chunks(snap: Snapshot, name: str, stems: list[str]):
    """One classifier's scores (no-text documents left out), one array per input file."""
    for s in stems:
        yield snap.storage.read_table(snap.scores_path(name, s), columns=["score"]).column("score").drop_null().to_numpy()


def resolve_rules(snap: Snapshot, classifiers: list[Classifier], stems: list[str]) -> list[KeepRule]:
    """Step 2: each classifier's rule for this snapshot (reads the scores only for keep_fraction)."""
    rules = []
    for c in classifiers:
        cfg = c.cfg
        threshold = cfg.threshold
        if cfg.keep_fraction is not None:
            # exact, over passes through the stored scores: the driver never holds the snapshot's scores
            threshold = kth_highest_streamed(lambda c=c: score_chunks(snap, c.name, stems), cfg.keep_fraction)
        rules.append(KeepRule(c.name, c.column, active=cfg.threshold is not None or cfg.keep_fraction is not None,
                          threshold=threshold, keep_fraction=cfg.keep_fraction, bin=histogram_bin(c)))
    return rules


def histogram_bin(c: Classifier) -> float:
    regression = c.kind == "transformers" and (c.identity or {}).get("label_id") is None
    return REGRESSION_BIN if regression else PROBABILITY_BIN


def histogram(scores: np.ndarray, width: float) -> dict[str, int]:
    """{bin index: count} with bin i = [i * width, (i + 1) * width); a probability of 1.0 goes in the last
    bin below it. Sparse, so units' histograms add up without knowing the range beforehand."""
    s = scores[~np.isnan(scores)]
    bins = np.floor(s / width + 1e-9).astype(np.int64)  # 1e-9: 0.15 / 0.05 is 2.9999999999999996
    if width == PROBABILITY_BIN:
        bins = np.minimum(bins, round(1 / width) - 1)
    idx, counts = np.unique(bins, return_counts=True)
    return {str(int(i)): int(n) for i, n in zip(idx, counts)}


def _with_scores(table: pa.Table, columns: dict[str, np.ndarray]) -> pa.Table:
    for name, values in columns.items():
        if name in table.column_names:
            table = table.drop_columns([name])
        table = table.append_column(pa.field(name, pa.float64()), pa.array(values, pa.float64(), from_pandas=True))
    return table


def apply_file(uri: str, stem: str, snap: Snapshot, rules: list[KeepRule]) -> dict:
    """Step 3 for one file; returns its counts and per-classifier score histograms."""
    storage = snap.storage
    table = storage.read_table(uri)
    n = table.num_rows
    ids = table.column("id")
    scores: dict[str, np.ndarray] = {}
    for r in rules:
        stored = storage.read_table(snap.scores_path(r.name, stem))
        if stored.num_rows != n or not stored.column("id").equals(ids):
            raise RuntimeError(f"the {r.name} scores of {stem} are not those of {uri} (different documents): "
                               "rerun the classify stage")
        scores[r.column] = stored.column("score").to_numpy().astype(np.float64)
    removed_by = np.full(n, -1, dtype=np.int64)  # index of the first rule the document fails
    passed = {}
    for i, r in enumerate(rules):
        keeps = r.keeps(scores[r.column])
        passed[r.name] = int(keeps.sum())
        removed_by[(removed_by < 0) & ~keeps] = i
    kept = removed_by < 0
    table = _with_scores(table, scores)
    storage.write_table(snap.path("classified", stem), table.filter(pa.array(kept)))
    gone = ~kept
    first = removed_by[gone]
    reasons = [f"classifier:{rules[i].name}" + (":no_text" if math.isnan(scores[rules[i].column][row]) else "")
               for i, row in zip(first, np.flatnonzero(gone))]
    removed = table.filter(pa.array(gone))
    removed = removed.append_column("removed_by", pa.array([STAGE] * removed.num_rows, pa.string()))
    removed = removed.append_column("removed_reason", pa.array(reasons, pa.string()))
    storage.write_table(snap.path("classified_removed", stem), removed)
    by = Counter(rules[i].name for i in first)
    return {"documents": n, "kept": int(kept.sum()), "removed": int(gone.sum()),
            "passed": passed, "removed_by": {r.name: by.get(r.name, 0) for r in rules},
            "histograms": {r.name: histogram(scores[r.column], r.bin) for r in rules}}


def score_checks(row: dict, rules: list[dict]) -> list[dict]:
    """A stored document's scores against the rules its snapshot was classified with (for explain):
    [{name, score, threshold, keep_fraction, active, passed}]."""
    out = []
    for r in rules:
        score = row.get(r["column"])
        rule = KeepRule(**r)
        passed = bool(rule.keeps(np.array([np.nan if score is None else score], dtype=np.float64))[0])
        out.append({"name": r["name"], "score": score, "threshold": r["threshold"],
                    "keep_fraction": r["keep_fraction"], "active": r["active"], "passed": passed})
    return out
