"""`crawlproc eval`: benchmark scores and bits per byte of a trained model (trainer/evaluate.py), scored as
lm-eval-harness scores them; `--lm-eval-tasks DIR` writes the lm-eval task YAMLs for the same items."""

from __future__ import annotations

import sys

from pipelines.commands.common import add_recipe_option


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="score a trained model on benchmarks (HellaSwag, ARC, PIQA, ...) and bits per byte",
        description="Score a model on multiple-choice benchmarks (acc and acc_norm, as lm-eval-harness), one-choice "
        "tasks (greedy accuracy and perplexity, LAMBADA) and bits per byte on reference text. MODEL is a training "
        "run folder (its latest checkpoint, else hf/), a .pt checkpoint, or a transformers folder (an hf/ export); "
        "a folder or a URI. Under torchrun each rank scores a slice: "
        "`torchrun --nproc_per_node 8 -m pipelines.cli eval RUN`.",
    )
    p.add_argument("model", help="run folder, .pt checkpoint, or transformers folder (local or URI)")
    p.add_argument("--tasks", default="suite",
                   help="comma-separated bundled task names (hellaswag, arc_easy, ...), `suite` (all bundled, the "
                   "default), task .jsonl files (crawlproc/evalsuite.py says the format), or `none`")
    p.add_argument("--refs", default="suite",
                   help="reference text sets for bits per byte: bundled names, `suite` (default), .jsonl files, `none`")
    p.add_argument("--limit", type=int, default=0, help="score the first N items of each task (default 0: all)")
    p.add_argument("--ref-limit", type=int, default=0, help="the first N documents of each reference set (0: all)")
    p.add_argument("--fewshot", type=int, default=0, help="few-shot examples from <task>.fewshot.jsonl (default 0)")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per forward pass")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--tokenizer", default=None,
                   help="for a checkpoint: a tokenizer.json or token set folder (default: the run's token set)")
    p.add_argument("--out", default=None,
                   help="result JSON (a path or URI; default: eval.json in the folder, or CKPT.eval.json)")
    p.add_argument("--items", action="store_true", help="include every item's log-likelihoods in the result")
    p.add_argument("--lm-eval-tasks", default=None, metavar="DIR",
                   help="also write lm-eval-harness task YAMLs for the same items into DIR (use as --include_path)")
    add_recipe_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pipelines.commands.common import guarded

    return guarded("eval", lambda: _run(args))


def _run(args) -> int:
    from crawlproc.evalsuite import EvalSuiteError, resolve_paths, write_lm_eval_tasks
    from crawlproc.store.storage import default_storage, storage_for
    from trainer.checkpoint import CheckpointError
    from trainer.eval_run import evaluate_model, result_lines
    from trainer.evaluate import EvalSpec

    names = {"tasks": args.tasks, "refs": args.refs}
    for k in ("limit", "ref_limit", "fewshot"):
        if getattr(args, k) < 0:
            print(f"crawlproc eval: --{k.replace('_', '-')} must be >= 0", file=sys.stderr)
            return 2
    if args.batch_size < 1:
        print("crawlproc eval: --batch-size must be >= 1", file=sys.stderr)
        return 2
    try:
        if args.recipe:
            from pipelines.commands.common import load_recipe

            storage = storage_for(load_recipe(args))
        else:
            storage = default_storage()
        tasks = resolve_paths(_split(names["tasks"]), "task")
        refs = resolve_paths(_split(names["refs"]), "reference")
        if not tasks and not refs:
            print("crawlproc eval: nothing to score (--tasks none and --refs none)", file=sys.stderr)
            return 2
        spec = EvalSpec(tasks, refs, args.limit or None, args.ref_limit or None, args.fewshot, args.batch_size)
        if args.lm_eval_tasks:
            if any("://" in p for p in tasks + refs):
                raise EvalSuiteError("--lm-eval-tasks needs local task files (lm-eval reads them by path)")
            written = write_lm_eval_tasks(tasks, refs, args.lm_eval_tasks)
            print(f"lm-eval tasks in {args.lm_eval_tasks}: {','.join(written)}\n  lm_eval --model hf --model_args "
                  f"pretrained=HF_FOLDER,dtype=float32 --tasks {','.join(written)} --include_path {args.lm_eval_tasks}"
                  + (f" --limit {args.limit}" if args.limit else "") + (f" --num_fewshot {args.fewshot}" if args.fewshot
                                                                          else ""))
        result = evaluate_model(args.model, spec, args.device, args.tokenizer, storage, args.out, args.items)
    except (EvalSuiteError, CheckpointError, FileNotFoundError, ValueError, ImportError) as e:
        print(f"crawlproc eval: error: {e}", file=sys.stderr)
        return 2
    if "written_to" in result:  # rank 0
        m = result["model"]
        print(f"model {m['source']} ({m['kind']}" + (f", step {m['step']}" if m.get("step") is not None else "")
              + f"), {result['world_size']} process(es) on {result['device']}")
        for line in result_lines(result):
            print(line)
        print(f"result: {result['written_to']}")
    return 0


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]
