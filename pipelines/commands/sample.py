"""`crawlproc sample`: continue prompts with a trained model (a run folder, a checkpoint or an hf/ export), as
nanoGPT's sample.py does."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="generate text from a trained model: a run folder, a step-*.pt checkpoint or an hf/ folder",
        description="Load a model trained by `crawlproc train` -- its run folder (the latest checkpoint), one "
        "ckpt/step-*.pt file, or its hf/ export -- with the tokenizer it was trained with, and print "
        "--num-samples continuations of the prompt. Paths may be URIs.",
    )
    p.add_argument("model", help="a training run folder, a checkpoint file or an hf/ folder")
    p.add_argument("--prompt", "--start", dest="prompt", default="",
                   help="text to continue ('' = from the end-of-text token; FILE:path reads it from a file)")
    p.add_argument("--num-samples", "-n", type=int, default=3, help="continuations to print (default: 3)")
    p.add_argument("--max-new-tokens", type=int, default=200, help="tokens per continuation at most (default: 200)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="< 1 sharper, > 1 more random, 0 = always the likeliest token (default: 0.8)")
    p.add_argument("--top-k", type=int, default=200, help="draw from the k likeliest tokens only (0 = all; "
                   "default: 200)")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--tokenizer", metavar="PATH", help="a tokenizer folder or tokenizer.json (default: the model's own)")
    p.set_defaults(func=main)


def main(args) -> int:
    import torch

    from crawlproc.store.storage import default_storage
    from trainer.sample import load_sampler

    prompt = args.prompt
    if prompt.startswith("FILE:"):
        with open(prompt[5:], encoding="utf-8") as f:
            prompt = f.read()
    if args.num_samples < 1 or args.max_new_tokens < 1 or args.top_k < 0 or args.temperature < 0:
        print("crawlproc sample: --num-samples and --max-new-tokens must be >= 1, --top-k and --temperature >= 0",
              file=sys.stderr)
        return 2
    try:
        sampler = load_sampler(args.model, default_storage(), args.device, args.tokenizer)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"crawlproc sample: {e}", file=sys.stderr)
        return 2
    print(f"sampling {sampler.source} on {sampler.device}", file=sys.stderr)
    gen = torch.Generator(device=sampler.device).manual_seed(args.seed)
    for _ in range(args.num_samples):
        text = sampler.continuation(prompt, args.max_new_tokens, args.temperature, args.top_k or None, gen)
        print(prompt + text)
        print("---------------")
    return 0
