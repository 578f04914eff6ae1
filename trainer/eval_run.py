"""One evaluation of one model, as `crawlproc eval` runs it: load the model (trainer/loadmodel.py), score the
benchmarks and reference sets (trainer/evaluate.py), write the result. Under torchrun every rank scores a
slice and rank 0 writes.

    torchrun --nproc_per_node 8 -m pipelines.cli eval RUN_DIR --tasks suite
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict

import torch
import torch.distributed as dist

from crawlproc.store.layout import TrainRunDir
from crawlproc.store.storage import Storage, default_storage, join, normalize
from trainer.evaluate import EvalSpec, Evaluator, Gather, storage_reader


def default_output(target: str, loaded) -> str:
    """Where a result goes when --out is not given: beside the weights it scored."""
    target = normalize(target)
    if target.endswith(".pt"):
        return target[: -len(".pt")] + ".eval.json"
    return join(target, TrainRunDir.EVAL)


def evaluate_model(target: str, spec: EvalSpec, device: str = "auto", tokenizer: str | None = None,
                   storage: Storage | None = None, out: str | None = None, keep_items: bool = False,
                   write: bool = True) -> dict:
    """Score `target` (a run folder, a .pt checkpoint or a transformers folder) on `spec`; returns the result
    (on every rank) and, with `write`, rank 0 writes it as JSON to `out` (default: beside the weights)."""
    from trainer.loadmodel import load_lm
    from trainer.train import setup_distributed

    storage = storage or default_storage()
    d, dev = setup_distributed(device)
    try:
        autocast = (torch.autocast(device_type="cuda", dtype=torch.bfloat16)
                    if dev.type == "cuda" and torch.cuda.is_bf16_supported() else None)
        loaded = load_lm(target, dev, tokenizer, storage, autocast)
        evaluator = Evaluator(spec, loaded.lm, read=storage_reader(storage))
        with torch.no_grad():
            result = evaluator.run(Gather(d.rank, d.world_size), keep_items=keep_items)
        result = {"model": {"source": loaded.source, "kind": loaded.kind, "step": loaded.step, **(loaded.info or {})},
                  "spec": asdict(spec), "world_size": d.world_size, "device": str(dev), **result}
        if write and d.master:
            dest = normalize(out) if out else default_output(target, loaded)
            storage.write_bytes(dest, (json.dumps(result, indent=1) + "\n").encode())
            result["written_to"] = dest
        return result
    finally:
        if d.owns_group:
            with contextlib.suppress(Exception):
                dist.destroy_process_group()


def result_lines(result: dict) -> list[str]:
    """A small table for people: one line per task and per reference set."""
    lines = [f"{'task':<22}{'n':>7}  {'acc':>7}  {'acc_norm':>8}  {'ppl':>10}"]
    for t in result["tasks"]:
        norm = f"{t['acc_norm']:.4f}" if t.get("acc_norm") is not None else "-"
        ppl = f"{t['perplexity']:.4g}" if t.get("perplexity") is not None else "-"
        lines.append(f"{t['task']:<22}{t['n']:>7}  {t['acc']:>7.4f}  {norm:>8}  {ppl:>10}")
    for r in result["references"]:
        lines.append(f"{r['reference']:<22}{r['docs']:>7}  bits per byte {r['bits_per_byte']:.4f} "
                     f"({r['bytes']:,} bytes, {r['tokens']:,} tokens)")
    return lines
