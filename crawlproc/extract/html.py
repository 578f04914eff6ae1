"""HTML -> main text, with trafilatura (precision-oriented, as FineWeb) or resiliparse (fast mode).

`Extractor.extract` bounds each document by cfg.timeout_s of CPU time (crawlproc/extract/budget.py), so that one
pathological page cannot stall a whole file; in the extract stage the pipeline's per-document budget covers
extraction with the other steps and calls `main_text` directly.

A timeout leaves nothing behind: the trafilatura deduplication cache of this Extractor, which an interrupted
update could leave half-written, is replaced (`reset`).
"""

from __future__ import annotations

from crawlproc.extract.budget import OverBudget, cpu_budget
from crawlproc.recipe import ExtractConfig


class ExtractError(Exception):
    """Base class of extraction failures on one document. Errors of the parser itself (rare: trafilatura
    catches most) propagate unchanged, so the caller can count them by type and move on."""


class ExtractTimeout(ExtractError):
    """Extraction ran past cfg.timeout_s on this document."""


class Extractor:
    """`extract(html, url=None) -> str`: the main text, "" when there is none; raises ExtractTimeout.

    With cfg.deduplicate, trafilatura drops paragraphs already seen several times in earlier documents of
    this Extractor (as datatrove, whose cache is per process): reuse one Extractor per worker.
    """

    def __init__(self, cfg: ExtractConfig | None = None):
        self.cfg = cfg or ExtractConfig()
        if self.cfg.engine == "trafilatura":
            import trafilatura  # noqa: F401  (import cost paid here, not inside the first time limit)
            from trafilatura import external

            # trafilatura builds its combined stop-word list lazily (~0.4 s): a time limit striking during
            # that build throws it away, and every later page would pay for it again.
            if external.JT_STOPLIST is None:
                external.JT_STOPLIST = external.jt_stoplist_init()
            self._accelerator = None
            if self.cfg.accelerate:  # the same output, faster (crawlproc/extract/accelerate.py)
                from crawlproc.extract.accelerate import Accelerator

                self._accelerator = Accelerator(**self._trafilatura_options())
        else:
            from resiliparse.extract import html2text  # noqa: F401
        self._dedup = self._new_dedup_cache()

    def reset(self) -> None:
        """Forget the paragraphs seen so far: at the start of each WARC file, so that a file's output depends
        on that file alone, not on which files the same worker happened to process before it; and after a
        timeout, which may have interrupted an update of the cache."""
        self._dedup = self._new_dedup_cache()

    def count_paragraphs(self, paragraphs) -> None:
        """Count the paragraphs of a page that is not extracted (the language pre-check removed it) in the
        duplicate cache, as extracting it would have: later pages then lose the same repeated paragraphs."""
        if self._dedup:
            for text in paragraphs:
                self._dedup.increment(text)

    def _new_dedup_cache(self):
        if not self.cfg.deduplicate:
            return False
        from trafilatura.deduplication import LRUCache
        from trafilatura.settings import LRU_SIZE

        return LRUCache(maxsize=LRU_SIZE)  # ours, not trafilatura's process-global one: we can reset it

    def _trafilatura_options(self) -> dict:
        """trafilatura.extract's keyword arguments: FineWeb's call (datatrove's Trafilatura step) with the
        recipe's settings."""
        return {"favor_precision": self.cfg.favor_precision, "include_comments": False,
                "include_tables": self.cfg.include_tables, "output_format": "txt"}

    def _trafilatura(self, html: str, url: str | None) -> str | None:
        if self._accelerator is not None:
            return self._accelerator.extract(html, url, deduplicate=self._dedup)
        import trafilatura

        return trafilatura.extract(html, url=url, deduplicate=self._dedup, **self._trafilatura_options())

    def _resiliparse(self, html: str, url: str | None) -> str | None:
        from resiliparse.extract.html2text import extract_plain_text

        return extract_plain_text(
            html,
            preserve_formatting=True,
            main_content=True,
            alt_texts=False,
            comments=False,
        )

    def extract(self, html: str, url: str | None = None) -> str:
        """The main text within cfg.timeout_s of CPU time; raises ExtractTimeout."""
        try:
            with cpu_budget(self.cfg.timeout_s) as budget:
                text = self.main_text(html, url)
        except OverBudget:
            self.reset()
            raise ExtractTimeout(f"extraction took longer than {self.cfg.timeout_s} s") from None
        if budget.fired:  # the deadline struck but something swallowed it
            self.reset()
            raise ExtractTimeout(f"extraction took longer than {self.cfg.timeout_s} s")
        return text

    def main_text(self, html: str, url: str | None = None) -> str:
        """The main text, "" when there is none (or shorter than cfg.min_chars); no time limit of its own."""
        if not html or not html.strip():
            return ""
        run = self._trafilatura if self.cfg.engine == "trafilatura" else self._resiliparse
        text = (run(html, url) or "").strip()
        return text if len(text) >= self.cfg.min_chars else ""
