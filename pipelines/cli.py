"""`crawlproc` console script: one subcommand per pipeline stage (see pipelines/commands/)."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from pipelines.commands import COMMANDS
from pipelines.engine.ray_runtime import RayConnectError, RayStartError, ResourceError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crawlproc",
        description="Common Crawl to LLM pretraining data on Ray: download WARCs, filter URLs, extract text, "
        "identify language, filter for quality, remove near-duplicates, tokenize into Parquet shards, train.",
        epilog="Run `crawlproc <command> --help` for each command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"pipelines.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"pipelines.commands.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (RayConnectError, RayStartError, ResourceError) as e:  # one clear message naming the address and what to check, no traceback
        print(f"crawlproc {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        return interrupted(args.command, e)


def interrupted(command: str, e: KeyboardInterrupt) -> int:
    """Ctrl-C: stop Ray's work, then one line saying how far the command got and how to go on; exit 130.
    Nothing is lost: a unit that was running has no marker, so the same command redoes it."""
    from pipelines.engine.progress import activity

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while stopping changes nothing
    _stop_ray()
    step = getattr(e, "step", None)  # trainer.train.TrainingInterrupted
    if step is not None:
        at = f"at step {step} of {e.max_steps}"
        if e.checkpoint is not None and e.checkpoint != step:
            at += f" (the last checkpoint is step {e.checkpoint})"
        how = "add --resume to continue" if command == "train" else "run the same command to resume"
        line = f"interrupted {at}; {how}"
    else:
        now = activity()
        line = f"interrupted {now.describe() if now else 'before any work started'}; run the same command to resume"
    print(f"crawlproc {command}: {line}", file=sys.stderr, flush=True)
    return 130


def _stop_ray() -> None:
    """Shut down the private Ray this command started (its workers die with it), quietly."""
    if "ray" not in sys.modules:
        return
    import ray

    if not ray.is_initialized():
        return
    err = os.dup(2)
    try:
        with open(os.devnull, "w") as null:  # Ray's shutdown chatter is not the user's business here
            os.dup2(null.fileno(), 2)
            ray.shutdown()
    except Exception:  # noqa: BLE001 -- stopping anyway
        pass
    finally:
        os.dup2(err, 2)
        os.close(err)


if __name__ == "__main__":
    sys.exit(main())
