"""The fastText classifier inside the extract pipeline (the plugin crawlproc.classify.fasttext_filter, which
a recipe names in extract.plugins): a real WARC through process_warc, removals with their reason, explain's
score against the threshold, a bad model stopping the stage as an environment error."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from classify_data import pages_split_fixture  # noqa: F401 -- the pages_split fixture
from crawlproc.classify.train import TrainParams, train_classifier
from crawlproc.config import RecipeError
from crawlproc.store.failure import Failure, SetupError
from crawlproc.store.layout import Layout
from crawlproc.extract.file import process_warc
from crawlproc.recipe import Recipe, recipe_from_dict
from crawlproc.store.storage import atomic_write_json
from pipelines.inspect.explain import explain_document, format_explanation

WARC = "dolma_sample-0000.warc.gz"
PLUGIN = "crawlproc.classify.fasttext_filter"


@pytest.fixture(scope="module")
def model(tmp_path_factory, pages_split):
    train, _ = pages_split
    out = tmp_path_factory.mktemp("ft")
    train_classifier([p.article for p in train], [n for p in train for n in p.negatives], [], str(out),
                     TrainParams(dim=16, bucket=20_000), log=lambda _m: None)
    return out / "model.bin"


def test_the_filter_removes_below_the_threshold_and_explain_shows_the_score(tmp_path, data_dir, model):
    from crawlproc.classify.fasttext_filter import classifier

    warc = data_dir / "warc" / WARC
    plain = process_warc(warc, tmp_path / "plain", Recipe(), dump="X")
    texts = pq.read_table(Layout(str(tmp_path / "plain")).snapshot("X").path("docs", "dolma_sample-0000")
                          ).column("text").to_pylist()
    recipe = recipe_from_dict({"extract": {"plugins": [PLUGIN]}, "fasttext_quality": {"model": str(model)}})
    threshold = float(sorted(classifier(recipe.fasttext_quality).score(texts))[len(texts) // 2])  # the median
    recipe = recipe_from_dict({"extract": {"plugins": [PLUGIN]},
                               "fasttext_quality": {"model": str(model), "threshold": threshold}})
    stats = process_warc(warc, tmp_path / "ft", recipe, dump="X")
    ft = stats["steps"]["fasttext_quality"]
    assert ft["in"] == plain["kept"] and stats["kept"] == plain["kept"] - ft["removed"] and ft["removed"] >= 1
    snap = Layout(str(tmp_path / "ft")).snapshot("X")
    removed = [r for r in pq.read_table(snap.path("removed", "dolma_sample-0000")).to_pylist()
               if r["removed_by"] == "fasttext_quality"]
    assert len(removed) == ft["removed"] and {r["removed_reason"] for r in removed} <= {"fasttext_score"}
    for r in removed:
        assert classifier(recipe.fasttext_quality).score([r["text"]])[0] < threshold
    kept = pq.read_table(snap.path("docs", "dolma_sample-0000")).column("text").to_pylist()
    assert all(classifier(recipe.fasttext_quality).score([t])[0] >= threshold for t in kept)
    atomic_write_json(snap.recipe_uri, recipe.to_dict())
    (m,) = explain_document(tmp_path / "ft", removed[0]["id"])["matches"]
    assert (m["stage"], m["reason"], m["recomputed_agrees"]) == ("fasttext_quality", "fasttext_score", True)
    (value,) = m["checks"][0]["values"]
    assert value["failed"] and (value["comparison"], value["threshold"]) == ("<", threshold)
    assert value["value"] < threshold
    assert "fasttext_score" in format_explanation({"matches": [m], "problems": [], "query": "", "out": ""})


def test_a_missing_model_is_a_recipe_error_or_an_environment_failure(tmp_path, data_dir, model):
    with pytest.raises(RecipeError) as e:
        recipe_from_dict({"extract": {"plugins": [PLUGIN]}, "fasttext_quality": {}})
    assert e.value.key == "fasttext_quality.model"
    for table in ({"model": str(tmp_path / "nope.bin")}, {"model": str(model), "label": "edu"}):
        recipe = recipe_from_dict({"extract": {"plugins": [PLUGIN]}, "fasttext_quality": table})
        with pytest.raises(SetupError) as e:
            process_warc(data_dir / "warc" / WARC, tmp_path / "out", recipe, dump="X")
        assert Failure.from_exception(e.value).kind == "environment"  # the runner stops at the first files
