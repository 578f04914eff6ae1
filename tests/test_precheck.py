"""The language pre-check: on real pages it removes only what the language filter would remove after extraction,
its removals are counted with their own reason, and the recipe switch turns it off."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import trafilatura

from crawlproc.warc.charset import decode_html
from crawlproc.extract.language import LanguageIdentifier
from crawlproc.store.layout import Layout
from crawlproc.extract.precheck import LanguagePrecheck, declared_language, enabled, main_text
from crawlproc.extract.file import process_warc
from crawlproc.recipe import LanguageConfig, Recipe
from crawlproc.warc.reader import ReadCounts, iter_html_records
from tests.warcs import response_record

DATA = Path(__file__).parent / "data"
GOPHER_MIN_WORDS = 50  # a text this short never survives the Gopher quality filter


def real_pages() -> list[tuple[str, str]]:
    """(name, html) of every real page in the fixtures: the ScrapingHub articles, the multilingual pages and
    the HTML responses of the real WARCs."""
    pages = []
    for p in sorted((DATA / "html" / "html").glob("*.html.gz")) + sorted((DATA / "html_multilingual").glob("*.gz")):
        pages.append((p.name, decode_html(gzip.decompress(p.read_bytes()), None)[0]))
    for p in sorted((DATA / "warc").glob("*.warc.gz")):
        if p.name.endswith((".wet.gz", ".wat.gz")):
            continue
        for rec in iter_html_records(p, ReadCounts()):
            pages.append((f"{p.name}:{rec.url}", decode_html(rec.payload, rec.content_type)[0]))
    return pages


@pytest.fixture(scope="module")
def verdicts():
    """Per real page: the pre-check's verdict and what the language filter decides on trafilatura's text."""
    cfg = LanguageConfig()
    lid = LanguageIdentifier(cfg)
    pre = LanguagePrecheck(cfg, lid)
    rows = []
    for name, html in real_pages():
        text = trafilatura.extract(html, favor_precision=True, include_comments=False, deduplicate=False) or ""
        code, score = lid.predict(text)
        rows.append({"name": name, "precheck": pre.rules_out(html), "lang": code, "kept": lid.keep(code, score),
                     "words": len(text.split())})
    return rows


def test_on_real_pages_it_removes_only_what_the_language_filter_removes(verdicts):
    assert len(verdicts) > 350
    wrong = [r for r in verdicts if r["precheck"] is not None and r["kept"]]
    # a page the pre-check removes but the language filter would keep may only be one whose extracted text is
    # too short to survive the quality filters anyway: the kept set does not change
    assert all(r["words"] < GOPHER_MIN_WORDS for r in wrong), wrong
    assert len(wrong) <= 1, wrong


def test_on_real_pages_it_removes_most_pages_the_language_filter_removes(verdicts):
    not_kept = [r for r in verdicts if not r["kept"] and r["lang"] != "und"]
    removed = [r for r in not_kept if r["precheck"] is not None]
    assert len(not_kept) > 100
    assert len(removed) >= 0.8 * len(not_kept), (len(removed), len(not_kept))
    assert all(r["precheck"].language not in ("eng_Latn", "und") for r in removed)


def test_english_pages_are_never_removed(verdicts):
    english = [r for r in verdicts if r["kept"] and r["words"] >= GOPHER_MIN_WORDS]
    assert len(english) > 200
    assert [r["name"] for r in english if r["precheck"] is not None] == []


def _page(lang_attr: str, body: str) -> str:
    attr = f' lang="{lang_attr}"' if lang_attr else ""
    return f"<!doctype html><html{attr}><head><title>t</title></head><body><article>{body}</article></body></html>"


GERMAN = ("<p>Die Bundesregierung hat am Mittwoch einen Gesetzentwurf beschlossen, der die Förderung von "
          "Wärmepumpen in den kommenden Jahren deutlich ausweiten soll.</p><p>Nach Angaben des Ministeriums "
          "sollen Haushalte mit geringem Einkommen einen höheren Zuschuss erhalten als bisher.</p>")
ENGLISH = ("<p>The government approved a draft law on Wednesday that is meant to expand the support for heat "
           "pumps considerably over the coming years.</p><p>According to the ministry, households with low "
           "incomes are to receive a larger subsidy than before.</p>")


def test_a_page_declaring_a_kept_language_is_not_looked_at():
    pre = LanguagePrecheck(LanguageConfig())
    assert pre.rules_out(_page("", GERMAN)).language == "deu_Latn"
    assert pre.rules_out(_page("de-DE", GERMAN)).language == "deu_Latn"
    assert pre.rules_out(_page("en-US", GERMAN)) is None  # extracted and judged by the language filter
    assert pre.rules_out(_page("de", ENGLISH)) is None  # a wrong attribute never removes a page


def test_kept_languages_in_any_form_and_many_of_them():
    """`keep` may name a language as lid.176 does, in ISO 639-3 or with its script, and list many: a page in
    any kept language goes on to extraction; one in a language not kept is still ruled out."""
    many = ["en", "fr", "es", "it", "pt", "nl", "pl", "ru", "zh", "ja", "ko", "ar", "tr", "de"]
    for keep in (["de"], ["deu"], ["deu_Latn"], many, [*many[:-1], "deu_Latn"]):
        assert LanguagePrecheck(LanguageConfig(keep=keep)).rules_out(_page("", GERMAN)) is None, keep
        assert LanguagePrecheck(LanguageConfig(keep=keep)).rules_out(_page("de", GERMAN)) is None, keep
    assert LanguagePrecheck(LanguageConfig(keep=many[:-1])).rules_out(_page("", GERMAN)).language == "deu_Latn"
    assert LanguagePrecheck(LanguageConfig(keep=["deu_Cyrl"])).rules_out(_page("de", GERMAN)) is not None


def test_verdict_thresholds_and_kept_languages():
    assert LanguagePrecheck(LanguageConfig(keep=["en", "de"])).rules_out(_page("", GERMAN)) is None
    score = LanguagePrecheck(LanguageConfig()).rules_out(_page("", GERMAN)).score
    assert 0.9 < score < 0.999
    below, above = LanguageConfig(), LanguageConfig()
    below.precheck_min_score, above.precheck_min_score = score - 0.001, score + 0.001
    assert LanguagePrecheck(below).rules_out(_page("", GERMAN)).score == score
    assert LanguagePrecheck(above).rules_out(_page("", GERMAN)) is None
    loose = LanguageConfig(min_score=0.9)
    loose.precheck_min_score = 0.1  # never below the language filter's own threshold
    assert LanguagePrecheck(loose).min_score == 0.9


def test_no_text_or_a_parser_failure_means_no_verdict():
    pre = LanguagePrecheck(LanguageConfig())
    assert pre.rules_out("") is None
    assert pre.rules_out("<html><body><script>var x = 1;</script></body></html>") is None
    assert main_text("\ud800<p>a lone surrogate: resiliparse refuses the string</p>") == ""


def test_declared_language():
    assert declared_language('<!DOCTYPE html>\n<html class="a" lang="EN-gb">') == "en"
    assert declared_language("<html lang=de><body>") == "de"
    assert declared_language('<html xml:lang="fr">') is None
    assert declared_language("<html><body lang='de'>") is None  # only the document's own declaration
    assert declared_language("x" * 10_000 + '<html lang="de">') is None  # not looked for past the head


def test_the_switch():
    assert not enabled(LanguageConfig())  # off in FineWeb's recipe: every page is extracted
    assert enabled(LanguageConfig(precheck=True))
    assert not enabled(LanguageConfig(keep=[], precheck=True))  # label only: every language is kept
    assert not enabled(LanguageConfig(enabled=False, precheck=True))
    off = LanguageConfig()
    off.precheck = False
    assert not enabled(off)


def _warc(path: Path, pages: list[tuple[str, str]]) -> list[str]:
    ids = []
    with open(path, "wb") as f:
        for i, (url, html) in enumerate(pages):
            ids.append(f"<urn:uuid:00000000-0000-4000-8000-{i:012d}>")
            f.write(gzip.compress(response_record(url, html.encode(), ids[-1]), mtime=0))
    return ids


def _run(tmp_path: Path, warc: Path, precheck: bool, name: str) -> tuple[dict, list[dict], list[str]]:
    recipe = Recipe()
    recipe.language.precheck = precheck
    stats = process_warc(warc, tmp_path / name, recipe, dump="D")
    snap = Layout(str(tmp_path / name)).snapshot("D")
    removed = pq.read_table(snap.path("removed", "mix")).to_pylist()
    kept = pq.read_table(snap.path("docs", "mix"), columns=["id"]).column("id").to_pylist()
    return stats, removed, kept


def test_removals_are_counted_with_their_own_reason_and_the_kept_set_is_unchanged(tmp_path):
    multilingual = sorted((DATA / "html_multilingual").glob("*.gz"))
    pages = [(f"https://site{i}.example.org/p", decode_html(gzip.decompress(p.read_bytes()), None)[0])
             for i, p in enumerate(multilingual[:40])]
    warc = tmp_path / "mix.warc.gz"
    html_of = dict(zip(_warc(warc, pages), (html for _, html in pages)))
    on, removed_on, kept_on = _run(tmp_path, warc, True, "on")
    off, removed_off, kept_off = _run(tmp_path, warc, False, "off")

    assert set(kept_on) == set(kept_off) and kept_on
    pre = [r for r in removed_on if (r["removed_reason"] or "").startswith("precheck:")]
    stage_off = {r["id"]: r["removed_by"] for r in removed_off}
    assert {stage_off[r["id"]] for r in pre} <= {"language", "extract"}
    assert len(pre) >= 15  # most of these pages are German
    for r in pre:
        assert r["removed_by"] == "language" and r["language"] == r["removed_reason"].split(":")[1]
        # never extracted: removed/ keeps the main text the pre-check read (issue 31), so it can be checked
        assert r["language_score"] >= 0.8 and r["text"] and r["text"] == main_text(html_of[r["id"]])
    counted = {k: v for k, v in on["removed_reasons"].items() if k.startswith("language:precheck:")}
    assert sum(counted.values()) == len(pre)
    assert counted.get("language:precheck:deu_Latn", 0) >= 10
    assert not any(k.startswith("language:precheck") for k in off["removed_reasons"])
    # the funnel stays monotonic: what the pre-check removes passed the extract stage's count and is removed
    # at the language stage, so every document is counted once per stage
    for stats in (on, off):
        st = stats["steps"]
        assert st["language"]["in"] == st["extract"]["in"] - st["extract"]["removed"]
    assert on["steps"]["language"]["removed"] >= len(pre)
