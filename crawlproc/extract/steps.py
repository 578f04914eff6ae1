"""The extract stage's per-document steps as one list, timed, counted and bounded in one place.

A Doc goes url_filter -> extract -> language -> each filter of crawlproc/extract/registry.py in order; the first step
that returns a reason removes it, and the document is stored with the text that step saw. One CPU-time budget
per document (recipe `extract.timeout_s`) covers every step: a document that runs over is removed by the
step it was in, reason "timeout". A step that raises removes the document with "error:<exception type>":
one bad page never fails its file. A SetupError (a model or dictionary that cannot load) is the environment's,
the same on every page: it fails the file, and the runner stops the stage with that one message.

A step is any object with a `name` and `run(doc) -> reason or None` (and optionally `reset()`, called at the
start of each file, and `after_timeout()`); the quality filters are steps as they are.
"""

from __future__ import annotations

import time
from collections import Counter

from crawlproc.extract import registry
from crawlproc.extract.budget import OverBudget, cpu_budget
from crawlproc.doc import Doc
from crawlproc.extract.html import Extractor
from crawlproc.extract.language import LanguageIdentifier
from crawlproc.extract.precheck import LanguagePrecheck
from crawlproc.extract.precheck import enabled as precheck_enabled
from crawlproc.quality import splitters
from crawlproc.quality.filter import PerLanguage
from crawlproc.recipe import Recipe
from crawlproc.store.failure import SetupError
from crawlproc.extract.urlfilter import UrlFilter


class UrlFilterStep:
    name = "url_filter"

    def __init__(self, recipe: Recipe):
        self.url_filter = UrlFilter(recipe.url_filter)

    def run(self, doc: Doc) -> str | None:
        return self.url_filter.check(doc.url) or None


class ExtractStep:
    name = "extract"

    def __init__(self, recipe: Recipe):
        self.extractor = Extractor(recipe.extract)
        self.min_chars = recipe.extract.min_chars
        self.precheck = LanguagePrecheck(recipe.language) if precheck_enabled(recipe.language) else None

    def run(self, doc: Doc) -> str | None:
        if self.precheck is not None and (verdict := self.precheck.rules_out(doc.html)) is not None:
            doc.precheck = verdict  # not extracted; the language step removes it
            # removed/ keeps the text the verdict was read from (resiliparse's main text), so every language
            # removal can be checked; trafilatura's would cost the time the pre-check saves
            doc.text = verdict.text
            self.extractor.count_paragraphs(verdict.paragraphs)
            return None
        doc.text = self.extractor.main_text(doc.html, doc.url)
        return "empty" if len(doc.text) < self.min_chars else None

    def reset(self) -> None:  # trafilatura's dedup cache: per file, so reruns and retries give the same output
        self.extractor.reset()

    def after_timeout(self) -> None:  # the interrupted update may have left the cache half-written
        self.extractor.reset()


class TextStep:
    """`fetch.mode = "wet"`: the record already is text (Common Crawl's own extraction), nothing to extract."""

    name = "extract"

    def __init__(self, recipe: Recipe):
        self.min_chars = recipe.extract.min_chars

    def run(self, doc: Doc) -> str | None:
        doc.text = doc.html
        return "empty" if len(doc.text) < self.min_chars else None


class LanguageStep:
    name = "language"

    def __init__(self, recipe: Recipe):
        self.langid = LanguageIdentifier(recipe.language)

    def run(self, doc: Doc) -> str | None:
        if doc.precheck is not None:  # "precheck:<code>:<score>", counted as language:precheck:<code>
            doc.language, doc.language_score = doc.precheck.language, doc.precheck.score
            return doc.precheck.reason
        code, score = self.langid.identify(doc.text)
        doc.language, doc.language_score = code, round(float(score), 4)
        return None if self.langid.keep(code, score) else f"{code}:{score:.2f}"

    @staticmethod
    def counted_as(reason: str) -> str:  # stats count removals by language, not by score
        return reason.rsplit(":", 1)[0]


class StepCounts:
    """One file's tally per step: documents in, removed, the removal reasons, seconds."""

    def __init__(self, names: list[str], seconds: Counter | None = None):
        self.names = names
        self.seen: Counter = Counter()
        self.removed: Counter = Counter()
        self.reasons: Counter = Counter()  # "<step>:<reason>"
        self.seconds = seconds if seconds is not None else Counter()

    def by_step(self) -> dict[str, dict[str, int]]:
        """{step: {"in": n, "removed": n}} for every step of the recipe, in pipeline order."""
        return {s: {"in": self.seen[s], "removed": self.removed[s]} for s in self.names}


class ExtractPipeline:
    """The steps of one recipe, built once and reused across files (models and lists stay loaded).
    `filters_only`: the quality filters alone, for documents already extracted (crawlproc refilter)."""

    def __init__(self, recipe: Recipe, filters_only: bool = False):
        self.recipe = recipe
        self.budget_s = recipe.extract.timeout_s
        self.step_names = registry.step_names(recipe.extract.plugins)
        self.steps: list = []
        if recipe.url_filter.enabled and not filters_only:
            self.steps.append(UrlFilterStep(recipe))
        if not filters_only:
            self.steps.append(TextStep(recipe) if recipe.fetch.mode == "wet" else ExtractStep(recipe))
        if recipe.language.enabled and not filters_only:
            self.steps.append(LanguageStep(recipe))
        mode = recipe.language.thresholds if recipe.language.enabled else "recipe"
        self.first_filter = len(self.steps)  # the steps from here on are quality filters
        for f in registry.filters(recipe.extract.plugins):
            cfg = recipe.filters[f.name]
            # a filter off in the recipe may still be on for some language only through its [<filter>.lang.<code>]
            if cfg.enabled or any(t.get("enabled") for t in (getattr(cfg, "lang", None) or {}).values()):
                self.steps.append(PerLanguage(f, cfg, mode))
        splitters.splitter_for(None)  # English's (spaCy's import): built now, never inside a document's budget

    def reset(self) -> None:
        """Called at the start of each file: a file's output depends on that file alone."""
        for step in self.steps:
            if hasattr(step, "reset"):
                step.reset()

    def counts(self, seconds: Counter | None = None) -> StepCounts:
        return StepCounts(self.step_names, seconds)

    def run(self, doc: Doc, counts: StepCounts) -> tuple[str, str] | None:
        """Take `doc` through the steps; return (removed_by, reason), or None for a kept document.

        Building a language's word splitter (loading spaCy, a segmenter's dictionary) is a cost of the process,
        once, not of the document that first needs it: the budget stops while it is built and resumes with what
        is left (an import cut short by the budget would leave the module half-initialized for good)."""
        step, reason = None, None  # `step`: the one the document is in (counted in), when the budget runs out
        clock = time.perf_counter
        steps, i, left = self.steps, 0, self.budget_s
        try:
            while i < len(steps):
                if left <= 0:  # spent before the next step began: the document is in that step
                    step = steps[i]
                    counts.seen[step.name] += 1
                    raise OverBudget()
                used0 = time.process_time()
                with cpu_budget(left) as budget:
                    while i < len(steps):
                        if i == self.first_filter and doc.extracted is None:
                            doc.extracted = doc.text  # what the filters start from (a refilter starts there too)
                        step = steps[i]
                        counts.seen[step.name] += 1
                        i += 1
                        t = clock()
                        try:
                            reason = step.run(doc)
                        except SetupError:  # the environment (a model, a dictionary), the same on every page
                            raise
                        except Exception as e:  # a parser or filter bug on one page must not fail the file
                            reason = f"error:{type(e).__name__}"
                        finally:
                            counts.seconds[step.name] += clock() - t
                        if budget.fired:  # the deadline struck but the step swallowed it
                            raise OverBudget()
                        if reason is not None or (doc.language and not splitters.ready(doc.language)):
                            break
                left -= time.process_time() - used0
                if reason is not None:
                    break
                if i < len(steps) and doc.language:
                    splitters.splitter_for(doc.language)  # outside the budget
        except OverBudget:
            reason = "timeout"
            if step is None:  # ran out before the first step was entered
                step = steps[0]
                counts.seen[step.name] += 1
            if hasattr(step, "after_timeout"):
                step.after_timeout()
        if reason is None:
            return None
        counts.removed[step.name] += 1
        counted = step.counted_as(reason) if hasattr(step, "counted_as") else reason
        counts.reasons[f"{step.name}:{counted}"] += 1
        return step.name, reason


_PIPELINES: dict[tuple[int, bool], ExtractPipeline] = {}


def pipeline_for(recipe: Recipe, filters_only: bool = False) -> ExtractPipeline:
    """One pipeline per recipe per process: a Ray worker reuses the loaded models across tasks."""
    key = (hash(repr(recipe)), filters_only)
    if key not in _PIPELINES:
        _PIPELINES[key] = ExtractPipeline(recipe, filters_only)
    return _PIPELINES[key]
