"""Collect the numbers of a run from its output root into one plain dict (JSON-able), for the HTML report.

Reads only what the stages already wrote (stats/, removed/, docs/, final/, dedup/, tokens/, train/); a part
that has not run yet becomes None ("not run"), and an unreadable file is listed under "problems" instead of
failing the report.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crawlproc.store.layout import SAFE_NAME, Layout, Snapshot, TrainRunDir
from crawlproc.store.storage import Storage, basename
from crawlproc.extract.registry import step_names
from crawlproc.extract.stats import FileStats, snapshot_stats
from pipelines.inspect.report.classify import collect_classify
from pipelines.inspect.report.decontam import collect_decontam
from pipelines.inspect.report.timeline import collect_timeline, project_snapshot
from tokenizer.tokenset import ShardError, read_manifest

# The extract stage's steps in pipeline order (crawlproc/extract/registry.py); others (plugins') are appended after them.
STEP_ORDER = step_names()
LENGTH_EDGES = [0, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000]
EXAMPLES_PER_REASON = 3
# What reading a damaged or foreign Parquet file raises: it is listed under "problems" and skipped.
PARQUET_ERRORS = (pa.ArrowException, OSError, ValueError)
MAX_CURVE_POINTS = 2000
SNIPPET_CHARS = 280  # of a removed document's text, shown beside its removal reason
DEFAULT_PRICE = 0.05  # per core-hour, for the whole-snapshot projection (an assumption the report shows)


def reason_key(removed_by: str, reason: str | None) -> str:
    """The stats key of a removal, as the extract stage counts it (language reasons drop the score:
    "de:0.99" -> "de", "precheck:de:0.99" -> "precheck:de")."""
    reason = reason or ""
    if removed_by == "language":
        reason = reason.rsplit(":", 1)[0]
    return f"{removed_by}:{reason}" if reason else removed_by


def _read_json(storage: Storage, uri: str, problems: list[str]):
    try:
        return json.loads(storage.read_bytes(uri))
    except (OSError, ValueError) as e:
        problems.append(f"{uri}: unreadable JSON ({e})")
        return None


def _count(v, where: str, problems: list[str]) -> int:
    """A count from a JSON file written by another stage; a wrong type is reported and counts as 0."""
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        problems.append(f"{where}: expected a number, got {v!r}")
        return 0
    return int(v)


def _dict(v) -> dict:
    return v if isinstance(v, dict) else {}


def _num_rows(storage: Storage, files: list[str], problems: list[str]) -> int:
    n = 0
    for f in files:
        try:
            n += storage.parquet_file(f).metadata.num_rows
        except PARQUET_ERRORS as e:  # a truncated or foreign file: say so, count the rest
            problems.append(f"{f}: unreadable Parquet ({e})")
    return n


def _sum_stats(stats: list[FileStats]) -> dict:
    total = FileStats.total(stats)
    order = [s for s in STEP_ORDER if s in total.steps] + [s for s in total.steps if s not in STEP_ORDER]
    return {"records": total.records, "responses": total.responses, "kept": total.kept, "removed": total.removed,
            "skipped": total.skipped, "steps": {name: total.steps[name] for name in order},
            "removed_reasons": total.removed_reasons, "languages": total.languages,
            "by_language": total.by_language, "seconds": total.seconds}


def _funnel(totals: dict, dedup: dict | None, final_rows: int | None, tokens: dict | None,
            decontam: dict | None = None) -> list[dict]:
    """Documents remaining after each step: records -> responses -> each stage -> kept -> dedup -> final."""
    steps = [{"step": "WARC records", "docs": totals["records"]},
             {"step": "HTTP responses", "docs": totals["responses"]}]
    for name, c in totals["steps"].items():
        n_in, removed = int(c.get("in", 0)), int(c.get("removed", 0))
        if n_in == 0 and removed == 0:
            continue  # a disabled stage saw nothing: it is not a step of this funnel
        if not steps or steps[-1]["docs"] != n_in:
            steps.append({"step": f"into {name}", "docs": n_in})
        steps.append({"step": f"after {name}", "docs": n_in - removed, "removed": removed, "stage": name})
    steps.append({"step": "kept by filters", "docs": totals["kept"]})
    if dedup is not None:
        dropped = int(dedup.get("exact_duplicates") or 0) + int(dedup.get("near_duplicates") or 0)
        docs = int(dedup.get("documents") or 0)
        kept = int(dedup["kept"]) if isinstance(dedup.get("kept"), int) else docs - dropped
        steps.append({"step": "after dedup", "docs": kept, "removed": dropped, "stage": "dedup"})
    if final_rows is not None:
        steps.append({"step": "final (after PII)", "docs": final_rows})
    if decontam is not None:
        steps.append({"step": "after decontamination", "docs": decontam["kept"], "removed": decontam["removed"],
                      "stage": "decontaminate"})
    if tokens and tokens.get("documents"):
        steps.append({"step": "tokenized", "docs": tokens["documents"], "tokens": tokens["tokens"]})
    return steps


def snippet(text: str | None, n: int = SNIPPET_CHARS) -> str:
    """The start of a text on one line (runs of white space as one space), cut at a word with an ellipsis."""
    flat = " ".join((text or "").split())
    if len(flat) <= n:
        return flat
    cut = flat[:n].rsplit(" ", 1)[0] if " " in flat[: n] else flat[:n]
    return cut + " …"


def _removal_examples(storage: Storage, files: list[str], problems: list[str]) -> tuple[dict[str, list[dict]], Counter]:
    """Up to EXAMPLES_PER_REASON (url, id, text snippet) per reason key, and the per-key counts, from
    removed/*.parquet. The text column is read only from files that give an example."""
    examples: dict[str, list[dict]] = {}
    counts: Counter = Counter()
    for f in files:
        try:
            t = storage.read_table(f, columns=["id", "url", "removed_by", "removed_reason"])
        except PARQUET_ERRORS as e:
            problems.append(f"{f}: unreadable Parquet ({e})")
            continue
        wanted: list[tuple[int, dict]] = []
        for i, row in enumerate(t.to_pylist()):
            key = reason_key(row["removed_by"] or "?", row["removed_reason"])
            counts[key] += 1
            ex = examples.setdefault(key, [])
            if len(ex) < EXAMPLES_PER_REASON:
                ex.append({"url": row["url"], "id": row["id"], "reason": row["removed_reason"], "snippet": ""})
                wanted.append((i, ex[-1]))
        if wanted:
            try:
                text = storage.read_table(f, columns=["text"]).column("text")
            except PARQUET_ERRORS as e:
                problems.append(f"{f}: unreadable Parquet ({e})")
                continue
            for i, ex in wanted:
                ex["snippet"] = snippet(text[i].as_py())
    return examples, counts


def length_histogram(storage: Storage, files: list[str], problems: list[str], max_files: int = 16,
                     max_docs: int = 500_000) -> dict | None:
    """Histogram of characters per document, or None without files. Big runs are sampled: at most
    `max_files` files spread evenly over the list, and reading stops after `max_docs` documents."""
    if not files:
        return None
    step = max(1, len(files) // max_files)
    chosen = files[::step][:max_files]
    lengths, read, n = [], 0, 0
    for f in chosen:
        if n >= max_docs:
            break
        read += 1
        try:
            col = storage.read_table(f, columns=["text"]).column("text")
        except PARQUET_ERRORS as e:
            problems.append(f"{f}: unreadable Parquet ({e})")
            continue
        lengths.append(pc.utf8_length(col).to_numpy(zero_copy_only=False))
        n += len(lengths[-1])
    arr = np.concatenate(lengths) if lengths else np.array([], dtype=np.int64)
    if arr.size == 0:
        return {"documents": 0, "files_read": read, "files_total": len(files), "bins": []}
    edges = LENGTH_EDGES + [max(int(arr.max()) + 1, LENGTH_EDGES[-1] + 1)]
    counts, _ = np.histogram(arr, bins=edges)
    bins = [{"lo": int(edges[i]), "hi": int(edges[i + 1]), "count": int(counts[i])} for i in range(len(counts))]
    q = np.percentile(arr, [10, 50, 90])
    return {
        "documents": int(arr.size), "files_read": read, "files_total": len(files),
        "mean": float(arr.mean()), "p10": float(q[0]), "median": float(q[1]), "p90": float(q[2]),
        "max": int(arr.max()), "bins": bins,
    }


def _failed(snap: Snapshot) -> list[dict]:
    return [{"stem": key, "file": rec.get("source") or rec.get("file"), "error": rec.get("error"),
             "type": (rec.get("failure") or {}).get("type"), "at": rec.get("at")}
            for key, rec in snap.markers.failed().items()]


def collect_snapshot(snap: Snapshot, problems: list[str], tokens_by_source: dict[str, dict],
                     token_sets: list[str] = (), price: float = DEFAULT_PRICE,
                     snapshot_files: int | None = None) -> dict:
    storage = snap.storage
    records: dict[str, dict] = {}
    by_stem, bad = snapshot_stats(snap, records_out=records)
    problems.extend(bad)
    stats = list(by_stem.values())
    totals = _sum_stats(stats)
    examples, parquet_counts = _removal_examples(storage, snap.files("removed"), problems)
    # The stats are the authority for counts; without them (stats lost or foreign output) count the rows.
    counts = Counter(totals["removed_reasons"]) if stats else parquet_counts
    reasons = []
    for key, n in counts.most_common():
        stage, _, reason = key.partition(":")
        reasons.append({"key": key, "stage": stage, "reason": reason, "count": n, "examples": examples.get(key, [])})

    dedup = None
    where = snap.dedup.summary_uri
    if storage.exists(where):
        d = _read_json(storage, where, problems)
        if isinstance(d, dict):
            dedup = dict(d)
            for key in ("documents", "exact_duplicates", "near_duplicates", "clusters"):
                dedup[key] = _count(d.get(key), f"{where} {key}", problems)
            if "kept" in d:
                dedup["kept"] = _count(d.get("kept"), f"{where} kept", problems)
            dedup["complete"] = storage.exists(snap.dedup.done_uri)
            sizes = {}
            for k, v in (d.get("cluster_sizes") or {}).items():
                try:
                    sizes[int(k)] = int(v)
                except (TypeError, ValueError):
                    problems.append(f"{where}: bad cluster size {k!r}: {v!r}")
            dedup["cluster_sizes"] = {str(k): sizes[k] for k in sorted(sizes)}

    final_files = snap.files("final")
    final_rows = _num_rows(storage, final_files, problems) if final_files else None
    tokens = tokens_by_source.get(snap.name)
    decontam = collect_decontam(snap, problems)
    done = len(snap.markers.done())
    timeline = collect_timeline(snap.layout, snap.name, records, dedup, list(token_sets))
    return {
        "timeline": timeline,
        "projection": project_snapshot(snap.name, snap.layout, records, timeline, price, snapshot_files),
        "name": snap.name,
        "files": {
            "stats": len(stats), "done": done, "failed": _failed(snap),
            "incomplete": [{"stem": s.stem, "error": s.error} for s in stats if s.error or not s.complete],
        },
        "totals": {k: totals[k] for k in ("records", "responses", "kept", "removed")},
        "skipped": totals["skipped"],
        "steps": totals["steps"],
        "seconds": totals["seconds"],
        "funnel": _funnel(totals, dedup, final_rows, tokens, decontam) if stats else [],
        "removed_reasons": reasons,
        "languages": dict(sorted(totals["languages"].items(), key=lambda kv: -kv[1])),
        "by_language": totals["by_language"],
        "lengths": {
            "docs": length_histogram(storage, snap.files("docs"), problems),
            "final": length_histogram(storage, final_files, problems),
        },
        "dedup": dedup,
        "decontam": decontam,
        "classify": collect_classify(snap, problems),
        "final_documents": final_rows,
        "tokens": tokens,
    }


def _shard_sources(m: dict) -> dict[str, list[str]]:
    """Shard file -> the snapshots its documents come from: a part (one input file) is named
    <snapshot>~<stem> (pipelines/stages/tokenize.py); older manifests listed them per shard."""
    by = {}
    for key, part in _dict(m.get("parts")).items():
        for s in _dict(part).get("shards") or []:
            if isinstance(s, dict):
                by[s.get("file")] = [key.split("~", 1)[0]]
    return by


def collect_tokens(layout: Layout, problems: list[str]) -> list[dict]:
    sets = []
    storage = layout.storage
    for d in storage.list(layout.tokens_root, include_dirs=True):
        if not d.is_dir or not SAFE_NAME.match(d.name):
            continue
        folder = layout.tokens(d.name)
        try:
            found = read_manifest(folder)
        except ShardError as e:
            problems.append(str(e))
            continue
        if found is None:
            problems.append(f"{folder.manifest_uri} not found: token set not finished (its tokenize or mix stopped "
                            "or failed)")
            continue
        m = found[0]
        sources = _shard_sources(m)
        shards = [dict(s) for s in m["shards"]]
        for s in shards:
            if not isinstance(s.get("sources"), list):
                s["sources"] = sources.get(s.get("file"), [])
        sets.append({
            "name": m.get("name") or d.name,
            "dir": d.name,
            "dtype": m.get("dtype"),
            "tokenizer": _dict(m.get("tokenizer")),
            "shards": [{k: s.get(k) for k in ("split", "file", "tokens", "documents", "sources")} for s in shards],
            "totals": {k: _dict(v) for k, v in _dict(m.get("totals")).items()},
            "skipped": _dict(m.get("skipped")),
            "mix": _mix(m.get("mix")),
        })
    return sets


def _mix(mix) -> dict | None:
    """What a mix (`crawlproc mix`) was made of: its sources, specs, weights, targets and realized tokens."""
    if not isinstance(mix, dict):
        return None
    sources = []
    for s in mix.get("sources") or []:
        if isinstance(s, dict):
            realized = _dict(s.get("realized"))
            sources.append({"uri": s.get("uri"), "spec": s.get("spec"), "weight": s.get("weight"),
                            "target_tokens": s.get("target_tokens"),
                            "train": _dict(realized.get("train")), "val": _dict(realized.get("val")),
                            "available": _dict(_dict(s.get("available")).get("train"))})
    return {"digest": mix.get("digest"), "seed": mix.get("seed"), "budget_tokens": mix.get("budget_tokens"),
            "duplicates_dropped": mix.get("duplicates_dropped"), "sources": sources}


def tokens_by_source(token_sets: list[dict]) -> dict[str, dict]:
    """Tokens and documents per snapshot, from shards made of that snapshot alone; shards mixing several
    snapshots are counted in `shared` (their split per snapshot is not recorded)."""
    by: dict[str, dict] = {}
    for ts in token_sets:
        for s in ts["shards"]:
            sources = s.get("sources") or []
            for src in sources:
                e = by.setdefault(src, {"tokens": 0, "documents": 0, "shared_tokens": 0, "sets": []})
                if ts["name"] not in e["sets"]:
                    e["sets"].append(ts["name"])
                if len(sources) == 1:
                    e["tokens"] += int(s.get("tokens") or 0)
                    e["documents"] += int(s.get("documents") or 0)
                else:
                    e["shared_tokens"] += int(s.get("tokens") or 0)
    return by


def _thin(points: list[tuple[float, float]], n: int = MAX_CURVE_POINTS) -> list[tuple[float, float]]:
    if len(points) <= n:
        return points
    step = len(points) / n
    kept = [points[int(i * step)] for i in range(n)]
    return kept + [points[-1]] if kept[-1] != points[-1] else kept


def _jsonl(storage: Storage, path: str, problems: list[str]) -> list[dict]:
    rows, bad = [], 0
    try:
        lines = storage.read_bytes(path).decode("utf-8", errors="replace").splitlines()
    except OSError as e:
        problems.append(f"{path}: unreadable ({e})")
        return rows
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(obj, dict):
            rows.append(obj)
        else:
            bad += 1
    if bad:  # e.g. the last line of a run killed mid-write
        problems.append(f"{path}: skipped {bad} malformed line(s)")
    return rows


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) else None


def collect_training(layout: Layout, problems: list[str], extra_runs: list[str] | tuple = (),
                     max_samples: int = 12) -> list[dict]:
    """Every run under <out>/train/, plus run directories trained elsewhere (`crawlproc train --out`)."""
    from crawlproc.store.storage import normalize

    runs = []
    storage = layout.storage
    dirs = [e.uri for e in storage.list(layout.train_root, include_dirs=True) if e.is_dir]
    for extra in map(normalize, map(str, extra_runs)):
        if not any(storage.exists(TrainRunDir(extra, storage).path(n)) for n in TrainRunDir.RECORDS):
            problems.append(f"{extra}: training run directory does not exist")
        elif extra not in dirs:
            dirs.append(extra)
    for d in dirs:
        run = TrainRunDir(d, storage)
        has = {e.name for e in storage.list(d)}
        metrics = _jsonl(storage, run.path(run.METRICS), problems) if run.METRICS in has else []
        train = [(float(m["step"]), _num(m.get("train_loss"))) for m in metrics
                 if _num(m.get("step")) is not None and _num(m.get("train_loss")) is not None]
        val = [(float(m["step"]), _num(m.get("val_loss"))) for m in metrics
               if _num(m.get("step")) is not None and _num(m.get("val_loss")) is not None]
        tps = [_num(m.get("tokens_per_s")) for m in metrics if _num(m.get("tokens_per_s")) is not None]
        mfu = [_num(m.get("mfu")) for m in metrics if _num(m.get("mfu")) is not None]
        benchmarks = _benchmarks(metrics)
        final_eval = _read_json(storage, run.eval_uri, problems) if run.EVAL in has else None
        samples = _jsonl(storage, run.path(run.SAMPLES), problems) if run.SAMPLES in has else []
        config = _read_json(storage, run.config_uri, problems) if run.CONFIG in has else None
        if not metrics and not samples:
            problems.append(f"{d}: training run without metrics.jsonl or samples.jsonl")
            continue
        runs.append({
            "run": basename(d),
            "train_loss": _thin(train),
            "val_loss": _thin(val),
            "steps": int(max((p[0] for p in train + val), default=0)),
            "last_train_loss": train[-1][1] if train else None,
            "last_val_loss": val[-1][1] if val else None,
            "best_val_loss": min((p[1] for p in val), default=None),
            "median_tokens_per_s": float(np.median(tps)) if tps else None,
            "median_mfu": float(np.median(mfu)) if mfu else None,
            "samples": [{"step": s.get("step"), "prompt": str(s.get("prompt", "")), "text": str(s.get("text", ""))}
                        for s in samples[-max_samples:]],
            "config": config if isinstance(config, dict) else None,
            "benchmarks": benchmarks,
            "eval": _eval_summary(final_eval),
        })
    return runs


def _benchmarks(metrics: list[dict]) -> dict:
    """The trainer's "bench" records as series over steps: {"tasks": {task: {metric: [(step, value)]}},
    "bpb": {reference: [(step, bits per byte)]}}."""
    tasks: dict[str, dict[str, list]] = {}
    bpb: dict[str, list] = {}
    for m in metrics:
        step = _num(m.get("step"))
        if m.get("event") != "bench" or step is None:
            continue
        for name, vals in _dict(m.get("tasks")).items():
            for metric, v in _dict(vals).items():
                if metric != "n" and _num(v) is not None:
                    tasks.setdefault(str(name), {}).setdefault(metric, []).append((step, _num(v)))
        for name, v in _dict(m.get("bpb")).items():
            if _num(v) is not None:
                bpb.setdefault(str(name), []).append((step, _num(v)))
    return {"tasks": tasks, "bpb": bpb}


def _eval_summary(result) -> dict | None:
    """A run's eval.json (the trainer's last evaluation, or `crawlproc eval`'s): task and reference rows."""
    if not isinstance(result, dict):
        return None
    keep = ("task", "n", "acc", "acc_norm", "perplexity", "sha256")
    return {"step": result.get("step") if _num(result.get("step")) is not None else _dict(result.get("model")).get("step"),
            "tasks": [{k: t.get(k) for k in keep} for t in result.get("tasks") or [] if isinstance(t, dict)],
            "references": [{k: r.get(k) for k in ("reference", "docs", "bytes", "bits_per_byte")}
                           for r in result.get("references") or [] if isinstance(r, dict)]}


def collect_ablations(layout: Layout, problems: list[str]) -> list[dict]:
    """Every ablation under <out>/ablate/ with its table (trainer/ablate.py ablation_table)."""
    out = []
    for name in layout.ablations():
        ab = layout.ablation(name)
        table = _read_json(layout.storage, ab.table_uri, problems) if layout.storage.exists(ab.table_uri) else None
        if not isinstance(table, dict) or not isinstance(table.get("metrics"), list):
            problems.append(f"{ab.uri}: ablation without a table.json (not finished yet?)")
            continue
        table = {k: v for k, v in table.items() if k != "records"}  # per-unit details stay in table.json
        out.append({"name": name, "uri": ab.uri, **table})
    return out


def collect_report(out: str, train_runs: list[str] | tuple = (), price: float = DEFAULT_PRICE,
                   snapshot_files: int | None = None) -> dict:
    """Everything the report shows, as a plain dict; missing parts are None/empty, never an error.
    `out` is a folder or an object-store URI; `train_runs` adds training run directories that are not under
    <out>/train/."""
    layout = Layout(str(out))
    problems: list[str] = []
    if layout.storage.local_path(layout.root) is not None and not layout.storage.exists(layout.root):
        problems.append(f"{layout.root}: output folder does not exist")
    token_sets = collect_tokens(layout, problems)
    by_source = tokens_by_source(token_sets)
    set_dirs = [ts["dir"] for ts in token_sets]
    snapshots = [collect_snapshot(layout.snapshot(name), problems, by_source, set_dirs, price, snapshot_files)
                 for name in layout.snapshots()]
    return {
        "out": layout.root,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "snapshots": snapshots,
        "tokens": token_sets,
        "training": collect_training(layout, problems, train_runs),
        "ablations": collect_ablations(layout, problems),
        "problems": problems,
    }
