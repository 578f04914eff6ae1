"""A language pre-check before extraction: do not run trafilatura on a page whose language already rules it out.

Trafilatura is most of the extract stage's time, and on Common Crawl's mix more than half of the pages are not
in a kept language: the language filter would remove them right after paying for their extraction. The
pre-check reads the page's text the cheap way -- resiliparse's main-content html2text, about a tenth of
trafilatura's time -- and runs the same lid.176 model on it. It removes a page only when that text is
*confidently* in a language the recipe does not keep (top label not in `language.keep`, score at least
`language.precheck_min_score`, higher than the language filter's own threshold); anything else -- a kept or
uncertain language, no text, a parser error -- goes on to extraction and the language filter as before.

A page whose `<html lang>` declares a kept language skips the pre-check (it would cost time on most English
pages to save none): the attribute only decides whether to look, never removes a page, as it is often wrong.

A removed page still takes its place in trafilatura's cross-document duplicate cache (the extractor's LRU of
paragraph texts, which decides which paragraphs of *later* pages are dropped as repeated): the verdict carries
the page's main-text lines, and the pipeline counts them there as trafilatura would have counted its
paragraphs. Without that, every skipped page would leave older entries in the cache longer, and later pages
would lose different paragraphs than without the pre-check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from crawlproc.extract.language import LanguageIdentifier
from crawlproc.quality import langcodes
from crawlproc.recipe import LanguageConfig

MAX_TEXT_CHARS = 5000  # lid.176 on the start of the main text: its cost stays bounded on huge pages
_HTML_LANG = re.compile(r"<html\b[^>]*?\slang\s*=\s*[\"']?\s*([A-Za-z]{2,3})(?![A-Za-z])", re.IGNORECASE)
_HEAD_CHARS = 8192  # the <html> tag is near the start; doctype, comments and BOMs come before it


@dataclass(frozen=True)
class PrecheckVerdict:
    language: str
    score: float
    paragraphs: tuple[str, ...] = ()  # the page's main-text lines, for the extractor's duplicate cache
    text: str = ""  # the main text the verdict was made on: what removed/ keeps for the page

    @property
    def reason(self) -> str:
        """The language filter's removal reason; stats count it as `language:precheck:<language>`."""
        return f"precheck:{self.language}:{self.score:.2f}"


def enabled(cfg: LanguageConfig) -> bool:
    """The recipe switch (`language.precheck`), off when the language filter is off or keeps every language."""
    return bool(cfg.enabled and cfg.keep and cfg.precheck)


def declared_language(html: str) -> str | None:
    """The primary subtag of the page's `<html lang>` (lower case), None when it declares none."""
    m = _HTML_LANG.search(html, 0, _HEAD_CHARS)
    return m.group(1).lower() if m else None


def main_text(html: str) -> str:
    """The page's main text, a line per block, as resiliparse's heuristics find it ("" when parsing fails)."""
    from resiliparse.extract.html2text import extract_plain_text

    try:
        return extract_plain_text(
            html, preserve_formatting=True, main_content=True, list_bullets=False, alt_texts=False,
            links=False, form_fields=False, noscript=False, comments=False,
        )
    except Exception:  # noqa: BLE001  (any parser failure means "no verdict": the page is extracted as usual)
        return ""


class LanguagePrecheck:
    """`rules_out(html) -> PrecheckVerdict | None`: one when the page can be removed without extracting it."""

    def __init__(self, cfg: LanguageConfig, identifier: LanguageIdentifier | None = None):
        self.cfg = cfg
        self.min_score = max(cfg.precheck_min_score, cfg.min_score)
        self.identifier = identifier or LanguageIdentifier(cfg)

    def rules_out(self, html: str) -> PrecheckVerdict | None:
        declared = declared_language(html)
        if declared is not None and langcodes.known(declared) and self.cfg.wants(declared):
            return None
        text = main_text(html)
        if not text.strip():
            return None
        code, score = self.identifier.identify(text[:MAX_TEXT_CHARS])
        # any kept language, in whatever form `keep` names it, goes on to extraction
        if code == "und" or self.cfg.wants(code) or score < self.min_score:
            return None
        return PrecheckVerdict(code, round(float(score), 4), tuple(p for p in map(str.strip, text.split("\n")) if p),
                               text)
