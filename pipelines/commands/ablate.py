"""`crawlproc ablate`: train one model per arm and seed on data variants and compare them on benchmarks
(pipelines/stages/ablate.py)."""

from __future__ import annotations

import sys

from pipelines.commands.common import add_quiet_option, add_ray_option, add_recipe_option

EXAMPLE = """\
an ablation spec (TOML):

  [ablate]
  name = "filters"
  seeds = 3                        # or a list: [0, 1, 2]
  warcs = ["crawl/*.warc.gz"]      # what every recipe arm processes (or snapshot = "CC-MAIN-2024-10" + base_url)
  tasks = ["suite"]                # benchmarks (bundled names, `suite`, .jsonl files); refs = reference sets
  limit = 500                      # the first N items of each task (0: all); ref_limit: documents per reference set
  files = 6                        # the first N WARC files each recipe arm processes (default: all)

  [train]                          # the same for every arm: any `crawlproc train` setting
  preset = "tiny"
  max_steps = 400

  [[arms]]
  name = "fineweb"
  recipe = "fineweb"               # a bundled recipe or a recipe file: the arm's data is processed with it

  [[arms]]
  name = "mine"
  tokens = "out/tokens/mine"       # or a token set already made (all arms share one tokenizer)

  [[arms]]
  name = "mine-llama"              # the same data, another architecture, at equal tokens
  tokens = "out/tokens/mine"
  train = {arch = "llama"}
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ablate",
        help="compare data variants by the models they train: arms x seeds, benchmarks, a table with spreads",
        description="FineWeb's method as one command. Each arm is a token set, or WARC files / a snapshot that its "
        "own recipe processes first; all arms are tokenized with one shared tokenizer; one model per arm and seed "
        "is trained with the same settings and scored on the same benchmarks and reference sets. Writes "
        "<out>/ablate/<name>/table.json and table.md (per metric: each arm's mean, its spread over seeds, and "
        "whether differences exceed it). Resumable: a finished arm is never retrained, a killed one continues "
        "from its last checkpoint.",
        epilog=EXAMPLE, formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="output root (a folder or URI); the ablation goes to ablate/<name>/")
    p.add_argument("--spec", default=None, help="ablation spec TOML ([ablate], [train], [[arms]]; see below)")
    p.add_argument("--arm", action="append", default=[], metavar="NAME=SOURCE[,KEY=VALUE...]",
                   help="an arm: a token set folder/URI, or a recipe (file or bundled name) applied to --warcs or "
                   "--snapshot; KEY=VALUE are this arm's own training settings, e.g. `llama=out/tokens/x,arch=llama` "
                   "(repeatable; adds to the spec's arms)")
    p.add_argument("--name", default=None, help="ablation name (default: the spec's, else 'ablation')")
    p.add_argument("--warcs", action="append", default=None, help="WARC files or globs the recipe arms process")
    p.add_argument("--snapshot", default=None, help="Common Crawl snapshot the recipe arms process (a listing)")
    p.add_argument("--base-url", default=None, help="where the snapshot's listing is (default: the recipe's)")
    p.add_argument("--files", type=int, default=None, help="the first N files of the snapshot's listing")
    p.add_argument("--seeds", default=None, help="a count (3) or a list (0,1,2) of training seeds")
    p.add_argument("--preset", default=None, help="model preset for every arm (tiny, mini, small, 124m)")
    p.add_argument("--arch", default=None, help="gpt2 | llama | qwen3")
    p.add_argument("--max-steps", type=int, default=None, help="training steps per unit (the token budget with "
                   "--batch-size and the block size)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--block-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--tasks", default=None, help="benchmarks: comma-separated names, `suite`, .jsonl files, `none`")
    p.add_argument("--refs", default=None, help="reference sets for bits per byte (same forms as --tasks)")
    p.add_argument("--eval-limit", type=int, default=None, help="first N items per task (default 0: all)")
    p.add_argument("--eval-ref-limit", type=int, default=None, help="first N documents per reference set (0: all)")
    p.add_argument("--fewshot", type=int, default=None)
    p.add_argument("--tokenizer", default=None, help="shared tokenizer (tokenizer.json or token set folder); "
                   "default: the token set arms' own, else trained on an even sample of every arm")
    p.add_argument("--vocab-size", type=int, default=None, help="the shared tokenizer's vocabulary when trained here")
    p.add_argument("--cpus-per-unit", type=float, default=None, help="CPUs per arm x seed unit (default 1)")
    p.add_argument("--gpus-per-unit", type=float, default=None,
                   help="GPUs per unit (default: 1 when the cluster has GPUs, else 0)")
    add_recipe_option(p)
    add_ray_option(p)
    add_quiet_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pipelines.commands.common import guarded

    return guarded("ablate", lambda: _run(args))


def _setting(text: str, item: str) -> tuple[str, object]:
    """`arch=llama` -> ("arch", "llama"); values are TOML (numbers, true/false) or else plain strings."""
    import tomllib

    from pipelines.stages.ablate import AblateError

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise AblateError(f"--arm {item!r}: {text!r} is not train_key=value")
    try:
        return key.strip(), tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return key.strip(), value.strip()


def _names(v: str) -> list[str]:
    names = [x.strip() for x in v.split(",") if x.strip()]
    return [] if names in ([], ["none"]) else names


def spec_from_args(args):
    """The spec file (if any) with the flags on top, checked."""
    import dataclasses
    from pathlib import Path

    from crawlproc.store.layout import TokenSetDir
    from pipelines.stages.ablate import AblateError, AblateSpec, Arm, check_spec, load_spec

    spec = load_spec(args.spec) if args.spec else AblateSpec(arms=[])
    arms = list(spec.arms)
    for item in args.arm:
        name, sep, rest = item.partition("=")
        source, *settings = rest.split(",")
        if not sep or not name or not source:
            raise AblateError(f"--arm {item!r}: expected NAME=SOURCE[,train_key=value...]")
        is_tokens = (Path(source) / TokenSetDir.MANIFEST).is_file() or ("://" in source and not source.endswith(".toml"))
        arm = Arm(name=name, tokens=source) if is_tokens else Arm(name=name, recipe=source)
        arm.train = dict(_setting(s, item) for s in settings)
        arms.append(arm)
    for arm in arms:
        if arm.recipe:
            arm.warcs = args.warcs or arm.warcs
            arm.snapshot = args.snapshot or arm.snapshot
            arm.base_url = args.base_url or arm.base_url
            arm.files = args.files if args.files is not None else arm.files
    train = dict(spec.train)
    for key in ("preset", "arch", "max_steps", "batch_size", "block_size", "lr"):
        if getattr(args, key) is not None:
            train[key] = getattr(args, key)
    top = {}
    if args.seeds is not None:
        top["seeds"] = (list(range(int(args.seeds))) if args.seeds.isdigit()
                        else [int(x) for x in args.seeds.split(",") if x.strip()])
    for flag, key, conv in (("name", "name", str), ("tasks", "tasks", _names), ("refs", "refs", _names),
                            ("eval_limit", "limit", int), ("eval_ref_limit", "ref_limit", int),
                            ("fewshot", "fewshot", int), ("tokenizer", "tokenizer", str),
                            ("vocab_size", "vocab_size", int), ("cpus_per_unit", "cpus_per_unit", float),
                            ("gpus_per_unit", "gpus_per_unit", float)):
        if getattr(args, flag) is not None:
            top[key] = conv(getattr(args, flag))
    spec = dataclasses.replace(spec, arms=arms, train=train, **top)
    check_spec(spec)
    return spec


def _run(args) -> int:
    from crawlproc.evalsuite import EvalSuiteError
    from crawlproc.store.storage import default_storage, storage_for
    from pipelines.commands.common import load_recipe, start_ray
    from pipelines.stages.ablate import AblateError, check_arm_inputs, run_ablation
    from pipelines.stages.tokenize import TokenizeError

    try:
        spec = spec_from_args(args)
    except (AblateError, EvalSuiteError) as e:
        print(f"crawlproc ablate: {e}", file=sys.stderr)
        return 2
    recipe = load_recipe(args)
    storage = storage_for(recipe) if args.recipe else default_storage()
    try:
        check_arm_inputs(spec)  # seconds, before Ray starts
    except AblateError as e:
        print(f"crawlproc ablate: {e}", file=sys.stderr)
        return 2
    start_ray(args, recipe)
    try:
        result = run_ablation(args.out, spec, storage, progress=not args.quiet)
    except (AblateError, EvalSuiteError, TokenizeError, FileNotFoundError) as e:
        print(f"crawlproc ablate: {e}", file=sys.stderr)
        return 2
    from trainer.ablate import SCORE, table_markdown

    table = result.table
    headline = [t for t in table["metrics"] if t["metric"] == SCORE] or table["metrics"][:1]
    print(table_markdown({**table, "metrics": headline}))
    print(f"ablate: {result.trained} unit(s) trained and scored now, {result.skipped} already done; "
          f"{table['units']} of {len(table['arms']) * len(table['seeds'])} in the table -> {result.uri}/table.md, "
          "table.json")
    for key, line in result.failed.items():
        print(f"  failed {key}: {line}", file=sys.stderr)
    if result.stopped:
        print(f"crawlproc ablate: stopped: {result.stopped}", file=sys.stderr)
        return 2
    return 0 if result.ok else 1
