"""`crawlproc tokens`: inspect a tokenizer (`show TEXT`: its token boundaries in colour) and a token set's
shards (`info`: counts and lengths; `doc ID`: one document, decoded; `head`: the first documents, decoded)."""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "tokens",
        help="inspect a tokenizer (token boundaries in colour) and a token set's shards (counts, documents)",
        description="Inspect what a BPE tokenizer learned, and what a token set (tokens/<name>: a folder or "
        "URI, or --out OUT --name NAME) holds.",
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

    info = actions.add_parser("info", help="a token set's counts: shards, documents, tokens, lengths",
                              description="Per split: shards, documents, tokens and document lengths (min, "
                              "median, p99, max); the tokenizer and what it was made from.")
    _token_set_args(info)
    info.add_argument("--no-lengths", action="store_true",
                      help="counts from the manifest only (do not read the shards for document lengths)")
    info.set_defaults(func=main_info)

    doc = actions.add_parser("doc", help="one document of a token set by its id, decoded",
                             description="Find a document by id (a WARC-Record-ID such as <urn:uuid:...>) in the "
                             "shards and print its split, shard, token count and decoded text.")
    doc.add_argument("id", help="the document's id")
    _token_set_args(doc)
    doc.add_argument("--ids", action="store_true", help="also print the token ids")
    doc.set_defaults(func=main_doc)

    head = actions.add_parser("head", help="the first documents of a split, decoded",
                              description="Print the first N documents of a split (in shard order) with their "
                              "ids and token counts, decoded to text.")
    _token_set_args(head)
    head.add_argument("-n", type=int, default=3, help="documents to print (default: 3)")
    head.add_argument("--split", choices=["train", "val"], default="train")
    head.add_argument("--chars", type=int, default=600, help="characters of each text at most (default: 600)")
    head.set_defaults(func=main_head)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _token_set_args(p) -> None:
    p.add_argument("tokens", nargs="?", metavar="TOKENS", help="the token set: a tokens/<name> folder or URI")
    p.add_argument("--out", help="output root: use <out>/tokens/<name>/")
    p.add_argument("--name", default="bpe", help="token set name under <out>/tokens/ (default: bpe)")


def _open(args, command: str):
    """(TokenSet, tokenizer or None), or None after printing why not."""
    from crawlproc.store.layout import Layout
    from tokenizer.tokenset import ShardError, open_token_set

    if not args.tokens and not args.out:
        print(f"crawlproc tokens {command}: give TOKENS (a tokens/<name> folder or URI) or --out DIR [--name N]",
              file=sys.stderr)
        return None
    try:
        tokset = open_token_set(args.tokens or Layout(args.out).tokens(args.name))
    except (ShardError, OSError) as e:
        print(f"crawlproc tokens {command}: {e}", file=sys.stderr)
        return None
    try:
        tok = tokset.load_tokenizer()
    except (ShardError, ValueError, KeyError) as e:
        print(f"crawlproc tokens {command}: warning: {e}; printing token ids only", file=sys.stderr)
        tok = None
    return tokset, tok


def _decode(tok, tokens) -> str:
    return tok.decode([int(t) for t in tokens]) if tok is not None else " ".join(map(str, tokens))


def main_info(args) -> int:
    import numpy as np

    opened = _open(args, "info")
    if opened is None:
        return 2
    tokset, _ = opened
    m, t = tokset.manifest, tokset.tokenizer
    print(f"token set {tokset.uri} (manifest sha256 {tokset.digest[:12]})")
    print(f"  tokenizer: {t.get('vocab_size'):,} ids, end-of-text {t.get('eot_token', '<|endoftext|>')} = "
          f"{t.get('eot_id')}, dtype {tokset.dtype}")
    if m.get("inputs"):
        print(f"  made from {len(m['inputs']):,} input file(s)" + (f"; mix {m['mix'].get('digest')}" if m.get("mix") else ""))
    for split in ("train", "val"):
        tot = m["totals"].get(split) or {"tokens": 0, "documents": 0, "shards": 0}
        line = (f"  {split:5} {tot['shards']:>6,} shards {tot['documents']:>12,} documents {tot['tokens']:>15,} tokens")
        if not args.no_lengths and tot["documents"]:
            n = tokset.lengths(split)
            q = np.percentile(n, [50, 99])
            line += f" | tokens per document: min {n.min():,}, median {q[0]:,.0f}, p99 {q[1]:,.0f}, max {n.max():,}"
        print(line)
    for key, label in (("skipped", "documents skipped"), ("repaired", "texts repaired")):
        if m.get(key):
            print(f"  {label}: " + ", ".join(f"{k} {v:,}" for k, v in m[key].items()))
    return 0


def main_doc(args) -> int:
    opened = _open(args, "doc")
    if opened is None:
        return 2
    tokset, tok = opened
    found = tokset.find(args.id)
    if found is None:
        print(f"crawlproc tokens doc: no document {args.id!r} in {tokset.uri}", file=sys.stderr)
        return 1
    split, shard, tokens = found
    print(f"{args.id}: {split}, shard {shard}, {len(tokens):,} tokens")
    if args.ids:
        print(" ".join(map(str, tokens.tolist())))
    print(_decode(tok, tokens))
    return 0


def main_head(args) -> int:
    import itertools

    opened = _open(args, "head")
    if opened is None:
        return 2
    tokset, tok = opened
    for split, shard, doc_id, tokens in itertools.islice(tokset.documents(args.split), max(args.n, 0)):
        text = _decode(tok, tokens)
        print(f"--- {doc_id} ({split}, {shard}, {len(tokens):,} tokens)")
        print(text[: args.chars] + (" [...]" if len(text) > args.chars else ""))
    return 0


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
