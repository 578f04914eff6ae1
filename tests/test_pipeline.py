"""The extract pipeline as a list of steps (crawlproc/extract/steps.py, crawlproc/extract/registry.py): a filter registered
from outside the package runs in a real extract and shows in stats, removed/ and explain; the per-document
CPU budget stops any step; a step that raises costs its document only; per-document time is linear in the
text's length whatever the text.
"""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crawlproc.extract import registry
from crawlproc.extract.stats import FileStats
from crawlproc.doc import Doc
from crawlproc.extract.steps import ExtractPipeline
from crawlproc.extract.file import process_warc
from crawlproc.recipe import Recipe, RecipeError, recipe_from_dict
from crawlproc.store.layout import Layout
from crawlproc.store.storage import atomic_write_json
from pipelines.inspect.explain import explain_document, format_explanation
from pipelines.inspect.report.collect import collect_report

PLUGINS = Path(__file__).parent / "plugins"
WARC = "dolma_sample-0000.warc.gz"
PAGE = ("<html><body><article>" + "".join(
    f"<p>This is paragraph {i} of an ordinary article, written in plain English sentences for the test.</p>"
    for i in range(8)) + "</article></body></html>")


@pytest.fixture()
def plugins_importable(monkeypatch):
    """tests/plugins on sys.path, as a plugin is on a cluster's PYTHONPATH; forgotten afterwards."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    yield
    for name in ("digit_filter", "stall_filter", "crash_filter", "not_a_plugin"):
        sys.modules.pop(name, None)


def test_the_registry_orders_every_step():
    assert registry.step_names() == ["url_filter", "extract", "language", "gopher_repetition", "gopher_quality",
                                   "c4", "fineweb_quality"]
    assert list(Recipe().filters) == [f.name for f in registry.FILTERS]
    assert [s.name for s in ExtractPipeline(Recipe()).steps] == registry.step_names()


def test_a_plugin_filter_runs_in_a_real_extract_and_shows_everywhere(plugins_importable, tmp_path, data_dir):
    recipe = recipe_from_dict({"extract": {"plugins": ["digit_filter"]}, "digit_ratio": {"max_digit_ratio": 0.015}})
    assert recipe.digit_ratio.max_digit_ratio == 0.015 and list(recipe.filters)[-1] == "digit_ratio"
    warc = data_dir / "warc" / WARC
    plain = process_warc(warc, tmp_path / "plain", Recipe(), dump="X")
    stats = process_warc(warc, tmp_path / "plugin", recipe, dump="X")

    digit = stats["steps"]["digit_ratio"]
    assert list(stats["steps"])[-1] == "digit_ratio"
    assert digit["in"] == plain["kept"] and digit["removed"] >= 1
    assert stats["kept"] == plain["kept"] - digit["removed"]
    assert stats["removed_reasons"]["digit_ratio:digit_ratio"] == digit["removed"]
    snap = Layout(str(tmp_path / "plugin")).snapshot("X")
    removed = [r for r in pq.read_table(snap.path("removed", "dolma_sample-0000")).to_pylist()
               if r["removed_by"] == "digit_ratio"]
    assert len(removed) == digit["removed"] and {r["removed_reason"] for r in removed} == {"digit_ratio"}
    for r in removed:  # removed for the reason it states
        assert sum(c.isdigit() for c in r["text"]) / len(r["text"]) > 0.015

    # explain judges by the recipe the run recorded, which names the plugin
    atomic_write_json(snap.recipe_uri, recipe.to_dict())
    (m,) = explain_document(tmp_path / "plugin", removed[0]["id"])["matches"]
    assert (m["stage"], m["reason"], m["recomputed_agrees"]) == ("digit_ratio", "digit_ratio", True)
    (value,) = m["checks"][0]["values"]
    assert value["failed"] and (value["comparison"], value["threshold"]) == (">", 0.015)
    assert "[digit_ratio] REMOVE (digit_ratio)" in format_explanation({"matches": [m], "problems": [],
                                                                       "query": "", "out": ""})
    # and the report lists the plugin's step after the built-in ones (from the file's marker, as the runner
    # writes it)
    snap.markers.mark_done("dolma_sample-0000", "0123456789abcdef", {"stage": "extract", "stats": stats})
    report = collect_report(tmp_path / "plugin")
    assert list(report["snapshots"][0]["steps"])[-1] == "digit_ratio"


def test_explain_recomputes_a_filter_with_the_documents_url_and_language(plugins_importable, tmp_path, data_dir):
    """Issue 26: explain recomputed every filter on Doc(text=text) alone, so a filter that reads doc.url or
    doc.language was explained wrongly (its removal "did not reproduce")."""
    recipe = recipe_from_dict({"extract": {"plugins": ["url_depth_filter"]}, "url_depth": {"max_depth": 1}})
    stats = process_warc(data_dir / "warc" / WARC, tmp_path, recipe, dump="X")
    assert stats["steps"]["url_depth"]["removed"] >= 1
    snap = Layout(str(tmp_path)).snapshot("X")
    atomic_write_json(snap.recipe_uri, recipe.to_dict())
    removed = [r for r in pq.read_table(snap.path("removed", "dolma_sample-0000")).to_pylist()
               if r["removed_by"] == "url_depth"]
    (m,) = explain_document(tmp_path, removed[0]["id"])["matches"]
    assert (m["stage"], m["recomputed_reason"], m["recomputed_agrees"]) == ("url_depth", "url_depth", True)
    kept = pq.read_table(snap.path("docs", "dolma_sample-0000")).to_pylist()[0]
    (k,) = explain_document(tmp_path, kept["id"])["matches"]
    (depth,) = next(c for c in k["checks"] if c["stage"] == "url_depth")["values"]
    assert depth["value"] is not None and depth["passed"]  # measured on the stored URL, not skipped


def test_a_worker_imports_the_plugin_by_name(tmp_path, data_dir):
    """What a Ray worker does: unpickle the recipe in a fresh interpreter (the plugin's module is imported by
    name, from its PYTHONPATH) and run the extract."""
    sys.path.insert(0, str(PLUGINS))
    try:
        recipe = recipe_from_dict({"extract": {"plugins": ["digit_filter"]}})
        blob = tmp_path / "recipe.pickle"
        blob.write_bytes(pickle.dumps(recipe))
    finally:
        sys.path.remove(str(PLUGINS))
        sys.modules.pop("digit_filter", None)
    script = ("import pickle, sys; from crawlproc.extract.file import process_warc; "
              f"r = pickle.loads(open({str(blob)!r}, 'rb').read()); "
              f"s = process_warc({str(data_dir / 'warc' / WARC)!r}, {str(tmp_path / 'out')!r}, r, dump='X'); "
              "print(list(s['steps'])[-1])")
    root = Path(__file__).parent.parent
    env = {"PYTHONPATH": f"{root}:{PLUGINS}", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "digit_ratio"


@pytest.mark.parametrize("plugins, words", [
    (["no_such_module_xyz"], "cannot import plugin"),
    (["not_a_plugin"], "must list its filters"),
    (["../evil"], "not a module name"),
    (["digit_filter", "digit_filter"], "twice"),
])
def test_bad_plugins_are_rejected_naming_the_key(plugins_importable, plugins, words):
    with pytest.raises(RecipeError) as err:
        recipe_from_dict({"extract": {"plugins": plugins}})
    assert err.value.key == "extract.plugins" and words in str(err.value)


def test_a_plugin_section_without_its_plugin_is_unknown(plugins_importable):
    with pytest.raises(RecipeError) as err:
        recipe_from_dict({"digit_ratio": {"max_digit_ratio": 0.5}})
    assert err.value.key == "digit_ratio" and "unknown section" in str(err.value)
    with pytest.raises(RecipeError) as err:
        recipe_from_dict({"extract": {"plugins": ["digit_filter"]}, "digit_ratio": {"max_digit_ratio": 2.0}})
    assert err.value.key == "digit_ratio.max_digit_ratio"


# the built-in filters off: the plugin under test sees every document
NO_FILTERS = {f.name: {"enabled": False} for f in registry.FILTERS} | {"language": {"keep": []}}


def _pipeline(recipe: Recipe) -> ExtractPipeline:
    pipe = ExtractPipeline(recipe)
    pipe.reset()
    return pipe


def test_the_budget_stops_a_step_that_never_ends(plugins_importable):
    recipe = recipe_from_dict(NO_FILTERS | {"extract": {"plugins": ["stall_filter"], "timeout_s": 0.3}})
    pipe = _pipeline(recipe)
    counts = pipe.counts()
    doc = Doc("https://example.com/a", PAGE)
    assert pipe.run(doc, counts) == ("stall", "timeout")
    assert counts.reasons == {"stall:timeout": 1} and counts.by_step()["stall"] == {"in": 1, "removed": 1}
    assert "paragraph 3" in doc.text  # stored as the stalled step saw it
    assert signal.getitimer(signal.ITIMER_VIRTUAL) == (0.0, 0.0)  # nothing left armed
    assert signal.getsignal(signal.SIGVTALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
    assert pipe.run(Doc("https://example.com/b", PAGE), counts) == ("stall", "timeout")  # and again


def test_the_budget_covers_extraction_and_resets_its_cache():
    pathological = "<html><body>" + "".join(f"<div><p>Paragraph {i} with some words in it.</p></div>"
                                            for i in range(50_000)) + "</body></html>"
    pipe = _pipeline(recipe_from_dict({"extract": {"timeout_s": 0.05}, "language": {"keep": []}}))
    counts = pipe.counts()
    assert pipe.run(Doc("https://example.com/slow", pathological), counts) == ("extract", "timeout")
    assert counts.reasons == {"extract:timeout": 1}
    doc, fresh = Doc("https://example.com/n", PAGE), Doc("https://example.com/n", PAGE)
    pipe.run(doc, counts)
    _pipeline(recipe_from_dict({"language": {"keep": []}})).run(fresh, pipe.counts())
    assert doc.text == fresh.text != ""


def test_a_step_that_raises_costs_its_document_only(plugins_importable):
    pipe = _pipeline(recipe_from_dict(NO_FILTERS | {"extract": {"plugins": ["crash_filter"]}}))
    counts = pipe.counts()
    assert pipe.run(Doc("https://example.com/a", PAGE), counts) == ("crash", "error:ZeroDivisionError")
    assert pipe.run(Doc("https://example.com/b", PAGE), counts) == ("crash", "error:ZeroDivisionError")
    assert counts.reasons == {"crash:error:ZeroDivisionError": 2}


# --- per-document time grows linearly with the text ---------------------------------------------------------

def test_stats_name_every_step_of_the_recipe(tmp_path, data_dir):
    stats = process_warc(data_dir / "warc" / "warcio_example.warc.gz", tmp_path, Recipe(), dump="X")
    assert list(stats["steps"]) == registry.step_names()
    assert FileStats.from_dict(stats).to_dict() == stats  # one typed shape, stored once (in the marker)
    assert not (tmp_path / "X" / "stats").exists()
    old = {k: v for k, v in stats.items() if k != "steps"} | {"stages": stats["steps"]}  # an older record
    assert FileStats.from_dict(old).steps == stats["steps"]
