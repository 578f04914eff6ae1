"""Compiled attribute selections select exactly what libxml2 selects: every trafilatura expression on every real
page (raw and converted trees), a grammar of cases one by one, and generated trees built to hit the corners
(attribute order, missing and empty attributes, case, Unicode spaces); anything outside the subset is refused."""

from __future__ import annotations

import copy
import random

import pytest
from lxml import etree
from lxml import html as lxml_html
from lxml.etree import XPath
from trafilatura import settings, xpaths
from trafilatura.htmlprocessing import convert_tags, prune_unwanted_nodes, tree_cleaning
from trafilatura.settings import Extractor as TrafilaturaOptions
from trafilatura.utils import load_html

from crawlproc.extract.attrxpath import Unsupported, compile_select, compile_union, try_compile
from realpages import real_pages

RE = {"re": "http://exslt.org/regular-expressions"}


def trafilatura_expressions() -> dict[str, XPath]:
    out = {}
    for name, value in vars(xpaths).items():
        if isinstance(value, list):
            out.update({f"{name}[{i}]": x for i, x in enumerate(value) if isinstance(x, XPath)})
    out["settings.BASIC_CLEAN_XPATH"] = settings.BASIC_CLEAN_XPATH
    return out


def test_most_of_trafilaturas_pruning_and_content_expressions_compile():
    """Fails when a new trafilatura writes its expressions so that nothing compiles (the speed-up is gone)."""
    exprs = trafilatura_expressions()
    compiled = {n for n, x in exprs.items() if try_compile(x) is not None}
    for name in ("OVERALL_DISCARD_XPATH[0]", "OVERALL_DISCARD_XPATH[1]", "BODY_XPATH[0]", "PRECISION_DISCARD_XPATH[1]",
                 "REMOVE_COMMENTS_AND_LISTS_XPATH[0]", "RAW_TREE_PRUNE_XPATH[0]", "TEASER_DISCARD_XPATH[0]"):
        assert name in compiled, name
    assert len(compiled) >= 18


@pytest.fixture(scope="module")
def trees():
    """The raw tree of every real page and the same after trafilatura's cleaning and tag conversion (where
    `list`, `item`, `head`... appear)."""
    opts = TrafilaturaOptions(precision=True, comments=False)
    out = []
    for _name, _url, html in real_pages():
        raw = load_html(html)
        if raw is not None:
            out += [raw, convert_tags(tree_cleaning(copy.copy(raw), opts), opts, None)]
    return out


def test_every_compiled_trafilatura_expression_selects_what_libxml2_selects_on_every_real_page(trees):
    assert len(trees) > 700
    compiled = {n: (x, c) for n, x in trafilatura_expressions().items() if (c := try_compile(x)) is not None}
    checked = 0
    for tree in trees:
        for name, (xp, sel) in compiled.items():
            assert sel(tree) == xp(tree), name
            checked += 1
    assert checked > 10_000


def test_unions_select_and_prune_as_the_lists_do_on_every_real_page(trees):
    lists = {n: v for n, v in vars(xpaths).items()
             if isinstance(v, list) and len(v) > 1 and all(isinstance(x, XPath) for x in v)}
    unions = {n: compile_union(v) for n, v in lists.items() if n in (
        "OVERALL_DISCARD_XPATH", "RAW_TREE_PRUNE_XPATH", "PRECISION_DISCARD_XPATH")}
    assert len(unions) == 3
    for tree in trees[::3]:
        order = {e: i for i, e in enumerate(tree.iter())}
        for name, union in unions.items():
            expected = sorted({e for xp in lists[name] for e in xp(tree)}, key=order.__getitem__)
            assert union(tree) == expected, name
            for backup in (False, True):
                a = prune_unwanted_nodes(copy.copy(tree), lists[name], with_backup=backup)
                b = prune_unwanted_nodes(copy.copy(tree), [union], with_backup=backup)
                assert etree.tostring(a) == etree.tostring(b), (name, backup)


# --- the grammar, case by case, on one small tree -------------------------------------------------------------

PAGE = """<html><body>
<div id="main" class="post-body">a<p class="x">t</p>tail</div>
<div class="post-body" id="main">b</div>
<div class="nav bar"><span role="Navigation">n</span><h1>h</h1></div>
<section data-x="" style="display:none">s</section>
<div class="  caption ">c<div class="caption">d</div><div class="caption">e</div></div>
<p class="\u00a0bottom">u</p><p class="bottom\u2003">v</p><p class="BOTTOM">w</p>
<ul><li id="x1">1</li><li>2</li></ul><ol><li class="teaser">3</li></ol>
<aside class="Teaser">q</aside><div lang="de" class="">empty</div>
</body></html>"""

CASES = [
    ".//*[self::div or self::p][@class]",
    ".//*[@data-x]",
    ".//*[@data-x='']",
    ".//*[@class='']",
    ".//div[@class='post-body']",
    ".//*[@id='main' or @class='caption']",
    ".//*[contains(@class, 'caption')]",
    ".//*[starts-with(@class, '  ')]",
    ".//*[starts-with(@id|@class, 'post')]",  # the first of the two in source order
    ".//*[starts-with(@id|@class, 'main')]",
    ".//*[re:test(@id|@class, '^main$')]",
    ".//*[re:test(@class|@id, '^post')]",
    ".//*[re:test(@class, 'bottom$')]",
    r".//*[re:test(@class, '(^|\s)bottom|bottom(\s|$)')]",  # Python's \s: Unicode spaces
    ".//*[re:test(@class, 'bottom', 'i')]",
    ".//*[re:test(@class, 'bottom', 'gi')]",
    ".//*[contains(translate(@class, 'BOTM', 'botm'), 'bottom')]",
    ".//*[contains(translate(@role, 'NQ', 'n'), 'nav')]",  # Q has no counterpart: deleted
    ".//*[contains(translate(@class, 'TT', 'tx'), 'teaser')]",  # a repeated character: the first mapping counts
    ".//*[self::div][not(.//h1)]",
    ".//*[self::div][not(.//h1) or @id='main']",
    ".//*[not(self::ul or self::ol)][@class or @id]",
    ".//*[self::div][@class='caption'][1]",  # the first match among each parent's children
    "(.//*[self::div][@class='caption'])[1]",  # the first match
    "(.//*[self::li])[1]",
    ".//li",
    ".//*[self::li or self::aside][contains(translate(@class, 'T', 't'), 'teaser')]",
    ".//*[(@id and @class) or @style]",
    ".//*[@lang = 'de' and @class = '']",
    ".//*[self::div or self::section][@class or @style][contains(@style, 'none') or contains(@class, 'nav')]",
]


@pytest.mark.parametrize("path", CASES)
def test_each_construct_selects_what_libxml2_selects(path):
    tree = lxml_html.document_fromstring(PAGE)
    expected = XPath(path, namespaces=RE)(tree)
    assert compile_select(path)(tree) == expected
    assert expected or path in (".//*[starts-with(@class, '  ')]",)  # the cases select something


@pytest.mark.parametrize("path", [
    ".//*[position() = 1]",
    ".//*[2]",
    ".//*[contains(text(), 'x')]",
    ".//*[string-length(@id) = 0]",
    ".//*[@id != 'x']",
    ".//*[.//h1/@class]",
    ".//*[@class=@id]",
    ".//*[re:test(@class, concat('a', 'b'))]",
    ".//div/p",
    "//div[@class]",
    ".//*[@class] | .//p",
    ".//*[@xml:lang]",
    ".//*[re:replace(@class, 'a', 'g', 'b')]",
])
def test_anything_outside_the_subset_is_refused(path):
    with pytest.raises(Unsupported):
        compile_select(path)
    assert try_compile(path) is None


def test_a_test_that_holds_without_attributes_is_not_gated():
    """The shortcut "no attribute read here -> no match" is taken only where it is true."""
    assert compile_select(".//*[@class='a']").test.gated
    assert not compile_select(".//*[not(@class)]").test.gated
    assert not compile_select(".//*[self::div][not(.//h1) or @id='x']").test.gated
    assert not compile_select(".//*[contains(@class, '')]").test.gated
    assert not compile_select(".//*[re:test(@class, 'a*')]").test.gated  # matches the empty string
    tree = lxml_html.document_fromstring("<html><body><div>1</div><div class='a'>2</div><p>3</p></body></html>")
    for path in (".//*[not(@class)]", ".//*[contains(@class, '')]", ".//*[re:test(@class, 'a*')]"):
        assert compile_select(path)(tree) == XPath(path, namespaces=RE)(tree)


# --- generated trees: random tags, attributes, values and orders -------------------------------------------

TOKENS = ["nav", "Nav", "comment", "comments", "Comments", "commentary", "footer", "share-bar", "social", "post",
          "post-body", "article-body", "entry-content", "bottom", "link", "caption", "teaser", "Teaser", "hidden",
          "display:none", "display: none", "reply-box", "hide-print", "widget", "ad", " ad ", "-ad-", "cookie",
          "main", "content", "story-body", "sidebar", "byline", "meta", "menu", "akismet", "respond", "x", "",
          "\u00a0bottom", "bottom\u2003", "ÜBER", "tags", "tag-list", "message", "more-on", "premium"]
ATTRS = ["class", "id", "style", "role", "aria-hidden", "data-component", "itemprop", "data-lp-replacement-content"]
TAGS = ["div", "p", "span", "section", "article", "main", "aside", "ul", "ol", "li", "list", "item", "details",
        "header", "h1", "a", "table", "td"]


def random_tree(rng: random.Random) -> etree._Element:
    root = etree.Element("body")
    nodes = [root]
    for _ in range(rng.randint(5, 60)):
        parent = rng.choice(nodes)
        el = etree.SubElement(parent, rng.choice(TAGS))
        for name in rng.sample(ATTRS, rng.randint(0, 4)):  # random order: the order of @id|@class matters
            value = " ".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 3)))
            el.set(name, value if rng.random() < 0.9 else "")
        if rng.random() < 0.2 and name_in_tokens(el):
            el.set("aria-hidden", "true")
        el.text = rng.choice(["a", "", None])
        nodes.append(el)
    html = etree.Element("html")
    html.append(root)
    return lxml_html.document_fromstring(etree.tostring(html, encoding="unicode"))


def name_in_tokens(el) -> bool:
    return el.get("class") is not None


def test_generated_trees():
    rng = random.Random(20240601)
    exprs = {n: x for n, x in trafilatura_expressions().items() if try_compile(x) is not None}
    exprs.update({c: XPath(c, namespaces=RE) for c in CASES})
    compiled = {n: compile_select(x) for n, x in exprs.items()}
    matched = 0
    for _ in range(250):
        tree = random_tree(rng)
        for name, xp in exprs.items():
            got = compiled[name](tree)
            assert got == xp(tree), (name, etree.tostring(tree))
            matched += bool(got)
    assert matched > 2000  # the generated attributes do hit the expressions
