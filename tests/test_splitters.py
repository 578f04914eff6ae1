"""Word splitting per language gives the words datatrove 0.10.1 gives (FineWeb-2's splitters), on real text.

The oracle is each library called the way datatrove calls it, through spaCy where datatrove goes through spaCy
(spacy.blank(lang) on the whole text; spaCy's Chinese tokenizer with the jieba segmenter; spaCy's Japanese
tokenizer, SudachiPy mode A); crawlproc's splitters take their own faster paths to the same words."""

from __future__ import annotations

import gzip
import json
import logging

import pytest

from crawlproc.quality import langcodes, splitters

LANGS = ["en", "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "uk", "tr", "id", "ar", "fa", "he"]


def _sentences(data_dir, lang: str) -> list[str]:
    return gzip.decompress((data_dir / "sentences" / f"{lang}.txt.gz").read_bytes()).decode("utf-8").splitlines()


def _docs(data_dir, lang: str, size: int = 40) -> list[str]:
    lines = _sentences(data_dir, lang)
    return ["\n".join(lines[i:i + size]) for i in range(0, len(lines), size)]


def _strip(tokens) -> list[str]:
    return [t.strip() for t in tokens if t.strip()]


@pytest.mark.parametrize("lang", LANGS)
def test_spacy_languages_chunk_by_chunk_equal_spacy_on_the_whole_text(data_dir, lang):
    import spacy

    nlp = spacy.blank(lang)
    ls = langcodes.normalize(lang)
    splitter = splitters.splitter_for(ls)
    assert splitter.kind == "spacy"
    for doc in _docs(data_dir, lang)[:10]:
        assert splitter.split(doc) == _strip(t.text for t in nlp(doc)), lang


def test_english_on_held_out_technical_text(data_dir):
    """Licence files, changelogs, code in READMEs: the text where the old regex splitter differed from spaCy."""
    import spacy

    nlp = spacy.blank("en")
    texts = json.loads(gzip.decompress((data_dir / "heldout" / "texts.json.gz").read_bytes()))
    sample = [t["text"] for k, t in sorted(texts.items())[:150]]
    for text in sample:
        assert splitters.split_words(text) == _strip(t.text for t in nlp(text))


def test_spacy_rules_that_span_a_space_are_honoured():
    """Spanish "EE. UU." is one of spaCy's special cases with a space inside: chunk by chunk it would be two."""
    import spacy

    text = "Las relaciones con EE. UU. mejoraron."
    assert splitters.split_words(text, "spa_Latn") == _strip(t.text for t in spacy.blank("es")(text))
    assert "EE. UU." in splitters.split_words(text, "spa_Latn")


def test_chinese_is_jiebas_words_as_spacy_gives_them(data_dir):
    pytest.importorskip("jieba")
    import spacy

    nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
    for doc in _docs(data_dir, "zh"):
        assert splitters.split_words(doc, "cmn_Hani") == _strip(t.text for t in nlp(doc))


def test_japanese_is_sudachis_words_as_spacy_gives_them(data_dir):
    pytest.importorskip("sudachipy")
    import spacy

    nlp = spacy.blank("ja")  # spaCy's own Japanese tokenizer: SudachiPy, split mode A, as datatrove's
    for doc in _docs(data_dir, "ja"):
        assert splitters.split_words(doc, "jpn_Jpan") == _strip(t.text for t in nlp(doc))


def test_long_japanese_text_is_cut_on_bytes():
    text = "日本語の文章です。" * 3000  # 81,000 bytes: Sudachi refuses inputs past 49,149 bytes
    pieces = splitters.chunk_on_bytes(text)
    assert "".join(pieces) == text and all(len(p.encode()) <= splitters.JA_MAX_BYTES for p in pieces)
    pytest.importorskip("sudachipy")
    assert len(splitters.split_words(text, "jpn_Jpan")) > 10_000


@pytest.mark.parametrize("lang, ls, kind", [("ko", "kor_Hang", "kiwi"), ("th", "tha_Thai", "pythainlp"),
                                            ("hi", "hin_Deva", "indicnlp"), ("bn", "ben_Beng", "indicnlp"),
                                            ("ur", "urd_Arab", "indicnlp"), ("ta", "tam_Taml", "indicnlp")])
def test_dedicated_splitters_are_chosen_and_split_real_text(data_dir, lang, ls, kind):
    splitter = splitters.splitter_for(ls)
    if splitters.is_fallback(ls):
        pytest.skip(f"{kind} not installed: {splitters.fallbacks()[ls]}")
    assert splitter.kind == kind
    for doc in _docs(data_dir, lang)[:5]:
        words = splitter.split(doc)
        # the words cover the text (a segmenter may drop zero-width joiners or normalize a character)
        assert len("".join(words)) >= 0.95 * len("".join(doc.split()))
        assert len(words) > len(doc.split())  # these scripts do not mark every word with a space


def test_a_language_without_a_splitter_falls_back_and_says_so(caplog):
    with caplog.at_level(logging.WARNING):
        words = splitters.split_words("Tlhingan Hol Dajatlh'a'?", "tlh_Piqd")
    assert words and splitters.is_fallback("tlh_Piqd")
    assert "no splitter assigned" in splitters.fallbacks()["tlh_Piqd"]
    assert "tlh_Piqd" in caplog.text and "multi-language" in caplog.text
    assert splitters.splitter_for("tlh_Piqd") is splitters.splitter_for("xx_Zzzz")  # one fallback, spaCy's xx


def test_labels_are_normalized_to_iso639_3_and_script():
    assert langcodes.normalize("__label__en") == "eng_Latn"
    assert langcodes.normalize("__label__deu_Latn") == "deu_Latn"  # GlotLID's labels pass through
    assert langcodes.normalize("zh") == "cmn_Hani" and langcodes.normalize("ja") == "jpn_Jpan"
    assert langcodes.normalize("sr", "Ovo je rečenica napisana latinicom.") == "srp_Latn"
    assert langcodes.normalize("sr", "Ово је реченица написана ћирилицом.") == "srp_Cyrl"
    assert langcodes.normalize(None) == langcodes.normalize("und") == "und"
    lid176 = (langcodes.known(c) for c in
              __import__("crawlproc.recipe", fromlist=["LID176_LABELS"]).LID176_LABELS)
    assert all(lid176)


@pytest.mark.parametrize("unit", ["the-river-and-", "a-a.b/", "www.a/", "1,", "a..b", "don't"])
def test_spacy_never_sees_more_than_a_bounded_piece(unit):
    """The word split stays linear on adversarial text because spaCy (whose affix loop is not linear in a
    chunk's length) is only ever handed bounded pieces. Checked on what it is given, not on a clock (the
    scaling itself is measured by bench/bench_linear.py)."""
    splitter = splitters.SpacySplitter("en")
    seen = []
    real = splitter.tokenizer

    def recording(text):
        seen.append(max(map(len, text.split()), default=0))  # its longest whitespace-free run
        return real(text)

    splitter.tokenizer = recording
    text = (unit * (300_000 // len(unit) + 1))[:300_000] + " and some words. " + unit * 50
    words = splitter.split(text)
    assert seen and max(seen) <= splitters.MAX_CHUNK_CHARS
    assert "".join(words) == "".join(text.split())  # nothing lost or made up
