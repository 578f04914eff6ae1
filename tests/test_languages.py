"""Every language judged by its own rules, FineWeb-2 style: settings per language as data, recipe overrides per
language, per-language language-ID cuts, and no non-English document judged by English stop words."""

from __future__ import annotations

import gzip
from collections import Counter

import pytest

from crawlproc.doc import Doc
from crawlproc.extract import registry
from crawlproc.quality import langsettings
from crawlproc.quality.filter import PerLanguage
from crawlproc.quality.gopher_quality import STOP_WORDS, GopherQuality
from crawlproc.recipe import LanguageConfig, Recipe, recipe_from_dict
from pipelines.inspect.explain import quality_checks


def _german(data_dir) -> str:
    lines = gzip.decompress((data_dir / "sentences" / "de.txt.gz").read_bytes()).decode("utf-8").splitlines()
    return "\n".join(lines[:30])


def test_fineweb2_values_are_carried_over_as_published():
    """Spot values of huggingface/fineweb-2 configs/deu_Latn.yml and cmn_Hani.yml, read by hand from the files."""
    de = langsettings.fineweb2_config("deu_Latn")
    assert de["dup_line_frac"] == 0.263 and de["language_score"] == 0.821 and de["new_line_ratio"] == 0.152
    assert de["stopwords"][:5] == ["der", "und", "die", "in", "von"] and de["max_avg_word_length"] == 15
    assert langsettings.fineweb2_config("cmn_Hani")["top_n_grams"][0] == [2, 0.256]
    assert len(langsettings.fineweb2_configs()) >= 1900


def test_a_german_document_is_judged_by_german_rules(data_dir):
    text = _german(data_dir)
    checks = {c["stage"]: c for c in quality_checks({"text": text, "language": "deu_Latn"}, Recipe())}
    assert {c["settings"] for c in checks.values()} == {"fineweb2:deu_Latn"}
    assert checks["c4"]["enabled"] is False  # FineWeb-2 does not apply C4
    assert all(c["reason"] is None for c in checks.values() if c["enabled"])
    gq = {v["name"]: v for v in checks["gopher_quality"]["values"]}
    assert gq["gopher_above_avg_threshold"]["threshold"] == 15  # German's, not FineWeb's 10
    # the same text judged by the English sections ("recipe" mode) is removed for lacking English stop words
    english = recipe_from_dict({"language": {"thresholds": "recipe"}})
    assert GopherQuality(english.gopher_quality)(text).reason == "gopher_enough_stop_words"


def test_no_non_english_language_uses_english_stop_words():
    for ls in langsettings.fineweb2_configs():
        values, source = langsettings.overrides("gopher_quality", ls)
        assert source == f"fineweb2:{ls}", ls
        assert values["stop_words"] == langsettings.fineweb2_config(ls)["stopwords"] != list(STOP_WORDS), ls
    values, source = langsettings.overrides("gopher_quality", "hbs_Latn")  # no FineWeb-2 file: no stop-word check
    assert source == "fineweb2:default" and values["min_stop_words"] is None


@pytest.mark.parametrize("lang", ["de", "fr", "ru", "zh", "ja", "ar", "he", "hi", "th", "ko", "vi", "tr"])
def test_real_text_in_many_languages_is_never_removed_for_lacking_english_stop_words(data_dir, lang):
    from crawlproc.quality import langcodes

    lines = gzip.decompress((data_dir / "sentences" / f"{lang}.txt.gz").read_bytes()).decode("utf-8").splitlines()
    recipe = Recipe()
    gq = PerLanguage(GopherQuality, recipe.gopher_quality)
    ls = langcodes.normalize(lang)
    reasons = Counter()
    for i in range(0, 600, 60):
        doc = Doc(text="\n".join(lines[i:i + 60]))
        doc.language = ls
        reasons[gq.run(doc)] += 1
    assert gq.variant(ls)[0].cfg.stop_words == langsettings.fineweb2_config(ls)["stopwords"]
    # real running text in its own language has its own stop words (other rules may still remove a document)
    assert reasons["gopher_enough_stop_words"] == 0 and reasons[None] >= 3, reasons


def test_recipe_overrides_per_language_in_any_form():
    recipe = recipe_from_dict({
        "gopher_quality": {"lang": {"de": {"min_stop_words": 5}, "deu_Latn": {"max_avg_word_length": 20}}},
        "gopher_repetition": {"lang": {"fra": {"dup_line_frac": 0.5}}},
    })
    gq = PerLanguage(GopherQuality, recipe.gopher_quality)
    flt, source = gq.variant("deu_Latn")
    assert source == "fineweb2:deu_Latn+recipe"
    assert flt.cfg.min_stop_words == 5 and flt.cfg.max_avg_word_length == 20  # the script's table wins over the code's
    assert flt.cfg.stop_words[:2] == ["der", "und"]  # the rest still FineWeb-2's German
    assert gq.variant("eng_Latn") == (gq.variant("eng_Latn")[0], "fineweb")
    assert gq.variant("eng_Latn")[0].cfg.min_stop_words == 2
    rep = PerLanguage(registry.FILTERS[0], recipe.gopher_repetition)
    assert rep.variant("fra_Latn")[0].cfg.dup_line_frac == 0.5


def test_an_english_override_applies_to_english_only():
    recipe = recipe_from_dict({"fineweb_quality": {"lang": {"en": {"line_punct_thr": 0.5}}}})
    fw = PerLanguage(registry.FILTERS[3], recipe.fineweb_quality)
    assert fw.variant("eng_Latn")[0].cfg.line_punct_thr == 0.5
    assert fw.variant("deu_Latn")[0].cfg.line_punct_thr == 0.0  # German's FineWeb-2 value


def test_per_language_confidence_cuts():
    cfg = LanguageConfig(keep=["en", "de", "zh"], min_score=0.65, min_scores={"de": 0.9, "cmn_Hani": 0.3})
    assert cfg.keeps("eng_Latn", 0.7) and not cfg.keeps("deu_Latn", 0.85) and cfg.keeps("deu_Latn", 0.95)
    assert cfg.keeps("cmn_Hani", 0.4) and not cfg.keeps("fra_Latn", 0.99)
    fw2 = LanguageConfig(keep=["de"], fineweb2_min_scores=True)
    assert fw2.min_score_for("deu_Latn") == 0.821  # FineWeb-2's GlotLID cut for German
    label_only = LanguageConfig(keep=[], min_scores={"de": 0.9})
    assert label_only.keeps("fra_Latn", 0.1) and not label_only.keeps("deu_Latn", 0.5)


# --- dedup per language -------------------------------------------------------------------------------------

def test_dedup_never_pairs_two_languages_and_english_keys_are_unchanged():
    from crawlproc.dedup.signatures import signature_table
    from crawlproc.recipe import MinHashConfig

    text = "the same words in the same order " * 20
    plain = signature_table(["a"], [text], MinHashConfig())
    by_lang = signature_table(["a", "b", "c"], [text] * 3, MinHashConfig(),
                              languages=["eng_Latn", "eng_Latn", "deu_Latn"])
    keys = [set(r) for r in by_lang.column("bands").to_pylist()]
    assert keys[0] == keys[1] == set(plain.column("bands").to_pylist()[0])  # English: as before
    assert not keys[0] & keys[2]  # another language: no band key in common


def test_chinese_near_duplicates_are_found_on_jieba_words(data_dir):
    """Chinese has no spaces: split at spaces and punctuation only, a "word" is a whole clause and one changed
    character changes every shingle around it. On jieba's words the near-duplicate shares most shingles."""
    pytest.importorskip("jieba")
    from crawlproc.dedup.minhash import shingle_set
    from crawlproc.dedup.signatures import words_for_dedup

    lines = gzip.decompress((data_dir / "sentences" / "zh.txt.gz").read_bytes()).decode("utf-8").splitlines()
    a = "\n".join(lines[:30])
    b = a.replace("的", "之", 3)  # three characters changed
    def jaccard(x, y):
        return len(x & y) / len(x | y)
    raw = jaccard(shingle_set(a), shingle_set(b))
    seg_a, seg_b = words_for_dedup([a, b], ["cmn_Hani"] * 2)
    seg = jaccard(shingle_set(seg_a), shingle_set(seg_b))
    assert seg > 0.8 and seg > raw
    assert len(shingle_set(seg_a)) > 3 * len(shingle_set(a))  # word 5-grams, not clause 5-grams


# --- the extract stage with many languages kept -------------------------------------------------------------

def test_extract_counts_documents_words_and_reasons_per_language(data_dir, tmp_path):
    import pyarrow.parquet as pq

    from crawlproc.extract.file import process_warc
    from crawlproc.store.layout import Layout
    from crawlproc.warc.charset import decode_html
    from tests.warcs import response_record

    pages = sorted((data_dir / "html_multilingual").glob("*.gz"))[:36]
    warc = tmp_path / "mix.warc.gz"
    with open(warc, "wb") as f:
        for i, p in enumerate(pages):
            html = decode_html(gzip.decompress(p.read_bytes()), None)[0]
            f.write(gzip.compress(response_record(f"https://site{i}.example.org/p", html.encode(),
                                                  f"<urn:uuid:00000000-0000-4000-8000-{i:012d}>"), mtime=0))
    recipe = recipe_from_dict({"language": {"keep": ["en", "de", "fr", "zh", "ja", "es", "cs", "pt"]}})
    stats = process_warc(warc, tmp_path / "out", recipe, dump="D")
    by = stats["by_language"]
    assert {"deu_Latn", "eng_Latn"} <= set(by)
    assert sum(c["kept"] for c in by.values()) == stats["kept"]
    assert sum(c["removed"] for c in by.values()) == stats["removed"]
    kept = pq.read_table(Layout(str(tmp_path / "out")).snapshot("D").path("docs", "mix")).to_pylist()
    for lang in ("deu_Latn", "eng_Latn"):
        rows = [r for r in kept if r["language"] == lang]
        assert len(rows) == by[lang]["kept"] > 0
        assert sum(r["token_count"] for r in rows) == by[lang]["kept_words"]
    assert by["deu_Latn"]["kept"] >= 10  # German pages are judged by German rules: most are kept
    assert all(k.split(":")[0] in {"gopher_repetition", "gopher_quality", "c4", "fineweb_quality", "language",
                                   "extract", "url_filter"} for c in by.values() for k in c["reasons"])


def test_language_model_takes_a_fasttext_file_and_labels_are_normalized(tmp_path):
    """Any fastText language-ID model file: here lid.176 given by path (as GlotLID's model.bin would be)."""
    import shutil

    from crawlproc.extract.language import LanguageIdentifier, model_path

    copy = tmp_path / "my-lid.ftz"
    shutil.copy(model_path(), copy)
    cfg = LanguageConfig(model=str(copy), keep=["deu"])
    lid = LanguageIdentifier(cfg)
    code, score, keep = lid.classify("Der schnelle braune Fuchs springt über den faulen Hund. Das ist gut so.")
    assert code == "deu_Latn" and keep
    with pytest.raises(Exception, match="is not a file"):
        recipe_from_dict({"language": {"model": str(tmp_path / "missing.bin")}})
