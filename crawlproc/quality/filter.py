"""A quality filter is a step over a Doc that describes itself: its recipe section (a Section dataclass) and
a table of checks, each `(statistic, comparison, threshold field)`. The filter runs the table in order and
removes the document at the first check that fails; `crawlproc explain` reads the same table to show every
value against its threshold. A new filter is one module and one line in crawlproc/extract/registry.py (or, outside
this package, a module a recipe names in `extract.plugins`): see README, "Adding your own filter".
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from crawlproc.config import Section
from crawlproc.doc import Doc
from crawlproc.quality.verdict import Verdict

# The comparison that REMOVES a document, as the check tables spell it.
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


@dataclass(frozen=True)
class Check:
    """Remove the document when `statistic <comparison> threshold`.

    statistic:  the measured value's name; also the removal reason and its key in Verdict.values. With
                "{n}" in it, the threshold field is a list of [n, threshold] pairs and there is one check per
                pair ("top_{n}_gram" -> top_2_gram, top_3_gram, ...).
    comparison: the one that removes: "<", "<=", ">" or ">=".
    threshold:  the config field that holds the threshold, or a number (a fixed threshold).
    measure:    (doc, cfg) -> value, or (doc, cfg, n) with "{n}"; None means "cannot be measured on this
                document" and skips the check. A filter that overrides `Filter.filter` may leave it out.
    off:        threshold values that switch the check off (None always does).
    switch:     a bool config field that must be true for the check to run.
    unless:     (value, cfg) -> True forgives a failing value (FineWeb's line_punct_exclude_zero).
    """

    statistic: str
    comparison: str
    threshold: str | float
    measure: Callable | None = None
    off: tuple = ()
    switch: str | None = None
    unless: Callable | None = None

    def __post_init__(self):
        if self.comparison not in COMPARISONS:
            raise ValueError(f"check {self.statistic!r}: comparison must be one of {', '.join(COMPARISONS)}")

    def resolve(self, cfg) -> list[ActiveCheck]:
        """The checks this entry makes under `cfg` (none when switched off)."""
        if self.switch is not None and not getattr(cfg, self.switch):
            return []
        fails = COMPARISONS[self.comparison]
        if isinstance(self.threshold, str):
            value = getattr(cfg, self.threshold)
        else:
            value = self.threshold
        if "{n}" in self.statistic:
            return [ActiveCheck(self.statistic.format(n=int(n)), self.comparison, thr, fails, self._bound(int(n)),
                                self.unless) for n, thr in value]
        if value is None or value in self.off:
            return []
        return [ActiveCheck(self.statistic, self.comparison, value, fails, self.measure, self.unless)]

    def _bound(self, n: int):
        measure = self.measure
        return None if measure is None else (lambda doc, cfg: measure(doc, cfg, n))


@dataclass(frozen=True)
class Rule:
    """Remove the document with `reason` when `applies(doc, cfg)`: a fixed rule, not a tunable threshold
    (e.g. "empty": nothing to measure). Not listed by explain."""

    reason: str
    applies: Callable[[Doc, object], bool]

    def resolve(self, cfg) -> list[Rule]:
        return [self]


@dataclass(frozen=True)
class ActiveCheck:
    """One check as it runs under a config: its statistic, comparison and threshold value."""

    statistic: str
    comparison: str
    threshold: float
    fails: Callable[[float, float], bool]
    measure: Callable | None
    unless: Callable | None


class Filter:
    """Base of the quality filters. A subclass sets:

    name:   the stage name; also its recipe section and the `removed_by` of what it removes.
    Config: its section, a dataclass deriving from crawlproc.config.Section, with an `enabled` field.
    checks: its table of Check (and Rule) entries, in the order they run.

    Calling a filter on a Doc (or a text) gives a Verdict. As a pipeline step (`run`) it returns the
    removal reason, or None and passes the (possibly edited) text on.
    """

    name: ClassVar[str]
    Config: ClassVar[type[Section]]
    checks: ClassVar[tuple[Check | Rule, ...]]

    def __init__(self, cfg: Section | None = None):
        self.cfg = cfg if cfg is not None else self.Config()
        self.active: list[ActiveCheck | Rule] = (
            [a for c in self.checks for a in c.resolve(self.cfg)] if self.cfg.enabled else []
        )

    def thresholds(self) -> dict[str, tuple[str, float]]:
        """For each statistic checked under this config: (comparison that removes, threshold)."""
        return {a.statistic: (a.comparison, float(a.threshold)) for a in self.active if isinstance(a, ActiveCheck)}

    def __call__(self, doc: Doc | str) -> Verdict:
        if isinstance(doc, str):
            doc = Doc(text=doc)
        if not self.cfg.enabled:
            return Verdict(None, doc.text, {})
        return self.filter(doc)

    def filter(self, doc: Doc) -> Verdict:
        """Run the active checks in order; the first that fails removes the document."""
        cfg = self.cfg
        values: dict[str, float] = {}
        for a in self.active:
            if a.__class__ is Rule:
                if a.applies(doc, cfg):
                    return Verdict(a.reason, doc.text, values)
                continue
            value = a.measure(doc, cfg)
            if value is None:
                continue
            values[a.statistic] = value
            if a.fails(value, a.threshold) and (a.unless is None or not a.unless(value, cfg)):
                return Verdict(a.statistic, doc.text, values)
        return Verdict(None, doc.text, values)

    def run(self, doc: Doc) -> str | None:
        verdict = self.filter(doc)
        if verdict.reason is None:
            doc.text = verdict.text
        return verdict.reason


# --- per language -------------------------------------------------------------------------------------------

def check_lang_tables(section) -> None:
    """Validate a section's `lang` tables ({"de": {key: value}}), naming `lang.<code>.<key>` in every error: each
    code is a language crawlproc knows and each table is a valid override of the section."""
    import dataclasses

    from crawlproc.config import RecipeError, build_section
    from crawlproc.quality import langcodes

    tables = getattr(section, "lang", None)
    if tables is None:
        return
    if not isinstance(tables, dict):
        raise RecipeError("lang", "must be a table of language tables, e.g. [gopher_quality.lang.de]")
    base = {f.name: getattr(section, f.name) for f in dataclasses.fields(section) if f.name != "lang"}
    for code, table in tables.items():
        if not langcodes.known(code):
            raise RecipeError(f"lang.{code}", "not a language code crawlproc knows ('de', 'deu' or 'deu_Latn'; "
                              "see crawlproc/data/languages/codes.tsv)")
        if not isinstance(table, dict):
            raise RecipeError(f"lang.{code}", f"must be a table, got {type(table).__name__}")
        if "lang" in table:
            raise RecipeError(f"lang.{code}.lang", "language tables do not nest")
        build_section(type(section), {**base, **table}, f"lang.{code}")


def _matches(code: str, lang_script: str) -> int:
    """0: the table's code does not name this language; 1: it names the language (any script); 2: exactly."""
    from crawlproc.quality import langcodes

    if langcodes.LANG_SCRIPT.fullmatch(code):
        return 2 if code == lang_script else 0
    return 1 if langcodes.code3(code) == lang_script.partition("_")[0] else 0


class PerLanguage:
    """A filter as an extract step that judges each document by its language's settings (langsettings.py):
    one variant of the filter per language, built on first use and kept."""

    def __init__(self, cls: type[Filter], cfg: Section, mode: str = "fineweb2"):
        self.cls, self.cfg, self.mode = cls, cfg, mode
        self.name = cls.name
        self._variants: dict[str, tuple[Filter, str]] = {}
        # built now with the recipe's own settings: a bad model or list fails the pipeline's build; kept for
        # the languages whose settings are the recipe's
        self._own = cls(cfg) if cfg.enabled else None

    def variant(self, lang_script: str | None) -> tuple[Filter, str]:
        """(the filter with this language's settings, where they come from: "fineweb", "fineweb2:deu_Latn",
        "fineweb2:default", each + "+recipe" when a [<filter>.lang.<code>] table changed it)."""
        import dataclasses

        from crawlproc.quality import langcodes, langsettings

        lang_script = lang_script or langcodes.ENGLISH
        hit = self._variants.get(lang_script)
        if hit is not None:
            return hit
        fields = {f.name for f in dataclasses.fields(self.cfg)}
        values, source = langsettings.overrides(self.name, lang_script, self.mode)
        values = {k: v for k, v in values.items() if k in fields}
        tables = getattr(self.cfg, "lang", None) or {}
        mine = sorted((m, code) for code in tables if (m := _matches(code, lang_script)))
        for _, code in mine:  # the language's table, then the language-and-script's
            values.update(tables[code])
        if mine:
            source += "+recipe"
        cfg = dataclasses.replace(self.cfg, **values, **({"lang": {}} if "lang" in fields else {})) \
            if values else self.cfg
        f = self._own if cfg is self.cfg and self._own is not None else self.cls(cfg)
        hit = self._variants[lang_script] = (f, source)
        return hit

    def run(self, doc: Doc) -> str | None:
        f, _ = self.variant(doc.language)
        if not f.cfg.enabled:
            return None
        return f.run(doc)
