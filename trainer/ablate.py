"""An ablation's two pure parts (no Ray here; pipelines/stages/ablate.py runs them):

- `train_and_evaluate`: one unit, one arm and one seed. It trains (continuing from the run's last checkpoint
  when there is one, never again once finished) and scores the final weights on the ablation's benchmarks and
  reference sets;
- `ablation_table`: every unit's scores -> one table per metric: each arm's mean, its spread over seeds
  (sample standard deviation), and whether its difference from the baseline arm (the first) and from each
  other arm exceeds that spread.
"""

from __future__ import annotations

import contextlib
import io
import math
import statistics
import time

import torch

from crawlproc.store.layout import Ablation, TrainRunDir
from crawlproc.store.storage import Storage, default_storage, join, normalize

SCORE = "all_tasks/score"  # the mean over tasks of acc_norm (acc for one-choice tasks), as FineWeb aggregates


def lower_is_better(metric: str) -> bool:
    return metric.endswith(("/bpb", "/perplexity"))


def _finished_step(run: str, storage: Storage) -> int:
    pointer = storage.read_json(join(TrainRunDir(run, storage).ckpt_dir, "latest.json"), None)
    return int(pointer["step"]) if isinstance(pointer, dict) and isinstance(pointer.get("step"), int) else 0


def train_and_evaluate(arm: str, seed: int, tokens: str, run: str, train: dict, eval_spec: dict, train_fp: str,
                       threads: int = 1, storage: Storage | None = None) -> dict:
    """One arm x seed: train `train` (TrainConfig fields) on `tokens` into `run`, then score the final weights.
    `train_fp` names what the training depends on (the caller's fingerprint of the token set, the settings and
    the seed): a run folder left by another training setup (another train_fp) is cleared first; a run with checkpoints
    continues from the last one; a finished run is not trained again. Returns the unit's record."""
    from trainer.config import TrainConfig
    from trainer.eval_run import evaluate_model
    from trainer.evaluate import EvalSpec, flat_metrics
    from trainer.train import run_training

    storage = storage or default_storage()
    torch.set_num_threads(max(1, int(threads)))
    run = normalize(run)
    rundir = TrainRunDir(run, storage)
    state_uri = rundir.path(Ablation.RUN_STATE)
    state = storage.read_json(state_uri, None)
    if isinstance(state, dict) and state.get("train_fp") != train_fp:
        storage.delete_tree(run)  # trained with other settings or data: start over
    storage.write_json(state_uri, {"arm": arm, "seed": int(seed), "train_fp": train_fp, "tokens": tokens})
    cfg = TrainConfig(**{**train, "tokens": tokens, "out": run, "seed": int(seed), "resume": True})
    started_at = _finished_step(run, storage)
    t0 = time.perf_counter()
    log = io.StringIO()  # the run's own log, kept with it (train.log) instead of flooding the driver
    with contextlib.redirect_stdout(log):
        summary = run_training(cfg, storage=storage) if started_at < cfg.max_steps else {}
    if log.getvalue():
        log_uri = rundir.path(Ablation.RUN_LOG)
        previous = storage.read_bytes(log_uri) if storage.exists(log_uri) else b""
        storage.write_bytes(log_uri, previous + log.getvalue().encode())
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = evaluate_model(run, EvalSpec(**eval_spec), "auto", storage=storage, out=rundir.path(Ablation.RUN_EVAL))
    metrics = flat_metrics(result)
    scores = [t.get("acc_norm", t["acc"]) for t in result["tasks"] if t.get("acc") is not None]
    if scores:
        metrics[SCORE] = sum(scores) / len(scores)
    return {"arm": arm, "seed": int(seed), "metrics": metrics, "resumed_from_step": started_at,
            "trained": started_at < cfg.max_steps, "steps": cfg.max_steps, "val_loss": summary.get("val_loss"),
            "train_seconds": round(train_s, 2), "eval_seconds": round(time.perf_counter() - t0, 2),
            "tokens_per_step": cfg.batch_size * (cfg.block_size or 0) * cfg.grad_accum}


# --- the table --------------------------------------------------------------------------------------------


def _stats(values: list[float]) -> dict:
    n = len(values)
    return {"n": n, "values": values, "mean": sum(values) / n if n else None,
            "std": statistics.stdev(values) if n >= 2 else None,
            "min": min(values) if n else None, "max": max(values) if n else None}


def _exceeds(a: dict, b: dict) -> bool | None:
    """|mean a - mean b| > the larger of the two spreads over seeds; None when a spread is unknown (< 2 seeds)."""
    if a["std"] is None or b["std"] is None:
        return None
    return abs(a["mean"] - b["mean"]) > max(a["std"], b["std"])


def _welch_t(a: dict, b: dict) -> float | None:
    if a["std"] is None or b["std"] is None:
        return None
    se = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    return (a["mean"] - b["mean"]) / se if se > 0 else None


def ablation_table(records: list[dict], arms: list[str], seeds: list[int]) -> dict:
    """records: the units' records (train_and_evaluate). One table per metric; the first arm is the baseline."""
    by = {(r["arm"], r["seed"]): r for r in records}
    missing = [f"{a}~s{s}" for a in arms for s in seeds if (a, s) not in by]
    names = sorted({m for r in records for m in r["metrics"]}, key=lambda m: (m != SCORE, m))
    tables = []
    for metric in names:
        lower = lower_is_better(metric)
        rows = {a: _stats([by[(a, s)]["metrics"][metric] for s in seeds
                           if (a, s) in by and metric in by[(a, s)]["metrics"]]) for a in arms}
        base = rows[arms[0]]
        for a in arms:
            r = rows[a]
            r["delta_vs_baseline"] = (r["mean"] - base["mean"]) if r["n"] and base["n"] else None
            r["exceeds_spread"] = _exceeds(r, base) if a != arms[0] and r["n"] and base["n"] else None
        ranked = sorted((a for a in arms if rows[a]["n"]), key=lambda a: rows[a]["mean"], reverse=not lower)
        pairs = [{"a": a, "b": b, "delta": rows[a]["mean"] - rows[b]["mean"], "exceeds_spread": _exceeds(rows[a], rows[b]),
                  "welch_t": _welch_t(rows[a], rows[b])}
                 for i, a in enumerate(arms) for b in arms[i + 1:] if rows[a]["n"] and rows[b]["n"]]
        best = ranked[0] if ranked else None
        separated = (_exceeds(rows[ranked[0]], rows[ranked[1]]) if len(ranked) > 1 else None)
        tables.append({"metric": metric, "better": "lower" if lower else "higher", "arms": rows, "ranking": ranked,
                       "best": best, "best_exceeds_spread_of_next": separated, "pairs": pairs})
    return {"arms": arms, "seeds": seeds, "baseline": arms[0] if arms else None, "units": len(records),
            "missing": missing, "metrics": tables,
            "rule": "exceeds_spread: |difference of the means| > the larger standard deviation over seeds of the two "
                    "arms (sample std, n-1); welch_t: that difference over its standard error"}


def table_markdown(table: dict, digits: int = 4) -> str:
    """The tables as Markdown: one per metric, arms as rows, `*` where the difference exceeds the spread."""
    out = []
    for t in table["metrics"]:
        out.append(f"**{t['metric']}** ({t['better']} is better; best: {t['best']}"
                   + ("" if t["best_exceeds_spread_of_next"] is None else
                      f", {'beyond' if t['best_exceeds_spread_of_next'] else 'within'} the spread of the next")
                   + ")\n")
        out.append("| arm | mean | std over seeds | min | max | seeds | vs baseline | exceeds spread |")
        out.append("|---|---:|---:|---:|---:|---:|---:|:---:|")
        for arm in table["arms"]:
            r = t["arms"][arm]

            def f(v):
                return "-" if v is None else f"{v:.{digits}f}"

            delta = "baseline" if arm == table["baseline"] else (
                "-" if r["delta_vs_baseline"] is None else f"{r['delta_vs_baseline']:+.{digits}f}")
            mark = {True: "yes", False: "no", None: "-"}[r["exceeds_spread"]]
            out.append(f"| {arm} | {f(r['mean'])} | {f(r['std'])} | {f(r['min'])} | {f(r['max'])} | {r['n']} | "
                       f"{delta} | {mark if arm != table['baseline'] else ''} |")
        out.append("")
    if table["missing"]:
        out.append(f"Missing units: {', '.join(table['missing'])}\n")
    return "\n".join(out)
