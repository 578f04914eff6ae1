"""The extract stage end to end on real WARCs: Ray tasks, outputs read back by pyarrow, Ray Data and datasets."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crawlproc.extract.file import process_warc
from crawlproc.extract.stats import FileStats
from crawlproc.recipe import Recipe
from crawlproc.schema import DOC_SCHEMA, REMOVED_SCHEMA
from crawlproc.store.layout import Layout
from pipelines.stages.extract import expand_inputs, run_extract

WARCS = [
    "dolma_sample-0000.warc.gz",
    "dolma_sample-0001.warc.gz",
    "fastwarc_CC-MAIN-2020-34_excerpt.warc.gz",
    "ia-web-commons_IAH-urls-wget.warc.gz",
    "warcio_example.warc.gz",
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, data_dir):
    d = tmp_path_factory.mktemp("warcs")
    for name in WARCS:
        shutil.copy(data_dir / "warc" / name, d / name)
    # a truncated copy: the job must go on with the others and name this one as failed
    data = (data_dir / "warc" / "dolma_sample-0001.warc.gz").read_bytes()
    (d / "truncated.warc.gz").write_bytes(data[: len(data) * 2 // 3])
    return d


def snap(out, name="CC-MAIN-TEST"):
    return Layout(str(out)).snapshot(name)


@pytest.fixture(scope="module")
def extracted(inputs, tmp_path_factory, ray_local):
    out = tmp_path_factory.mktemp("out")
    summary = run_extract(expand_inputs([str(inputs)]), str(out), Recipe(), dump="CC-MAIN-TEST", progress=False)
    return out, summary


def test_each_file_gets_outputs_and_a_done_marker(extracted):
    out, summary = extracted
    layout = snap(out)
    stems = {n.split(".")[0] for n in WARCS}
    assert summary.done == len(WARCS)
    assert set(layout.markers.done()) == stems
    for stem in stems | {"truncated"}:
        for kind in ("docs", "removed"):
            assert Path(layout.path(kind, stem)).is_file(), (kind, stem)
    for stem, fp in layout.markers.done().items():  # each file's stats live in its marker, nowhere else
        assert FileStats.from_dict(layout.markers.read(stem, fp)["stats"]).stem == stem
    assert not (Path(layout.uri) / "stats").exists()
    assert summary.kept > 10  # the English pages of the dolma samples survive the FineWeb filters


def test_truncated_file_fails_alone_keeping_records_before_the_fault(extracted):
    out, summary = extracted
    layout = snap(out)
    assert list(summary.failed) == [str(next(iter(summary.failed)))]
    assert next(iter(summary.failed)).endswith("truncated.warc.gz")
    assert "truncated" not in layout.markers.done()
    failed = json.loads((Path(layout.uri) / "_failed" / "truncated.json").read_text())
    assert "truncated" in failed["error"]
    # the root cause is kept: the reader's own exception type and the frames where it was raised
    assert failed["failure"]["type"] == "WarcReadError" and failed["failure"]["frames"]
    assert any("crawlproc/warc/reader.py" in f for f in failed["failure"]["frames"])
    stats = failed["stats"]  # what the file counted before the fault, kept with its failure
    assert stats["complete"] is False and stats["kept"] + stats["removed"] > 0


def test_counts_add_up_and_no_record_is_lost_or_doubled(extracted):
    out, _ = extracted
    layout = snap(out)
    for name in WARCS:
        stem = name.split(".")[0]
        stats = layout.markers.read_any(stem)["stats"]
        docs = pq.read_table(layout.path("docs", stem))
        removed = pq.read_table(layout.path("removed", stem))
        assert docs.num_rows == stats["kept"] and removed.num_rows == stats["removed"]
        page_skips = sum(v for k, v in stats["skipped"].items() if k not in ("not_response", "revisit"))
        assert stats["responses"] == stats["kept"] + stats["removed"] + page_skips
        ids = docs.column("id").to_pylist() + removed.column("id").to_pylist()
        assert len(ids) == len(set(ids))
        assert sum(s["removed"] for s in stats["steps"].values()) == stats["removed"]
        assert set(removed.column("removed_by").to_pylist()) <= set(stats["steps"])


def test_documents_follow_the_schema_and_fineweb_semantics(extracted):
    out, _ = extracted
    docs = pq.read_table(Path(snap(out).uri) / "docs")
    assert docs.schema.names == DOC_SCHEMA.names
    assert [f.type for f in docs.schema] == [f.type for f in DOC_SCHEMA]
    rows = docs.to_pylist()
    assert rows and all(r["language"] == "eng_Latn" and r["language_score"] > 0.65 for r in rows)  # ISO 639-3 + script
    assert all(r["dump"] == "CC-MAIN-TEST" and r["id"].startswith("<urn:") and r["text"] for r in rows)
    assert all(r["url"].startswith("http") and r["date"] and r["warc_offset"] >= 0 for r in rows)
    removed = pq.read_table(snap(out).path("removed", "fastwarc_CC-MAIN-2020-34_excerpt"))
    assert set(removed.schema.names) == set(REMOVED_SCHEMA.names)
    # the excerpt is mostly Chinese pages: language ID removes them
    assert "language" in removed.column("removed_by").to_pylist()


def test_read_back_by_pyarrow_ray_data_and_datasets(extracted, ray_local):
    import datasets
    import ray

    out, _ = extracted
    docs_dir = Path(snap(out).uri) / "docs"
    files = sorted(str(p) for p in docs_dir.glob("*.parquet"))
    by_arrow = pq.read_table(files)
    ids = sorted(by_arrow.column("id").to_pylist())

    by_ray = ray.data.read_parquet(files).to_pandas()
    assert sorted(by_ray["id"]) == ids
    assert set(by_ray.columns) >= set(DOC_SCHEMA.names)

    ds = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(out / "hf-cache"))
    assert sorted(ds["id"]) == ids
    assert set(ds.column_names) == set(DOC_SCHEMA.names)
    rows = sorted(zip(by_arrow.column("id").to_pylist(), by_arrow.column("text").to_pylist()))
    assert sorted(zip(ds["id"], ds["text"])) == rows


def test_rerun_skips_done_files(extracted, inputs):
    out, _ = extracted
    again = run_extract(expand_inputs([str(inputs)]), str(out), Recipe(), dump="CC-MAIN-TEST", progress=False)
    assert again.skipped_done == len(WARCS)
    assert again.done == 0 and list(again.failed) == [str(inputs / "truncated.warc.gz")]


def test_process_warc_is_deterministic(tmp_path, data_dir):
    path = data_dir / "warc" / "dolma_sample-0000.warc.gz"
    a = process_warc(path, tmp_path / "a", Recipe(), dump="X")
    b = process_warc(path, tmp_path / "b", Recipe(), dump="X")
    ta = pq.read_table(snap(tmp_path / "a", "X").path("docs", "dolma_sample-0000"))
    tb = pq.read_table(snap(tmp_path / "b", "X").path("docs", "dolma_sample-0000"))
    assert ta.equals(tb) and a["kept"] == b["kept"]


def test_cli_extract_reports_failed_files_and_exits_nonzero(inputs, tmp_path):
    out = tmp_path / "cli-out"
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "extract", str(inputs / "warcio_example.warc.gz"),
         str(inputs / "truncated.warc.gz"), "--out", str(out), "--dump", "D"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert "truncated.warc.gz" in proc.stderr and "1 failed" in proc.stdout
    assert "[extract D] files 2/2" in proc.stderr  # the progress line
    assert set(snap(out, "D").markers.done()) == {"warcio_example"}


def test_a_file_does_not_depend_on_what_the_worker_processed_before(tmp_path, data_dir):
    first = data_dir / "warc" / "dolma_sample-0001.warc.gz"
    other = data_dir / "warc" / "dolma_sample-0000.warc.gz"
    process_warc(first, tmp_path / "a", Recipe(), dump="X")
    process_warc(other, tmp_path / "b", Recipe(), dump="X")  # same worker, another file first
    process_warc(first, tmp_path / "b", Recipe(), dump="X")
    ta = pq.read_table(snap(tmp_path / "a", "X").path("docs", "dolma_sample-0001"))
    tb = pq.read_table(snap(tmp_path / "b", "X").path("docs", "dolma_sample-0001"))
    assert ta.equals(tb)


def test_the_run_records_its_recipe(extracted):
    from crawlproc.recipe import recorded_recipe

    out, _ = extracted
    assert recorded_recipe(snap(out).recipe_uri) == Recipe()
