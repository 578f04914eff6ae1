"""The report on a real run (issue 31): a timeline per stage with throughput and stragglers, the cost of a whole
snapshot extrapolated from the run's own figures with its assumptions, a text snippet for each removal reason,
and chart labels that do not overlap, checked in headless Chromium."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from browser import Chromium, ensure_chromium

from crawlproc.store.layout import Layout
from pipelines.demo.minicc import Fault, MiniCCServer, build_minicc, write_listing
from pipelines.inspect.report import write_report
from pipelines.inspect.report.collect import snippet
from pipelines.inspect.report.render import render_html
from pipelines.recipes import resolve_recipe
from pipelines.stages.chain import build_chain
from pipelines.stages.run import print_summary, run_snapshot

SNAP = "CC-MAIN-2024-10"
RECIPE = """
[extract]
engine = "resiliparse"
timeout_s = 60.0
[download]
retries = 2
backoff_s = 0.05
[tokenize]
vocab_size = 400
val_fraction = 0.2
"""


@pytest.fixture(scope="module")
def run(ray_local, tmp_path_factory):
    """A real `crawlproc run` of 4 files of a 6-file listing through extract, dedup and tokenize; one file is
    served slowly, so it trails the others."""
    root = tmp_path_factory.mktemp("run")
    mini = build_minicc(root / "cc", snapshot=SNAP, files=6)
    write_listing(mini.root, SNAP, mini.paths)
    recipe_file = root / "r.toml"
    recipe_file.write_text(RECIPE)
    recipe = resolve_recipe(str(recipe_file))
    slow = mini.paths[2]
    with MiniCCServer(mini.root) as server:
        server.add_fault(slow, Fault("slow", delay_s=0.4, chunk=4096, repeat=True))
        summary = run_snapshot(SNAP, root / "out", recipe, base_url=server.base_url, limit=4, progress=False,
                               chain=build_chain(["extract", "dedup", "tokenize"]))
    return {"out": root / "out", "summary": summary, "slow": slow}


def markers(out: Path) -> dict[str, dict]:
    snap = Layout(str(out)).snapshot(SNAP)
    return {stem: snap.markers.read(stem, fp) for stem, fp in snap.markers.done().items()}


def test_the_run_summary_gives_in_and_out_for_every_stage(run, capsys):
    print_summary(run["summary"])
    out = capsys.readouterr().out
    info = run["summary"].stage_info
    lines = {ln.split()[0]: ln for ln in out.splitlines()[1:]}
    assert set(lines) == {"extract", "dedup", "decontam", "tokenize"}
    ex, dd, tk = info["extract"], info["dedup"], info["tokenize"]
    assert f"{ex['responses']:,} HTML pages in -> {ex['kept']:,} documents kept, {ex['removed']:,} removed" in out
    assert ex["kept"] + ex["removed"] == ex["documents"] and sum(ex["removed_by"].values()) == ex["removed"]
    assert dd["documents"] == ex["kept"] and dd["kept"] + dd["exact_duplicates"] + dd["near_duplicates"] == dd["documents"]
    assert (f"removed {dd['exact_duplicates']:,} exact and {dd['near_duplicates']:,} near duplicates" in
            lines["dedup"])
    dc = info["decontaminate"]
    assert dc["documents"] == dd["kept"] and f"{dc['documents']:,} documents in" in lines["decontam"]
    assert tk["documents"] + tk["skipped"] == dd["kept"] - dc["removed"]
    assert f"-> {tk['train_tokens']:,} train + {tk['val_tokens']:,} val tokens" in lines["tokenize"]


def test_timeline_throughput_and_stragglers_come_from_the_markers(run):
    _, data = write_report(run["out"], run["out"] / "r.html")
    snap = data["snapshots"][0]
    stages = {s["stage"]: s for s in snap["timeline"]}
    assert list(stages) == ["extract", "dedup", "tokenize bpe"]
    recs = markers(run["out"])
    ex = stages["extract"]
    assert ex["units"] == len(recs) == 4
    assert ex["bytes"] == sum(r["stats"]["decompressed_bytes"] for r in recs.values())
    assert ex["documents"] == sum(r["stats"]["kept"] + r["stats"]["removed"] for r in recs.values())
    assert ex["task_s"] == pytest.approx(sum(r["stats"]["seconds"]["total"] + r["stats"]["download"]["seconds"]
                                             for r in recs.values()), abs=1e-2)
    assert 0 < ex["wall_s"] <= ex["task_s"] + 1  # the union of intervals: at most their sum (markers: whole seconds)
    assert ex["mb_per_s"] == pytest.approx(ex["bytes"] / 1e6 / ex["wall_s"], rel=1e-3)
    assert ex["docs_per_s"] == pytest.approx(ex["documents"] / ex["wall_s"], rel=1e-3)
    slow_stem = Path(run["slow"]).name.split(".")[0]
    assert ex["stragglers"] and ex["stragglers"][0]["key"] == slow_stem  # the slowly served file trails
    download = recs[slow_stem]["stats"]["download"]["seconds"]
    assert download > 2 * min(r["stats"]["download"]["seconds"] for r in recs.values())
    dedup = json.loads((run["out"] / SNAP / "dedup" / "summary.json").read_text())
    assert stages["dedup"]["documents"] == dedup["documents"]
    assert stages["dedup"]["task_s"] == pytest.approx(sum(w["cpu_s"] for w in dedup["tasks"].values()), abs=1e-2)
    tok = stages["tokenize bpe"]
    assert tok["units"] == 4 and tok["tokens"] == sum(
        p["tokens"] for p in json.loads((run["out"] / "tokens" / "bpe" / "manifest.json").read_text())["parts"].values())


def test_the_whole_snapshot_projection_shows_its_figures_and_assumptions(run):
    _, data = write_report(run["out"], run["out"] / "r.html")
    p = data["snapshots"][0]["projection"]
    ex = {s["stage"]: s for s in data["snapshots"][0]["timeline"]}["extract"]
    assert p["files_in_run"] == 4 and p["files_in_snapshot"] == 6  # the listing names 6 files
    assert "listing" in p["files_source"]
    assert p["core_hours"]["extract (download + extraction + filters)"] == pytest.approx(ex["task_s"] / 4 * 6 / 3600)
    recs = markers(run["out"])
    assert p["download_bytes"] == pytest.approx(sum(r["stats"]["download"]["bytes"] for r in recs.values()) / 4 * 6)
    assert p["cost"] == pytest.approx(p["total_core_hours"] * 0.05)
    assert any("6 WARC files" in a for a in p["assumptions"]) and any("per core-hour" in a for a in p["assumptions"])
    _, other = write_report(run["out"], run["out"] / "r2.html", price=2.0, snapshot_files=90_000)
    q = other["snapshots"][0]["projection"]
    assert q["files_in_snapshot"] == 90_000 and q["cost"] == pytest.approx(q["total_core_hours"] * 2.0)
    assert q["total_core_hours"] == pytest.approx(p["total_core_hours"] * 15_000)


def test_every_removal_reason_shows_a_snippet_of_its_examples(run):
    _, data = write_report(run["out"], run["out"] / "r.html")
    text_of = {}
    for f in (run["out"] / SNAP / "removed").glob("*.parquet"):
        text_of.update(dict(zip(*(pq.read_table(f, columns=["id", "text"]).column(c).to_pylist() for c in ("id", "text")))))
    reasons = data["snapshots"][0]["removed_reasons"]
    assert reasons
    for r in reasons:
        for ex in r["examples"]:
            assert ex["snippet"] == snippet(text_of[ex["id"]])
        if not r["key"].startswith(("url_filter", "extract")):
            assert all(ex["snippet"] for ex in r["examples"]), r["key"]  # text kept, the pre-check's too


# --- in headless Chromium ------------------------------------------------------------------------------------

LABELS_CHECK = """
(function () {
  function boxes(svg, sel) {
    return Array.from(svg.querySelectorAll(sel)).map(function (t) {
      var b = t.getBoundingClientRect(); return {x0: b.left, x1: b.right, y0: b.top, y1: b.bottom, text: t.textContent};
    });
  }
  return Array.from(document.querySelectorAll('[data-chart]')).map(function (svg) {
    var s = svg.getBoundingClientRect();
    return {name: svg.getAttribute('data-chart'), svg: {x0: s.left, x1: s.right, y0: s.top, y1: s.bottom},
            ticks: boxes(svg, 'text.tick'), titles: boxes(svg, 'text.ttl'), labels: boxes(svg, 'text.lbl'),
            marks: svg.querySelectorAll('.mark').length};
  });
})()
"""


def overlaps(a: dict, b: dict) -> bool:
    return a["x0"] < b["x1"] - 0.5 and b["x0"] < a["x1"] - 0.5 and a["y0"] < b["y1"] - 0.5 and b["y0"] < a["y1"] - 0.5


def check_labels(chart: dict) -> None:
    texts = chart["ticks"] + chart["titles"] + chart["labels"]
    for t in texts:  # inside the chart
        assert t["x0"] >= chart["svg"]["x0"] - 1 and t["x1"] <= chart["svg"]["x1"] + 1, (chart["name"], t)
        assert t["y0"] >= chart["svg"]["y0"] - 1 and t["y1"] <= chart["svg"]["y1"] + 1, (chart["name"], t)
    for i, a in enumerate(texts):  # and none on another
        for b in texts[i + 1:]:
            assert not overlaps(a, b), (chart["name"], a["text"], b["text"])


@pytest.fixture(scope="module")
def chromium():
    path, reason = ensure_chromium()
    if path is None:
        pytest.skip(f"headless Chromium unavailable: {reason}")
    with Chromium(path) as browser:
        yield browser


def test_the_report_of_a_real_run_renders_with_readable_labels(run, chromium, tmp_path):
    html, data = write_report(run["out"], tmp_path / "report.html")
    page = chromium.load(Path(html).as_uri(), evaluate=LABELS_CHECK)
    assert page.errors == []
    charts = {c["name"]: c for c in page.value}
    timeline = charts[f"timeline:{SNAP}"]
    assert timeline["marks"] == sum(len(s["intervals"]) for s in data["snapshots"][0]["timeline"])
    assert charts["tokens:bpe"]["marks"] == len(data["tokens"][0]["shards"])
    for c in charts.values():
        check_labels(c)
    text = Path(html).read_text()
    assert "Stragglers" in text and "What the whole snapshot would cost" in text and "Assumptions" in text


@pytest.mark.parametrize("n_shards", [30, 400])
def test_shard_charts_with_long_names_stay_readable(run, chromium, tmp_path, n_shards):
    """Real snapshots have thousands of shards named after their input files: the chart must stay readable."""
    _, data = write_report(run["out"], tmp_path / "r.html")
    data = copy.deepcopy(data)
    long = "train-CC-MAIN-2024-10~CC-MAIN-20240220111329-20240220141329-{:05d}-5f0e9a1c-000.parquet"
    data["tokens"][0]["shards"] = [{"split": "val" if i % 9 == 0 else "train", "file": long.format(i),
                                    "tokens": 1000 + 37 * i, "documents": 3, "sources": [SNAP]}
                                   for i in range(n_shards)]
    path = tmp_path / "many.html"
    path.write_text(render_html(data))
    page = chromium.load(path.as_uri(), evaluate=LABELS_CHECK)
    chart = {c["name"]: c for c in page.value}["tokens:bpe"]
    check_labels(chart)
    assert chart["marks"] == (n_shards if n_shards <= 40 else 10)  # bars per shard, or a histogram of shards
