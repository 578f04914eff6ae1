"""`crawlproc train`: the bundled GPT trainer on a tokens/<name> directory; --ray runs it under Ray Train.

Without --ray this is trainer.train in this process (use torchrun for several local GPUs). With --ray the
same loop runs in --num-workers Ray Train workers (ray.train.torch.TorchTrainer sets up the process group;
the loop wraps the model in DDP itself). --tokens and --out may be object-store URIs (s3://bucket/...): on a
cluster without a shared disk every worker streams the shards from the bucket, rank 0 writes checkpoints,
logs and hf/ there, and Ray Train's own run state goes to <out>/ray in the same bucket.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from pipelines.commands.common import add_recipe_option, guarded, load_recipe, preflight
from trainer.config import TrainConfig, add_train_args  # torch-free: fast --help


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the bundled GPT on token shards",
        description="Train a GPT-2-style model on tokens/<name> (a folder or URI): prints loss, tokens/s and MFU; "
        "writes metrics.jsonl, samples.jsonl, loss.png, ckpt/ and hf/ under --out (a folder or URI). With "
        "--recipe, the settings come from its [train] table (and URIs are reached with its [storage]); flags "
        "given on the command line win.",
    )
    add_train_args(p, with_defaults=False)
    add_recipe_option(p)
    p.add_argument("--ray", action="store_true", help="run under Ray Train's TorchTrainer")
    p.add_argument("--num-workers", type=int, default=1, help="Ray Train workers (with --ray)")
    p.add_argument("--use-gpu", action="store_true", help="one GPU per Ray Train worker (with --ray)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per Ray Train worker (with --ray)")
    p.add_argument("--address", default=None,
                   help="Ray cluster address, with --ray (default: RAY_ADDRESS, else a private local Ray)")
    p.set_defaults(func=run)


def _ray_worker_loop(config: dict) -> None:
    """Runs in each Ray Train worker: the process group exists already; pick this worker's device."""
    import ray.train
    import ray.train.torch

    from trainer.train import run_training

    cfg = TrainConfig(**config["train"])
    cfg.device = str(ray.train.torch.get_device()) if config["use_gpu"] else "cpu"
    run_training(cfg, report=ray.train.report, storage=config["storage"])


def run_with_ray(cfg: TrainConfig, num_workers: int, use_gpu: bool, cpus_per_worker: float = 1.0,
                 address: str | None = None, storage=None) -> None:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from pipelines.engine.ray_runtime import init_ray_or_exit

    from crawlproc.store.layout import TrainRunDir
    from crawlproc.store.storage import default_storage, normalize

    init_ray_or_exit(address, prog="crawlproc train")
    storage = storage or default_storage()
    cfg = dataclasses.replace(cfg, tokens=normalize(cfg.tokens), out=normalize(cfg.out))
    fs, ray_dir = storage.resolve(TrainRunDir(cfg.out, storage).ray_dir)
    trainer = TorchTrainer(
        _ray_worker_loop,
        train_loop_config={"train": dataclasses.asdict(cfg), "use_gpu": use_gpu, "storage": storage},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cpus_per_worker}),
        run_config=RunConfig(name="ray-train", storage_path=ray_dir, storage_filesystem=fs),
    )
    trainer.fit()


def settings(args: argparse.Namespace):
    """(TrainConfig, Storage): the recipe's [train] table under the flags given, or the flags alone."""
    from crawlproc.store.storage import default_storage, storage_for
    from pipelines.recipes import train_config

    names = {f.name for f in dataclasses.fields(TrainConfig)} - {"tokens", "out"}
    given = {k: v for k, v in vars(args).items() if k in names}
    if getattr(args, "recipe", None):
        recipe = load_recipe(args)
        return train_config(recipe, args.tokens, args.out, **given), storage_for(recipe)
    return TrainConfig(tokens=args.tokens, out=args.out, **given), default_storage()


def run(args: argparse.Namespace) -> int:
    return guarded("train", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from crawlproc.config import RecipeError
    from crawlproc.store.storage import is_remote

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg, storage = settings(args)
        # with --ray the workers read and write: a local path is one of theirs, only a URI can be checked here
        near = (lambda uri: uri) if not args.ray else (lambda uri: uri if uri and is_remote(uri) else None)
        preflight(storage, reads=[("--tokens", near(cfg.tokens), "dir")], writes=[("--out", near(cfg.out))])
        if args.ray:
            run_with_ray(cfg, args.num_workers, args.use_gpu, args.cpus_per_worker, args.address, storage)
        else:
            from trainer.train import run_training

            run_training(cfg, storage=storage)
    except RecipeError:
        raise  # `guarded` says "bad recipe: ..." naming the key
    except (ValueError, FileExistsError, FileNotFoundError) as e:  # bad input: say what, no traceback
        print(f"crawlproc train: error: {e}", file=sys.stderr)
        return 2
    return 0
