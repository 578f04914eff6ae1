"""The classifiers without Ray: recipe sections, a fastText classifier trained here on real pages (articles
against their own link lists and boilerplate), thresholds and keep fractions, the per-file split, models
rejected before any work, a tiny transformers model (random weights, local tokenizer)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from classify_data import pages_split_fixture, tiny_transformers_model  # noqa: F401 -- the pages_split fixture
from crawlproc.classify import build, parse_classifiers
from crawlproc.classify.apply import KeepRule, apply_file, histogram, score_checks
from crawlproc.classify.select import kth_highest_streamed
from crawlproc.classify.fasttext import FastTextClassifier, FastTextConfig
from crawlproc.classify.hf import TransformersClassifier, TransformersConfig
from crawlproc.classify.train import TrainParams, auc, train_classifier
from crawlproc.store.layout import Layout
from crawlproc.recipe import RecipeError
from crawlproc.schema import docs_table

SMALL = TrainParams(dim=16, bucket=20_000)  # small model files; the defaults are for real data


@pytest.fixture(scope="module")
def trained(tmp_path_factory, pages_split):
    train, _ = pages_split
    out = tmp_path_factory.mktemp("ft") / "model"
    card = train_classifier([p.article for p in train], [n for p in train for n in p.negatives], [], str(out), SMALL,
                            log=lambda _m: None)
    return out / "model.bin", card


def fasttext_classifier(model, **kw) -> FastTextClassifier:
    return FastTextClassifier("quality", FastTextConfig(model=str(model), **kw))


# --- recipe sections -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("table, key", [
    ({"q": {"kind": "fasttext", "model": "m.bin", "treshold": 0.5}}, "classifiers.q.treshold"),
    ({"q": {"kind": "fastext", "model": "m.bin"}}, "classifiers.q.kind"),
    ({"q": {"model": "m.bin"}}, "classifiers.q.kind"),
    ({"q": {"kind": "fasttext"}}, "classifiers.q.model"),
    ({"q": {"kind": "fasttext", "model": "m", "threshold": 0.5, "keep_fraction": 0.1}}, "classifiers.q.keep_fraction"),
    ({"q": {"kind": "fasttext", "model": "m", "keep_fraction": 0.0}}, "classifiers.q.keep_fraction"),
    ({"q": {"kind": "fasttext", "model": "m", "keep_fraction": 1.5}}, "classifiers.q.keep_fraction"),
    ({"q": {"kind": "fasttext", "model": "m", "threshold": "high"}}, "classifiers.q.threshold"),
    ({"q": {"kind": "fasttext", "model": "m", "threshold": float("nan")}}, "classifiers.q.threshold"),
    ({"q": {"kind": "transformers", "model": "m", "dtype": "float8"}}, "classifiers.q.dtype"),
    ({"q": {"kind": "transformers", "model": "m", "batch_size": -1}}, "classifiers.q.batch_size"),
    ({"Bad-Name": {"kind": "fasttext", "model": "m"}}, "classifiers.Bad-Name"),
    ({"language": {"kind": "fasttext", "model": "m"}}, "classifiers.language"),
    ({"q": "model.bin"}, "classifiers.q"),
])
def test_a_bad_classifier_table_is_rejected_naming_its_key(table, key):
    with pytest.raises(RecipeError) as e:
        parse_classifiers(table)
    assert e.value.key == key


def test_classifier_tables_keep_the_recipe_order():
    cfgs = parse_classifiers({"b": {"kind": "fasttext", "model": "b.bin", "threshold": 0.2},
                              "a": {"kind": "transformers", "model": "/m", "keep_fraction": 0.5}})
    assert list(cfgs) == ["b", "a"]
    assert [c.column for c in build(cfgs)] == ["b_score", "a_score"]


# --- fastText: training and scoring --------------------------------------------------------------------------


def test_a_classifier_trained_on_articles_separates_held_back_pages(trained, pages_split):
    model, card = trained
    _, held = pages_split
    c = fasttext_classifier(model)
    texts = [p.article for p in held] + [n for p in held for n in p.negatives]
    labels = np.array([1] * len(held) + [0] * (len(texts) - len(held)))
    scores = c.score(texts)
    assert len(held) >= 20 and not np.isnan(scores).any()
    assert auc(scores, labels) >= 0.9
    assert card["metrics"]["held_out"]["auc"] >= 0.9  # its own held-out split, from the training pages


def test_the_card_records_data_parameters_and_figures(tmp_path, pages_split):
    from classify_data import write_jsonl
    from crawlproc.classify.train import read_texts

    train, _ = pages_split
    pos, pos_src = read_texts(str(write_jsonl(tmp_path / "pos.jsonl", [p.article for p in train])), "hq")
    neg, neg_src = read_texts(str(write_jsonl(tmp_path / "neg.jsonl", [n for p in train for n in p.negatives])), "cc")
    card = train_classifier(pos, neg, [pos_src, neg_src], str(tmp_path / "m"), SMALL, quantize=True,
                            log=lambda _m: None)
    assert json.loads((tmp_path / "m" / "card.json").read_text()) == card
    assert [s["documents"] for s in card["sources"]] == [len(pos), len(neg)]
    assert card["sources"][0]["sha256"] == __import__("hashlib").sha256((tmp_path / "pos.jsonl").read_bytes()).hexdigest()
    assert card["params"]["dim"] == 16 and set(card["files"]) == {"model.bin", "model.ftz"}
    assert card["documents"]["train"]["positive"] + card["documents"]["held_out"]["positive"] == len(pos)
    m = card["metrics"]["held_out"]
    assert 0 <= m["precision"] <= 1 and 0 <= m["recall"] <= 1 and m["auc"] >= 0.9
    readme = (tmp_path / "m" / "README.md").read_text()
    assert "model.ftz" in readme and str(len(pos)) in readme and 'kind = "fasttext"' in readme
    ftz = fasttext_classifier(tmp_path / "m" / "model.ftz")
    assert ftz.score(["a b c"]).shape == (1,)


def test_scores_are_probabilities_of_the_label_and_nan_without_text(trained):
    model, _ = trained
    hq, cc = fasttext_classifier(model, label="hq"), fasttext_classifier(model, label="__label__cc")
    texts = ["The council voted on Tuesday to approve the budget after a long debate.\nIt passes.", "", "   \n",
             "Home\nNews\nSport\nLogin", "lone \ud800 surrogate"]
    a, b = hq.score(texts), cc.score(texts)
    assert np.isnan(a[1]) and np.isnan(a[2]) and not np.isnan(a[[0, 3, 4]]).any()
    np.testing.assert_allclose(a[[0, 3, 4]] + b[[0, 3, 4]], 1.0, atol=1e-4)  # two labels: they add up
    assert a[0] > a[3]


def test_a_bad_model_or_label_is_rejected_naming_the_key(tmp_path, trained):
    model, _ = trained
    with pytest.raises(RecipeError) as e:
        fasttext_classifier(tmp_path / "nope.bin").prepare()
    assert e.value.key == "classifiers.quality.model" and "does not exist" in str(e.value)
    (tmp_path / "junk.bin").write_bytes(b"not a model")
    with pytest.raises(RecipeError) as e:
        fasttext_classifier(tmp_path / "junk.bin").prepare()
    assert e.value.key == "classifiers.quality.model"
    with pytest.raises(RecipeError) as e:
        fasttext_classifier(model, label="edu").prepare()
    assert e.value.key == "classifiers.quality.label" and "hq" in str(e.value) and "cc" in str(e.value)


def test_the_score_identity_is_the_model_content(tmp_path, trained):
    model, _ = trained
    copy = tmp_path / "copy.bin"
    copy.write_bytes(model.read_bytes())
    a, b = fasttext_classifier(model), fasttext_classifier(copy)
    assert a.score_fingerprint == b.score_fingerprint
    assert fasttext_classifier(model, label="cc").score_fingerprint != a.score_fingerprint
    data = bytearray(model.read_bytes())
    data[-1] ^= 1
    copy.write_bytes(bytes(data))
    assert FastTextClassifier("quality", FastTextConfig(model=str(copy))).score_fingerprint != a.score_fingerprint


# --- thresholds, keep fractions, the split -----------------------------------------------------------------


def kth_highest(scores, fraction):
    return kth_highest_streamed(lambda: [scores], fraction)


def test_keep_fraction_threshold_depends_on_the_scores_only():
    rng = np.random.default_rng(1)
    scores = np.round(rng.random(1001), 2)  # many ties
    thr = kth_highest(scores, 0.1)
    assert (scores >= thr).sum() >= 101 and (scores > thr).sum() < 101
    shuffled = rng.permutation(scores)
    assert kth_highest(shuffled, 0.1) == thr
    assert kth_highest(scores, 1.0) == scores.min() and kth_highest(np.empty(0), 0.5) is None
    assert kth_highest(np.array([0.3]), 0.01) == 0.3  # at least one document is kept


def test_histogram_bins_add_up():
    s = np.array([0.0, 0.049, 0.05, 0.5, 1.0, np.nan])
    h = histogram(s, 0.05)
    assert h == {"0": 2, "1": 1, "10": 1, "19": 1}
    assert histogram(np.array([-0.3, 2.6]), 0.25) == {"-2": 1, "10": 1}


def write_input(tmp_path, texts: list[str]):
    snap = Layout(str(tmp_path)).snapshot("S")
    rows = [{"text": t, "id": f"<urn:uuid:{i:04d}>", "url": f"https://e.org/{i}"} for i, t in enumerate(texts)]
    pq.write_table(docs_table(rows), snap.path("final", "f"))
    return snap


def write_scores(snap, name: str, scores: list[float]):
    ids = pq.read_table(snap.path("final", "f"), columns=["id"]).column("id")
    snap.storage.write_table(snap.scores_path(name, "f"), pa.table({"id": ids, "score": pa.array(scores, pa.float64(),
                                                                                                  from_pandas=True)}))


def test_apply_keeps_scores_and_attributes_removals_to_the_first_failing_classifier(tmp_path):
    (tmp_path / "S" / "final").mkdir(parents=True)
    snap = write_input(tmp_path, ["a", "b", "c", "", "e"])
    write_scores(snap, "x", [0.9, 0.1, 0.9, np.nan, 0.2])
    write_scores(snap, "y", [3.5, 3.5, 1.0, np.nan, 1.0])
    rules = [KeepRule("x", "x_score", True, 0.5), KeepRule("y", "y_score", True, 3.0, bin=0.25),
             KeepRule("z", "z_score", False, None)]
    write_scores(snap, "z", [1.0, 2.0, 3.0, np.nan, 5.0])
    stats = apply_file(snap.path("final", "f"), "f", snap, rules)
    kept = pq.read_table(snap.path("classified", "f")).to_pylist()
    removed = pq.read_table(snap.path("classified_removed", "f")).to_pylist()
    assert [r["text"] for r in kept] == ["a"] and kept[0]["x_score"] == 0.9 and kept[0]["z_score"] == 1.0
    assert {r["text"]: r["removed_reason"] for r in removed} == {
        "b": "classifier:x", "c": "classifier:y", "": "classifier:x:no_text", "e": "classifier:x"}
    assert all(r["removed_by"] == "classify" for r in removed)
    assert next(r for r in removed if r["text"] == "c")["y_score"] == 1.0
    assert next(r for r in removed if r["text"] == "")["x_score"] is None
    assert stats["kept"] + stats["removed"] == stats["documents"] == 5
    assert stats["passed"] == {"x": 2, "y": 2, "z": 5} and stats["removed_by"] == {"x": 3, "y": 1, "z": 0}
    assert stats["histograms"]["y"] == {"4": 2, "14": 2}
    checks = score_checks(removed[1], [r.to_dict() for r in rules])
    assert [(c["name"], c["passed"]) for c in checks] == [("x", True), ("y", False), ("z", True)]


def test_apply_refuses_scores_of_other_documents(tmp_path):
    (tmp_path / "S" / "final").mkdir(parents=True)
    snap = write_input(tmp_path, ["a", "b"])
    snap.storage.write_table(snap.scores_path("x", "f"), pa.table({"id": ["<other>", "<ids>"], "score": [0.1, 0.2]}))
    with pytest.raises(RuntimeError, match="not those of"):
        apply_file(snap.path("final", "f"), "f", snap, [KeepRule("x", "x_score", True, 0.5)])


# --- transformers ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, pages_split, one_torch_thread):
    train, _ = pages_split
    texts = [p.article for p in train[:60]]
    root = tmp_path_factory.mktemp("hf")
    return (tiny_transformers_model(root / "regression", texts),
            tiny_transformers_model(root / "classes", texts, num_labels=2, labels=["low", "high"]))


def test_transformers_scores_do_not_depend_on_batching_and_handle_empty_and_huge_texts(tiny_models, pages_split):
    regression, _ = tiny_models
    _, held = pages_split
    c = TransformersClassifier("edu", TransformersConfig(model=str(regression), batch_size=3, threshold=0.0))
    assert c.prepare()["max_length"] == 64 and c.identity["label_id"] is None
    texts = [p.article for p in held[:7]] + ["", "word " * 2_000_000, "short"]
    scores = c.score(texts)
    assert np.isnan(scores[7]) and not np.isnan(np.delete(scores, 7)).any()
    one_by_one = np.array([c.score([t])[0] for t in texts[:7] + texts[8:]])
    np.testing.assert_allclose(np.delete(scores, 7), one_by_one, rtol=1e-4, atol=1e-5)
    # truncated to the window: a huge text scores as its first 64 tokens do
    np.testing.assert_allclose(c.score(["word " * 100])[0], scores[8], rtol=1e-4, atol=1e-5)


def test_a_classification_head_scores_the_probability_of_its_label(tiny_models):
    _, classes = tiny_models
    high = TransformersClassifier("edu", TransformersConfig(model=str(classes), label="high"))
    low = TransformersClassifier("edu", TransformersConfig(model=str(classes), label="low"))
    texts = ["one text", "another, longer text about the weather"]
    np.testing.assert_allclose(high.score(texts) + low.score(texts), 1.0, atol=1e-5)


@pytest.mark.parametrize("which, label, key, words", [
    ("missing", "", "model", "does not exist"),
    ("empty", "", "model", "config.json"),
    ("classes", "medium", "label", "high"),
    ("classes", "", "label", "name the one"),
    ("regression", "high", "label", "regression"),
])
def test_a_bad_transformers_model_or_label_is_rejected_naming_the_key(tmp_path, tiny_models, which, label, key, words):
    regression, classes = tiny_models
    model = {"missing": tmp_path / "nope", "empty": tmp_path, "classes": classes, "regression": regression}[which]
    with pytest.raises(RecipeError) as e:
        TransformersClassifier("edu", TransformersConfig(model=str(model), label=label)).prepare()
    assert e.value.key == f"classifiers.edu.{key}" and words in str(e.value)


def test_a_hub_name_is_never_downloaded(monkeypatch):
    import os

    with pytest.raises(RecipeError) as e:
        TransformersClassifier("edu", TransformersConfig(model="HuggingFaceFW/fineweb-edu-classifier")).prepare()
    assert "downloaded once" in str(e.value) and os.environ["HF_HUB_OFFLINE"] == "1"
