"""`crawlproc tokens show TEXT`: show how a tokenizer splits text, in colour (or as an HTML page)."""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "tokens",
        help="inspect a tokenizer: show token boundaries in colour",
        description="Inspect what a BPE tokenizer learned.",
    )
    actions = p.add_subparsers(dest="action", metavar="<action>")
    show = actions.add_parser(
        "show",
        help="show the tokens of TEXT in colour",
        description="Print TEXT with each token on its own background colour (spaces as ·, newlines as ↵), "
        "then the ids. With --html, write a standalone page with coloured spans and the ids on hover.",
    )
    show.add_argument("text", metavar="TEXT", help="text to tokenize; '-' reads standard input")
    show.add_argument(
        "--tokenizer", metavar="PATH", help="tokenizer folder, tokenizer.json or .tiktoken file"
    )
    show.add_argument("--out", help="output root: use <out>/tokens/<name>/")
    show.add_argument("--name", default="bpe", help="token set name under <out>/tokens/ (default: bpe)")
    show.add_argument("--html", metavar="FILE", help="write an HTML page to FILE instead of printing")
    show.set_defaults(func=main_show)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def main_show(args) -> int:
    from pipelines.commands.common import guarded

    return guarded("tokens show", lambda: _show(args))


def _show(args) -> int:
    from crawlproc.store.storage import default_storage
    from pipelines.commands.common import preflight
    from crawlproc.store.layout import Layout
    from tokenizer import load_tokenizer
    from tokenizer.show import render_ansi, render_html
    from tokenizer.tokenset import open_token_set

    if not args.tokenizer and not args.out:
        print("crawlproc tokens show: give --tokenizer PATH or --out DIR [--name N]", file=sys.stderr)
        return 2
    reads = [("--tokenizer", args.tokenizer, "any")] if args.tokenizer else [("--out", args.out, "dir")]
    preflight(default_storage(), reads=reads,
              writes=[("--html", str(Path(args.html).resolve().parent)) if args.html else ("--html", None)])
    try:
        if args.tokenizer:
            tok = load_tokenizer(Path(args.tokenizer))
        else:  # a token set under --out, on a disk or in a bucket
            tok = open_token_set(Layout(args.out).tokens(args.name), verify="manifest").load_tokenizer()
    except (FileNotFoundError, ValueError) as e:
        print(f"crawlproc tokens show: {e}", file=sys.stderr)
        return 2
    text = sys.stdin.read() if args.text == "-" else args.text
    if args.html:
        Path(args.html).write_text(render_html(tok, text, title=f"{tok.name}: tokens"), encoding="utf-8")
        print(f"wrote {args.html} ({len(tok.encode(text, allowed_special='all'))} tokens)")
    else:
        sys.stdout.write(render_ansi(tok, text))
    return 0
