"""Show token boundaries the way Tiktokenizer does: each token on its own background colour.

A token that ends inside a multi-byte character cannot be shown alone, so consecutive tokens are grouped until
their bytes decode; such a group shows as one coloured span carrying all its ids.
"""

from __future__ import annotations

import html

from tokenizer.core import BPETokenizer

# Background colours (256-colour ANSI codes and matching CSS) that keep black text readable.
_ANSI_BG = [153, 186, 218, 150, 223, 183, 152, 229]
_CSS_BG = ["#afd7ff", "#d7d787", "#ffafd7", "#afd787", "#ffd7af", "#d7afff", "#afd7d7", "#ffffaf"]


def token_spans(tok: BPETokenizer, text: str, allowed_special="all") -> list[tuple[str, list[int]]]:
    """[(shown text, ids)] covering `text` in order; whitespace is made visible (space as '·', newline '↵')."""
    spans: list[tuple[str, list[int]]] = []
    pending: list[int] = []
    buf = b""
    for i in tok.encode(text, allowed_special=allowed_special):
        pending.append(i)
        buf += tok.token_bytes(i)
        try:
            shown = buf.decode("utf-8")
        except UnicodeDecodeError:
            continue  # inside a multi-byte character: wait for the rest
        spans.append((shown, pending))
        pending, buf = [], b""
    if pending:
        spans.append((buf.decode("utf-8", errors="replace"), pending))
    return spans


def _visible(s: str) -> str:
    return s.replace(" ", "·").replace("\t", "→").replace("\n", "↵\n")


def render_ansi(tok: BPETokenizer, text: str) -> str:
    out = []
    spans = token_spans(tok, text)
    for n, (shown, _ids) in enumerate(spans):
        out.append(f"\x1b[30;48;5;{_ANSI_BG[n % len(_ANSI_BG)]}m{_visible(shown)}\x1b[0m")
    ids = [i for _s, group in spans for i in group]
    summary = f"\n{len(ids)} tokens, {len(text)} characters, {len(text.encode('utf-8', 'replace'))} bytes"
    return "".join(out) + summary + "\nids: " + " ".join(map(str, ids)) + "\n"


def render_html(tok: BPETokenizer, text: str, title: str = "tokens") -> str:
    """A standalone page: coloured spans with the ids on hover, then the id list."""
    parts = []
    spans = token_spans(tok, text)
    for n, (shown, group) in enumerate(spans):
        tip = " ".join(map(str, group))
        parts.append(
            f'<span style="background:{_CSS_BG[n % len(_CSS_BG)]}" title="{tip}">{html.escape(_visible(shown))}</span>'
        )
    ids = " ".join(str(i) for _s, group in spans for i in group)
    n_tokens = sum(len(g) for _s, g in spans)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>'
        + html.escape(title)
        + "</title><style>body{font-family:sans-serif;margin:2em}"
        + "pre{white-space:pre-wrap;font-family:monospace;font-size:15px;line-height:1.7}"
        + "span{border-radius:3px;padding:1px 0}</style></head><body>\n"
        + f"<p>{html.escape(tok.name)}: vocabulary {tok.vocab_size}; {n_tokens} tokens, {len(text)} characters"
        + "</p>\n<pre>"
        + "".join(parts)
        + f"</pre>\n<h3>ids</h3>\n<pre>{ids}</pre>\n</body></html>\n"
    )
