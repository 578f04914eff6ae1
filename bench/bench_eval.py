"""Benchmark scoring: ours (`trainer/evaluate.py`, as `crawlproc eval` runs it) vs lm-eval-harness 0.4.13 on
the same hf/ export and the same items: agreement item by item, and speed per CPU-second.

    python bench/bench_eval.py [--items 300] [--docs 4] [--steps 60]

- The model: the tiny preset with a 512-token window (every continuation of the suite fits; lm-eval refuses
  longer ones), trained `--steps` steps on tests/data/trainer's articles with a 512-token BPE, exported to
  hf/ (GPT2LMHeadModel).
- The items: the first `--items` of each bundled task (HellaSwag, ARC-Easy, ARC-Challenge, PIQA, OpenBookQA,
  LAMBADA) and the first `--docs` documents of each reference set, written as small files (the same for
  both sides).
- lm-eval: `simple_evaluate(model="hf", dtype=float32, batch_size=32, device=cpu)` with the task YAMLs
  `crawlproc eval --lm-eval-tasks` writes, `log_samples=True`.
- Ours: the Evaluator on the same hf/ folder (transformers model, AutoTokenizer) with batch 32; and on the
  run's checkpoint (our model, our tokenizer).
- Both in this process, one torch thread, each timed as CPU seconds (user + system) and wall, models loaded
  before the clock starts on both sides (lm-eval's model load is inside its call: it is timed separately on
  ours and added).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import OUT, ROOT, measured  # noqa: E402


def build_model(out: Path, steps: int) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_trainer_data import build_tokens

    from trainer.train import TrainConfig, run_training

    run = out / "run"
    if (run / "hf" / "model.safetensors").is_file():
        return run
    shutil.rmtree(out, ignore_errors=True)
    tokens = build_tokens(out / "tokens")
    run_training(TrainConfig(tokens=str(tokens), out=str(run), preset="tiny", block_size=512, batch_size=4,
                             max_steps=steps, lr=3e-3, eval_interval=steps, eval_iters=1, sample_tokens=0,
                             device="cpu", eval_tasks=[], eval_refs=[]))
    return run


def small_suite(out: Path, items: int, docs: int) -> tuple[list[str], list[str]]:
    from crawlproc.evalsuite import REFERENCE_DIR, SUITE_DIR

    d = out / "suite"
    d.mkdir(parents=True, exist_ok=True)
    tasks, refs = [], []
    for path in sorted(SUITE_DIR.glob("*.jsonl")):
        lines = path.read_text().splitlines(True)
        fewshot = path.name.endswith(".fewshot.jsonl")
        (d / path.name).write_text("".join(lines if fewshot else lines[:items]))
        if not fewshot:
            tasks.append(str(d / path.name))
    for path in sorted(REFERENCE_DIR.glob("*.jsonl")):
        (d / path.name).write_text("".join(path.read_text().splitlines(True)[:docs]))
        refs.append(str(d / path.name))
    return tasks, refs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=300)
    p.add_argument("--docs", type=int, default=4)
    p.add_argument("--steps", type=int, default=60)
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    out = OUT / "eval"
    run = build_model(out, args.steps)
    tasks, refs = small_suite(out, args.items, args.docs)

    import lm_eval
    from lm_eval.tasks import TaskManager

    from crawlproc.evalsuite import write_lm_eval_tasks
    from trainer.evaluate import EvalSpec, Evaluator
    from trainer.loadmodel import load_lm

    names = write_lm_eval_tasks(tasks, refs, out / "yaml")
    theirs_t: dict = {}
    with measured(theirs_t):
        theirs = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={run / 'hf'},dtype=float32",
                                         tasks=names, task_manager=TaskManager(include_path=str(out / "yaml")),
                                         log_samples=True, batch_size=32, device="cpu")
    report = {"items_per_task": args.items, "docs_per_reference": args.docs, "lm_eval": lm_eval.__version__,
              "theirs": {k: round(v, 2) for k, v in theirs_t.items()}, "ours": {}, "agreement": {}}
    for target in ("hf", "checkpoint"):
        load_t: dict = {}
        with measured(load_t):
            loaded = load_lm(str(run / "hf") if target == "hf" else str(run))
        spec = EvalSpec(tasks, refs, None, None, 0, 32)
        t: dict = {}
        with measured(t):
            result = Evaluator(spec, loaded.lm).run(keep_items=True)
        report["ours"][target] = {"cpu_s": round(t["cpu_s"] + load_t["cpu_s"], 2),
                                  "wall_s": round(t["wall_s"] + load_t["wall_s"], 2)}
        agree = {}
        for task in result["tasks"]:
            samples = sorted(theirs["samples"][f"crawlproc_{task['task']}"], key=lambda s: s["doc_id"])
            diffs, same_acc, same_norm = [], 0, 0
            for s, item in zip(samples, task["items"], strict=True):
                their = [r[0] for r in s["filtered_resps"]]
                mine = item["lls"] if "lls" in item else [item["ll"]]
                diffs += [abs(a - b) for a, b in zip(their, mine, strict=True)]
                same_acc += s["acc"] == item["acc"]
                same_norm += s.get("acc_norm") == item.get("acc_norm")
            agree[task["task"]] = {"items": len(samples), "same_acc": same_acc, "same_acc_norm": same_norm,
                                   "max_abs_ll_diff": max(diffs)}
        for ref in result["references"]:
            their = theirs["results"][f"crawlproc_{ref['reference']}"]["bits_per_byte,none"]
            agree[ref["reference"]] = {"bpb_ours": ref["bits_per_byte"], "bpb_theirs": their,
                                       "rel_diff": abs(ref["bits_per_byte"] - their) / their}
        report["agreement"][target] = agree
    for t in report["ours"].values():
        t["ratio_per_cpu_s"] = round(report["theirs"]["cpu_s"] / t["cpu_s"], 3)
        t["ratio_wall"] = round(report["theirs"]["wall_s"] / t["wall_s"], 3)
    (out / "bench_eval.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    for target, t in report["ours"].items():
        a = report["agreement"][target]
        items = sum(v["items"] for v in a.values() if "items" in v)
        same = sum(min(v["same_acc"], v["same_acc_norm"]) for v in a.values() if "items" in v)
        print(f"ours ({target}) / lm-eval: {t['ratio_per_cpu_s']}x per CPU-second ({t['ratio_wall']}x wall); "
              f"{same}/{items} items agree on acc and acc_norm; max |d loglik| "
              f"{max(v['max_abs_ll_diff'] for v in a.values() if 'items' in v):.2e}; bits per byte rel. diff "
              f"{max(v['rel_diff'] for v in a.values() if 'rel_diff' in v):.1e}")
    print(f"({time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
