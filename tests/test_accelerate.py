"""The accelerated trafilatura call gives trafilatura's own text on every real page, lever by lever and all
together; it changes nothing outside our calls; it notices when trafilatura's internals change under it."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import tomllib
from copy import copy as real_copy
from pathlib import Path

import pytest
import trafilatura
from lxml import html as lxml_html
from lxml.etree import XPath
from trafilatura import core, utils, xpaths

from crawlproc.extract import accelerate
from crawlproc.extract.accelerate import LEVERS, Accelerator, check_internals, form_api_uses, selection_misuses
from crawlproc.extract.html import Extractor, ExtractTimeout
from crawlproc.recipe import ExtractConfig
from realpages import real_pages

CALL = {"favor_precision": True, "include_comments": False, "include_tables": True, "output_format": "txt"}
ROOT = Path(__file__).resolve().parent.parent

STOCK = """
import json, sys, trafilatura
from trafilatura.deduplication import LRUCache
args = json.loads(sys.argv[1])
pages = json.load(sys.stdin)
size = args.pop("cache", 0)
cache = LRUCache(maxsize=size) if size else False
print(json.dumps([trafilatura.extract(h, url=u, deduplicate=cache, **args) for h, u in pages]))
"""


def stock(pages, cache: int = 0, **call) -> list:
    """trafilatura.extract as it ships, in a fresh interpreter where nothing of ours is imported."""
    args = dict(call or CALL, cache=cache)
    proc = subprocess.run([sys.executable, "-c", STOCK, json.dumps(args)], input=json.dumps(pages),
                          capture_output=True, text=True, check=True, timeout=900)
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def pages():
    out = [(html, url) for _name, url, html in real_pages()]
    assert len(out) > 350
    return out


@pytest.fixture(scope="module")
def stock_texts(pages):
    return stock(pages)


def test_the_same_text_as_trafilatura_on_every_real_page(pages, stock_texts):
    acc = Accelerator(**CALL)
    assert acc.levers == LEVERS
    ours = [acc.extract(html, url) for html, url in pages]
    assert sum(bool(t) for t in stock_texts) > 300
    assert [i for i, (a, b) in enumerate(zip(ours, stock_texts)) if a != b] == []


@pytest.mark.parametrize("lever", LEVERS + accelerate.OPTIONAL_LEVERS)
def test_each_lever_alone_gives_trafilaturas_text(pages, stock_texts, lever):
    acc = Accelerator(levers=(lever,), **CALL)
    assert acc.levers == (lever,)
    sample = list(range(0, len(pages), 4))
    assert [acc.extract(*pages[i]) for i in sample] == [stock_texts[i] for i in sample]


def test_with_a_duplicate_cache_over_a_sequence_of_pages(pages):
    """Deduplication makes each page's text depend on the pages before it: the same sequence, the same texts."""
    from trafilatura.deduplication import LRUCache

    part = pages[::8]
    seq = part * 4  # by the fourth round every paragraph has been seen more than trafilatura's 2 repetitions
    acc, cache = Accelerator(**CALL), LRUCache(maxsize=8192)
    ours = [acc.extract(html, url, deduplicate=cache) for html, url in seq]
    theirs = stock(seq, cache=8192)
    assert ours == theirs
    assert sum(a != b for a, b in zip(theirs[: len(part)], theirs[3 * len(part):])) > 20  # dedup did act


def test_balanced_and_recall_modes_are_trafilaturas_too(pages):
    """The raw tree is needed again outside precision mode (baseline rescue, recall escalation): there the copy
    is made."""
    sample = pages[::9]
    for call in ({"include_comments": False}, {"favor_recall": True, "include_comments": False},
                 {"include_comments": True, "include_tables": False}):
        acc = Accelerator(**call)
        assert [acc.extract(html, url) for html, url in sample] == stock(sample, **call), call


def _state() -> dict:
    """What the levers change, as seen from outside a call."""
    tree = utils.load_html("<html><body><form><input name='q'></form><p>x</p></body></html>")
    return {
        "lists": {name: [type(x).__name__ for x in v] for name, v in vars(xpaths).items() if isinstance(v, list)},
        "form_class": type(tree.find(".//form")).__name__,
        "copy": core.copy,
        "stoplist": type(trafilatura.external.JT_STOPLIST).__name__,
        "prune": [getattr(m, "prune_unwanted_nodes", None) for m in (core, trafilatura.main_extractor, trafilatura.external)],
        "paragraph_maker": trafilatura.external.ParagraphMaker,
        "text_content": lxml_html.HtmlMixin.text_content,
        "invalid_xml_chars": utils.INVALID_XML_CHARS,
        "compare_extraction": core.compare_extraction,
    }


def test_nothing_is_changed_outside_our_calls(pages, monkeypatch):
    acc = Accelerator(levers=LEVERS + accelerate.OPTIONAL_LEVERS, **CALL)  # (it builds jusText's stop list)
    before = _state()
    assert before["form_class"] == "FormElement" and before["copy"] is real_copy
    assert all(t == "XPath" for t in before["lists"]["OVERALL_DISCARD_XPATH"])
    seen = {}
    original = core.trafilatura_sequence

    def spy(*a, **k):
        seen.update(_state())
        return original(*a, **k)

    # the accelerator is made before the spy is in place: it checks trafilatura's sources (trafilatura_sequence
    # among them) once per process, and would take the spy for a changed trafilatura if it were the first to check
    monkeypatch.setattr(core, "trafilatura_sequence", spy)
    assert acc.extract(*pages[0])
    assert seen["form_class"] == "HtmlElement" and seen["copy"] is not real_copy  # in place during the call
    assert seen["stoplist"] == "HashedStopList" and before["stoplist"] == "tuple"
    assert all(t == "Select" for t in seen["lists"]["OVERALL_DISCARD_XPATH"])
    assert seen["prune"] != before["prune"]
    assert seen["paragraph_maker"] is not before["paragraph_maker"] and seen["text_content"] is not before["text_content"]
    assert type(seen["invalid_xml_chars"]) is accelerate.ScreenedPattern and type(before["invalid_xml_chars"]) is re.Pattern
    assert seen["compare_extraction"] is not before["compare_extraction"] is trafilatura.external.compare_extraction
    assert _state() == before  # and taken back after it


def test_an_accelerator_made_inside_anothers_call_takes_back_what_ships():
    """One made while another's swaps are in place (another thread inside a call) swaps and restores what
    trafilatura, jusText and lxml ship, not the other's stand-ins."""
    before = _state()
    first = Accelerator(levers=LEVERS + accelerate.OPTIONAL_LEVERS, **CALL)
    with first.active():
        inner = Accelerator(levers=LEVERS + accelerate.OPTIONAL_LEVERS, **CALL)
    assert _state() == before
    assert len(inner.swaps.lists) == len(first.swaps.lists) > 0  # its selections are compiled from the stock ones
    with inner.active():
        assert _state()["paragraph_maker"] is not before["paragraph_maker"]
    assert _state() == before


def test_a_time_limit_striking_inside_the_call_leaves_nothing_behind():
    before = _state()
    body = "".join(f"<div class='c{i % 7} post'><p>Paragraph {i} with words.</p></div>" for i in range(40_000))
    ex = Extractor(ExtractConfig(timeout_s=0.05))
    with pytest.raises(ExtractTimeout):
        ex.extract(f"<html><body>{body}</body></html>")
    assert _state() == before
    assert Extractor(ExtractConfig()).extract(
        "<html><body><article>" + "<p>An ordinary sentence of an ordinary article.</p>" * 8 + "</article></body></html>")


def test_threads_extracting_at_once_get_trafilaturas_text(pages, stock_texts):
    """Two threads in accelerated calls and one calling trafilatura directly, at the same time: each gets the
    stock text (the swaps stay while any thread is inside, and what they swap in is equivalent)."""
    sample = list(range(0, len(pages), 7))
    acc = Accelerator(**CALL)
    results: dict[str, list] = {}

    def run(name, fn):
        results[name] = [fn(*pages[i]) for i in sample]

    threads = [threading.Thread(target=run, args=("a", acc.extract)),
               threading.Thread(target=run, args=("b", Accelerator(**CALL).extract)),
               threading.Thread(target=run, args=("plain", lambda h, u: trafilatura.extract(h, url=u, **CALL)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = [stock_texts[i] for i in sample]
    assert results["a"] == results["b"] == results["plain"] == expected
    assert accelerate._INSTALLED is None and not accelerate._INSIDE


# --- trafilatura's internals: pinned, checked, and a lever is dropped when they change ------------------------

def test_trafilatura_is_the_version_the_levers_were_verified_on():
    """Fails when trafilatura changes under us: then re-verify (bench/bench_levers.py, this file), update
    VERIFIED in crawlproc/extract/accelerate.py and the pin in pyproject.toml."""
    assert check_internals() == {lever: [] for lever in (*LEVERS, *accelerate.OPTIONAL_LEVERS)}
    pin = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
               if d.startswith("trafilatura"))
    low, high = re.search(r">=([\d.]+),<([\d.]+)", pin).groups()
    version = tuple(int(x) for x in trafilatura.__version__.split(".")[:2])
    assert tuple(map(int, low.split("."))) <= version < tuple(map(int, high.split(".")))


def _accelerator_checking_afresh(monkeypatch, caplog) -> Accelerator:
    """An Accelerator made after the process's verdict on trafilatura's internals is forgotten (monkeypatch puts
    the real verdict back after the test), its warnings in caplog."""
    monkeypatch.setattr(accelerate, "_CHECKED", None)
    with caplog.at_level(logging.WARNING, logger="crawlproc.extract.accelerate"):
        return Accelerator(**CALL)


def test_a_lever_whose_trafilatura_code_changed_is_left_out(monkeypatch, caplog, pages, stock_texts):
    monkeypatch.setitem(accelerate.VERIFIED["raw_tree_copy"], "core._prepare_tree", "0" * 16)
    acc = _accelerator_checking_afresh(monkeypatch, caplog)
    assert "raw_tree_copy" not in acc.levers and "selections" in acc.levers
    assert "core._prepare_tree" in caplog.text
    assert acc.extract(*pages[3]) == stock_texts[3]
    monkeypatch.setattr(accelerate, "_CHECKED", None)  # forget the doctored verdict


def test_a_changed_invalid_xml_pattern_leaves_the_control_chars_lever_out(monkeypatch, caplog):
    """The pattern is a constant, not in any function's source: it is compared on its own."""
    changed = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
    monkeypatch.setitem(accelerate._stock(), "invalid_xml_chars", changed)
    acc = _accelerator_checking_afresh(monkeypatch, caplog)
    assert "control_chars" not in acc.levers and "text_content" in acc.levers
    assert "utils.INVALID_XML_CHARS" in caplog.text
    monkeypatch.setattr(accelerate, "_CHECKED", None)


def test_the_source_scans_notice_a_use_a_compiled_selection_cannot_stand_in_for():
    ok = {"a.py": "def f(tree):\n    for expr in BODY_XPATH:\n        s = expr(tree)\n        LOGGER.debug(str(expr))\n"
                  "    tree = prune_unwanted_nodes(tree, OVERALL_DISCARD_XPATH, with_backup=True)\n"
                  "    prune_unwanted_nodes(tree, REMOVE_COMMENTS_XPATH if x else RAW_TREE_PRUNE_XPATH)\n"}
    assert selection_misuses(ok) == []
    for bad in ("p = OVERALL_DISCARD_XPATH[0].path\n", "tree.xpath(BODY_XPATH[0])\n",
                "for expr in BODY_XPATH:\n    tree.xpath(expr.path)\n", "xs = list(TEASER_DISCARD_XPATH)\n",
                "prune_unwanted_nodes(OVERALL_DISCARD_XPATH, tree)\n"):
        assert selection_misuses({"b.py": bad}), bad
    assert form_api_uses({"c.py": "x = form.fields['q']\ny = el.value\n"}) == ["c.py:1 .fields", "c.py:2 .value"]
    assert form_api_uses({"c.py": "x = el.text_content()\n"}) == []


def test_the_hashed_stop_list_is_the_stop_list():
    from justext.core import define_stoplist
    from trafilatura import external

    words = external.JT_STOPLIST or external.jt_stoplist_init()
    hashed = accelerate.HashedStopList(words)
    assert hashed == words and hash(hashed) == hash(words) and len(words) > 100_000
    assert define_stoplist(hashed) == define_stoplist(words)


def test_the_lean_paragraph_maker_makes_jusTexts_paragraphs_on_every_real_page():
    """The paragraphs themselves, field by field, from the tree trafilatura hands jusText (basic_cleaning of the
    cleaned tree), and on trees with comments and processing instructions around the root."""
    import copy

    from justext.core import ParagraphMaker
    from lxml import etree
    from trafilatura.baseline import basic_cleaning
    from trafilatura.htmlprocessing import tree_cleaning
    from trafilatura.settings import Extractor as Options

    lean = accelerate._lean_paragraph_maker(ParagraphMaker)
    opts = Options(precision=True, comments=False)

    def fields(paragraphs):
        return [(p.dom_path, p.xpath, p.text_nodes, p.chars_count_in_links, p.tags_count) for p in paragraphs]

    trees = []
    for _name, _url, html in real_pages():
        tree = utils.load_html(html)
        if tree is not None:
            trees.append(basic_cleaning(tree_cleaning(copy.copy(tree), opts)))
    xml = etree.fromstring(b"<?pi one?><!--c--><root>a<!--x-->b<?pi two?>c<p>d<br/>e</p>f<a>g</a></root>")
    trees += [xml, xml.getroottree()]
    checked = 0
    for tree in trees:
        expected = fields(ParagraphMaker.make_paragraphs(tree))
        assert fields(lean.make_paragraphs(tree)) == expected
        checked += len(expected)
    assert checked > 10_000


@pytest.mark.parametrize("events", [False, True], ids=["alone", "with_paragraph_events"])
def test_lean_paragraphs_are_jusTexts_paragraphs_and_classify_the_same_on_every_real_page(events):
    """Every value jusText and trafilatura read from a paragraph, before and after classification, from the tree
    trafilatura hands jusText, with the combined stop list trafilatura uses."""
    import copy

    from justext.core import ParagraphMaker, classify_paragraphs, revise_paragraph_classification
    from trafilatura import external
    from trafilatura.baseline import basic_cleaning
    from trafilatura.htmlprocessing import tree_cleaning
    from trafilatura.settings import Extractor as Options

    lean = accelerate._lean_paragraph_maker(ParagraphMaker, events=events, objects=True)
    stoplist = frozenset(external.JT_STOPLIST or external.jt_stoplist_init())
    opts = Options(precision=True, comments=False)

    def made(paragraphs):
        return [(p.dom_path, p.xpath, list(p.text_nodes), p.chars_count_in_links, p.tags_count, p.text, len(p),
                 p.words_count, p.stopwords_count(stoplist), p.stopwords_density(stoplist), p.links_density(),
                 p.is_heading) for p in paragraphs]

    def classified(paragraphs):
        classify_paragraphs(paragraphs, stoplist, 50, 150, 0.1, 0.2, 0.25, True)
        revise_paragraph_classification(paragraphs, 150)
        return [(p.cf_class, p.class_type, p.heading, p.is_boilerplate, p.text) for p in paragraphs]

    checked = good = 0
    for _name, _url, html in real_pages():
        tree = utils.load_html(html)
        if tree is None:
            continue
        tree = basic_cleaning(tree_cleaning(copy.copy(tree), opts))
        theirs, ours = ParagraphMaker.make_paragraphs(tree), lean.make_paragraphs(tree)
        assert all(type(p).__name__ == "LeanParagraph" for p in ours)
        assert made(ours) == made(theirs)
        expected = classified(theirs)
        assert classified(ours) == expected
        checked += len(expected)
        good += sum(c[1] == "good" for c in expected)
    assert checked > 10_000 and good > 1_000


def test_a_lean_paragraphs_text_follows_its_text_nodes():
    from justext.core import PathInfo
    from justext.paragraph import Paragraph

    path = PathInfo().append("body").append("div").append("p")
    ours, theirs = accelerate._lean_paragraph_class()(path), Paragraph(path)
    path.pop().append("span")  # the path moves on: the paragraph keeps where it was made
    for p in (ours, theirs):
        p.append_text("  one\n\n two ")
    assert (ours.text, ours.words_count, ours.dom_path, ours.xpath) == (theirs.text, 2, "body.div.p", "/body[1]/div[1]/p[1]")
    for p in (ours, theirs):
        p.append_text(" three\t")
    assert (ours.text, len(ours), ours.words_count) == (theirs.text, len(theirs), theirs.words_count) == ("one\ntwo three", 13, 3)
    ours.dom_path = "set"  # jusText's attributes stay assignable
    assert ours.dom_path == "set"


def test_the_serialising_text_content_is_lxmls_on_every_element_of_every_real_page():
    """Every element of each real page as parsed, and of the cleaned and converted trees trafilatura works on;
    a comment or processing instruction still raises as lxml.html's does."""
    import copy

    from lxml import html as lxml_html
    from trafilatura.htmlprocessing import convert_tags, tree_cleaning
    from trafilatura.settings import Extractor as Options

    original = lxml_html.HtmlMixin.text_content
    fast = accelerate._serialising_text_content(original)
    opts = Options(precision=True, comments=False)
    checked = 0
    for _name, url, html in real_pages():
        tree = utils.load_html(html)
        if tree is None:
            continue
        cleaned = tree_cleaning(copy.copy(tree), opts)
        for root in (tree, cleaned, convert_tags(copy.copy(cleaned), opts, url)):
            for el in root.iter():
                if isinstance(el.tag, str):
                    theirs, ours = original(el), fast(el)
                    assert ours == theirs and type(ours) is str
                    checked += 1
    assert checked > 300_000
    page = lxml_html.fromstring("<html><body><div>a<!--c-->b<?pi x?>c &amp; d<p>e</p>f</div>g</body></html>")
    div = page.find(".//div")
    assert fast(div) == original(div) == "abc & def"
    for other in (div[0], div[1]):  # the comment, the processing instruction
        with pytest.raises(ValueError):
            original(other)
        with pytest.raises(ValueError):
            fast(other)


def test_the_invalid_xml_char_screen_agrees_with_trafilaturas_pattern_on_every_code_point():
    """Alone and inside a text (ASCII, Latin-1, CJK and astral neighbours, so that the str's width varies),
    for all 1,114,112 code points, lone surrogates included."""
    pattern = utils.INVALID_XML_CHARS
    assert type(pattern) is re.Pattern and pattern.pattern == accelerate.INVALID_XML_PATTERN
    screen = accelerate.holds_no_invalid_xml_char
    found = []
    for cp in range(0x110000):
        c = chr(cp)
        if screen(c) != (pattern.search(c) is None):
            found.append(cp)
    assert found == []
    matched = [cp for cp in range(0x110000) if pattern.search(chr(cp))]
    assert len(matched) == 31 and matched[-2:] == [0xFFFE, 0xFFFF]
    for cp in (*matched, 0x09, 0x0A, 0x0D, 0x20, 0x7F, 0x85, 0xFFFD, 0x1F600, 0xD800):
        for around in ("ab", "é\xe9", "漢字", "\U0001f600x"):
            text = around + chr(cp) + around
            assert screen(text) == (pattern.search(text) is None), (hex(cp), around)


def test_the_screened_pattern_deletes_what_trafilaturas_deletes():
    import random

    pattern = utils.INVALID_XML_CHARS
    screened = accelerate.ScreenedPattern(pattern)
    rng = random.Random(7)
    bad = [chr(c) for c in range(0x110000) if pattern.search(chr(c))]
    texts = [html for _name, _url, html in real_pages()[::5]]
    for html in list(texts):
        chars = list(html)
        for _ in range(rng.randint(1, 5)):
            chars.insert(rng.randrange(len(chars) + 1), rng.choice(bad))
        texts.append("".join(chars))
    assert sum(pattern.search(t) is not None for t in texts) >= len(texts) // 2
    for text in texts:
        assert screened.sub("", text) == pattern.sub("", text)
    assert screened.sub("", "a\x01b\x02c", 1) == pattern.sub("", "a\x01b\x02c", 1) == "ab\x02c"
    for other in (b"a\x01b", None):  # not a str: the pattern's own sub, which refuses it
        with pytest.raises(TypeError):
            pattern.sub("", other)
        with pytest.raises(TypeError):
            screened.sub("", other)
    assert screened.pattern is pattern and screened.flags == pattern.flags


def test_pages_with_control_characters_get_trafilaturas_text(pages):
    """The lever's other branch: pages that do hold characters XML forbids (deleted before parsing)."""
    import random

    rng = random.Random(11)
    bad = [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF)]
    sample = []
    for html, url in pages[::10]:
        chars = list(html)
        for _ in range(rng.randint(1, 20)):
            chars.insert(rng.randrange(len(chars) + 1), rng.choice(bad))
        sample.append(("".join(chars), url))
    theirs = stock(sample)
    assert sum(bool(t) for t in theirs) > len(sample) // 2
    for levers in (("control_chars",), LEVERS):
        acc = Accelerator(levers=levers, **CALL)
        assert [acc.extract(html, url) for html, url in sample] == theirs, levers


def test_the_compiled_lists_are_trafilaturas_own_lists():
    """The swap works in place on trafilatura's list objects (the modules that use them hold the same objects)."""
    from trafilatura import main_extractor

    lists = accelerate.compiled_lists()
    assert lists["OVERALL_DISCARD_XPATH"][0] is xpaths.OVERALL_DISCARD_XPATH is main_extractor.OVERALL_DISCARD_XPATH
    assert all(isinstance(x, XPath) for x in xpaths.OVERALL_DISCARD_XPATH)


def test_the_extractor_switch():
    assert Extractor(ExtractConfig())._accelerator is not None
    plain = Extractor(ExtractConfig(accelerate=False))
    assert plain._accelerator is None
    page = "<html><body><article>" + "<p>One more ordinary sentence of a plain page.</p>" * 6 + "</article></body></html>"
    assert plain.extract(page) == Extractor(ExtractConfig()).extract(page)
    assert type(utils.load_html("<html><body><form></form></body></html>").find(".//form")) is lxml_html.FormElement


# --- readability_gate: readability skipped only where its text would lose ------------------------------------

def _readability_on_stock(pages, monkeypatch, **call) -> list[dict]:
    """For each page, stock trafilatura's readability comparison as it ran: the bounds of the raw tree it got,
    the length of readability's text and whether trafilatura preferred it."""
    from trafilatura import external
    from trafilatura.utils import trim

    from crawlproc.extract import readability_gate as gate

    seen: list[dict] = []
    compare, readability, prefer = core.compare_extraction, external.try_readability, external._prefer_readability

    unsafe = gate.raw_text_elements() - gate.DISPOSED_OF

    def spy_compare(cleaned_tree, raw_tree, body, text, options):
        parts = gate.text_parts(raw_tree)
        seen.append({"raw": gate.raw_bound(*parts), "trimmed": gate.trimmed_bound(*parts),
                     "unsafe": next(raw_tree.iter(*unsafe), None) is not None,
                     "loses": gate.readability_loses(raw_tree, body, len(text), options.min_extracted_size, unsafe)})
        return compare(cleaned_tree, raw_tree, body, text, options)

    def spy_readability(tree):
        out = readability(tree)
        seen[-1]["algo"] = len(trim(lxml_html.tostring(out, method="text", encoding="utf-8").decode("utf-8")))
        return out

    def spy_prefer(*args):
        seen[-1]["preferred"] = prefer(*args)
        return seen[-1]["preferred"]

    monkeypatch.setattr(core, "compare_extraction", spy_compare)
    monkeypatch.setattr(external, "try_readability", spy_readability)
    monkeypatch.setattr(external, "_prefer_readability", spy_prefer)
    for html, url in pages:
        trafilatura.extract(html, url=url, **(call or CALL))
    monkeypatch.undo()
    return seen


@pytest.mark.parametrize("mode", ["precision", "balanced"])
def test_the_bounds_hold_and_readability_is_skipped_only_where_trafilatura_refuses_it(pages, monkeypatch, mode):
    call = CALL if mode == "precision" else {**CALL, "favor_precision": False}
    runs = _readability_on_stock(pages if mode == "precision" else pages[::3], monkeypatch, **call)
    safe = [r for r in runs if not r["unsafe"]]
    assert len(safe) == len(runs) > 100
    assert [r for r in safe if r["algo"] > min(r["raw"], r["trimmed"])] == []
    decided = [r for r in runs if r["loses"]]
    assert len(decided) > len(runs) / 4  # the gate acts
    assert [r for r in decided if r["preferred"]] == []
    assert any(r["preferred"] for r in runs)  # and readability does win elsewhere: the check could fail


def test_a_page_the_parser_reads_raw_is_never_decided_by_the_bound():
    """`<xmp>` text comes back from readability's round trip longer than it was (`<` read raw, serialised as
    `&lt;`, re-read raw): the bound does not hold there, and the gate leaves such a page to readability."""
    from trafilatura.external import try_readability
    from trafilatura.utils import trim

    from crawlproc.extract import readability_gate as gate

    raw = gate.raw_text_elements()
    assert {"xmp", "plaintext", "noembed", "script", "style"} <= raw
    assert not raw & {"p", "div", "a", "title", "textarea", "table", "noscript", "span"}
    assert gate.probe_failures() == []
    page = ("<html><body><div class='article'><p>" + "Words of an ordinary paragraph here. " * 8 + "</p><xmp>"
            + "<" * 400 + "</xmp><p>" + "More words in a second paragraph. " * 8 + "</p></div></body></html>")
    tree = utils.load_html(page)
    bound = gate.raw_bound(*gate.text_parts(tree))
    algo = len(trim(lxml_html.tostring(try_readability(utils.load_html(page)), method="text",
                                        encoding="utf-8").decode("utf-8")))
    assert algo > bound  # the premise fails on this page
    body = lxml_html.fromstring("<div><p>own text</p><p>and more</p></div>")  # a well-formed body
    assert gate.readability_loses(tree, body, bound // 2, 250, frozenset())  # the bound alone would decide
    assert not gate.readability_loses(tree, body, bound // 2, 250, raw - gate.DISPOSED_OF)
    acc = Accelerator(levers=("readability_gate",), **CALL)
    assert [acc.extract(page)] == stock([(page, None)])


def test_a_parser_that_breaks_the_gates_argument_leaves_it_out(monkeypatch, caplog):
    from crawlproc.extract import readability_gate as gate

    monkeypatch.setattr(gate, "probe_failures", lambda: ["round trip of '<table>abc</table>'"])
    acc = _accelerator_checking_afresh(monkeypatch, caplog)
    assert "readability_gate" not in acc.levers and "control_chars" in acc.levers
    assert "round trip of" in caplog.text
    monkeypatch.setattr(accelerate, "_CHECKED", None)
