"""The pipeline on object storage (issue 14) against a real S3-compatible server on 127.0.0.1: a Common Crawl
listing and its WARCs read from a bucket (ranged, resumed, verified), every output written to a bucket,
resume from markers, status from the bucket, and the cluster-wide download cap."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import ray.cloudpickle

from crawlproc.store.layout import Layout, warc_stem
from crawlproc.recipe import load_recipe
from crawlproc.store.storage import Storage, join
from pipelines.demo.minicc import MiniCCServer, build_minicc
from pipelines.stages.run import run_snapshot
from pipelines.engine.runner import Unit, run_stage
from pipelines.engine.slots import ClusterSlots

REPO = Path(__file__).resolve().parents[1]
SNAP = "CC-MAIN-2024-10"
RECIPE = {"extract": {"engine": "resiliparse"}, "download": {"backoff_s": 0.05,
                                                             "max_backoff_s": 0.5}}


@pytest.fixture(scope="module")
def minicc(tmp_path_factory):
    return build_minicc(tmp_path_factory.mktemp("minicc"), snapshot=SNAP, files=3)


@pytest.fixture(scope="module")
def crawl_bucket(s3_server, minicc):
    """The mini Common Crawl uploaded to a bucket, laid out as s3://commoncrawl is."""
    bucket = s3_server.bucket(f"crawl-{uuid.uuid4().hex[:8]}")
    st = Storage()
    for p in sorted(Path(minicc.root).rglob("*")):
        if p.is_file():
            st.write_bytes(join(bucket, p.relative_to(minicc.root).as_posix()), p.read_bytes())
    return bucket


def s3_ids(out: str, kind: str) -> Counter:
    st = Storage()
    c: Counter = Counter()
    for uri in Layout(out).snapshot(SNAP).files(kind):
        c.update(st.read_table(uri, columns=["id"]).column("id").to_pylist())
    return c


def local_ids(out: Path, kind: str) -> Counter:
    return s3_ids(str(out), kind)


@pytest.fixture(scope="module")
def reference(ray_local, minicc, tmp_path_factory):
    out = tmp_path_factory.mktemp("local-out")
    with MiniCCServer(minicc.root) as srv:
        run_snapshot(SNAP, out, load_recipe(None, RECIPE), base_url=srv.base_url, progress=False)
    return {"docs": local_ids(out, "docs"), "removed": local_ids(out, "removed")}


def test_s3_listing_to_s3_output_equals_a_local_run(ray_local, s3_server, crawl_bucket, reference):
    out = s3_server.bucket(f"out-{uuid.uuid4().hex[:8]}") + "/runs/a"
    recipe = load_recipe(None, RECIPE)
    summary = run_snapshot(SNAP, out, recipe, base_url=crawl_bucket, progress=False)
    assert summary.ok and summary.done == 3, summary.failed
    assert s3_ids(out, "docs") == reference["docs"] and s3_ids(out, "removed") == reference["removed"]
    snap = Layout(out).snapshot(SNAP)
    assert len(snap.markers.done()) == 3
    st = Storage()
    assert st.read_json(snap.listing_uri)["url"].startswith(crawl_bucket)
    # a rerun reads the markers from the bucket and does nothing
    again = run_snapshot(SNAP, out, recipe, base_url=crawl_bucket, progress=False)
    assert again.skipped_done == 3 and again.done == 0
    # status, report and explain read the bucket too
    from pipelines.cli import main
    from pipelines.inspect.explain import explain_document
    from pipelines.inspect.report import write_report

    assert main(["status", "--out", out]) == 0
    where, data = write_report(out)
    assert where == f"{out}/report.html" and st.exists(where)
    snap_report = data["snapshots"][0]
    assert snap_report["name"] == SNAP and snap_report["totals"]["kept"] == sum(reference["docs"].values())
    some_id = next(iter(reference["removed"]))
    explained = explain_document(out, some_id)["matches"]
    assert len(explained) == 1 and explained[0]["verdict"] == "removed"


def test_dedup_and_tokenize_on_s3_equal_a_local_run(ray_local, s3_server, crawl_bucket, minicc, tmp_path):
    from pipelines.stages.chain import dedup_stage, tokenize_stage

    recipe = load_recipe(None, {**RECIPE, "tokenize": {"vocab_size": 400}, "dedup": {"num_partitions": 3}})
    chain = [("dedup", dedup_stage), ("tokenize", tokenize_stage)]
    out = s3_server.bucket(f"dd-{uuid.uuid4().hex[:8]}") + "/out"
    remote = run_snapshot(SNAP, out, recipe, base_url=crawl_bucket, progress=False, chain=chain)
    with MiniCCServer(minicc.root) as srv:
        local = run_snapshot(SNAP, tmp_path / "local", recipe, base_url=srv.base_url, progress=False, chain=chain)
    assert remote.ok and local.ok
    assert remote.stage_info["dedup"] == local.stage_info["dedup"]
    assert s3_ids(out, "final") == local_ids(tmp_path / "local", "final")
    st = Storage()
    tokens = Layout(out).tokens("bpe")
    manifest = st.read_json(tokens.manifest_uri)
    ids: Counter = Counter()
    for shard in manifest["shards"]:
        ids.update(st.read_table(tokens.path(shard["file"]), columns=["id"]).column("id").to_pylist())
    assert set(ids) == set(s3_ids(out, "final")) and max(ids.values()) == 1
    assert not (tmp_path / "out").exists()


def test_an_interrupted_read_resumes_where_it_stopped(s3_server, crawl_bucket, minicc, tmp_path):
    from crawlproc.crawl.download import download_file

    st = Storage()
    key = join(crawl_bucket, minicc.paths[0])
    data = st.read_bytes(key)
    dest = tmp_path / "x.warc.gz"
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(data[: len(data) // 3])  # what an interrupted attempt left behind
    got = download_file(key, dest, load_recipe(None, RECIPE).download, storage=st)
    assert dest.read_bytes() == data and got.resumed == 1 and got.gzip_members


def test_a_missing_object_fails_alone(ray_local, s3_server, crawl_bucket, minicc, reference):
    """A listed object that is not in the bucket is that file's failure (permanent: not retried), recorded with
    its cause; the other listed files are done as if it were not there."""
    other = "CC-MAIN-2024-18"  # a listing of its own in the same bucket: the module's listing stays as it is
    missing = f"crawl-data/{SNAP}/segments/1707000009000.99/warc/CC-MAIN-20240217000000-20240217000000-09999.warc.gz"
    listing = join(crawl_bucket, f"crawl-data/{other}/warc.paths.gz")
    Storage().write_bytes(listing, gzip.compress(f"{minicc.paths[0]}\n{missing}\n".encode()))
    out = s3_server.bucket(f"miss-{uuid.uuid4().hex[:8]}") + "/out"
    summary = run_snapshot(other, out, load_recipe(None, RECIPE), base_url=crawl_bucket, progress=False)
    assert summary.done == 1 and list(summary.failed) == [missing] and not summary.ok
    assert "no such object" in summary.failed[missing]
    snap = Layout(out).snapshot(other)
    assert list(snap.markers.done()) == [warc_stem(minicc.paths[0])]
    failed = snap.markers.failed()[warc_stem(missing)]
    assert failed["failure"]["type"] == "DownloadError" and "no such object" in failed["error"]
    got = Counter()
    for uri in snap.files("docs"):
        got.update(Storage().read_table(uri, columns=["id"]).column("id").to_pylist())
    ids_of_first = set(minicc.response_ids[minicc.paths[0]])
    assert got and set(got) == set(reference["docs"]) & ids_of_first  # the good file's documents, as locally


def test_driver_killed_then_rerun_on_s3_loses_nothing(ray_local, s3_server, crawl_bucket, reference, tmp_path):
    from crashpoint import env, run_killed

    out = s3_server.bucket(f"kill-{uuid.uuid4().hex[:8]}") + "/out"
    recipe_file = tmp_path / "r.toml"
    recipe_file.write_text('[extract]\nengine = "resiliparse"\n')
    command = ["run", "--snapshot", SNAP, "--base-url", crawl_bucket, "--out", out, "--recipe", str(recipe_file),
               "--quiet", "--stages", "extract", "--address", ray_local.get_runtime_context().gcs_address]
    snap = Layout(out).snapshot(SNAP)
    killed = run_killed(command, "extract:1")  # SIGKILLed when the first file is committed in the bucket
    assert killed.landed, killed.stderr[-2000:]
    assert 1 <= len(snap.markers.done()) < 3  # it stopped part-way
    final = subprocess.run([sys.executable, "-m", "pipelines.cli", *command], cwd=REPO, env=env(),
                           capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]
    docs, removed = s3_ids(out, "docs"), s3_ids(out, "removed")
    assert docs == reference["docs"] and removed == reference["removed"]  # 0 lost, 0 twice


ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this module


def hold_a_slot(slots, seconds: float) -> dict:
    with slots():
        time.sleep(seconds)
    return {"held": 1}


def test_the_download_cap_is_one_for_the_whole_cluster(ray_local):
    slots = ClusterSlots(2)
    try:
        units = [Unit(key=f"u{i}", args=(slots, 0.3)) for i in range(8)]
        result = run_stage("slots", units, hold_a_slot, num_cpus=0.25, progress=False)
        assert result.done == 8
        stats = slots.stats()
        assert stats["max_held"] == 2 and stats["held"] == 0
    finally:
        slots.close()


@pytest.mark.slow  # the whole demo: extract, dedup, tokenize, a few training steps, the report
def test_the_demo_runs_with_its_output_in_a_bucket(s3_server, tmp_path, short_tmp):
    out = s3_server.bucket(f"demo-{uuid.uuid4().hex[:8]}") + "/demo"
    tmp = short_tmp()  # Ray's socket paths under TMPDIR must stay short
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp)}
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "demo", "--out", out, "--files", "2",
                           "--train-steps", "4"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    st = Storage()
    assert st.exists(f"{out}/report.html") and st.exists(f"{out}/train/run/metrics.jsonl")
    assert st.exists(f"{out}/train/run/ckpt/latest.json") and st.exists(f"{out}/tokens/bpe/manifest.json")
    assert Layout(out).snapshot(SNAP).files("final")
    assert not list(tmp.glob("crawlproc-minicc-*"))  # the served crawl was temporary
    assert not list(tmp_path.iterdir())  # and nothing was written in the working folder
