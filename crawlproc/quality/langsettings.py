"""The quality filters' settings per language, FineWeb-2 style.

FineWeb-2 (huggingface/fineweb-2, `fineweb-2-pipeline.py` and `configs/{lang}_{script}.yml`) filters each
language with its own thresholds and stop words, and changes a few settings for every language but English:
- Gopher repetition: the paragraph checks and the duplicated-line *characters* check are off; `dup_line_frac`,
  `top_n_grams` and `dup_n_grams` come from the language's file;
- FineWeb quality: the short-line check is off, `char_duplicates_ratio` is 0.1 (0.01 in FineWeb);
  `line_punct_thr` and `new_line_ratio` come from the file;
- Gopher quality: `min_avg_word_length`, `max_avg_word_length`, `max_non_alpha_words_ratio` and the stop words
  come from the file, at least 2 stop words; the rest as in FineWeb;
- C4: not applied;
- language ID: a document needs at least the file's `language_score` (a GlotLID score).

The files' values are carried in crawlproc/data/languages/fineweb2.json.gz (every config of the repository,
Apache-2.0; see NOTICE.md there). Which values judge a document of language L, first match wins per key:
  1. the recipe's `[<filter>.lang.<L>]` table (L in any form: "de", "deu", "deu_Latn");
  2. for a language other than English, FineWeb-2's settings for L (`language.thresholds = "fineweb2"`, the
     default), or, when FineWeb-2 has no file for L, FineWeb-2's changes for every language with the stop-word
     check off (no stop-word list is known: a document is never judged by another language's stop words);
  3. the recipe's `[<filter>]` section (FineWeb's English values by default).
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from importlib import resources

from crawlproc.quality import langcodes

ENGLISH = langcodes.ENGLISH

# FineWeb-2's changes for every language but English (fineweb-2-pipeline.py, step 5)
_GLOBAL = {
    "gopher_repetition": {"dup_para_frac": 0, "dup_line_char_frac": 0, "dup_para_char_frac": 0},
    "fineweb_quality": {"short_line_thr": None, "char_duplicates_ratio": 0.1},
    "gopher_quality": {"min_stop_words": 2},
    "c4": {"enabled": False},
}
# Each section's keys taken from a language's file: {section key: file key}
_FROM_FILE = {
    "gopher_repetition": {"dup_line_frac": "dup_line_frac", "top_n_grams": "top_n_grams", "dup_n_grams": "dup_n_grams"},
    "fineweb_quality": {"line_punct_thr": "line_punct_thr", "new_line_ratio": "new_line_ratio"},
    "gopher_quality": {"min_avg_word_length": "min_avg_word_length", "max_avg_word_length": "max_avg_word_length",
                       "max_non_alpha_words_ratio": "max_non_alpha_words_ratio", "stop_words": "stopwords"},
}


@lru_cache(maxsize=1)
def fineweb2_configs() -> dict[str, dict]:
    """{lang_script: FineWeb-2's configs/{lang_script}.yml as a dict}, for all 1,900+ language-scripts."""
    raw = resources.files("crawlproc").joinpath("data/languages/fineweb2.json.gz").read_bytes()
    return json.loads(gzip.decompress(raw))


# A macrolanguage lid.176 names whose FineWeb-2 file is its main individual language's
_MACRO = {"nor_Latn": "nob_Latn"}


def fineweb2_config(lang_script: str) -> dict | None:
    configs = fineweb2_configs()
    return configs.get(lang_script) or configs.get(_MACRO.get(lang_script, ""))


def fineweb2_min_score(lang_script: str) -> float | None:
    """FineWeb-2's minimum language score for this language (a GlotLID score), None when it has no file."""
    cfg = fineweb2_config(lang_script)
    return None if cfg is None else float(cfg["language_score"])


def overrides(section: str, lang_script: str, mode: str = "fineweb2") -> tuple[dict, str]:
    """(the values FineWeb-2 sets for this filter section and language, where they come from).

    mode "fineweb2": as the module doc says; "recipe": none (the recipe's section judges every language).
    The source is "fineweb", "fineweb2:<lang_script>" or "fineweb2:default" (no file for that language)."""
    if mode == "recipe" or lang_script in (ENGLISH, langcodes.UNDETERMINED):
        return {}, "fineweb"
    out = dict(_GLOBAL.get(section, {}))
    cfg = fineweb2_config(lang_script)
    if cfg is None:
        if section == "gopher_quality":
            out["min_stop_words"] = None  # no stop-word list for this language: the check is off
        return out, "fineweb2:default"
    for key, file_key in _FROM_FILE.get(section, {}).items():
        if file_key in cfg:
            value = cfg[file_key]
            out[key] = [list(p) for p in value] if key.endswith("_grams") else value
    return out, f"fineweb2:{lang_script}"
