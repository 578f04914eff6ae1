"""Trafilatura's pruning XPath expressions with a cheap attribute test in front: the same matches, less time.

trafilatura prunes every page with expressions like `.//*[self::div or self::p ...][re:test(@id, '...') or
contains(@class, '...') or ...]`. libxml2 evaluates every disjunct on every element of the listed tags, and
each `re:test` is a call back into Python (lxml implements EXSLT regular expressions with `re`) -- also on
the many elements that carry none of the attributes tested, where every disjunct is false. On real pages
that is about a fifth of trafilatura's time.

`gate(xpath)` puts a predicate in front of the attribute tests that only an element carrying one of the
attributes they read passes (`[@class or @id]`); XPath evaluates the predicates of a step one after the other,
each on the nodes the previous ones kept. Inside, each regex test on attributes is guarded by their presence
(`(@id and re:test(@id, '...'))`), so that an element with a class but no id does not call the id's regex. The rewrite is made only when it cannot change what the expression
selects: the gated predicate is built solely from attribute reads, non-empty string literals and the
functions contains, starts-with, translate and re:test (with a pattern that cannot match an empty string),
combined with `or`/`and`/`=`, so that it is false on an element without any of those attributes.
`gate_trafilatura()` applies it, once per process, to the expressions of `trafilatura.xpaths`, in place
(the modules that use them hold the same list objects). tests/test_xpathgate.py checks, on every real page of
tests/data, that trafilatura extracts exactly the same text with and without it, and fails when a change of
trafilatura leaves nothing to gate.
"""

from __future__ import annotations

import re

from lxml.etree import XPath

REGEXP_NS = "http://exslt.org/regular-expressions"
_TOKENS = re.compile(
    r"""\s+|'[^']*'|"[^"]*"|@[\w:-]+|contains\(|starts-with\(|translate\(|re:test\(|[()|,=]|\bor\b|\band\b"""
)
_REGEX_ARG = re.compile(r"""re:test\(\s*[^,()]+,\s*('[^']*'|"[^"]*")""")
# re:test(@a|@b, 'pattern'[, 'flags']) whose first argument is attributes only
_REGEX_ON_ATTRIBUTES = re.compile(
    r"""re:test\(\s*(?P<attrs>@[\w:-]+(?:\s*\|\s*@[\w:-]+)*)\s*,\s*(?P<pattern>'[^']*'|"[^"]*")"""
    r"""(?P<rest>\s*(?:,\s*(?:'[^']*'|"[^"]*")\s*)?\))"""
)
ORIGINALS: dict[str, list[XPath]] = {}  # name in trafilatura.xpaths -> its expressions before gating


def predicates(path: str) -> list[str] | None:
    """The top-level predicates of `.//*[..][..]...` (their insides), None for any other shape."""
    s = " ".join(path.split())
    if not s.startswith(".//*["):
        return None
    preds, depth, start, quote = [], 0, 0, None
    for i, ch in enumerate(s[4:], 4):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            depth, start = depth + 1, (i if depth == 0 else start)
        elif ch == "]":
            depth -= 1
            if depth == 0:
                preds.append(s[start + 1:i])
            elif depth < 0:
                return None
        elif depth == 0 and not ch.isspace():
            return None  # a further location step (/x) or anything else after the predicates
    return preds if preds and depth == 0 and quote is None else None


def attribute_gate(predicate: str) -> str | None:
    """`@a or @b` for a predicate that is false on an element carrying none of the attributes it reads;
    None when that cannot be shown from its tokens."""
    pos, attrs = 0, set()
    while pos < len(predicate):
        m = _TOKENS.match(predicate, pos)
        if m is None:
            return None  # a path, not(), text(), a number, a function outside the list...
        tok = m.group(0)
        if tok in ("''", '""'):
            return None  # contains(x, '') is true on a missing attribute
        if tok.startswith("@"):
            attrs.add(tok[1:])
        pos = m.end()
    for literal in _REGEX_ARG.findall(predicate):
        if re.search(literal[1:-1], ""):
            return None  # re:test('', pattern) would be true
    return " or ".join(f"@{a}" for a in sorted(attrs)) if attrs else None


def gate_regex_calls(path: str) -> str:
    """Each `re:test(@a|@b, p)` becomes `((@a or @b) and re:test(@a|@b, p))` when p cannot match an empty
    string: the same value (re:test on a missing attribute tests ''), without the call into Python when the
    element has none of the attributes (XPath's `and` does not evaluate its right side after a false left)."""
    def wrap(m: re.Match) -> str:
        if re.search(m.group("pattern")[1:-1], ""):
            return m.group(0)
        attrs = " or ".join(a.strip() for a in m.group("attrs").split("|"))
        return f"(({attrs}) and {m.group(0)})"

    return _REGEX_ON_ATTRIBUTES.sub(wrap, path)


def gate(xpath: XPath) -> XPath | None:
    """The gated equivalent of `xpath`, or None when the rewrite does not apply (then keep the original)."""
    path = " ".join(xpath.path.split())
    preds = predicates(path)
    if preds is None or "re:" in path.replace("re:test(", ""):
        return None
    for p in preds:
        if p.startswith("self::"):
            continue  # the tag test: cheap, keep it first
        g = attribute_gate(p)
        if g is None:
            return None
        at = path.index(f"[{p}]")
        return XPath(gate_regex_calls(f"{path[:at]}[{g}]{path[at:]}"), namespaces={"re": REGEXP_NS})
    return None


def gate_trafilatura() -> int:
    """Gate the expressions in trafilatura.xpaths (once per process); returns how many were rewritten."""
    if ORIGINALS:
        return 0
    from trafilatura import xpaths

    n = 0
    for name, value in vars(xpaths).items():
        if isinstance(value, list) and any(isinstance(xp, XPath) for xp in value):
            ORIGINALS[name] = list(value)
            for i, xp in enumerate(value):
                if isinstance(xp, XPath) and (g := gate(xp)) is not None:
                    value[i] = g
                    n += 1
    return n
