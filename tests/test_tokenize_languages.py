"""tokenize.languages: one token set per language (or group of languages) from one snapshot, on a real local Ray
and real Parquet. Documents are real sentences (tests/data/sentences) labelled as the extract stage and older
runs label them (ISO 639-3 + script, or lid.176's two-letter codes)."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawlproc.recipe import Recipe, RecipeError, TokenizeConfig, recipe_from_dict
from crawlproc.schema import docs_table
from crawlproc.store.storage import storage_for
from pipelines.stages.mix import run_mix
from pipelines.stages.run import stage_lines
from pipelines.stages.tokenize import language_filter, run_tokenize
from tokenizer import load_tokenizer, save_tokenizer
from tokenizer.encode import sample_texts
from tokenizer.mix.config import MixConfig, MixSource
from tokenizer.mix.decide import parse_spec
from tokenizer.tokenset import open_token_set
from tokenizer.train import train_bpe

CFG = TokenizeConfig(name="de", vocab_size=400, sample_bytes=2_000_000, shard_tokens=4000, val_fraction=0.2,
                     max_doc_chars=20_000)  # fmt: skip
QUIET = {"progress": False, "log": lambda _m: None}
# (language, the labels its documents carry, documents): old runs wrote lid.176's codes, new ones lang_Script
LANGS = (("de", ("deu_Latn", "de"), 14), ("fr", ("fra_Latn", "fr"), 11), ("en", ("eng_Latn", "en"), 9))


def recipe(**tokenize) -> Recipe:
    return Recipe(tokenize=dataclasses.replace(CFG, **tokenize))


def sentences(data_dir: Path, lang: str) -> list[str]:
    with gzip.open(data_dir / "sentences" / f"{lang}.txt.gz", "rt", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def make_snapshot(out: Path, snapshot: str, docs: list[dict], files: int = 3) -> None:
    """docs spread over `files` final/ files (languages interleaved within each), and a finished dedup."""
    for k in range(files):
        path = out / snapshot / "final" / f"part-{k}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(docs_table(docs[k::files]), path)
    (out / snapshot / "dedup").mkdir(parents=True, exist_ok=True)
    (out / snapshot / "dedup" / "_done.json").write_text(json.dumps({"snapshot": snapshot, "run": 1}))


def language_docs(data_dir: Path, snapshot: str, spec) -> tuple[list[dict], dict[str, set[str]]]:
    """Documents of 4 sentences each per language of `spec`, interleaved; {language: its ids}."""
    rows, ids = [], {}
    for lang, labels, n in spec:
        lines = sentences(data_dir, lang)
        ids[lang] = set()
        for i in range(n):
            doc_id = f"<urn:uuid:{snapshot}-{lang}-{i:04d}>"
            rows.append({"id": doc_id, "text": " ".join(lines[4 * i: 4 * i + 4]), "dump": snapshot,
                         "language": labels[i % len(labels)]})
            ids[lang].add(doc_id)
    rows.sort(key=lambda r: r["id"][::-1])  # interleave the languages
    return rows, ids


def token_set_ids(out: Path, name: str) -> list[str]:
    """Every document id of a finished token set, in shard order (an id twice stays twice)."""
    return [doc_id for _split, _file, doc_id, _tokens in open_token_set(str(out / "tokens" / name)).documents()]


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("langsel") / "out"
    rows, ids = language_docs(data_dir, "SNAP-L", LANGS)
    make_snapshot(out, "SNAP-L", rows)
    return out, {r["id"]: r["text"] for r in rows}, ids


def test_languages_key_is_checked_and_named():
    for bad in (["de", "klingon"], ["xx_"], [""]):
        with pytest.raises(RecipeError) as e:
            recipe_from_dict({"tokenize": {"languages": bad}})
        assert e.value.key == "tokenize.languages"
    assert recipe_from_dict({"tokenize": {"languages": ["de", "srp_Latn", "zho"]}}).tokenize.languages == \
        ["de", "srp_Latn", "zho"]
    assert Recipe().tokenize.languages == []  # every language by default
    # language.keep's rule: a code with a script matches that script, one without every script of the language
    cfg = TokenizeConfig(languages=["srp_Latn", "zh"])
    assert cfg.wants("srp_Latn") and not cfg.wants("srp_Cyrl") and not cfg.wants("sr")  # sr: Cyrillic by default
    assert cfg.wants("cmn_Hani") and cfg.wants("zh") and cfg.wants("cmn_Latn") and not cfg.wants("jpn_Jpan")
    assert not cfg.wants(None) and TokenizeConfig().wants(None)
    # one spelling per selection: what the fingerprint holds
    assert TokenizeConfig(languages=["de", "fra_Latn"]).selection() == TokenizeConfig(
        languages=["fra_Latn", "deu"]).selection() == ["deu", "fra_Latn"]


def test_one_token_set_per_language_then_mixed(ray_local, snapshot, tmp_path):
    out, texts, ids = snapshot
    others = len(ids["fr"]) + len(ids["en"])

    de = run_tokenize(str(out), recipe(languages=["de"]), ["SNAP-L"], **QUIET)
    assert de.ok and de.trained and de.encoded == 3
    got = token_set_ids(out, "de")
    assert sorted(got) == sorted(ids["de"])  # exactly the German documents, each once
    manifest = de.manifest
    assert manifest["skipped"] == {"other_language": others} and de.other_language == others
    assert manifest["languages"] == ["deu"]
    # the shards decode to the German texts themselves
    tok = load_tokenizer(str(out / "tokens" / "de" / "tokenizer.json"))
    for _split, _file, doc_id, tokens in open_token_set(str(out / "tokens" / "de")).documents():
        assert tok.decode(tokens.tolist()) == texts[doc_id]

    # the tokenizer's training sample is drawn from the selected languages only
    storage = storage_for(Recipe())
    uris = sorted(str(p) for p in (out / "SNAP-L" / "final").glob("*.parquet"))
    sample = sample_texts(storage, uris, 10_000_000, language_filter(recipe(languages=["de"]).tokenize))
    assert sorted(sample) == sorted(texts[i] for i in ids["de"])
    assert len(sample_texts(storage, uris, 10_000_000)) == len(texts)

    # French and English into a second token set, with the same tokenizer, then both mixed
    fren = run_tokenize(str(out), recipe(name="fren", languages=["fr", "eng_Latn"]), ["SNAP-L"],
                        tokenizer_path=str(out / "tokens" / "de" / "tokenizer.json"), **QUIET)
    assert fren.ok and not fren.trained
    assert fren.manifest["skipped"] == {"other_language": len(ids["de"])}
    assert fren.manifest["languages"] == ["eng_Latn", "fra"]
    both = token_set_ids(out, "de") + token_set_ids(out, "fren")
    assert sorted(both) == sorted(texts)  # every document in exactly one of the two

    cfg = MixConfig([MixSource(str(out / "tokens" / "de"), parse_spec("all")),
                     MixSource(str(out / "tokens" / "fren"), parse_spec("all"))], name="web")
    mixed = run_mix(str(out), cfg, Recipe(), progress=False, log=lambda *_: None)
    assert mixed.ok
    assert sorted(token_set_ids(out, "web")) == sorted(texts)


def test_same_list_encodes_nothing_a_changed_list_re_encodes(ray_local, data_dir, tmp_path):
    out = tmp_path / "out"
    rows, ids = language_docs(data_dir, "SNAP-R", LANGS)
    make_snapshot(out, "SNAP-R", rows, files=2)
    first = run_tokenize(str(out), recipe(languages=["de"]), ["SNAP-R"], **QUIET)
    assert first.ok and first.encoded == 2
    shards = {p.name: p.read_bytes() for p in (out / "tokens" / "de").glob("*.parquet")}

    # the same selection, spelled otherwise: nothing to do, nothing rewritten
    again = run_tokenize(str(out), recipe(languages=["deu"]), ["SNAP-R"], **QUIET)
    assert again.ok and again.encoded == 0
    assert {**again.manifest, "updated_at": None} == {**first.manifest, "updated_at": None}
    assert {p.name: p.read_bytes() for p in (out / "tokens" / "de").glob("*.parquet")} == shards

    # a changed list redoes every part, and the token set then holds the new selection only
    changed = run_tokenize(str(out), recipe(languages=["de", "fr"]), ["SNAP-R"], **QUIET)
    assert changed.ok and changed.encoded == 2
    assert sorted(token_set_ids(out, "de")) == sorted(ids["de"] | ids["fr"])
    assert changed.manifest["skipped"] == {"other_language": len(ids["en"])}
    assert changed.manifest["languages"] == ["deu", "fra"]
    assert run_tokenize(str(out), recipe(languages=["fr", "de"]), ["SNAP-R"], **QUIET).encoded == 0

    # back to every language: every document, nothing skipped
    every = run_tokenize(str(out), recipe(), ["SNAP-R"], **QUIET)
    assert every.encoded == 2 and every.manifest["skipped"] == {} and every.manifest["languages"] == []
    assert sorted(token_set_ids(out, "de")) == sorted(r["id"] for r in rows)


def test_zh_selects_mandarin_in_han_script(ray_local, data_dir, tmp_path):
    out = tmp_path / "out"
    # GlotLID labels Mandarin cmn_Hani, lid.176 "zh": langcodes reads both as cmn_Hani
    spec = (("zh", ("cmn_Hani", "zh"), 8), ("ja", ("jpn_Jpan",), 5), ("en", ("eng_Latn",), 5))
    rows, ids = language_docs(data_dir, "SNAP-Z", spec)
    make_snapshot(out, "SNAP-Z", rows, files=2)
    zh = run_tokenize(str(out), recipe(name="zh", languages=["zh"]), ["SNAP-Z"], **QUIET)
    assert zh.ok and sorted(token_set_ids(out, "zh")) == sorted(ids["zh"])
    assert zh.manifest["skipped"] == {"other_language": len(ids["ja"]) + len(ids["en"])}
    assert zh.manifest["languages"] == ["cmn"]


def test_input_without_language_column_fails_with_its_cause(ray_local, tmp_path):
    out = tmp_path / "out"
    path = out / "SNAP-N" / "final" / "old.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["eins zwei drei", "vier fünf sechs"]}), path)
    (out / "SNAP-N" / "dedup").mkdir()
    (out / "SNAP-N" / "dedup" / "_done.json").write_text(json.dumps({"snapshot": "SNAP-N", "run": 1}))
    tokenizer = tmp_path / "tok"
    tokenizer.mkdir()
    save_tokenizer(train_bpe(["eins zwei drei vier fünf sechs"] * 20, 300), str(tokenizer))
    result = run_tokenize(str(out), recipe(languages=["de"]), ["SNAP-N"], tokenizer_path=str(tokenizer), **QUIET)
    assert not result.ok and "no language column" in result.failed["old.parquet"]


def test_run_summary_counts_other_languages_apart():
    info = {"tokenize": {"documents": 14, "skipped": 2, "other_language": 20, "languages": ["deu"],
                         "train_tokens": 900, "val_tokens": 100, "vocab_size": 400}}
    line = next(x for x in stage_lines(info) if x.startswith("tokenize"))
    assert "14 documents in, 2 skipped, 20 in languages other than deu left out" in line
    del info["tokenize"]["languages"]  # every language: nothing is said of languages
    assert "languages" not in next(x for x in stage_lines(info) if x.startswith("tokenize"))
