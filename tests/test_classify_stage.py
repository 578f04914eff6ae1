"""The classify stage on a real local Ray: fastText scoring in the file tasks, a transformers model on an
actor pool, thresholds and keep fractions applied, outputs and summary, resume (a new threshold re-splits
only, a new model rescores), bad models rejected before any work, the step `crawlproc run` chains."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from classify_data import pages_split_fixture, tiny_transformers_model  # noqa: F401 -- the pages_split fixture
from crawlproc.classify import parse_classifiers
from crawlproc.classify.apply import score_chunks
from crawlproc.classify.train import TrainParams, auc, train_classifier
from crawlproc.store.layout import Layout
from crawlproc.recipe import Recipe, RecipeError, recipe_from_dict
from crawlproc.schema import docs_table
from pipelines.stages.classify import ClassifyError, run_classify
from pipelines.stages.chain import build_chain

QUIET = {"progress": False, "log": lambda _m: None}
SNAP = "CC-MAIN-TEST"


def recipe_with(classifiers: dict, **classify) -> Recipe:
    return recipe_from_dict({"classify": classify, "classifiers": classifiers})


@pytest.fixture(scope="module")
def models(tmp_path_factory, pages_split):
    train, _ = pages_split
    root = tmp_path_factory.mktemp("models")
    pos, neg = [p.article for p in train], [n for p in train for n in p.negatives]
    quiet = {"log": lambda _m: None}
    train_classifier(pos, neg, [], str(root / "a"), TrainParams(dim=16, bucket=20_000), **quiet)
    train_classifier(pos, neg, [], str(root / "b"), TrainParams(dim=16, bucket=20_000, epoch=3), **quiet)
    return root / "a" / "model.bin", root / "b" / "model.bin"


def make_snapshot(out: Path, pages, files: int = 3, extra: list[str] = ()) -> dict[str, int]:
    """final/ files of held-back articles (label 1) and their pages' link lists and boilerplate (label 0),
    and the dedup marker that says final/ is complete. Returns {id: label}."""
    rows, labels = [], {}
    for p in pages:
        for text, y in [(p.article, 1)] + [(n, 0) for n in p.negatives]:
            doc_id = f"<urn:uuid:{len(rows):08d}>"
            rows.append({"text": text, "id": doc_id, "dump": SNAP, "url": f"https://{p.key[:12]}.org/{len(rows)}"})
            labels[doc_id] = y
    for t in extra:
        doc_id = f"<urn:uuid:{len(rows):08d}>"
        rows.append({"text": t, "id": doc_id, "dump": SNAP})
        labels[doc_id] = -1
    snap = Layout(str(out)).snapshot(SNAP)
    (out / SNAP / "final").mkdir(parents=True, exist_ok=True)
    for i in range(files):
        pq.write_table(docs_table(rows[i::files]), snap.path("final", f"part-{i}"))
    (out / SNAP / "dedup" / "_done.json").parent.mkdir(parents=True, exist_ok=True)
    (out / SNAP / "dedup" / "_done.json").write_text(json.dumps({"snapshot": SNAP, "inputs": {}}))
    return labels


def read_rows(out: Path, kind: str) -> list[dict]:
    files = sorted((out / SNAP / kind).glob("*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def test_fasttext_stage_scores_splits_and_resumes(ray_local, tmp_path, models, pages_split):
    model_a, model_b = models
    _, held = pages_split
    labels = make_snapshot(tmp_path, held, extra=["", "Menu\nHome\nLogin"])
    recipe = recipe_with({"quality": {"kind": "fasttext", "model": str(model_a), "label": "hq", "threshold": 0.5}})
    s = run_classify(str(tmp_path), SNAP, recipe, **QUIET)
    assert s.ok and s.inputs == 3 and s.scored == 3 and s.applied == 3
    kept, removed = read_rows(tmp_path, "classified"), read_rows(tmp_path, "classified_removed")
    assert len(kept) + len(removed) == len(labels) == s.documents and len(kept) == s.kept
    assert all(r["quality_score"] >= 0.5 for r in kept)
    assert all(r["removed_by"] == "classify" and r["removed_reason"].startswith("classifier:quality") for r in removed)
    empty = next(r for r in removed if r["text"] == "")
    assert empty["quality_score"] is None and empty["removed_reason"] == "classifier:quality:no_text"
    scored = [(r["quality_score"], labels[r["id"]]) for r in kept + removed if labels[r["id"]] >= 0]
    assert auc(np.array([s for s, _ in scored]), np.array([y for _, y in scored])) >= 0.9
    summary = json.loads((tmp_path / SNAP / "classify" / "summary.json").read_text())
    (q,) = summary["classifiers"]
    assert q["scored"] == len(labels) - 1 and sum(q["histogram"]["counts"].values()) == q["scored"]
    assert q["rule"]["threshold"] == 0.5 and q["passed"] == len(kept) and q["identity"]["label"] == "__label__hq"
    assert (tmp_path / SNAP / "classify" / "_done.json").is_file()

    done = (tmp_path / SNAP / "classify" / "_done.json").read_bytes()
    again = run_classify(str(tmp_path), SNAP, recipe, **QUIET)
    assert (again.scored, again.applied, again.kept) == (0, 0, s.kept)
    assert (tmp_path / SNAP / "classify" / "_done.json").read_bytes() == done  # tokenize sees nothing new

    stricter = recipe_with({"quality": {"kind": "fasttext", "model": str(model_a), "threshold": 0.9}})
    t = run_classify(str(tmp_path), SNAP, stricter, **QUIET)
    assert (t.scored, t.applied) == (0, 3) and t.kept < s.kept
    assert (tmp_path / SNAP / "classify" / "_done.json").read_bytes() != done
    assert all(r["quality_score"] >= 0.9 for r in read_rows(tmp_path, "classified"))

    other = recipe_with({"quality": {"kind": "fasttext", "model": str(model_b), "threshold": 0.9}})
    u = run_classify(str(tmp_path), SNAP, other, **QUIET)
    assert (u.scored, u.applied) == (3, 3)
    b_scores = {r["id"]: r["quality_score"] for r in read_rows(tmp_path, "classified") + read_rows(
        tmp_path, "classified_removed")}
    a_scores = {r["id"]: r["quality_score"] for r in kept + removed}
    assert any(a_scores[k] != b_scores[k] for k in a_scores if a_scores[k] is not None)


def test_keep_fraction_keeps_the_top_of_the_snapshot_deterministically(ray_local, tmp_path, models, pages_split):
    model_a, _ = models
    _, held = pages_split
    labels = make_snapshot(tmp_path, held)
    recipe = recipe_with({"quality": {"kind": "fasttext", "model": str(model_a), "keep_fraction": 0.3}})
    s = run_classify(str(tmp_path), SNAP, recipe, **QUIET)
    snap = Layout(str(tmp_path)).snapshot(SNAP)
    all_scores = np.concatenate(list(score_chunks(snap, "quality", snap.stems("final"))))
    threshold = s.rules[0]["threshold"]
    assert threshold == np.sort(all_scores)[::-1][math.ceil(0.3 * len(all_scores)) - 1]  # an exact sort
    assert s.kept == int((all_scores >= threshold).sum()) >= round(0.3 * len(labels))
    again = run_classify(str(tmp_path), SNAP, recipe, force=True, **QUIET)
    assert again.rules == s.rules and again.kept == s.kept


def test_several_classifiers_in_one_pass_with_a_transformers_actor_pool(ray_local, tmp_path, models, pages_split,
                                                                         one_torch_thread):
    from crawlproc.classify.hf import TransformersClassifier, TransformersConfig

    model_a, _ = models
    train, held = pages_split
    tiny = tiny_transformers_model(tmp_path / "tiny", [p.article for p in train[:60]])
    huge = "The committee met again. " * 200_000  # 5 MB
    labels = make_snapshot(tmp_path / "out", held[:12], files=2, extra=["", huge])
    rows = read_rows(tmp_path / "out", "final")
    local = TransformersClassifier("edu", TransformersConfig(model=str(tiny)))
    expected = dict(zip([r["id"] for r in rows], local.score([r["text"] for r in rows])))
    threshold = float(np.nanmedian(list(expected.values())))
    recipe = recipe_with({
        "quality": {"kind": "fasttext", "model": str(model_a), "threshold": 0.5},
        "edu": {"kind": "transformers", "model": str(tiny), "threshold": threshold, "batch_size": 4},
    })
    s = run_classify(str(tmp_path / "out"), SNAP, recipe, **QUIET)
    assert s.ok and s.pools["edu"]["actors"] == 1 and s.pools["edu"]["device"] == "cpu"
    assert s.pools["edu"]["batch_size"] == 4 and s.pools["edu"]["max_length"] == 64
    kept = read_rows(tmp_path / "out", "classified")
    removed = read_rows(tmp_path / "out", "classified_removed")
    assert len(kept) + len(removed) == len(labels)
    for r in kept + removed:  # the actor's scores are the in-process ones; both columns on every row
        if r["text"]:
            assert r["edu_score"] == pytest.approx(expected[r["id"]], rel=1e-4, abs=1e-5)
            assert r["quality_score"] is not None
    assert all(r["quality_score"] >= 0.5 and r["edu_score"] >= threshold for r in kept)
    for r in removed:
        if r["removed_reason"] == "classifier:edu":
            assert r["quality_score"] >= 0.5 and r["edu_score"] < threshold
    assert any(r["text"] == huge for r in kept + removed)
    summary = json.loads((tmp_path / "out" / SNAP / "classify" / "summary.json").read_text())
    assert [c["name"] for c in summary["classifiers"]] == ["quality", "edu"]
    assert summary["classifiers"][1]["histogram"]["bin"] == 0.25 and summary["classifiers"][1]["pool"]["batch_size"] == 4


@pytest.mark.parametrize("table, key", [
    ({"kind": "fasttext", "model": "/nowhere/model.bin", "threshold": 0.5}, "classifiers.q.model"),
    ({"kind": "fasttext", "model": "MODEL", "label": "edu", "threshold": 0.5}, "classifiers.q.label"),
    ({"kind": "transformers", "model": "/nowhere/edu", "threshold": 3.0}, "classifiers.q.model"),
])
def test_a_bad_model_or_label_is_rejected_before_any_work(tmp_path, models, pages_split, table, key):
    _, held = pages_split
    make_snapshot(tmp_path, held[:3])
    table = {k: (str(models[0]) if v == "MODEL" else v) for k, v in table.items()}
    with pytest.raises(RecipeError) as e:
        run_classify(str(tmp_path), SNAP, recipe_with({"q": table}), **QUIET)
    assert e.value.key == key
    assert not (tmp_path / SNAP / "classify").exists() and not (tmp_path / SNAP / "classified").exists()


def test_final_needs_a_finished_dedup_and_docs_can_be_read_instead(ray_local, tmp_path, models, pages_split):
    _, held = pages_split
    make_snapshot(tmp_path, held[:3], files=1)
    (tmp_path / SNAP / "dedup" / "_done.json").unlink()
    table = {"q": {"kind": "fasttext", "model": str(models[0]), "threshold": 0.5}}
    with pytest.raises(ClassifyError, match="no finished dedup") as e:
        run_classify(str(tmp_path), SNAP, recipe_with(table), **QUIET)
    assert 'classify.source = "docs"' in str(e.value)  # the message names the way out
    assert not (tmp_path / SNAP / "classified").exists()
    # which is real: the filtered documents (docs/, the files whose extract is done) classified without dedup
    snap = Layout(str(tmp_path)).snapshot(SNAP)
    (tmp_path / SNAP / "docs").mkdir()
    (tmp_path / SNAP / "final" / "part-0.parquet").rename(snap.path("docs", "part-0"))
    snap.markers.mark_done("part-0", "0123abcd4567ef89", {"stage": "extract"})  # recipe + input fp
    docs_only = recipe_from_dict({"classify": {"source": "docs"}, "classifiers": table, "dedup": {"enabled": False}})
    s = run_classify(str(tmp_path), SNAP, docs_only, **QUIET)
    assert s.ok and s.inputs == 1
    got = {r["id"] for r in read_rows(tmp_path, "classified") + read_rows(tmp_path, "classified_removed")}
    want = set(pq.read_table(snap.path("docs", "part-0"), columns=["id"]).column("id").to_pylist())
    assert got == want and len(got) == s.documents > 0


def test_outputs_of_an_input_that_vanished_are_removed(ray_local, tmp_path, models, pages_split):
    _, held = pages_split
    make_snapshot(tmp_path, held[:6], files=3)
    recipe = recipe_with({"q": {"kind": "fasttext", "model": str(models[0]), "threshold": 0.5}})
    run_classify(str(tmp_path), SNAP, recipe, **QUIET)
    (tmp_path / SNAP / "final" / "part-2.parquet").unlink()
    s = run_classify(str(tmp_path), SNAP, recipe, **QUIET)
    assert s.inputs == 2 and sorted(p.name for p in (tmp_path / SNAP / "classified").iterdir()) == [
        "part-0.parquet", "part-1.parquet"]
    assert not (tmp_path / SNAP / "classified_removed" / "part-2.parquet").exists()


def test_run_chains_classify_between_dedup_and_tokenize():
    assert [n for n, _ in build_chain(["extract", "dedup", "tokenize"])] == [
        "dedup", "decontaminate", "classify", "tokenize"]
    assert [n for n, _ in build_chain(["extract", "dedup", "classify"])] == ["dedup", "decontaminate", "classify"]


def test_report_and_explain_show_scores_against_the_threshold(ray_local, tmp_path, models, pages_split):
    from pipelines.inspect.explain import explain_document, format_explanation
    from pipelines.inspect.report import write_report

    _, held = pages_split
    make_snapshot(tmp_path, held[:8], files=2)
    recipe = recipe_with({"quality": {"kind": "fasttext", "model": str(models[0]), "threshold": 0.5},
                          "any": {"kind": "fasttext", "model": str(models[0]), "label": "cc"}})
    s = run_classify(str(tmp_path), SNAP, recipe, **QUIET)
    path, data = write_report(tmp_path)
    c = data["snapshots"][0]["classify"]
    assert c["kept"] == s.kept and set(c["classifiers"]) == {"quality", "any"}
    assert sum(c["classifiers"]["quality"]["histogram"].values()) == s.documents
    html = Path(path).read_text()
    assert 'data-chart="classify:CC-MAIN-TEST:quality"' in html and "score &gt;= 0.5" in html and "score only" in html

    removed = read_rows(tmp_path, "classified_removed")[0]
    m = explain_document(tmp_path, removed["id"])["matches"][0]
    assert m["verdict"] == "removed" and m["stage"] == "classify" and m["reason"] == "classifier:quality"
    assert [(c["name"], c["passed"]) for c in m["classifiers"]] == [("quality", False), ("any", True)]
    text = format_explanation(explain_document(tmp_path, removed["id"]))
    assert "[classifier quality] FAIL x" in text and "needs score >= 0.5" in text and f"{removed['quality_score']:.4g}" in text
    kept = read_rows(tmp_path, "classified")[0]
    m = explain_document(tmp_path, kept["id"])["matches"][0]
    assert m["verdict"] == "kept" and all(c["passed"] for c in m["classifiers"])


def test_the_identity_tokenize_reads_follows_the_classified_documents(ray_local, tmp_path, models, pages_split):
    from pipelines.stages.classify import classified_identity

    _, held = pages_split
    make_snapshot(tmp_path, held[:4], files=2)
    snap = Layout(str(tmp_path)).snapshot(SNAP)
    with pytest.raises(ClassifyError, match="no finished classify"):
        classified_identity(snap)
    recipe = recipe_with({"q": {"kind": "fasttext", "model": str(models[0]), "threshold": 0.5}})
    run_classify(str(tmp_path), SNAP, recipe, **QUIET)
    first = classified_identity(snap)
    run_classify(str(tmp_path), SNAP, recipe, **QUIET)
    assert classified_identity(snap) == first
    (tmp_path / SNAP / "dedup" / "_done.json").write_text(json.dumps({"snapshot": SNAP, "inputs": {}, "run": 2}))
    with pytest.raises(ClassifyError, match="changed since its classify"):
        classified_identity(snap)  # dedup redone: classified/ is stale until classify runs again
    run_classify(str(tmp_path), SNAP, recipe, **QUIET)
    assert classified_identity(snap) != first


def test_models_in_a_bucket_are_copied_once_per_machine(ray_local, s3_server, tmp_path, models, pages_split,
                                                        one_torch_thread):
    import uuid

    from crawlproc.classify import build
    from crawlproc.store.storage import default_storage, join

    train, held = pages_split
    bucket = s3_server.bucket(f"models-{uuid.uuid4().hex[:8]}")
    st = default_storage()
    st.write_bytes(join(bucket, "ft", "model.bin"), models[0].read_bytes())
    tiny = tiny_transformers_model(tmp_path / "tiny", [p.article for p in train[:40]])
    for f in tiny.iterdir():
        st.write_bytes(join(bucket, "edu", f.name), f.read_bytes())
    make_snapshot(tmp_path / "out", held[:4], files=2)
    tables = {"quality": {"kind": "fasttext", "model": join(bucket, "ft", "model.bin"), "threshold": 0.5},
              "edu": {"kind": "transformers", "model": join(bucket, "edu")}}
    cache = tmp_path / "cache"
    recipe = recipe_with(tables, model_cache=str(cache))
    s = run_classify(str(tmp_path / "out"), SNAP, recipe, **QUIET)
    assert s.ok and s.documents > 0
    (copy,) = cache.rglob("model.bin")
    assert copy.read_bytes() == models[0].read_bytes() and len(list(cache.rglob("model.safetensors"))) == 1
    stamp = copy.stat().st_mtime_ns
    assert run_classify(str(tmp_path / "out"), SNAP, recipe, force=True, **QUIET).ok
    assert copy.stat().st_mtime_ns == stamp  # found in the cache, not copied again
    remote = build(parse_classifiers(tables), st, str(cache))
    local = build(parse_classifiers({"quality": {**tables["quality"], "model": str(models[0])},
                                     "edu": {**tables["edu"], "model": str(tiny)}}))
    assert [c.score_fingerprint for c in remote] == [c.score_fingerprint for c in local]


def test_a_model_replaced_in_its_bucket_by_one_of_the_same_size_is_copied_again(s3_server, tmp_path):
    """The cache knows a remote model by its content: a retrained model of the same architecture has the same
    size, and must not be answered with the old one's copy."""
    import uuid

    from crawlproc.classify.models import local_model
    from crawlproc.store.storage import default_storage, join

    st = default_storage()
    bucket = s3_server.bucket(f"models-{uuid.uuid4().hex[:8]}")
    uri, cache = join(bucket, "ft", "model.bin"), str(tmp_path / "cache")
    old, new = bytes(range(256)) * 40, bytes(reversed(range(256))) * 40
    st.write_bytes(uri, old)
    assert local_model(uri, st, cache).read_bytes() == old
    st.write_bytes(uri, new)  # same name, same size, within the same second
    assert local_model(uri, st, cache).read_bytes() == new
    folder = join(bucket, "edu")
    st.write_bytes(join(folder, "config.json"), b'{"a": 1}')
    assert (local_model(folder, st, cache) / "config.json").read_bytes() == b'{"a": 1}'
    st.write_bytes(join(folder, "config.json"), b'{"a": 2}')
    assert (local_model(folder, st, cache) / "config.json").read_bytes() == b'{"a": 2}'
