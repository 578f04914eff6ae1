"""One document on its way through the extract stage's steps (crawlproc/extract/steps.py)."""

from __future__ import annotations

import re
from collections.abc import Callable

from crawlproc.quality import splitters
from crawlproc.quality.words import split_sentences

PARAGRAPH_SPLIT = re.compile(r"\n{2,}")
_MISSING = object()


class Doc:
    """url and html come from the WARC record; the extract step sets `text` (or, when the language pre-check
    rules the page out, `precheck` instead), the language step `language` (ISO 639-3 + script, "deu_Latn";
    crawlproc/quality/langcodes.py) and `language_score`.

    What the filters measure on the text is computed once, by whichever filter asks first, and shared:
    `words`, `lines`, `sentences`, `paragraphs`, and anything else through `memo`. Replacing the text (C4 drops lines)
    forgets all of it.
    """

    __slots__ = ("url", "html", "language", "language_score", "precheck", "extracted", "_text", "_memo")

    def __init__(self, url: str = "", html: str = "", text: str = ""):
        self.url = url
        self.html = html
        self.language: str | None = None
        self.language_score: float | None = None
        self.precheck = None  # a crawlproc.extract.precheck.PrecheckVerdict: not extracted, the language step removes it
        self.extracted: str | None = None  # the text as the filters received it (before any filter edited it)
        self._text = text
        self._memo: dict[str, object] = {}

    @property
    def text(self) -> str:
        return self._text

    @text.setter
    def text(self, text: str) -> None:
        if text != self._text:
            self._memo = {}
        self._text = text

    def memo(self, key: str, compute: Callable[[], object]):
        """A value derived from the current text, computed on first use. Filters name their own keys after
        themselves ("gopher_repetition.lines") unless they mean to share."""
        value = self._memo.get(key, _MISSING)
        if value is _MISSING:
            value = self._memo[key] = compute()
        return value

    @property
    def words(self) -> list[str]:
        """Words and punctuation tokens, as datatrove splits words in the document's language (English when
        it has none): crawlproc/quality/splitters.py."""
        return self.memo("words", lambda: self.splitter.split(self._text))

    @property
    def splitter(self):
        """The word splitter of the document's language."""
        return splitters.splitter_for(self.language)

    @property
    def lines(self) -> list[str]:
        """`text.splitlines()`."""
        return self.memo("lines", self._text.splitlines)

    @property
    def sentences(self) -> list[str]:
        """The sentences of every non-blank line, split as C4's sentence count splits them (spaCy's
        sentencizer: a new sentence after a terminal token such as "." "!" "?")."""
        return self.memo("sentences", lambda: [s for line in self.lines
                                               for s in split_sentences(line, self.splitter.split)])

    @property
    def paragraphs(self) -> list[str]:
        """The stripped text split at blank lines (two or more newlines)."""
        return self.memo("paragraphs", lambda: PARAGRAPH_SPLIT.split(self._text.strip()))
