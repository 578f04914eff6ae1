"""Language labels as one vocabulary: ISO 639-3 plus ISO 15924 script, "deu_Latn", as FineWeb-2 names them.

A fastText language-ID model says "__label__de" (lid.176: ISO 639-1 where there is one, else 639-3 or a
Wikipedia code) or "__label__deu_Latn" (GlotLID). `normalize` turns either into "deu_Latn": a bare code becomes
its default script's language-script (crawlproc/data/languages/codes.tsv, from datatrove's table), and when the
language is written in several scripts, the script the text is mostly written in decides (Serbian in Latin
letters is srp_Latn). `script_of` counts the letters of a text by script.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter
from functools import lru_cache
from importlib import resources

LANG_SCRIPT = re.compile(r"[a-z]{2,3}_[A-Z][a-z]{3}")
ENGLISH = "eng_Latn"
UNDETERMINED = "und"
SCRIPT_SAMPLE_CHARS = 2000

# lid.176 labels that are not ISO codes of one language, or whose datatrove default is not the usual reading
_LABEL_ALIASES = {"sh": "hbs", "bh": "bho", "tl": "fil", "no": "nor", "iw": "heb", "in": "ind", "ji": "yid"}

# The first word of a letter's Unicode name -> its ISO 15924 script
_SCRIPT_WORDS = {
    "LATIN": "Latn", "CYRILLIC": "Cyrl", "GREEK": "Grek", "ARABIC": "Arab", "HEBREW": "Hebr", "DEVANAGARI": "Deva",
    "BENGALI": "Beng", "GURMUKHI": "Guru", "GUJARATI": "Gujr", "ORIYA": "Orya", "TAMIL": "Taml", "TELUGU": "Telu",
    "KANNADA": "Knda", "MALAYALAM": "Mlym", "SINHALA": "Sinh", "THAI": "Thai", "LAO": "Laoo", "TIBETAN": "Tibt",
    "MYANMAR": "Mymr", "GEORGIAN": "Geor", "HANGUL": "Hang", "CJK": "Hani", "HIRAGANA": "Jpan", "KATAKANA": "Jpan",
    "ETHIOPIC": "Ethi", "KHMER": "Khmr", "ARMENIAN": "Armn", "SYRIAC": "Syrc", "THAANA": "Thaa", "MONGOLIAN": "Mong",
    "TIFINAGH": "Tfng", "CHEROKEE": "Cher", "CANADIAN": "Cans", "OL": "Olck", "NKO": "Nkoo",
}


@lru_cache(maxsize=1)
def _codes() -> dict[str, str]:
    path = resources.files("crawlproc").joinpath("data/languages/codes.tsv")
    with path.open(encoding="utf-8") as f:
        return {r["code"]: r["lang_script"] for r in csv.DictReader(f, delimiter="\t")}


@lru_cache(maxsize=1)
def _scripts_of_language() -> dict[str, frozenset[str]]:
    """{code_3: the scripts it has a splitter or settings for}."""
    from crawlproc.quality import splitters

    out: dict[str, set[str]] = {}
    for ls in splitters.assignments():
        code, _, script = ls.partition("_")
        out.setdefault(code, set()).add(script)
    return {k: frozenset(v) for k, v in out.items()}


@lru_cache(maxsize=4096)
def _char_script(ch: str) -> str | None:
    try:
        word = unicodedata.name(ch).split(" ", 1)[0]
    except ValueError:
        return None
    return _SCRIPT_WORDS.get(word)


def script_of(text: str) -> str | None:
    """The script most letters of the text's start are written in (Hiragana or Katakana anywhere: Jpan)."""
    counts: Counter = Counter()
    for ch in text[:SCRIPT_SAMPLE_CHARS]:
        if ch.isalpha():
            s = _char_script(ch)
            if s is not None:
                counts[s] += 1
    if not counts:
        return None
    if counts.get("Jpan"):
        return "Jpan"
    return counts.most_common(1)[0][0]


def known(code: str) -> bool:
    """Whether a code (lid.176 label, ISO 639-1/3, or language_script) names a language crawlproc knows."""
    code = code.removeprefix("__label__")
    return bool(LANG_SCRIPT.fullmatch(code)) or _lookup(code) is not None


def _lookup(code: str) -> str | None:
    codes = _codes()
    return codes.get(_LABEL_ALIASES[code]) if code in _LABEL_ALIASES else codes.get(code)


def normalize(label: str | None, text: str | None = None) -> str:
    """The language-script of a model label ("de", "__label__deu_Latn", "sr" + a Latin text -> "srp_Latn");
    "und" for no label. An unknown code keeps its name, with the text's script when there is a text."""
    if not label:
        return UNDETERMINED
    code = label.removeprefix("__label__")
    if code == UNDETERMINED:
        return UNDETERMINED
    if LANG_SCRIPT.fullmatch(code):
        return code
    ls = _lookup(code)
    if ls is None:
        script = script_of(text) if text else None
        return f"{code}_{script}" if script else code
    code3, _, default = ls.partition("_")
    if text and len(_scripts_of_language().get(code3, ())) > 1:
        script = script_of(text)
        if script and script != default and script in _scripts_of_language()[code3]:
            return f"{code3}_{script}"
    return ls


def code3(code: str) -> str:
    """The ISO 639-3 part of a language code given in any of the accepted forms ("de", "deu", "deu_Latn")."""
    return normalize(code).partition("_")[0]
