"""`crawlproc` console script: one subcommand per pipeline stage (see pipelines/commands/)."""

from __future__ import annotations

import argparse
import importlib
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


if __name__ == "__main__":
    sys.exit(main())
