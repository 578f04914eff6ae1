"""A two-node Ray cluster with no shared disk (issues 14 and 24): a head and a worker started with `ray start`,
each as its own machine (its own HOME, TMPDIR, working folder and Ray temp dir), run `crawlproc run` from a
third (the driver) with the input (a mini Common Crawl) in a bucket and the output only in a bucket. Both
nodes do work, and nothing is left on any machine's disk outside Ray's own temp and spill folders (and the
documented per-machine cache of derived package data)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from crawlproc.store.layout import Layout
from crawlproc.store.storage import Storage, join
from pipelines.demo.minicc import build_minicc
from raycluster import Head, Worker, clean_env, node_names, wait_for_nodes

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

    # Three machines that share no disk: each has its own HOME, TMPDIR and working folder (and Ray temp dir).
    machines = {m: tmp_path / m for m in ("head", "worker", "driver")}
    ray_tmp = {m: short_tmp() for m in machines}
    envs = {}
    for m, root in machines.items():
        for d in ("home", "tmp", "work"):
            (root / d).mkdir(parents=True)
        envs[m] = clean_env(root / "home", ray_tmp[m], TMPDIR=str(root / "tmp"))
    head = Head(envs["head"], tmp_path / "head.log", cwd=machines["head"] / "work", name="head")
    worker = Worker(head, envs["worker"], tmp_path / "worker.log", cwd=machines["worker"] / "work", name="worker")
    try:
        assert wait_for_nodes(head.address, envs["head"], 2) == 2, (tmp_path / "worker.log").read_text()[-2000:]
        which = node_names(head.address, envs["head"])
        assert sorted(which.values()) == ["head", "worker"]
        recipe = machines["driver"] / "work" / "recipe.toml"
        recipe.write_text('[extract]\nengine = "resiliparse"\n[tokenize]\nvocab_size = 400\n')
        before = {m: set(files_under(root, [])) for m, root in machines.items()}
        proc = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "run", "--snapshot", SNAP, "--base-url", crawl, "--out", out,
             "--recipe", str(recipe), "--stages", "extract,dedup,tokenize", "--quiet", "--address", head.address],
            cwd=machines["driver"] / "work", env=envs["driver"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        snap = Layout(out).snapshot(SNAP)
        assert len(snap.markers.done()) == 3 and len(snap.files("docs")) == 3 and len(snap.files("final")) == 3
        tokens = Layout(out).tokens("bpe")
        assert Storage().read_json(tokens.manifest_uri)["totals"]["train"]["documents"] > 0
        # both machines did work: each unit's marker names the Ray node that ran it (files extracted, inputs
        # encoded)
        done = [snap.markers.read(k, fp) for k, fp in snap.markers.done().items()]
        done += [tokens.markers.read(k, fp) for k, fp in tokens.markers.done().items()]
        ran_on = Counter(which.get((d or {}).get("node"), "?") for d in done)
        assert set(ran_on) == {"head", "worker"}, ran_on
        # nothing on any machine's disk but Ray's own folders (its temp dirs, ~/.ray) and the per-machine cache
        # of derived package data (the URL blocklist's hash array: $CRAWLPROC_CACHE_DIR, else
        # ~/.cache/crawlproc)
        for m, root in machines.items():
            keep = [root / "home" / ".ray", root / "home" / ".cache" / "crawlproc"]
            left = [p for p in files_under(root, keep) if p not in before[m]]
            assert left == [], (m, left)
    finally:
        worker.stop()
        head.stop()
    assert all(os.path.isdir(d) for d in ray_tmp.values())  # Ray's temp (and spill) folders are where Ray was told
