"""One module per `crawlproc` subcommand; each exposes `register(subparsers)`.

The order of COMMANDS is the order of `crawlproc --help`. A module that fails to import (an optional
dependency missing) is reported when its command is used, never breaks the other commands.
"""

COMMANDS = [
    "extract",
    "run",
    "refilter",
    "status",
    "dedup",
    "decontaminate",
    "classifier",
    "tokenize",
    "tokens",
    "mix",
    "export",
    "train",
    "sample",
    "eval",
    "ablate",
    "report",
    "explain",
    "demo",
]
