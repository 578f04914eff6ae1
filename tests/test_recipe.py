"""Recipes: the bundled FineWeb recipe equals the defaults; bad recipes are rejected naming the key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from crawlproc.recipe import Recipe, RecipeError, load_recipe, recipe_from_dict
from pipelines.recipe_files import DEFAULT_RECIPE, RECIPES, resolve_recipe


def test_bundled_fineweb_recipe_is_the_default():
    assert load_recipe(DEFAULT_RECIPE) == Recipe()
    r = Recipe()
    assert r.language.keep == ["en"] and r.language.min_score == 0.65
    assert r.gopher_quality.min_doc_words == 50 and r.fineweb_quality.line_punct_thr == 0.12
    assert r.minhash.num_bands * r.minhash.rows_per_band == 112


def test_every_bundled_recipe_loads():
    for path in RECIPES.glob("*.toml"):
        assert isinstance(load_recipe(path), Recipe), path


def test_overrides_and_int_for_float():
    r = recipe_from_dict({"language": {"keep": ["en", "de"], "min_score": 1}, "extract": {"engine": "resiliparse"}})
    assert r.language.keep == ["en", "de"] and r.language.min_score == 1
    assert r.extract.engine == "resiliparse"
    assert r.gopher_quality == Recipe().gopher_quality


@pytest.mark.parametrize(
    "data, key, words",
    [
        ({"language": {"min_scor": 0.5}}, "language.min_scor", "unknown key"),
        ({"langauge": {}}, "langauge", "unknown section"),
        ({"language": {"min_score": "high"}}, "language.min_score", "expected float"),
        ({"language": {"min_score": 1.5}}, "language.min_score", "fraction"),
        ({"gopher_quality": {"min_doc_words": 5.5}}, "gopher_quality.min_doc_words", "expected int"),
        ({"gopher_quality": {"min_doc_words": 200, "max_doc_words": 100}}, "gopher_quality.min_doc_words", "<="),
        ({"extract": {"engine": "magic"}}, "extract.engine", "trafilatura"),
        ({"url_filter": {"enabled": "yes"}}, "url_filter.enabled", "expected bool"),
        ({"gopher_repetition": {"top_n_grams": [[2, 3.0]]}}, "gopher_repetition.top_n_grams", "fraction"),
        ({"dedup": {"scope": "everything"}}, "dedup.scope", "snapshot"),
        ({"language": {"keep": "en"}}, "language.keep", "expected list"),
        ({"language": 3}, "language", "must be a table"),
    ],
)
def test_bad_values_name_the_key_and_reason(data, key, words):
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(data)
    assert err.value.key == key
    assert words in str(err.value)


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[language\nkeep = ", encoding="utf-8")
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "missing.toml")
    assert resolve_recipe("fineweb") == Recipe()


def test_cli_rejects_a_bad_recipe_before_any_work(tmp_path):
    bad = tmp_path / "r.toml"
    bad.write_text("[gopher_quality]\nmin_doc_words = -1\nmax_doc_wordz = 3\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "extract", "nonexistent.warc.gz", "--out", str(out),
         "--recipe", str(bad)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "gopher_quality.max_doc_wordz" in proc.stderr and "unknown key" in proc.stderr
    assert not out.exists()  # nothing was started
