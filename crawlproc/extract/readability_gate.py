"""The "readability_gate" lever of crawlproc/extract/accelerate.py: trafilatura's readability comparison run only
on pages where readability's text could be chosen.

In precision and balanced modes trafilatura prunes the raw tree and runs its readability port on it for every
page (`compare_extraction`: ~1 ms a page with the other levers on, a tenth of the call), then keeps its own text
unless `_prefer_readability` says otherwise. With its own text of length L > 0, that takes readability's text
(of length R) only when R > 2L, or when R > 2 * min_extracted_size and its own body holds no paragraph text or
more tables than paragraphs. So an upper bound B on R decides the page without readability when B <= 2L and
(B <= 2 * min_extracted_size or the body is well formed): readability would lose whatever it returned.

The bound. Readability's text is a subsequence of the raw tree's text, in the same order: it deletes elements
(their tails stay), moves text into new paragraphs where it stood, drops scripts and styles from the whole tree,
and adds one thing, "VIDEO" as the text of an iframe whose source is a video (replacing the iframe's own text).
Its result then goes through an XML serialisation and trafilatura's HTML parser, which gives the same
characters back for ordinary elements (entities decoded, order kept), but not for elements the parser reads
as raw text (`<xmp>a &lt; b</xmp>` comes back four characters longer): a page holding one of those, other
than the scripts, styles and iframes readability itself disposes of, is never decided here. Which elements
those are is asked of the parser in use (`raw_text_elements`), not listed by hand. So
    B = len(text) - len(script and style text) + 6 per iframe,
and where that is close, the same over whitespace collapsed as trafilatura's `trim` does (removing a segment
of a text can join at most two of its words to the rest: hence + 2 per script or style).

When the page is decided, trafilatura's own `compare_extraction` still runs (the jusText fallback and every
other decision in it are its own) on an empty page instead of the raw tree, where readability finds no text:
the same outcome as on the real tree, where its text would have lost.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

# Element names to ask the parser about: every HTML element name, current and obsolete. The parser reads text raw
# only inside elements it knows by name; any other name parses as an ordinary element.
HTML_ELEMENTS = (
    "a abbr acronym address applet area article aside audio b base basefont bdi bdo bgsound big blink "
    "blockquote body br button canvas caption center cite code col colgroup data datalist dd del details dfn "
    "dialog dir div dl dt em embed fencedframe fieldset figcaption figure font footer form frame frameset h1 h2 "
    "h3 h4 h5 h6 head header hgroup hr html i iframe image img input ins isindex kbd keygen label legend li "
    "link listing main map mark marquee math menu menuitem meta meter multicol nav nextid nobr noembed "
    "noframes noscript object ol optgroup option output p param picture plaintext pre progress q rb rp rt rtc "
    "ruby s samp script search section select slot small source spacer span strike strong style sub summary "
    "sup svg table tbody td template textarea tfoot th thead time title tr track tt u ul var video wbr xmp"
).split()
# readability drops every script and style of the tree before anything else, and gives an iframe of its result
# either no text or "VIDEO": their own text never reaches its output
DISPOSED_OF = frozenset({"script", "style", "iframe"})
VIDEO_ALLOWANCE = 6  # "VIDEO" and a space it may separate
EMPTY_PAGE = "<html><body><div></div></body></html>"


def _round_trip(html: str) -> tuple[int, int]:
    """(text length of `html` as trafilatura parses it, the same after readability's serialisation and re-parse)."""
    from lxml.html import tostring
    from trafilatura.utils import fromstring_bytes

    tree = fromstring_bytes(html)
    again = fromstring_bytes(tostring(tree, encoding=str, method="xml"))
    return len(tostring(tree, method="text", encoding=str)), len(tostring(again, method="text", encoding=str))


@cache  # a property of the parser: asked once per process
def raw_text_elements() -> frozenset[str]:
    """The element names whose text does not come back as it was through readability's round trip (XML
    serialisation, trafilatura's HTML parser): escaped characters left escaped, or an empty element swallowing
    what follows. With libxml2 2.14: iframe, noembed, noframes, plaintext, script, style, xmp."""
    found = set()
    for name in HTML_ELEMENTS:
        for inner in ("q &lt; r &amp; s &gt; t", ""):
            before, after = _round_trip(f"<html><body><div><p>a</p><{name}>{inner}</{name}><p>b &lt; c</p>"
                                        f"<p>d</p></div></body></html>")
            if after > before:
                found.add(name)
    return frozenset(found)


# Misnested markup that the HTML parser must mend without moving or repeating text, as the bound assumes
ORDER_PROBES = (
    "<html><body><table>abc<tr><td>x</td></tr>def</table></body></html>",
    "<html><body><p>a<b>b<i>c</b>d</i>e</p><p>f</p></body></html>",
    "<html><body><table><tr><td>x</td></tr><p>zz</p></table></body></html>",
    "<html><body><a href=1>x<a href=2>y</a>z</a><p><div>q</div>r</p></body></html>",
)


def probe_failures() -> list[str]:
    """What in the parser in use breaks the argument above (empty when it holds): text moved or repeated by the
    round trip of misnested markup, or readability finding text on the empty page."""
    from lxml.html import document_fromstring, tostring
    from trafilatura.external import try_readability

    failures = [f"round trip of {p!r}" for p in ORDER_PROBES if len(set(_round_trip(p))) != 1]
    if tostring(try_readability(document_fromstring(EMPTY_PAGE)), method="text", encoding=str).strip():
        failures.append("readability found text on the empty page")
    return failures


def text_parts(raw_tree) -> tuple[str, list[str], int]:
    """(the tree's text with the root's tail, as readability may keep it; the texts of its scripts and styles;
    its iframes)."""
    from lxml.html import tostring

    return (tostring(raw_tree, method="text", encoding=str), [el.text or "" for el in raw_tree.iter("script", "style")],
            sum(1 for _ in raw_tree.iter("iframe")))


def raw_bound(text: str, dropped: list[str], iframes: int) -> int:
    """An upper bound on the length of readability's text: the characters it can keep, plus VIDEO's."""
    return len(text) - sum(map(len, dropped)) + VIDEO_ALLOWANCE * iframes


def trimmed_bound(text: str, dropped: list[str], iframes: int) -> int:
    """The same bound over whitespace collapsed as trafilatura's trim() does (non-blank characters plus one
    space between words): removing a script's text takes its non-blank characters and words away, and may
    join the words on either side of it to it, so each gives two words back."""
    words = text.split()
    bound = sum(map(len, words)) + len(words) - 1 + VIDEO_ALLOWANCE * iframes + 2 * len(dropped)
    for script in dropped:
        words = script.split()
        bound -= sum(map(len, words)) + len(words)
    return bound


def readability_loses(raw_tree, body, len_text: int, min_size: int, unsafe: frozenset[str]) -> bool:
    """True when trafilatura's `_prefer_readability` (precision or balanced mode) is bound to refuse readability's
    text on `raw_tree`, whatever it is, given its own extraction (`body`, of `len_text` characters); False on a
    page holding an element named in `unsafe` (read raw by the parser, and not disposed of by readability)."""
    if len_text == 0 or (unsafe and next(raw_tree.iter(*unsafe), None) is not None):
        return False
    allowed = 2 * len_text
    well_formed: list[bool] = []

    def loses(bound: int) -> bool:
        if bound > allowed:
            return False
        if bound <= 2 * min_size:
            return True
        if not well_formed:  # as _prefer_readability judges the body
            well_formed.append(bool(body.xpath(".//p//text()"))
                               and len(body.findall(".//table")) <= len(body.findall(".//p")))
        return well_formed[0]

    parts = text_parts(raw_tree)
    bound = raw_bound(*parts)
    if loses(bound):
        return True
    # collapsing whitespace rarely takes two thirds away: only then is the second bound worth its cost
    return bound <= 3 * allowed and loses(trimmed_bound(*parts))


def gated(original: Callable, raw_text: frozenset[str]) -> Callable:
    """A stand-in for trafilatura.core's `compare_extraction` (`original`, as it ships) that gives it an empty
    page instead of the raw tree where readability's text would lose (`readability_loses`); recall mode, which
    weighs readability otherwise, always gets the raw tree."""
    from lxml.html import document_fromstring

    unsafe = raw_text - DISPOSED_OF

    def compare_extraction(cleaned_tree, raw_tree, body, text, options):
        if options.focus != "recall" and readability_loses(raw_tree, body, len(text), options.min_extracted_size,
                                                           unsafe):
            raw_tree = document_fromstring(EMPTY_PAGE)
        return original(cleaned_tree, raw_tree, body, text, options)

    return compare_extraction
