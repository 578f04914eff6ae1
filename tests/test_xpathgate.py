"""The gated trafilatura XPath expressions select exactly what the originals select: trafilatura extracts the
same text from every real page, and the gate is refused wherever it could change a result."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import trafilatura
from lxml import html as lxml_html
from lxml.etree import XPath
from trafilatura import xpaths

from crawlproc.warc.charset import decode_html
from crawlproc.warc.reader import ReadCounts, iter_html_records
from crawlproc.extract.xpathgate import (
    ORIGINALS,
    REGEXP_NS,
    attribute_gate,
    gate,
    gate_regex_calls,
    gate_trafilatura,
    predicates,
)

DATA = Path(__file__).parent / "data"


def _lists() -> dict[str, list]:
    return {k: v for k, v in vars(xpaths).items() if isinstance(v, list) and any(isinstance(x, XPath) for x in v)}


def _pages() -> list[str]:
    out = [decode_html(gzip.decompress(p.read_bytes()), None)[0]
           for p in sorted((DATA / "html" / "html").glob("*.html.gz")) + sorted((DATA / "html_multilingual").glob("*.gz"))]
    for p in sorted((DATA / "warc").glob("*.warc.gz")):
        if not p.name.endswith((".wet.gz", ".wat.gz")):
            out += [decode_html(r.payload, r.content_type)[0] for r in iter_html_records(p, ReadCounts())]
    return out


def test_trafilatura_has_expressions_to_gate():
    """Fails when a new trafilatura leaves nothing to gate: then the speed-up is gone, look at xpaths.py."""
    gate_trafilatura()
    assert sum(gate(xp) is not None for lst in ORIGINALS.values() for xp in lst) >= 8
    assert gate_trafilatura() == 0  # once per process


def test_extraction_is_identical_with_and_without_the_gate():
    pages = _pages()
    assert len(pages) > 350
    gate_trafilatura()
    lists = _lists()
    current = {k: list(v) for k, v in lists.items()}  # gated, as the extract stage runs them
    ungated = {k: list(ORIGINALS[k]) for k in current}
    gated = {k: [gate(x) or x for x in v] for k, v in ungated.items()}
    assert gated != ungated

    def extract_all(exprs):
        for k, v in exprs.items():
            lists[k][:] = v
        return [trafilatura.extract(h, favor_precision=True, include_comments=False, deduplicate=False)
                for h in pages]

    try:
        with_gate = extract_all(gated)
        without = extract_all(ungated)
    finally:
        for k, v in current.items():
            lists[k][:] = v
    assert sum(a != b for a, b in zip(with_gate, without)) == 0
    assert sum(bool(t) for t in without) > 300


def test_gated_expression_selects_the_same_elements():
    tree = lxml_html.fromstring(
        "<html><body><div>plain</div><div id='main-nav'>n</div><div class='x share-bar'>s</div>"
        "<p class='body'>text</p><span role='Navigation'>r</span><section><div class='Footer'>f</div></section>"
        "<div data-x='1'>d</div></body></html>"
    )
    xp = XPath(".//*[self::div or self::p or self::span][re:test(@id, 'nav') or contains(@class, 'share-') or "
               "contains(translate(@role, 'N', 'n'), 'nav') or re:test(@class, 'Footer|footer')]",
               namespaces={"re": REGEXP_NS})
    g = gate(xp)
    assert g is not None and "[@class or @id or @role]" in g.path
    assert g(tree) == xp(tree) and len(xp(tree)) == 4


@pytest.mark.parametrize("predicate", [
    "not(@class)",  # true without the attribute
    "contains(@class, '')",  # likewise
    "re:test(@id, 'a*')",  # the pattern matches the empty string
    "string-length(@id) = 0",
    ".//h1 or @class='x'",  # a path
    "contains(text(), 'x')",
    "position() = 1",
])
def test_the_gate_is_refused_where_it_could_change_the_result(predicate):
    assert attribute_gate(predicate) is None


def test_only_descendant_steps_with_predicates_are_rewritten():
    assert predicates(".//*[self::div][@id='x']") == ["self::div", "@id='x'"]
    assert predicates(".//div[@id='x']") is None
    assert predicates(".//*[@id='x']/p") is None
    assert gate(XPath(".//*[self::div][not(@id)]")) is None
    assert gate(XPath(".//*[@class='a'][1]")).path.startswith(".//*[@class][@class='a']")


def test_regex_calls_are_guarded_only_where_the_value_cannot_change():
    assert gate_regex_calls("re:test(@id|@class, 'nav')") == "((@id or @class) and re:test(@id|@class, 'nav'))"
    assert gate_regex_calls("re:test(@id, 'a*')") == "re:test(@id, 'a*')"  # true on '': left as it is
    assert gate_regex_calls("re:test(string(.), 'x')") == "re:test(string(.), 'x')"  # not attributes only
