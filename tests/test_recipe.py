"""Recipes: the bundled FineWeb recipe is the dataclass defaults, key by key; every value of every section is
validated (type, range, finiteness, names, resource limits) naming the key, before any work starts."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import tomllib

import pytest

from crawlproc.extract import registry
from crawlproc.recipe import LID176_LABELS, Recipe, RecipeError, load_recipe, recipe_from_dict
from pipelines.recipes import DEFAULT_RECIPE, RECIPES, resolve_recipe, train_config
from trainer.config import TrainConfig


def test_bundled_fineweb_recipe_is_the_default():
    assert load_recipe(DEFAULT_RECIPE) == Recipe() == resolve_recipe(None)
    r = Recipe()
    assert r.language.keep == ["en"] and r.language.min_score == 0.65
    assert r.gopher_quality.min_doc_words == 50 and r.fineweb_quality.line_punct_thr == 0.12
    assert r.minhash.num_bands * r.minhash.rows_per_band == 112


def test_fineweb_toml_and_the_dataclass_defaults_agree_key_by_key():
    """Every section and key of the defaults is written out in fineweb.toml with its default value, and the
    file has nothing else: a new field without its line (or a changed default) fails here. A quality filter's
    section may be left out (its defaults are its config's: a new built-in filter needs no line here), but one
    that is written is written whole."""
    text = DEFAULT_RECIPE.read_text(encoding="utf-8")
    written = tomllib.loads(text)
    defaults = Recipe().to_dict()
    filters = set(Recipe().filters)
    assert list(written) == [k for k in defaults if k in written]  # the same order
    assert set(defaults) - set(written) <= filters  # only filter sections may be left out
    for section, values in defaults.items():
        if section not in written:
            continue
        if section in ("train", "classifiers"):  # trainer/config.py's defaults; no classifier by default: empty
            assert written[section] == {} == values
            continue
        unset = {key for key, value in values.items() if value is None}  # TOML has no null: a comment
        assert set(written[section]) == set(values) - unset, section
        for key in unset:
            assert f"# {key} = " in text, f"{section}.{key}: document the unset key in a comment"
        for key, value in values.items():
            assert written[section].get(key) == value, f"{section}.{key}"


def _wrong_type(hint):
    """A value of another type than the field's (TOML's own types), derived from the field's annotation."""
    text = str(hint)
    if "bool" in text:
        return "yes"
    if "list" in text:
        return {"not": "a list"}
    if "str" in text:
        return 3
    return "many"  # int and float fields


FILTER_FIELDS = [(f.name, fld.name) for f in registry.FILTERS for fld in dataclasses.fields(f.Config)]


@pytest.mark.parametrize("section, key", FILTER_FIELDS, ids=[f"{s}.{k}" for s, k in FILTER_FIELDS])
def test_every_filter_key_rejects_a_wrong_type_naming_the_key(section, key):
    """Derived from each built-in filter's config, so a new filter's keys are covered without a line here."""
    import typing

    cfg = next(f.Config for f in registry.FILTERS if f.name == section)
    hint = typing.get_type_hints(cfg)[key]
    with pytest.raises(RecipeError) as err:
        recipe_from_dict({section: {key: _wrong_type(hint)}})
    assert err.value.key == f"{section}.{key}" and "expected" in str(err.value)
    if "float" in str(hint):  # NaN compares false: it would switch a check off
        bad = [[2, NAN]] if "list" in str(hint) else NAN
        with pytest.raises(RecipeError, match="finite") as err:
            recipe_from_dict({section: {key: bad}})
        assert err.value.key == f"{section}.{key}"


def test_the_filter_sections_come_from_the_registry():
    assert [name for name in Recipe().to_dict() if name in Recipe().filters] == [f.name for f in registry.FILTERS]
    for f in registry.FILTERS:
        assert isinstance(getattr(Recipe(), f.name), f.Config)


def test_every_bundled_recipe_loads():
    for path in RECIPES.glob("*.toml"):
        assert isinstance(resolve_recipe(str(path)), Recipe), path


def test_fineweb_is_fineweb_stage_one_as_published():
    """Every page is extracted (no pre-check) with trafilatura's own decisions: the accelerated call gives the
    same text (tests/test_accelerate.py)."""
    r = resolve_recipe("fineweb")
    assert r.language.precheck is False and r.extract.engine == "trafilatura" and r.extract.favor_precision


def test_fineweb_fast_extends_fineweb_and_changes_only_the_precheck():
    fast, base = resolve_recipe("fineweb-fast"), resolve_recipe("fineweb")
    assert fast.language.precheck is True
    diff = {(section, key) for section, values in fast.to_dict().items() for key, value in values.items()
            if base.to_dict()[section][key] != value}
    assert diff == {("language", "precheck")}
    assert tomllib.loads((RECIPES / "fineweb-fast.toml").read_text())["extends"] == "fineweb"


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_a_recipe_extends_another_and_lists_only_what_it_changes(tmp_path):
    _write(tmp_path / "base.toml", "[language]\nkeep = ['de', 'fr']\nmin_score = 0.7\n[gopher_quality]\n"
           "min_doc_words = 80\n")
    _write(tmp_path / "mid.toml", "extends = 'base'\n[language]\nmin_score = 0.8\n")
    child = _write(tmp_path / "child.toml", "extends = 'mid.toml'\n[language]\nkeep = ['it']\n[c4]\nenabled = false\n")
    r = load_recipe(child)
    assert r.language.keep == ["it"]  # a list replaces the base's
    assert r.language.min_score == 0.8  # from the middle recipe; a table merges key by key
    assert r.gopher_quality.min_doc_words == 80 and r.c4.enabled is False
    assert r.language.precheck is False  # not set anywhere: the default


def test_a_user_recipe_extends_a_bundled_one_by_name(tmp_path):
    mine = _write(tmp_path / "mine.toml", "extends = 'fineweb-fast'\n[language]\nkeep = ['en', 'de']\n")
    r = resolve_recipe(str(mine))
    assert r.language.precheck is True and r.language.keep == ["en", "de"]
    with pytest.raises(RecipeError) as err:
        load_recipe(mine)  # without the bundled folder to look in
    assert err.value.key == "extends" and "fineweb-fast" in str(err.value)


@pytest.mark.parametrize("files, words", [
    ({"a.toml": "extends = 'b'\n", "b.toml": "extends = 'a'\n"}, "cycle"),
    ({"a.toml": "extends = 'a'\n"}, "cycle"),
    ({"a.toml": "extends = 'nowhere'\n"}, "no recipe 'nowhere'"),
    ({"a.toml": "extends = 3\n"}, "name or path"),
    ({"a.toml": "extends = 'b'\n", "b.toml": "[language]\nmin_scor = 1\n"}, "unknown key"),
    ({"a.toml": "extends = 'b'\n", "b.toml": "[language\n"}, "not valid TOML"),
])
def test_a_bad_extends_is_rejected_naming_the_key(tmp_path, files, words):
    for name, text in files.items():
        _write(tmp_path / name, text)
    with pytest.raises(RecipeError) as err:
        load_recipe(tmp_path / "a.toml")
    assert words in str(err.value)


def test_a_long_chain_is_refused(tmp_path):
    for i in range(12):
        _write(tmp_path / f"r{i}.toml", f"extends = 'r{i + 1}'\n" if i < 11 else "[c4]\nenabled = false\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(tmp_path / "r0.toml")
    assert "extend one another" in str(err.value)
    assert load_recipe(tmp_path / "r5.toml").c4.enabled is False


def test_overrides_and_int_for_float():
    r = recipe_from_dict({"language": {"keep": ["en", "de"], "min_score": 1}, "extract": {"engine": "resiliparse"}})
    assert r.language.keep == ["en", "de"] and r.language.min_score == 1
    assert r.extract.engine == "resiliparse"
    assert r.gopher_quality == Recipe().gopher_quality


def test_the_language_labels_are_lid176s():
    from crawlproc.extract.language import load_model

    assert LID176_LABELS == {label.removeprefix("__label__") for label in load_model().get_labels()}
    assert len(LID176_LABELS) == 176


INF, NAN = math.inf, math.nan

# (section, key, bad value, words in the error). Every key of every section appears at least once
# (test_every_key_has_a_bad_value_case); each is rejected naming `section.key`.
BAD = [
    ("input", "max_payload_bytes", 0, "> 0"),
    ("input", "max_skip_bytes", -1, ">= 0"),
    ("input", "html_only", "yes", "expected bool"),
    ("url_filter", "enabled", "yes", "expected bool"),
    ("url_filter", "use_ut1_lists", 1, "expected bool"),
    ("url_filter", "soft_banned_threshold", 0, ">= 1"),
    ("url_filter", "extra_domains", ["bad domain"], "bad entry"),
    ("url_filter", "extra_urls", [""], "bad entry"),
    ("extract", "engine", "magic", "one of"),
    ("extract", "accelerate", "fast", "expected bool"),
    ("extract", "favor_precision", "no", "expected bool"),
    ("extract", "include_tables", 0, "expected bool"),
    ("extract", "deduplicate", "x", "expected bool"),
    ("extract", "timeout_s", INF, "finite"),
    ("extract", "timeout_s", NAN, "finite"),
    ("extract", "timeout_s", 0, "> 0"),
    ("extract", "min_chars", -1, ">= 0"),
    ("extract", "plugins", ["../evil"], "not a module name"),
    ("extract", "plugins", ["json", "json"], "twice"),
    ("language", "enabled", 1, "expected bool"),
    ("language", "keep", ["xx", "klingon"], "not a language code"),
    ("language", "model", "/nonexistent/glotlid.bin", "is not a file"),
    ("language", "min_scores", 5, "expected dict"),
    ("language", "fineweb2_min_scores", "yes", "expected bool"),
    ("language", "thresholds", "german", "one of"),
    ("gopher_repetition", "lang", 3, "expected dict"),
    ("dedup", "by_language", "yes", "expected bool"),
    ("gopher_quality", "lang", [], "expected dict"),
    ("gopher_quality", "stop_words", "the", "expected list"),
    ("c4", "lang", "de", "expected dict"),
    ("fineweb_quality", "lang", 1, "expected dict"),
    ("language", "min_score", 1.5, "fraction"),
    ("language", "min_score", NAN, "finite"),
    ("language", "precheck", "yes", "expected bool"),
    ("language", "precheck_min_score", 1.2, "fraction"),
    ("gopher_repetition", "enabled", "x", "expected bool"),
    ("gopher_repetition", "dup_line_frac", -0.1, "fraction"),
    ("gopher_repetition", "dup_para_frac", NAN, "finite"),
    ("gopher_repetition", "dup_line_char_frac", 1.5, "fraction"),
    ("gopher_repetition", "dup_para_char_frac", INF, "finite"),
    ("gopher_repetition", "top_n_grams", [[2, 3.0]], "fraction"),
    ("gopher_repetition", "top_n_grams", [[2, NAN]], "finite"),
    ("gopher_repetition", "dup_n_grams", [[0, 0.1]], "n in 1..100"),
    ("gopher_repetition", "dup_n_grams", [[10_000, 0.1]], "n in 1..100"),
    ("gopher_quality", "enabled", "x", "expected bool"),
    ("gopher_quality", "min_doc_words", -1, ">= 0"),
    ("gopher_quality", "min_doc_words", 5.5, "expected int"),
    ("gopher_quality", "max_doc_words", -5, ">= 0"),
    ("gopher_quality", "min_avg_word_length", NAN, "finite"),
    ("gopher_quality", "max_avg_word_length", INF, "finite"),
    ("gopher_quality", "max_symbol_word_ratio", -0.1, ">= 0"),
    ("gopher_quality", "max_bullet_lines_ratio", 1.5, "fraction"),
    ("gopher_quality", "max_ellipsis_lines_ratio", -1, "fraction"),
    ("gopher_quality", "max_non_alpha_words_ratio", NAN, "finite"),
    ("gopher_quality", "min_stop_words", 9, "stop words"),
    ("c4", "enabled", "x", "expected bool"),
    ("c4", "remove_citations", "x", "expected bool"),
    ("c4", "filter_no_terminal_punct", 1, "expected bool"),
    ("c4", "min_num_sentences", -2, "-1: off"),
    ("c4", "min_words_per_line", -5, "-1: off"),
    ("c4", "max_word_length", 0, ">= 1"),
    ("c4", "filter_lorem_ipsum", "x", "expected bool"),
    ("c4", "filter_javascript", "x", "expected bool"),
    ("c4", "filter_curly_bracket", "x", "expected bool"),
    ("c4", "filter_policy", "x", "expected bool"),
    ("fineweb_quality", "enabled", "x", "expected bool"),
    ("fineweb_quality", "line_punct_thr", -0.1, "fraction"),
    ("fineweb_quality", "line_punct_exclude_zero", "x", "expected bool"),
    ("fineweb_quality", "short_line_thr", 2, "fraction"),
    ("fineweb_quality", "short_line_length", -1, ">= 0"),
    ("fineweb_quality", "char_duplicates_ratio", NAN, "finite"),
    ("fineweb_quality", "new_line_ratio", -1, ">= 0"),
    ("minhash", "ngram", 0, "1..100"),
    ("minhash", "num_bands", 0, ">= 1"),
    ("minhash", "num_bands", 100_000, "at most 1024"),
    ("minhash", "rows_per_band", 0, ">= 1"),
    ("minhash", "hash_bits", 16, "one of"),
    ("minhash", "sketch", "bucketed", "one of"),
    ("minhash", "seed", -1, "[0, 2**63)"),
    ("dedup", "enabled", "x", "expected bool"),
    ("dedup", "exact", "x", "expected bool"),
    ("dedup", "scope", "everything", "snapshot"),
    ("dedup", "num_partitions", 0, "1..100000"),
    ("dedup", "components", "pairs", "one of"),
    ("dedup", "ids", "hash", "one of"),
    ("dedup", "max_component_rounds", 0, ">= 1"),
    ("dedup", "shuffle_files_per_task", 0, ">= 1"),
    ("dedup", "order", ["../up"], "not a snapshot name"),
    ("dedup", "order", ["A", "A"], "listed twice"),
    ("dedup", "signature_batch", 0, ">= 1"),
    ("dedup", "signature_batch", 10_000_000, "MiB per batch"),
    ("pii", "enabled", "x", "expected bool"),
    ("pii", "email_replacement", 3, "expected str"),
    ("pii", "ip_replacement", None, "expected str"),
    ("decontaminate", "enabled", "yes", "expected bool"),
    ("decontaminate", "default_suite", 1.5, "expected bool"),
    ("decontaminate", "benchmarks", ["a.jsonl", "a.jsonl"], "twice"),
    ("decontaminate", "benchmarks", [" "], "bad entry"),
    ("decontaminate", "n", 1, "2..64"),
    ("decontaminate", "n", 65, "2..64"),
    ("decontaminate", "min_item_words", 14, "0 (off) or in 2..n"),
    ("decontaminate", "min_item_words", 1, "0 (off) or in 2..n"),
    ("decontaminate", "strip_prompt_words", "no", "expected bool"),
    ("decontaminate", "coverage_n", 1, "0 (off) or in 2..n"),
    ("decontaminate", "coverage_n", 14, "0 (off) or in 2..n"),
    ("decontaminate", "coverage", 0.0, "(0, 1]"),
    ("decontaminate", "coverage", 1.5, "(0, 1]"),
    ("decontaminate", "coverage_min", 0, ">= 1"),
    ("decontaminate", "min_matches", 0, ">= 1"),
    ("decontaminate", "mode", "drop", "one of"),
    ("decontaminate", "min_words_after_cut", -1, ">= 0"),
    ("download", "base_url", "ftp://example.com", "http(s)://"),
    ("download", "allowed_hosts", [3], "expected list"),
    ("download", "concurrency", 0, "1..1024"),
    ("download", "retries", -1, ">= 0"),
    ("download", "backoff_s", -1, ">= 0"),
    ("download", "max_backoff_s", -5, ">= backoff_s"),
    ("download", "timeout_s", INF, "finite"),
    ("download", "deadline_s", 0, "> 0"),
    ("download", "cache_dir", 3, "expected str"),
    ("download", "s3", "ftp", "one of"),
    ("fetch", "mode", "cdx", "one of"),
    ("fetch", "index", 3, "expected str"),
    ("fetch", "language_positions", 4, "1..3"),
    ("fetch", "language_margin", ["english"], "ISO 639-3"),
    ("fetch", "select_unknown_language", "yes", "expected bool"),
    ("fetch", "max_gap_bytes", -1, ">= 0"),
    ("fetch", "max_range_bytes", 0, "> 0"),
    ("fetch", "buckets", -2, ">= 0"),
    ("storage", "endpoint_url", "ftp://x", "http(s)://"),
    ("storage", "region", 3, "expected str"),
    ("storage", "profile", 3, "expected str"),
    ("storage", "anonymous_buckets", ["A/B"], "bucket name"),
    ("storage", "retries", -1, ">= 0"),
    ("storage", "connect_timeout_s", 0, "> 0"),
    ("storage", "request_timeout_s", NAN, "finite"),
    ("tokenize", "name", "../..", "no '/'"),
    ("tokenize", "name", ".hidden", "no '/'"),
    ("tokenize", "name", "a/b", "no '/'"),
    ("tokenize", "vocab_size", 100, "257.."),
    ("tokenize", "sample_bytes", 0, "> 0"),
    ("tokenize", "shard_tokens", 0, ">= 512"),
    ("tokenize", "shard_tokens", 1, ">= 512"),  # a shard per document: a flood of files (issue 25)
    ("tokenize", "val_fraction", 1.5, "fraction"),
    ("tokenize", "languages", ["de", "klingon"], "not a language code"),
    ("tokenize", "val_fraction", 1.0, "train split empty"),  # issue 25
    ("tokenize", "max_doc_chars", 0, "> 0"),
    ("tokenize", "source", "everything", "one of"),
    ("classify", "source", "classified", "one of"),
    ("classify", "model_cache", 3, "expected str"),
    ("ray", "num_cpus_per_task", -1, "> 0"),
    ("ray", "max_retries", -1, ">= 0"),
    ("ray", "object_store_memory_mb", 0, ">= 75"),
]


@pytest.mark.parametrize("section, key, value, words", BAD, ids=[f"{s}.{k}={v!r}" for s, k, v, _ in BAD])
def test_a_bad_value_is_rejected_naming_the_key(section, key, value, words):
    with pytest.raises(RecipeError) as err:
        recipe_from_dict({section: {key: value}})
    assert err.value.key == f"{section}.{key}"
    assert words in str(err.value)


def test_every_key_has_a_bad_value_case():
    covered = {(s, k) for s, k, _, _ in BAD}
    for section, cfg in Recipe().sections().items():
        if section in ("train", "classifiers"):  # the classifiers' keys: tests/test_classify.py
            continue
        if section in Recipe().filters:  # derived from their configs (test_every_filter_key_rejects_...)
            continue
        for f in dataclasses.fields(cfg):
            assert (section, f.name) in covered, f"add a bad value of {section}.{f.name} to BAD"


@pytest.mark.parametrize("data, key, words", [
    ({"language": {"min_scor": 0.5}}, "language.min_scor", "unknown key"),
    ({"langauge": {}}, "langauge", "unknown section"),
    ({"language": {"keep": "en"}}, "language.keep", "expected list"),
    ({"language": {"min_scores": {"de": 1.5}}}, "language.min_scores.de", "fraction"),
    ({"language": {"min_scores": {"klingon": 0.5}}}, "language.min_scores.klingon", "not a language code"),
    ({"gopher_quality": {"lang": {"de": {"min_doc_words": -1}}}}, "gopher_quality.lang.de.min_doc_words", ">= 0"),
    ({"gopher_quality": {"lang": {"de": {"min_doc_word": 1}}}}, "gopher_quality.lang.de.min_doc_word", "unknown key"),
    ({"gopher_quality": {"lang": {"klingon": {}}}}, "gopher_quality.lang.klingon", "not a language code"),
    ({"c4": {"lang": {"de": {"lang": {}}}}}, "c4.lang.de.lang", "do not nest"),
    ({"language": 3}, "language", "must be a table"),
    ({"gopher_quality": {"min_doc_words": 200, "max_doc_words": 100}}, "gopher_quality.min_doc_words", "<="),
    ({"gopher_quality": {"min_avg_word_length": 12}}, "gopher_quality.min_avg_word_length", "<="),
    ({"tokenize": {"source": "docs"}}, "tokenize.source", "dedup.enabled = false"),
    ({"tokenize": {"source": "classified"}}, "tokenize.source", "[classifiers.<name>]"),
    ({"dedup": {"enabled": False}, "classifiers": {"q": {"kind": "fasttext", "model": "m.bin"}}}, "classify.source",
     "needs dedup"),
    ({"minhash": {"num_bands": 64, "rows_per_band": 16}, "dedup": {"signature_batch": 40_000}},
     "dedup.signature_batch", "MiB per batch"),
    ({"storage": {"secret_access_key": "x"}}, "storage.secret_access_key", "never hold credentials"),
    ({"storage": {"aws_access_key_id": "x"}}, "storage.aws_access_key_id", "never hold credentials"),
    ({"download": {"password": "x"}}, "download.password", "never hold credentials"),
    ({"train": 3}, "train", "must be a table"),
])
def test_bad_combinations_and_keys(data, key, words):
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(data)
    assert err.value.key == key and words in str(err.value)


def test_docs_as_the_tokenize_source_without_dedup():
    r = recipe_from_dict({"tokenize": {"source": "docs"}, "dedup": {"enabled": False}})
    assert r.tokenize.source == "docs"


# --- [train]: TrainConfig's fields but its paths, validated where pipelines loads the recipe ---------------

TRAIN_BAD = [
    ("preset", "huge", "unknown preset"), ("block_size", 0, ">= 1"), ("dropout", 1.0, "< 1"),
    ("batch_size", 0, ">= 1"), ("grad_accum", 0, ">= 1"), ("max_steps", 0, ">= 1"), ("lr", 0, "> 0"),
    ("lr", NAN, "finite"), ("min_lr", -1.0, ">= 0"), ("warmup_steps", -1, ">= 0"), ("decay_steps", 0, ">= 1"),
    ("weight_decay", -0.1, ">= 0"), ("beta1", 1.5, "< 1"), ("beta2", -0.5, ">= 0"), ("grad_clip", INF, "finite"),
    ("seed", "x", "expected int"), ("eval_interval", 0, ">= 1"), ("eval_iters", 0, ">= 1"),
    ("ckpt_interval", 0, ">= 1"), ("keep_checkpoints", 0, ">= 1"), ("log_interval", 0, ">= 1"),
    ("sample_tokens", -1, ">= 0"), ("prompts", [3], "expected list"), ("resume", "yes", "expected bool"),
    ("reschedule", "no", "expected bool"),
    ("compile", 1, "expected bool"), ("device", 3, "expected str"), ("dtype", "float8", "dtype"),
    ("peak_tflops", 0, "> 0"), ("export", "x", "expected bool"), ("arch", "mamba", "unknown arch"),
    ("eval_tasks", "suite", "expected list"), ("eval_tasks", ["hellaswg"], "unknown task"),
    ("eval_refs", [1], "expected list"), ("eval_refs", ["wiki"], "unknown reference"), ("eval_limit", -1, ">= 0"),
    ("eval_ref_limit", -1, ">= 0"), ("eval_fewshot", -2, ">= 0"), ("eval_batch_size", 0, ">= 1"),
    ("eval_bench_interval", 0, ">= 1"),
    ("tokens", "/elsewhere", "set by the command"), ("out", "/elsewhere", "set by the command"),
]


@pytest.mark.parametrize("key, value, words", TRAIN_BAD, ids=[f"train.{k}={v!r}" for k, v, _ in TRAIN_BAD])
def test_a_bad_train_value_is_rejected_naming_the_key(tmp_path, key, value, words):
    recipe = recipe_from_dict({"train": {key: value}})  # crawlproc carries the table as it is...
    with pytest.raises(RecipeError) as err:  # ...pipelines checks it against the trainer
        train_config(recipe, tokens="t", out="o")
    assert err.value.key == f"train.{key}" and words in str(err.value)
    path = tmp_path / "r.toml"
    path.write_text(f"[train]\n{key} = {value!r}\n".replace("'", '"'))
    with pytest.raises(RecipeError):
        resolve_recipe(str(path))


def test_every_train_field_says_whether_the_weights_depend_on_it():
    from trainer.config import OTHER_FIELDS, WEIGHT_FIELDS

    assert not set(WEIGHT_FIELDS) & set(OTHER_FIELDS)
    assert {f.name for f in dataclasses.fields(TrainConfig)} == set(WEIGHT_FIELDS) | set(OTHER_FIELDS)


def test_every_train_field_has_a_bad_value_case():
    assert {f.name for f in dataclasses.fields(TrainConfig)} == {k for k, _, _ in TRAIN_BAD}


def test_train_config_from_the_recipe():
    recipe = recipe_from_dict({"train": {"preset": "tiny", "max_steps": 7, "lr": 3e-4}})
    cfg = train_config(recipe, tokens="tok", out="run", max_steps=9)
    assert (cfg.tokens, cfg.out, cfg.preset, cfg.lr, cfg.max_steps) == ("tok", "run", "tiny", 3e-4, 9)
    assert train_config(Recipe(), tokens="t", out="o") == TrainConfig(tokens="t", out="o")


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[language\nkeep = ", encoding="utf-8")
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "missing.toml")
    assert resolve_recipe("fineweb") == Recipe()


@pytest.mark.parametrize("toml, key", [
    ("[gopher_quality]\nmin_doc_words = -1\nmax_doc_wordz = 3\n", "gopher_quality.max_doc_wordz"),
    ("[ray]\nnum_cpus_per_task = -1\n", "ray.num_cpus_per_task"),
    ("[tokenize]\nname = \"../..\"\n", "tokenize.name"),
    ("[extract]\ntimeout_s = inf\n", "extract.timeout_s"),
    ("[train]\nbatch_size = 0\n", "train.batch_size"),
])
def test_cli_rejects_a_bad_recipe_before_any_work(tmp_path, toml, key):
    bad = tmp_path / "r.toml"
    bad.write_text(toml, encoding="utf-8")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "extract", "nonexistent.warc.gz", "--out", str(out),
         "--recipe", str(bad)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert key in proc.stderr
    assert not out.exists()  # nothing was started
