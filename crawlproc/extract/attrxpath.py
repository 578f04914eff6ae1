"""XPath selections that test only an element's tag and attributes, evaluated in Python: the same elements, in
the same order, a fraction of the time.

trafilatura prunes every page with expressions like `.//*[self::div or self::p ...][re:test(@id, '...') or
contains(@class, '...') or ...]`. libxml2 evaluates them element by element, and every `re:test` is a call
back into Python through lxml's EXSLT layer (it converts the arguments, compiles or looks up the pattern, and
searches with Python's `re`). On real pages that was a third of trafilatura's time.

`compile_select(xpath)` translates such an expression into one Python function over an element's tag and its
attributes, and `Select` walks the tree once with it. The translation follows XPath 1.0 and lxml to the
letter where it matters:

- a union of attributes (`@id|@class`) converts to the string value of the *first* of them in document
  order, which for attributes of one element is their order in the source (libxml2), and lxml's `re:test`
  takes that same first node;
- `re:test(s, p, flags)` is `re.compile(p, re.UNICODE | (re.I if 'i' in flags)).search(s) is not None`, as
  lxml implements it, so the regex engine is the same one;
- `translate` maps characters by first occurrence and deletes those with no counterpart;
- `.//*[...][1]` keeps the first match among the children of each parent; `(.//*[...])[1]` the first match.

Anything outside that subset (a path inside a predicate other than `.//name`, positions other than a final
`[1]`, numbers, text(), other functions) is refused: `compile_select` raises Unsupported, `try_compile`
returns None, and the caller keeps libxml2. The equivalence is checked element by element against libxml2 on every real page in tests/data and
on generated trees (tests/test_attrxpath.py).

The generated function reads each attribute once, returns False at once on an element without any of the
attributes when the predicate cannot hold there (`_is_gated` proves it by evaluation), and remembers each
regex verdict per string (class and id values recur). `compile_union` evaluates several expressions in one
walk with one such function.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from lxml import etree

_TOKEN = re.compile(
    r"""\s*(?:(?P<lit>'[^']*'|"[^"]*")|(?P<num>\d+(?:\.\d+)?)|(?P<attr>@[A-Za-z_][\w.:-]*)"""
    r"""|(?P<self>self::[A-Za-z_][\w.-]*)|(?P<desc>\.//[A-Za-z_][\w.-]*)"""
    r"""|(?P<word>(?:and|or)(?![\w.:-]))|(?P<name>[A-Za-z_][\w.-]*(?::[A-Za-z_][\w.-]*)?)(?=\s*\()"""
    r"""|(?P<op>!=|[()|,=]))"""
)


class Unsupported(ValueError):
    """The expression is outside the subset this module evaluates."""


# ------------------------------------------------------------------------------------------------ runtime helpers


def _first(el, names: frozenset[str]) -> str:
    """The string value of `@a|@b|...`: the first of these attributes in the element's source order, or ''."""
    for k, v in el.items():
        if k in names:
            return v
    return ""


def _pick(el, values: tuple, names: frozenset[str]) -> str:
    """`_first` given the attributes' values (None: absent): the element's attribute order only matters when
    more than one is present."""
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return present[0] if present else ""
    return _first(el, names)


class MemoSearch(dict):
    """`memo[s]` is `pattern.search(s) is not None`, remembered per string: the same class and id values recur
    all over a page and across the pages of a site, and a hit is a dictionary lookup in C. Bounded: forgets
    everything when it holds `limit` strings."""

    def __init__(self, pattern: re.Pattern, limit: int = 50_000):
        super().__init__()
        self.pattern, self.limit = pattern, limit

    def __missing__(self, s: str) -> bool:
        if len(self) >= self.limit:
            self.clear()
        hit = self[s] = self.pattern.search(s) is not None
        return hit


def _has_descendant(el, tag: str) -> bool:
    for _ in el.iterdescendants(tag):
        return True
    return False


def _translate_table(src: str, dst: str) -> dict[int, int | None]:
    table: dict[int, int | None] = {}
    for i, ch in enumerate(src):
        if ord(ch) not in table:  # XPath: the first occurrence of a character decides
            table[ord(ch)] = ord(dst[i]) if i < len(dst) else None
    return table


# ------------------------------------------------------------------------------------------------ the compiler


class _Compiler:
    """Recursive descent over one predicate; emits a Python expression over `el` (the element) and `g`
    (its `get`). Values are typed: ("nodes", attribute names) | ("desc", tag) | ("str", code) |
    ("bool", code) | ("lit", python string)."""

    def __init__(self, text: str, consts: dict, attrs: dict):
        self.toks: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                raise Unsupported(f"cannot read {text[pos:pos + 20]!r}")
            kind = m.lastgroup
            self.toks.append((kind, m.group(kind)))
            pos = m.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        self.i = 0
        self.consts = consts
        self.attrs: dict[str, str] = attrs  # attribute name -> the local variable holding its value (or None)

    def var(self, name: str) -> str:
        if name not in self.attrs:
            self.attrs[name] = f"a{len(self.attrs)}"
        return self.attrs[name]

    # token helpers
    def peek(self, value: str | None = None, kind: str | None = None) -> bool:
        if self.i >= len(self.toks):
            return False
        k, v = self.toks[self.i]
        return (value is None or v == value) and (kind is None or k == kind)

    def take(self, value: str | None = None, kind: str | None = None) -> tuple[str, str]:
        if not self.peek(value, kind):
            got = self.toks[self.i] if self.i < len(self.toks) else "end"
            raise Unsupported(f"expected {value or kind}, got {got}")
        self.i += 1
        return self.toks[self.i - 1]

    def const(self, value) -> str:
        return consts_name(self.consts, value)

    # conversions (XPath 1.0 boolean() and string())
    def as_bool(self, val) -> str:
        kind, x = val
        if kind == "bool":
            return x
        if kind == "nodes":
            return "(" + " or ".join(f"{self.var(a)} is not None" for a in x) + ")"
        if kind == "desc":
            return f"_has_descendant(el, {x!r})"
        if kind == "str":
            return f"({x} != '')"
        if kind == "lit":
            return "True" if x else "False"
        raise Unsupported(kind)

    def as_str(self, val) -> str:
        kind, x = val
        if kind == "str":
            return x
        if kind == "lit":
            return repr(x)
        if kind == "nodes":
            if len(x) == 1:
                return f"({self.var(x[0])} or '')"
            vs = [self.var(a) for a in x]
            if len(vs) == 2:  # the common case, inline: the source order only matters when both are there
                a, b = vs
                return f"(({a} or '') if {b} is None else {b} if {a} is None else _first(el, {self.const(frozenset(x))}))"
            return f"_pick(el, ({', '.join(vs)},), {self.const(frozenset(x))})"
        raise Unsupported(f"string value of {kind}")

    # grammar
    def parse(self) -> str:
        code = self.as_bool(self.or_expr())
        if self.i != len(self.toks):
            raise Unsupported(f"trailing {self.toks[self.i]}")
        return code

    def or_expr(self):
        parts = [self.and_expr()]
        while self.peek("or", "word"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else ("bool", "(" + " or ".join(map(self.as_bool, parts)) + ")")

    def and_expr(self):
        parts = [self.eq_expr()]
        while self.peek("and", "word"):
            self.take()
            parts.append(self.eq_expr())
        return parts[0] if len(parts) == 1 else ("bool", "(" + " and ".join(map(self.as_bool, parts)) + ")")

    def eq_expr(self):
        left = self.union_expr()
        if not self.peek("=", "op"):
            return left
        self.take()
        right = self.union_expr()
        if left[0] == "lit" and right[0] in ("nodes", "str"):
            left, right = right, left
        if right[0] != "lit":
            raise Unsupported("comparison with a non-literal")
        if left[0] == "nodes":  # true when any of the attributes has that value
            return ("bool", "(" + " or ".join(f"{self.var(a)} == {right[1]!r}" for a in left[1]) + ")")
        if left[0] in ("str", "lit"):
            return ("bool", f"({self.as_str(left)} == {right[1]!r})")
        raise Unsupported(f"comparison of {left[0]}")

    def union_expr(self):
        first = self.primary()
        if not self.peek("|", "op"):
            return first
        names = list(first[1]) if first[0] == "nodes" else None
        while self.peek("|", "op"):
            self.take()
            nxt = self.primary()
            if names is None or nxt[0] != "nodes":
                raise Unsupported("union of anything but attributes")
            names += [a for a in nxt[1] if a not in names]
        return ("nodes", tuple(names))

    def primary(self):
        kind, v = self.toks[self.i] if self.i < len(self.toks) else ("end", "")
        if kind == "op" and v == "(":
            self.take()
            val = self.or_expr()
            self.take(")")
            return val
        if kind == "lit":
            self.take()
            return ("lit", v[1:-1])
        if kind == "attr":
            self.take()
            name = v[1:]
            if ":" in name:
                raise Unsupported("namespaced attribute")
            self.var(name)
            return ("nodes", (name,))
        if kind == "self":
            self.take()
            return ("bool", f"(el.tag == {v[6:]!r})")
        if kind == "desc":
            self.take()
            return ("desc", v[3:])
        if kind == "name":
            self.take()
            return self.call(v)
        raise Unsupported(f"unexpected {kind} {v!r}")

    def args(self) -> list:
        self.take("(")
        out = []
        if not self.peek(")"):
            out.append(self.or_expr())
            while self.peek(",", "op"):
                self.take()
                out.append(self.or_expr())
        self.take(")")
        return out

    def call(self, name: str):
        args = self.args()
        if name == "not" and len(args) == 1:
            return ("bool", f"(not {self.as_bool(args[0])})")
        if name == "contains" and len(args) == 2:
            return ("bool", f"({self.as_str(args[1])} in {self.as_str(args[0])})")
        if name == "starts-with" and len(args) == 2:
            return ("bool", f"{self.as_str(args[0])}.startswith({self.as_str(args[1])})")
        if name == "translate" and len(args) == 3 and args[1][0] == "lit" and args[2][0] == "lit":
            table = self.const(_translate_table(args[1][1], args[2][1]))
            return ("str", f"{self.as_str(args[0])}.translate({table})")
        if name == "re:test" and len(args) in (2, 3) and all(a[0] == "lit" for a in args[1:]):
            flags = args[2][1] if len(args) == 3 else ""
            pattern = re.compile(args[1][1], re.UNICODE | (re.IGNORECASE if "i" in flags else 0))
            return ("bool", f"{self.const(MemoSearch(pattern))}[{self.as_str(args[0])}]")
        raise Unsupported(f"function {name} with {len(args)} argument(s)")


# ------------------------------------------------------------------------------------------------ the path


def _split_predicates(s: str) -> tuple[list[str], str]:
    """`[..][..]rest` -> (insides of the leading predicates, rest)."""
    preds, depth, start, quote, i = [], 0, 0, None, 0
    while i < len(s):
        ch = s[i]
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                preds.append(s[start + 1:i])
            elif depth < 0:
                raise Unsupported("unbalanced ]")
        elif depth == 0 and not ch.isspace():
            break
        i += 1
    if depth or quote:
        raise Unsupported("unbalanced predicate")
    return preds, s[i:]


class Select:
    """A compiled `.//*[..]...` (or `.//name`, or `(.//*[..])[1]`): call it on an element as the XPath."""

    def __init__(self, path: str, tags: tuple[str, ...] | None, test: Callable | None, first: str,
                 attrs: frozenset[str] = frozenset()):
        self.path = path  # the source expression, as XPath.path
        self.tags = tags  # the element names the tag test allows (None: any element)
        self.test = test  # (el, get) -> bool, None when the tag test is all
        self.first = first  # "" | "per_parent" ([1] on the step) | "overall" ((...)[1])
        self.attrs = attrs  # the attributes the test reads

    def __call__(self, el, **_variables) -> list:
        if not isinstance(el, etree._Element):
            raise TypeError("a compiled selection runs on an element")
        it = el.iterdescendants(*self.tags) if self.tags else el.iterdescendants(etree.Element)
        test = self.test
        if not self.first:
            return test.select(it) if test is not None else list(it)
        if self.first == "overall":
            for e in it:
                if test is None or test(e, e.get):
                    return [e]
            return []
        found = [e for e in it if test is None or test(e, e.get)]
        if self.first == "per_parent":
            seen, kept = set(), []
            for e in found:
                parent = e.getparent()
                if parent not in seen:
                    seen.add(parent)
                    kept.append(e)
            return kept
        return found

    def __repr__(self) -> str:
        return f"Select({' '.join(self.path.split())!r})"


class Union:
    """Several position-free selections in one walk, reading each attribute once: the elements any of them
    selects, in document order. (As a stand-in for a list handed to trafilatura's prune_unwanted_nodes it
    deletes the same spans of the document; see crawlproc/extract/accelerate.py.)"""

    def __init__(self, path: str, tags: tuple[str, ...] | None, test: Callable | None):
        self.path, self.tags, self.test = path, tags, test

    def __call__(self, el, **_variables) -> list:
        if not isinstance(el, etree._Element):
            raise TypeError("a compiled selection runs on an element")
        it = el.iterdescendants(*self.tags) if self.tags else el.iterdescendants(etree.Element)
        test = self.test
        return list(it) if test is None else test.select(it)

    def __repr__(self) -> str:
        return f"Union({' | '.join(' '.join(p.split()) for p in self.path.split(' | '))!r})"


_LITERAL_OR_SPACE = re.compile(r"""'[^']*'|"[^"]*"|\s+""")


def _squeeze(path: str) -> str:
    """The expression with every run of whitespace outside string literals made one space (literals intact)."""
    return _LITERAL_OR_SPACE.sub(lambda m: " " if m.group(0).isspace() else m.group(0), path).strip()


def _parse_path(xpath, consts: dict, attrs: dict) -> tuple[tuple[str, ...] | None, list[str], str]:
    """(tag names or None, compiled predicates, position) of one expression; attribute reads go to `attrs`."""
    path = getattr(xpath, "path", xpath)
    s = _squeeze(path)
    first = ""
    if s.startswith("(") and s.endswith(")[1]"):
        s, first = s[1:-4].strip(), "overall"
    if not s.startswith(".//"):
        raise Unsupported("not a descendant selection")
    m = re.match(r"\.//([A-Za-z_][\w.-]*|\*)", s)
    if m is None:
        raise Unsupported("no name test")
    name, rest = m.group(1), s[m.end():]
    preds, rest = _split_predicates(rest)
    if rest.strip():
        raise Unsupported(f"further steps {rest!r}")
    if preds and preds[-1].strip() == "1" and not first:
        preds, first = preds[:-1], "per_parent"
    tags: tuple[str, ...] | None = None if name == "*" else (name,)
    codes: list[str] = []
    for i, p in enumerate(preds):
        if i == 0 and tags is None:
            names = _tag_disjunction(p)
            if names is not None:
                tags = names
                continue
        codes.append(_Compiler(p, consts, attrs).parse())
    return tags, codes, first


def _consts() -> dict:
    return {"_first": _first, "_pick": _pick, "_has_descendant": _has_descendant}


def compile_select(xpath) -> Select:
    """The Select equivalent to `xpath` (an lxml XPath or its text); raises Unsupported outside the subset."""
    consts, attrs = _consts(), {}
    tags, codes, first = _parse_path(xpath, consts, attrs)
    test = None
    if codes:
        expr = " and ".join(f"({c})" for c in codes)
        test = _build_test(expr, attrs, consts, _is_gated(expr, attrs, consts, tags))
    return Select(getattr(xpath, "path", xpath), tags, test, first, frozenset(attrs))


def compile_union(xpaths) -> Union:
    """One Union for several position-free expressions; raises Unsupported when one is outside the subset."""
    consts, attrs = _consts(), {}
    members, all_tags, gated = [], set(), True
    for xp in xpaths:
        tags, codes, first = _parse_path(xp, consts, attrs)
        if first:
            raise Unsupported("positional selections cannot be merged")
        expr = " and ".join(f"({c})" for c in codes) or "True"
        gated = gated and bool(codes) and _is_gated(expr, attrs, consts, tags)
        if tags is not None:
            expr = f"(el.tag in {consts_name(consts, frozenset(tags))}) and ({expr})"
            if all_tags is not None:
                all_tags.update(tags)
        else:
            all_tags = None
        members.append(expr)
    expr = " or ".join(f"({m})" for m in members)
    test = _build_test(expr, attrs, consts, gated)
    path = " | ".join(getattr(xp, "path", xp) for xp in xpaths)
    return Union(path, tuple(sorted(all_tags)) if all_tags is not None else None, test)


def consts_name(consts: dict, value) -> str:
    name = f"_c{len(consts)}"
    consts[name] = value
    return name


class _Probe:
    """A stand-in element with no attributes, a given tag, and descendants of the given names."""

    def __init__(self, tag: str, descendants: frozenset[str]):
        self.tag, self._desc = tag, descendants

    def get(self, _name):
        return None

    def items(self):
        return []

    def iterdescendants(self, tag):
        return iter([self] if tag in self._desc else [])


def _is_gated(expr: str, attrs: dict[str, str], consts: dict, tags) -> bool:
    """Whether `expr` is false on every element that has none of the attributes it reads: evaluated on such
    elements, for every tag and every combination of the descendants it tests."""
    used = [v for v in attrs.values() if re.search(rf"\b{v}\b", expr)]
    if not used:
        return False
    scope = dict(consts)
    params = "".join(f"    {v} = None\n" for v in attrs.values())
    exec(f"def _raw(el, g):\n{params}    return bool({expr})\n", scope)  # noqa: S102  (generated code)
    names = set(re.findall(r"el\.tag == '([^']*)'", expr)) | set(tags or ()) | {"\0other"}
    desc = sorted(set(re.findall(r"_has_descendant\(el, '([^']*)'\)", expr)))
    combos = [frozenset(d for j, d in enumerate(desc) if mask >> j & 1) for mask in range(1 << len(desc))]
    for name in set(re.findall(r"el\.tag in (_c\d+)", expr)):
        names |= set(consts[name])
    return not any(scope["_raw"](_Probe(t, c), None) for t in names for c in combos)


def _build_test(expr: str, attrs: dict[str, str], consts: dict, gated: bool) -> Callable:
    """`test(el, get) -> bool` for `expr`, reading each attribute once; with `gated`, it returns False at once
    on an element without any of those attributes. `test.select(elements)` is the list of those that pass, the
    same test inlined in one loop (no call per element)."""
    reads = "".join(f"    {v} = g({a!r})\n" for a, v in attrs.items())
    none = " and ".join(f"{v} is None" for v in attrs.values())
    gate = f"    if {none}:\n        return False\n" if gated and attrs else ""
    src = f"def _test(el, g):\n{reads}{gate}    return bool({expr})\n"
    loop_reads = "".join(f"        {v} = g({a!r})\n" for a, v in attrs.items())
    loop_gate = f"        if {none}:\n            continue\n" if gate else ""
    loop = (f"def _select(elements):\n    out = []\n    keep = out.append\n    for el in elements:\n"
            f"        g = el.get\n{loop_reads}{loop_gate}        if {expr}:\n            keep(el)\n    return out\n")
    scope = dict(consts)
    exec(src, scope)  # noqa: S102  (code generated from the parsed expressions only)
    exec(loop, scope)  # noqa: S102
    test = scope["_test"]
    test.source, test.gated, test.select = src + loop, bool(gate), scope["_select"]
    return test


def _tag_disjunction(pred: str) -> tuple[str, ...] | None:
    """('div', 'p') for `self::div or self::p`, None for any other predicate."""
    parts = [p.strip() for p in pred.split(" or ")]
    if all(re.fullmatch(r"self::[A-Za-z_][\w.-]*", p) for p in parts):
        return tuple(dict.fromkeys(p[6:] for p in parts))
    return None


def try_compile(xpath) -> Select | None:
    try:
        return compile_select(xpath)
    except (Unsupported, re.error):
        return None
