"""A two-node Ray cluster with no shared disk (issue 14): a head and a worker started with `ray start`, each in
its own temp dir, run `crawlproc run` with the input (a mini Common Crawl) in a bucket and the output only in a
bucket; nothing is left on the local disk outside Ray's own temp and spill folders (and the documented
per-machine cache of derived package data)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from crawlproc.store.layout import Layout
from crawlproc.store.storage import Storage, join
from pipelines.demo.minicc import build_minicc
from raycluster import Head, Worker, clean_env, wait_for_nodes

REPO = Path(__file__).resolve().parents[1]
SNAP = "CC-MAIN-2024-10"


def files_under(root: Path, skip: list[Path]) -> list[Path]:
    out = []
    for p in root.rglob("*"):
        if p.is_file() and not any(p.is_relative_to(s) for s in skip):
            out.append(p)
    return out


@pytest.mark.slow  # two Ray nodes and a run: about a minute on 2 cores
def test_a_two_node_cluster_runs_from_a_bucket_to_a_bucket(s3_server, tmp_path, short_tmp):
    minicc = build_minicc(tmp_path / "minicc", snapshot=SNAP, files=3)
    crawl = s3_server.bucket(f"crawl-{uuid.uuid4().hex[:8]}")
    st = Storage()
    for p in sorted(Path(minicc.root).rglob("*")):
        if p.is_file():
            st.write_bytes(join(crawl, p.relative_to(minicc.root).as_posix()), p.read_bytes())
    out = s3_server.bucket(f"out-{uuid.uuid4().hex[:8]}") + "/cluster"

    watched = tmp_path / "machine"  # HOME, TMPDIR and working folder of every process of the cluster
    head_tmp, worker_tmp, driver_tmp = short_tmp(), short_tmp(), short_tmp()
    head_env = clean_env(watched / "home", head_tmp, TMPDIR=str(watched / "tmp"))
    (watched / "tmp").mkdir(parents=True)
    head = Head(head_env, tmp_path / "head.log")
    worker = Worker(head, clean_env(watched / "home", worker_tmp, TMPDIR=str(watched / "tmp")),
                    tmp_path / "worker.log")
    try:
        assert wait_for_nodes(head.address, head_env, 2) == 2, (tmp_path / "worker.log").read_text()[-2000:]
        recipe = watched / "work" / "recipe.toml"
        recipe.parent.mkdir(parents=True)
        recipe.write_text('[extract]\nengine = "resiliparse"\n[tokenize]\nvocab_size = 400\n')
        env = clean_env(watched / "home", driver_tmp, TMPDIR=str(watched / "tmp"))
        before = set(files_under(watched, []))
        proc = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "run", "--snapshot", SNAP, "--base-url", crawl, "--out", out,
             "--recipe", str(recipe), "--stages", "extract,dedup,tokenize", "--quiet", "--address", head.address],
            cwd=watched / "work", env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        snap = Layout(out).snapshot(SNAP)
        assert len(snap.markers.done()) == 3 and len(snap.files("docs")) == 3 and len(snap.files("final")) == 3
        assert Storage().read_json(Layout(out).tokens("bpe").manifest_uri)["totals"]["train"]["documents"] > 0
        nodes = {(snap.markers.read(k, fp) or {}).get("node") for k, fp in snap.markers.done().items()}
        assert None not in nodes  # each marker names the Ray node that did the file
        # nothing on the local disk but Ray's own folders (its temp dirs, ~/.ray) and the per-machine cache of
        # derived package data (the URL blocklist's hash array: $CRAWLPROC_CACHE_DIR, else ~/.cache/crawlproc)
        keep = [watched / "home" / ".ray", watched / "home" / ".cache" / "crawlproc"]
        left = [p for p in files_under(watched, keep) if p not in before]
        assert left == [], left
    finally:
        worker.stop()
        head.stop()
    assert os.path.isdir(head_tmp)  # Ray's temp (and spill) folders are where Ray was told
