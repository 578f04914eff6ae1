"""trafilatura, faster, with the same output: its own code, with the slow parts of its machinery swapped out for
the length of one call.

Each lever is exact, not a heuristic; none changes what trafilatura decides:

- **selections**: its attribute XPath expressions (`trafilatura.xpaths`: pruning and content selection) are
  evaluated by crawlproc/extract/attrxpath.py instead of libxml2 + lxml's EXSLT regex callbacks; the same
  elements in the same order.
- **element lookup**: its HTML parser hands out plain `HtmlElement` proxies through lxml's C lookup, instead of
  lxml.html's Python lookup that picks form-element classes trafilatura never uses.
- **raw-tree copy**: with `favor_precision` (FineWeb's setting), trafilatura copies the raw tree before the
  readability comparison, and never reads that tree again afterwards: readability gets it without the copy.
- **text_content**: lxml.html's `text_content()` (trafilatura calls it for every link-density test, readability
  score and trim) evaluates the XPath `string()` and wraps the result in a "smart string"; lxml's text
  serialisation of the element without its tail gives the same characters as a plain str. Comments and other
  non-elements keep the original method (it raises there).
- **options**: the `trafilatura.settings.Extractor` options object (configuration parsing, about 0.2 ms) is
  built once per Accelerator and given to `extract(options=...)`, its public parameter, with the page's URL.
- **stoplist_hash**: when trafilatura falls back on jusText, it hands it its combined stop list (154,484 words
  of every language, a tuple), and jusText's `define_stoplist` is an lru_cache keyed on that tuple: Python
  hashes all 154,484 strings at every call, ~10 ms, more than the rest of jusText. The same tuple with its hash
  computed once stands in for it.
- **paragraph_events**: jusText's ParagraphMaker reads the tree through lxml.sax.saxify, which builds a
  namespace map, an attribute dictionary and qualified names for every element; ParagraphMaker reads none of
  them. The same events in the same order (start, text, children, end, tail; comments and processing
  instructions as saxify gives them) come from a lean walk instead.
- **lean_paragraphs**: ParagraphMaker starts a jusText Paragraph at every block tag and keeps only those that
  received text (a quarter of them on real pages); each builds its DOM path and XPath strings when created,
  and its `text` (join, strip, whitespace regex) is rebuilt at every read, about eight per kept paragraph. A
  Paragraph subclass keeps a copy of the path and builds the two strings when first read, and builds `text`
  and its word list once per set of text nodes: the same values, read the same way.
- **control_chars**: before parsing, trafilatura deletes the characters XML forbids (`INVALID_XML_CHARS.sub`
  over the whole page, about 2.6 ns a character with Python's regex engine: ~4% of its time on real pages),
  and almost no page holds one. A stand-in for that pattern answers "none here" from the page's UTF-8 bytes
  (a C table scan: a character below U+0020 is the same byte in UTF-8, and no other character's bytes are
  below 0x80) and two substring searches for U+FFFE and U+FFFF, and hands every other page to the pattern.
- **readability_gate**: in precision and balanced modes trafilatura runs its readability port on every page
  and keeps its own text unless readability's is much longer (or its own body is malformed). Where an upper
  bound on the length of readability's text already says it would lose, readability gets an empty page
  instead of the raw tree: the same choice, without the pruning and scoring of the whole page
  (crawlproc/extract/readability_gate.py has the argument, and asks the HTML parser in use what it rests on).

Nothing is changed for code outside our calls: the swaps are made on entering `Accelerator.extract` and undone
on leaving it (a count keeps them in place while any thread is inside). A thread that calls trafilatura during
that window gets equivalent results, as the swapped parts select and return the same things.

The levers rely on trafilatura internals; pyproject.toml pins the tested range, `check_internals()` compares
the source of every function a lever depends on with the version it was verified on, and a lever whose
function changed is not applied (stock trafilatura runs instead; `Accelerator.levers` says which are on).
tests/test_accelerate.py fails when any of them changes, and checks the output against stock trafilatura on
every real page in tests/data.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import logging
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from crawlproc.extract import readability_gate
from crawlproc.extract.attrxpath import Unsupported, compile_union, try_compile

LOG = logging.getLogger(__name__)

LEVERS = ("selections", "element_lookup", "raw_tree_copy", "options", "stoplist_hash", "paragraph_events",
          "lean_paragraphs", "text_content", "control_chars", "readability_gate")
# Measured, not used by default: one combined pass (with one function reading each attribute once) for each
# list that trafilatura prunes with, instead of one pass per expression. It reads every attribute any of the
# expressions needs on every element the widest of them visits, and came out ~8% slower than "selections"
# alone on the real pages (bench/bench_levers.py --levers all,all+one_pass).
OPTIONAL_LEVERS = ("one_pass",)

# The trafilatura functions each lever relies on, with the sha256 of their source (first 16 hex digits) as
# verified with trafilatura 2.3.1; `python -m crawlproc.extract.accelerate` prints the current ones. Besides:
# "selections" needs every use of the swapped lists to be a call (or prune_unwanted_nodes, which calls them),
# "element_lookup" needs trafilatura not to use lxml.html's form-element API: both are read from its source.
VERIFIED = {
    "selections": {"htmlprocessing.prune_unwanted_nodes": "4731f8e24ef86449", "xml.delete_element": "76e448c154eb43ba"},
    "element_lookup": {"utils.load_html": "bc0039c89805dea3", "utils.fromstring_bytes": "c5ee8713366ea137"},
    "raw_tree_copy": {
        "core._extract_and_compare": "f7d056c2118222e8",
        "core.trafilatura_sequence": "f03dc4d2946dacbd",
        "core._prepare_tree": "9595f0642825c2c7",
        "external.compare_extraction": "2d3d1ffea3ba469f",
    },
    "stoplist_hash": {
        "external.try_justext": "6f0fa6cffc365def",
        "external.jt_stoplist_init": "ea87de5a416844d8",
        "justext.core.define_stoplist": "9149bbf4aa8ac519",
        "justext.core.classify_paragraphs": "37149c0348a99b3c",
    },
    "paragraph_events": {
        "external.try_justext": "6f0fa6cffc365def",
        "justext.core.ParagraphMaker": "b41fe77fbc5b6a64",
        "lxml.sax.ElementTreeProducer": "5f96e114e133dda2",
    },
    "lean_paragraphs": {
        "external.try_justext": "6f0fa6cffc365def",
        "justext.core.ParagraphMaker": "b41fe77fbc5b6a64",
        "justext.core.PathInfo": "a0654d40b436e45d",
        "justext.paragraph.Paragraph": "638810ac2d88e31c",
        "justext.core.classify_paragraphs": "37149c0348a99b3c",
        "justext.core.revise_paragraph_classification": "cdb816fa335044f0",
    },
    "text_content": {"lxml.html.HtmlMixin.text_content": "02586a50adda287d"},
    "control_chars": {"utils.repair_faulty_html": "7e68c7a3cb24910c"},
    "readability_gate": {
        "core._extract_and_compare": "f7d056c2118222e8",
        "external.compare_extraction": "2d3d1ffea3ba469f",
        "external._prefer_readability": "f6ee688e9ae60074",
        "external.try_readability": "538e3c8e5ab7e4d4",
        "readability_lxml.Document": "fe2ad9d1920eed29",
        "utils.fromstring_bytes": "c5ee8713366ea137",
        "utils.trim": "b82ffd884c0dc230",
    },
    "options": {
        "core.extract": "e0fa59198274f62e",
        "core._internal_extraction": "bdf38a3bab82427b",
        "settings.Extractor.__init__": "8a7141d46badfd06",
    },
}


# trafilatura.utils.INVALID_XML_CHARS as verified: "control_chars" screens for exactly these characters
INVALID_XML_PATTERN = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\ufffe\\uffff]"
_CONTROL_BYTES = bytes(c for c in range(0x80) if re.match(INVALID_XML_PATTERN, chr(c)))  # its ASCII members


def _resolve(dotted: str):
    """trafilatura.<module>.<name>, or <package>.<module>.<name> for the packages named in _PACKAGES."""
    import importlib

    package = next((p for p in _PACKAGES if dotted.startswith(f"{p}.")), "trafilatura")
    module, _, attr = dotted.removeprefix(f"{package}.").partition(".")
    obj = importlib.import_module(f"{package}.{module}")
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


_PACKAGES = ("justext", "lxml")


def source_digest(dotted: str) -> str:
    """sha256 (16 hex digits) of the source of trafilatura.<dotted> (or <package>.<dotted>); "" when it does
    not exist. A module compiled from its .py (lxml.sax) is taken as the whole .py file beside it."""
    try:
        src = inspect.getsource(_resolve(dotted))
    except (AttributeError, ImportError, OSError, TypeError):
        try:
            import importlib

            module = importlib.import_module(dotted.rsplit(".", 1)[0])
            src = Path(module.__file__).with_name(Path(module.__file__).name.split(".")[0] + ".py").read_text()
        except (ImportError, OSError, AttributeError):
            return ""
    return hashlib.sha256(src.encode()).hexdigest()[:16]


_FORM_API = re.compile(
    r"\.(?:fields|form_values|checkable|checked|for_element|value_options|multiple|inputs|action|method|value)\b"
)


def _modules() -> dict[str, str]:
    """trafilatura's modules: file name -> source."""
    import trafilatura

    folder = Path(trafilatura.__file__).parent
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.py"))}


def compiled_lists() -> dict[str, tuple[list, list]]:
    """{name: (the list in trafilatura.xpaths, the same with compiled selections)} for every list of XPath
    expressions with at least one member attrxpath can compile."""
    from lxml.etree import XPath
    from trafilatura import xpaths

    stock = _stock()["lists"]
    out = {}
    for name, value in vars(xpaths).items():
        shipped = stock.get(id(value), value) if isinstance(value, list) else value
        if isinstance(value, list) and any(isinstance(x, XPath) for x in shipped):
            fast = [(try_compile(x) or x) if isinstance(x, XPath) else x for x in shipped]
            if any(f is not o for f, o in zip(fast, shipped)):
                out[name] = (value, fast)
    return out


def selection_misuses(sources: dict[str, str] | None = None) -> list[str]:
    """Where trafilatura uses one of the lists we swap otherwise than by calling its members (a `for` loop whose
    variable is only called, printed or logged) or handing it to prune_unwanted_nodes (which calls them):
    there, a compiled selection might not stand in for an XPath object."""
    names = set(compiled_lists())
    bad = []
    for fname, src in (sources or _modules()).items():
        if fname == "xpaths.py":
            continue
        tree = ast.parse(src)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in names and isinstance(node.ctx, ast.Load):
                if not _called_only(node, parents):
                    bad.append(f"{fname}:{node.lineno} {node.id}")
    return bad


def _called_only(node: ast.Name, parents: dict) -> bool:
    parent = parents.get(node)
    if isinstance(parent, ast.IfExp) and node is not parent.test:
        node, parent = parent, parents.get(parent)
    if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id == "prune_unwanted_nodes":
        return node in parent.args[1:2]
    if isinstance(parent, ast.For) and node is parent.iter and isinstance(parent.target, ast.Name):
        var = parent.target.id
        for stmt in parent.body:
            for n in ast.walk(stmt):
                if isinstance(n, ast.Name) and n.id == var:
                    use = parents.get(n)
                    called = isinstance(use, ast.Call) and use.func is n
                    printed = isinstance(use, ast.Call) and n in use.args and (
                        (isinstance(use.func, ast.Name) and use.func.id in ("str", "repr"))
                        or (isinstance(use.func, ast.Attribute) and use.func.attr in _LOG_METHODS))
                    if not (called or printed):
                        return False
        return True
    return False


def form_api_uses(sources: dict[str, str] | None = None) -> list[str]:
    """Where trafilatura's source touches lxml.html's form-element API (FormElement.fields, InputElement.value,
    ...), which plain HtmlElement proxies do not have."""
    return [f"{fname}:{src.count(chr(10), 0, m.start()) + 1} {m.group(0)}"
            for fname, src in (sources or _modules()).items() for m in _FORM_API.finditer(src)]


_LOG_METHODS = ("debug", "info", "warning", "error", "exception", "critical", "log")
_CHECKED: dict[str, list[str]] | None = None


def check_internals() -> dict[str, list[str]]:
    """{lever: [what differs from the verified trafilatura]} (empty lists: all as verified); once per process."""
    global _CHECKED
    if _CHECKED is None:
        found = {lever: [name for name, digest in funcs.items() if source_digest(name) != digest]
                 for lever, funcs in VERIFIED.items()}
        sources = _modules()
        found["selections"] += selection_misuses(sources)
        found["one_pass"] = [n for n in ("htmlprocessing.prune_unwanted_nodes", "xml.delete_element")
                             if source_digest(n) != VERIFIED["selections"][n]]
        found["element_lookup"] += form_api_uses(sources)
        pattern = _stock()["invalid_xml_chars"]
        if not (isinstance(pattern, re.Pattern) and pattern.pattern == INVALID_XML_PATTERN and pattern.flags == re.UNICODE):
            found["control_chars"].append("utils.INVALID_XML_CHARS")
        found["readability_gate"] += readability_gate.probe_failures()
        _CHECKED = found
    return {k: list(v) for k, v in _CHECKED.items()}


@dataclass
class _Swaps:
    """What one Accelerator puts in place on entry and takes back on exit."""

    lists: list[tuple[list, list, list]] = field(default_factory=list)  # (trafilatura list, originals, fast)
    # (module or class, attribute, what ships, stand-in): set on entry, put back on exit
    attributes: list[tuple[object, str, object, object]] = field(default_factory=list)
    parser: object = None  # trafilatura.utils.HTML_PARSER
    lookups: tuple = ()  # (original lookup, C lookup)


_LOCK = threading.Lock()
_INSIDE: set[int] = set()  # the threads inside an accelerated call
_INSTALLED: _Swaps | None = None  # the swaps in place, if any
_STOCK: dict | None = None  # what the levers swap, as trafilatura, jusText and lxml ship it (see _stock)


def _stock() -> dict:
    """What the levers swap, as it ships: read once per process, by the first Accelerator made, before any can
    be in place. An Accelerator made while another's swaps are in place (another thread inside a call) reads
    the originals here, not the stand-ins it would find in the modules, and so restores what ships."""
    global _STOCK
    with _LOCK:
        if _STOCK is None:
            import importlib

            from lxml import html as lxml_html
            from trafilatura import core, external, htmlprocessing, utils, xpaths

            prune = htmlprocessing.prune_unwanted_nodes
            modules = [importlib.import_module(f"trafilatura.{name}") for name in
                       ("htmlprocessing", "core", "main_extractor", "external", "metadata", "spider")]
            _STOCK = {
                "lists": {id(v): list(v) for v in vars(xpaths).values() if isinstance(v, list)},
                "copy": core.copy,
                "prune_unwanted_nodes": prune,
                "prune_modules": [m for m in modules if getattr(m, "prune_unwanted_nodes", None) is prune],
                "stoplist": external.JT_STOPLIST or external.jt_stoplist_init(),
                "paragraph_maker": external.ParagraphMaker,
                "text_content": lxml_html.HtmlMixin.text_content,
                "invalid_xml_chars": utils.INVALID_XML_CHARS,
                "compare_extraction": core.compare_extraction,
            }
        return _STOCK


class Accelerator:
    """`extract(html, url, **kwargs) -> str | None`: trafilatura.extract(html, url=url, **kwargs), faster.

    `levers`: which levers to use (default all); a lever whose trafilatura internals differ from the verified
    ones is left out, with a warning, and `self.levers` lists the ones in use.
    """

    def __init__(self, levers: tuple[str, ...] = LEVERS, **kwargs):
        import trafilatura  # noqa: F401

        unknown = set(levers) - set(LEVERS) - set(OPTIONAL_LEVERS)
        if unknown:
            raise ValueError(f"unknown levers {sorted(unknown)} (known: {', '.join(LEVERS + OPTIONAL_LEVERS)})")
        changed = check_internals()
        self.levers = tuple(lv for lv in levers if not changed[lv])
        for lv in levers:
            if changed[lv]:
                LOG.warning("trafilatura %s: the code the %r speed-up relies on changed (%s); running without it",
                            trafilatura.__version__, lv, ", ".join(changed[lv]))
        self.kwargs = kwargs
        self.options = self._build_options(kwargs) if "options" in self.levers else None
        self.swaps = _build_swaps(self.levers)

    @staticmethod
    def _build_options(kwargs: dict):
        from trafilatura.settings import DEFAULT_CONFIG, Extractor

        return Extractor(
            config=DEFAULT_CONFIG,
            output_format=kwargs.get("output_format", "txt"),
            fast=kwargs.get("fast", False),
            precision=kwargs.get("favor_precision", False),
            recall=kwargs.get("favor_recall", False),
            comments=kwargs.get("include_comments", True),
            formatting=kwargs.get("include_formatting"),
            links=kwargs.get("include_links", False),
            images=kwargs.get("include_images", False),
            tables=kwargs.get("include_tables", True),
            dedup=kwargs.get("deduplicate", False),
        )

    def extract(self, html: str, url: str | None = None, deduplicate=None) -> str | None:
        import trafilatura

        kwargs = dict(self.kwargs)
        if deduplicate is not None:
            kwargs["deduplicate"] = deduplicate
        with self.active():
            if self.options is None:
                return trafilatura.extract(html, url=url, **kwargs)
            opts = self.options
            opts.url = url
            opts.source = url and url.encode("utf-8", "replace").decode("utf-8")
            opts.dedup = kwargs.get("deduplicate", False)
            return trafilatura.extract(html, url=url, options=opts)

    def active(self):
        return _Active(self.swaps)


class _Active:
    """In place while any thread is inside. A time limit (crawlproc/extract/budget.py) may interrupt this at any
    bytecode: every state it can leave behind selects and extracts the same, and the next entry or exit of the
    same thread puts things right (a set of threads, not a count, so an entry cut short is not counted twice)."""

    def __init__(self, swaps: _Swaps):
        self.swaps = swaps

    def __enter__(self):
        global _INSTALLED
        with _LOCK:
            _INSIDE.add(threading.get_ident())
            if _INSTALLED is None:
                _apply(self.swaps)
                _INSTALLED = self.swaps
        return self

    def __exit__(self, *exc):
        global _INSTALLED
        with _LOCK:
            _INSIDE.discard(threading.get_ident())
            if not _INSIDE and _INSTALLED is not None:
                _undo(_INSTALLED)
                _INSTALLED = None
        return False


def _build_swaps(levers: tuple[str, ...]) -> _Swaps:
    from lxml import html as lxml_html
    from trafilatura import core, external, utils

    swaps = _Swaps()
    stock = _stock()
    swap = swaps.attributes.append
    if "selections" in levers:
        for value, fast in compiled_lists().values():
            swaps.lists.append((value, stock["lists"][id(value)], fast))
    if "one_pass" in levers:
        prune, modules = _pruning_by_union()
        for module in modules:
            swap((module, "prune_unwanted_nodes", prune.original, prune))
    if "element_lookup" in levers:
        from lxml import etree

        swaps.parser = utils.HTML_PARSER
        swaps.lookups = (
            lxml_html.HtmlElementClassLookup(),  # what lxml.html.HTMLParser sets up
            etree.ElementDefaultClassLookup(
                element=lxml_html.HtmlElement, comment=lxml_html.HtmlComment,
                pi=lxml_html.HtmlProcessingInstruction, entity=lxml_html.HtmlEntity,
            ),
        )
    if "raw_tree_copy" in levers:
        swap((core, "copy", stock["copy"], _no_copy_of_the_dead_raw_tree(stock["copy"])))
    if "stoplist_hash" in levers:
        swap((external, "JT_STOPLIST", stock["stoplist"], HashedStopList(stock["stoplist"])))
    if "text_content" in levers:
        original = stock["text_content"]
        swap((lxml_html.HtmlMixin, "text_content", original, _serialising_text_content(original)))
    if "control_chars" in levers:
        original = stock["invalid_xml_chars"]
        swap((utils, "INVALID_XML_CHARS", original, ScreenedPattern(original)))
    if "readability_gate" in levers:
        original = stock["compare_extraction"]
        swap((core, "compare_extraction", original, readability_gate.gated(original, readability_gate.raw_text_elements())))
    events, objects = "paragraph_events" in levers, "lean_paragraphs" in levers
    if events or objects:
        maker = stock["paragraph_maker"]
        swap((external, "ParagraphMaker", maker, _lean_paragraph_maker(maker, events=events, objects=objects)))
    return swaps


def holds_no_invalid_xml_char(text: str) -> bool:
    """True when `text` holds none of INVALID_XML_PATTERN's characters. In UTF-8 a character below U+0080 is
    the byte of the same value and every other character's bytes are 0x80 or above, so the control characters
    are found among the bytes; U+FFFE and U+FFFF by substring search (both in C)."""
    data = text.encode("utf-8", "surrogatepass")
    return len(data.translate(None, _CONTROL_BYTES)) == len(data) and "\ufffe" not in text and "\uffff" not in text


class ScreenedPattern:
    """trafilatura's INVALID_XML_CHARS whose `sub` returns a str that holds none of its characters as it is (as
    the pattern's own sub would: nothing to delete) without the regex engine's walk; anything else, and every
    other attribute, is the pattern's."""

    def __init__(self, pattern: re.Pattern):
        self.pattern = pattern

    def sub(self, repl, string, count=0):
        if type(string) is str and holds_no_invalid_xml_char(string):
            return string
        return self.pattern.sub(repl, string, count)

    def __getattr__(self, name):
        return getattr(self.pattern, name)


def _serialising_text_content(original):
    """HtmlMixin.text_content (`original`) as lxml's text serialisation (every text node below the element, in
    document order, not its own tail: XPath's string value), as a plain str."""
    from lxml.etree import tostring

    def text_content(self):
        if isinstance(self.tag, str):
            return tostring(self, method="text", encoding=str, with_tail=False)
        return original(self)

    return text_content


def _lean_paragraph_maker(paragraph_maker: type, events: bool = True, objects: bool = False) -> type:
    """jusText's ParagraphMaker fed by a walk that gives it lxml.sax.saxify's events without what it ignores
    (`events`), making lean Paragraphs (`objects`)."""
    from lxml.etree import Comment, ProcessingInstruction

    def ns_tag(tag):  # as lxml/sax.py splits "{namespace}name" (compiled there, not importable)
        if tag[0] == "{" and "}" in tag:
            return tuple(tag[1:].split("}", 1))
        return None, tag

    def element_events(handler, element) -> None:  # lxml.sax ElementTreeProducer._recursive_saxify, lean
        tag = element.tag
        if tag is Comment or tag is ProcessingInstruction:
            if tag is ProcessingInstruction:
                handler.processingInstruction(element.target, element.text)
            if element.tail:
                handler.characters(element.tail)
            return
        name = ns_tag(tag)
        handler.startElementNS(name, name[1], None)
        if element.text:
            handler.characters(element.text)
        for child in element:
            element_events(handler, child)
        handler.endElementNS(name, name[1])
        if element.tail:
            handler.characters(element.tail)

    def make_paragraphs(cls, root):  # ParagraphMaker.make_paragraphs, the events from the lean walk
        handler = cls()
        handler.startDocument()
        element = root.getroot() if hasattr(root, "getroot") else root
        before, sibling = [], element.getprevious()
        while getattr(sibling, "tag", None) is ProcessingInstruction:
            before.append(sibling)
            sibling = sibling.getprevious()
        for sibling in reversed(before):
            element_events(handler, sibling)
        element_events(handler, element)
        sibling = element.getnext()
        while getattr(sibling, "tag", None) is ProcessingInstruction:
            element_events(handler, sibling)
            sibling = sibling.getnext()
        handler.endDocument()
        return handler.paragraphs

    lean_paragraph = _lean_paragraph_class() if objects else None

    def start_new_paragraph(self):  # ParagraphMaker._start_new_pragraph (bool(paragraph) is len(text)), lean
        done = self.paragraph
        if done is not None and done.text_nodes and len(done):
            self.paragraphs.append(done)
        self.paragraph = lean_paragraph(self.path)

    members = {}
    if events:
        members["make_paragraphs"] = classmethod(make_paragraphs)
    if objects:
        members["_start_new_pragraph"] = start_new_paragraph
    return type("LeanParagraphMaker", (paragraph_maker,), members)


def _lean_paragraph_class() -> type:
    """jusText's Paragraph with its path strings built when first read and its text once per set of text nodes
    (jusText only appends to `text_nodes`: the count of nodes tells whether the text is still current)."""
    from functools import cached_property

    from justext.paragraph import Paragraph
    from justext.utils import normalize_whitespace

    class LeanParagraph(Paragraph):
        def __init__(self, path):  # Paragraph.__init__ without building the two path strings
            self._elements = path._elements[:]  # (tag, order, children) of each ancestor, as PathInfo holds them
            self.text_nodes = []
            self.chars_count_in_links = 0
            self.tags_count = 0
            self.class_type = ""
            self._made = (-1, "", [])  # (text nodes it was made from, text, words)

        @cached_property
        def dom_path(self):  # PathInfo.dom at creation
            return ".".join(e[0] for e in self._elements)

        @cached_property
        def xpath(self):  # PathInfo.xpath at creation
            return "/" + "/".join(f"{e[0]}[{e[1]:d}]" for e in self._elements)

        def _current(self):
            made = self._made
            if made[0] != len(self.text_nodes):
                text = normalize_whitespace("".join(self.text_nodes).strip())
                made = self._made = (len(self.text_nodes), text, text.split())
            return made

        @property
        def text(self):
            return self._current()[1]

        def __len__(self):
            return len(self._current()[1])

        @property
        def words_count(self):
            return len(self._current()[2])

        def stopwords_count(self, stopwords):
            return sum(word.lower() in stopwords for word in self._current()[2])

    return LeanParagraph


class HashedStopList(tuple):
    """A tuple equal to the one it is built from, whose hash is computed once."""

    def __new__(cls, words):
        obj = super().__new__(cls, words)
        obj._hash = tuple.__hash__(obj)
        return obj

    def __hash__(self) -> int:
        return self._hash


def _pruning_by_union():
    """A stand-in for trafilatura's prune_unwanted_nodes that evaluates a list of XPath expressions it knows
    (by identity) as one attrxpath Union: one walk, each attribute read once. The same result: deleting an
    element with its tail kept (trafilatura.xml.delete_element) removes its span from the document and leaves
    the rest in order, so removing the union's elements in document order leaves the same tree as removing
    each expression's matches in turn, and the with_backup guard sees the same set."""
    from lxml.etree import XPath
    from trafilatura import xpaths

    stock = _stock()
    original = stock["prune_unwanted_nodes"]
    unions = {}
    for value in vars(xpaths).values():
        shipped = stock["lists"].get(id(value)) if isinstance(value, list) else None
        if shipped is not None and len(shipped) > 1 and all(isinstance(x, XPath) for x in shipped):
            try:
                unions[id(value)] = (value, [compile_union(shipped)])
            except Unsupported:
                pass

    def prune_unwanted_nodes(tree, nodelist, with_backup=False):
        known = unions.get(id(nodelist))
        if known is not None and known[0] is nodelist:
            nodelist = known[1]
        return original(tree, nodelist, with_backup)

    prune_unwanted_nodes.original = original
    return prune_unwanted_nodes, stock["prune_modules"]


def _no_copy_of_the_dead_raw_tree(real_copy):
    """A stand-in for trafilatura.core's `copy` that returns the tree itself when `_extract_and_compare`
    copies the raw tree for the readability comparison in precision mode: trafilatura_sequence reads that
    tree again only for the baseline rescue and the recall escalation, which precision mode never runs.
    Every other call is the real copy (`real_copy`, trafilatura.core's as it ships)."""
    from trafilatura import core

    target = core._extract_and_compare.__code__

    def copy(obj):
        frame = sys._getframe(1)
        if frame.f_code is target:
            options = frame.f_locals.get("options")
            if options is not None and options.focus == "precision":
                return obj
        return real_copy(obj)

    return copy


def _apply(swaps: _Swaps) -> None:
    for target, _orig, fast in swaps.lists:
        target[:] = fast
    for owner, name, _orig, stand_in in swaps.attributes:
        setattr(owner, name, stand_in)
    if swaps.parser is not None:
        swaps.parser.set_element_class_lookup(swaps.lookups[1])


def _undo(swaps: _Swaps | None) -> None:
    if swaps is None:
        return
    for target, orig, _fast in swaps.lists:
        target[:] = orig
    for owner, name, orig, _stand_in in reversed(swaps.attributes):
        setattr(owner, name, orig)
    if swaps.parser is not None:
        swaps.parser.set_element_class_lookup(swaps.lookups[0])


if __name__ == "__main__":  # print the digests of the functions the levers rely on, for VERIFIED
    for lever, funcs in VERIFIED.items():
        for name in funcs:
            print(f"{lever:16} {name:40} {source_digest(name)}")
