"""`crawlproc run` end to end on a mini Common Crawl served on 127.0.0.1: faults, incremental runs, status,
a Ray worker killed mid-task, and the driver SIGKILLed at several points then resumed by the same command."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crawlproc.extract.units import download_tmp_root
from crawlproc.store.layout import Layout, warc_stem
from pipelines.commands.status import format_table, snapshot_status
from pipelines.demo.minicc import Fault, MiniCCServer, build_minicc, write_listing
from pipelines.recipes import resolve_recipe
from pipelines.stages.run import run_snapshot

REPO = Path(__file__).resolve().parents[1]
SNAP = "CC-MAIN-2024-10"
RECIPE_TOML = """
[extract]
engine = "resiliparse"
timeout_s = 60.0  # the per-page limit is wall-clock: on a busy machine 1 s could remove a page in one run only

[download]
backoff_s = 0.05
max_backoff_s = 1.0
retries = 3
timeout_s = 20.0

[ray]
max_retries = 3
"""


@pytest.fixture(scope="module")
def minicc(tmp_path_factory):
    root = tmp_path_factory.mktemp("minicc")
    return build_minicc(root, snapshot=SNAP, files=5)


@pytest.fixture(scope="module")
def server(minicc):
    with MiniCCServer(minicc.root) as srv:
        yield srv


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("recipe") / "test.toml"
    p.write_text(RECIPE_TOML)
    return p


def reasons(out: Path) -> dict[str, str]:
    """id -> "stage:reason" of every removed document (to explain a difference between two runs)."""
    got = {}
    for f in sorted((out / SNAP / "removed").glob("*.parquet")):
        t = pq.read_table(f, columns=["id", "removed_by", "removed_reason"]).to_pylist()
        got.update({r["id"]: f"{r['removed_by']}:{r['removed_reason']}" for r in t})
    return got


def status(out: Path) -> dict:
    return snapshot_status(Layout(str(out)).snapshot(SNAP))


def is_done(out: Path, stem: str) -> bool:
    return stem in Layout(str(out)).snapshot(SNAP).markers.done()


def ids(out: Path, kind: str) -> Counter:
    """Every document id in <out>/<SNAP>/<kind>/, counted (a duplicate shows as a count of 2)."""
    c: Counter = Counter()
    for f in sorted((out / SNAP / kind).glob("*.parquet")):
        c.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return c


@pytest.fixture(scope="module")
def reference(ray_local, minicc, server, recipe_file, tmp_path_factory):
    """An uninterrupted run, done incrementally: 3 listed files first, then the listing gains 2."""
    out = tmp_path_factory.mktemp("reference")
    recipe = resolve_recipe(str(recipe_file))
    write_listing(minicc.root, SNAP, minicc.paths[:3])
    first = run_snapshot(SNAP, out, recipe, base_url=server.base_url, progress=False)
    n_before = len(server.requests)
    write_listing(minicc.root, SNAP, minicc.paths)
    second = run_snapshot(SNAP, out, recipe, base_url=server.base_url, progress=False)
    new_requests = [r["path"] for r in server.requests[n_before:]]
    return {"out": out, "first": first, "second": second, "new_requests": new_requests,
            "docs": ids(out, "docs"), "removed": ids(out, "removed")}


def test_reference_run_is_complete_and_incremental(reference, minicc):
    first, second = reference["first"], reference["second"]
    assert first.ok and first.done == 3 and first.skipped_done == 0
    assert second.ok and second.done == 2 and second.skipped_done == 3
    # the second run fetched the listing and the two new files, nothing else
    listing = f"crawl-data/{SNAP}/warc.paths.gz"
    assert sorted(set(reference["new_requests"])) == sorted([listing, *minicc.paths[3:]])
    docs, removed = reference["docs"], reference["removed"]
    assert docs and removed and max(docs.values()) == 1 and max(removed.values()) == 1
    assert not set(docs) & set(removed)
    every_response = {i for v in minicc.response_ids.values() for i in v}
    assert set(docs) | set(removed) <= every_response
    assert first.kept + second.kept == sum(docs.values()) == second.total_kept
    assert second.total_removed == sum(removed.values())
    st = status(reference["out"])
    assert (st["listed"], st["done"], st["pending"], st["failed"]) == (5, 5, 0, {})
    assert (st["kept"], st["removed"]) == (sum(docs.values()), sum(removed.values()))
    for p in minicc.paths:  # file_path records the listing path, the same whatever server it came from
        stem = warc_stem(p)
        paths = set(pq.read_table(reference["out"] / SNAP / "docs" / f"{stem}.parquet").column("file_path").to_pylist())
        assert paths <= {p}


def test_rerun_does_nothing_and_a_half_written_file_is_redone(reference, server, recipe_file, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference["out"], out)
    recipe = resolve_recipe(str(recipe_file))
    # the state a crash between docs/ and _done/ leaves: outputs present, no marker, a stray temporary file
    marker = sorted((out / SNAP / "_done").glob("*.json"))[1]
    victim = marker.name.split(".")[0]
    marker.unlink()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer exists: the writer that crashed
    host = socket.gethostname()
    stray = out / SNAP / "docs" / f".{victim}.parquet.{host}-{dead.pid}-1234abcd.tmp"
    stray.write_bytes(b"half a parquet file")
    live = out / SNAP / "docs" / f".{victim}.parquet.{host}-{os.getpid()}-5678abcd.tmp"
    live.write_bytes(b"another command's write in progress")
    summary = run_snapshot(SNAP, out, recipe, base_url=server.base_url, progress=False)
    assert summary.done == 1 and summary.skipped_done == 4 and summary.ok
    assert not stray.exists()
    assert live.exists()  # a live process's temporary file is never touched
    assert ids(out, "docs") == reference["docs"] and ids(out, "removed") == reference["removed"]


def test_faults_end_in_the_right_output_or_a_recorded_failure(ray_local, minicc, server, recipe_file, reference,
                                                               tmp_path):
    out = tmp_path / "out"
    recipe = resolve_recipe(str(recipe_file))
    p = minicc.paths
    server.add_fault(p[0], Fault("status", status=503), Fault("status", status=503))
    server.add_fault(p[1], Fault("status", status=429, retry_after="1"))
    server.add_fault(p[2], Fault("reset", after_bytes=200_000))
    server.add_fault(p[3], Fault("truncate", after_bytes=300_000))
    server.add_fault(p[4], Fault("slow", delay_s=0.05, chunk=256 * 1024))
    missing = f"crawl-data/{SNAP}/segments/1707000009000.99/warc/CC-MAIN-20240217000000-20240217000000-09999.warc.gz"
    corrupt = f"crawl-data/{SNAP}/segments/1707000009000.99/warc/CC-MAIN-20240217000000-20240217000000-09998.warc.gz"
    bad = minicc.root / corrupt
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes((minicc.root / p[0]).read_bytes()[:150_000])  # a truncated gzip on the server itself
    write_listing(minicc.root, SNAP, [*p, missing, corrupt, "../../../etc/passwd",
                                      "https://elsewhere.example.com/x.warc.gz"])
    try:
        before = len(server.requests)
        summary = run_snapshot(SNAP, out, recipe, base_url=server.base_url, progress=False)
        asked = {r["path"] for r in server.requests[before:]}
    finally:
        write_listing(minicc.root, SNAP, p)
    assert summary.done == 5 and set(summary.failed) == {missing, corrupt}
    assert "HTTP 404" in summary.failed[missing]
    assert "corrupt" in summary.failed[corrupt]
    assert len(summary.rejected) == 2 and not summary.ok
    assert not any("passwd" in a or "elsewhere" in a for a in asked)  # rejected lines were never fetched
    failed = json.loads((out / SNAP / "_failed" / f"{warc_stem(missing)}.json").read_text())
    assert failed["source"] == missing and "404" in failed["error"]
    assert failed["failure"]["type"] == "DownloadError" and failed["failure"]["frames"]
    assert not is_done(out, warc_stem(missing))
    # every injected transient fault still ends in exactly the reference output
    assert ids(out, "docs") == reference["docs"] and ids(out, "removed") == reference["removed"]
    st = status(out)
    assert st["done"] == 5 and set(st["failed"]) == {warc_stem(missing), warc_stem(corrupt)}
    assert len(st["rejected"]) == 2 and "HTTP 404" in format_table([st])


def _kill_by_socket(client_port: int) -> int | None:
    """SIGKILL the local process that owns the TCP connection from 127.0.0.1:client_port; return its pid."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if int(cols[1].split(":")[1], 16) == client_port:
                inode = cols[9]
    if inode is None:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) == f"socket:[{inode}]":
                    os.kill(int(proc.name), signal.SIGKILL)
                    return int(proc.name)
        except OSError:
            continue
    return None


def test_a_worker_killed_mid_task_is_retried(ray_local, minicc, server, recipe_file, reference, tmp_path):
    out = tmp_path / "out"
    recipe = resolve_recipe(str(recipe_file))
    target = minicc.paths[1]
    server.add_fault(target, Fault("slow", delay_s=0.5, chunk=64 * 1024))  # long enough to catch it mid-body
    results = []
    runner = threading.Thread(target=lambda: results.append(
        run_snapshot(SNAP, out, recipe, base_url=server.base_url, progress=False)))
    before = len(server.requests)
    runner.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline:
        hits = [r for r in server.requests[before:] if r["path"] == target and r["fault"] == "slow"]
        if hits:
            killed = _kill_by_socket(hits[0]["client"][1])
        time.sleep(0.05)
    runner.join(300)
    assert killed is not None and killed != os.getpid()
    summary = results[0]
    assert summary.ok and summary.done == 5
    assert len(server.requests_for(target)) >= 2  # the retried task downloaded it again
    # the killed worker's half download was cleaned up by a later task on this machine
    assert not list(download_tmp_root().glob(f"{killed}-*"))
    assert ids(out, "docs") == reference["docs"] and ids(out, "removed") == reference["removed"]


KILL_RECIPE = """
[extract]
timeout_s = 60.0  # trafilatura, the default engine; a wall-clock limit that a busy machine cannot reach

[download]
backoff_s = 0.05
max_backoff_s = 1.0
retries = 3
timeout_s = 20.0

[dedup]
num_partitions = 2

[tokenize]
vocab_size = 400
val_fraction = 0.2
"""
# Where `crawlproc run` is SIGKILLed, in order: mid-download (from outside, while the server drips the body),
# then inside each stage after the K-th unit came back (tests/crashpoint.py), the stage's other tasks dying
# mid-write. Each point is reached in every run: the test fails if a process ends before its kill.
KILL_POINTS = ("mid-download", "extract:1", "dedup signatures:1", "dedup edges:1", "dedup finalize:2",
               "tokenize:0", "tokenize:2")
COMPARED = ("docs", "removed", "final")


def files_bytes(out: Path) -> dict[str, bytes]:
    """Every output the README says a killed run reproduces byte for byte: docs/, removed/ and final/ of the
    snapshot, and the token set's shards in manifest order with their entries (a shard's file name carries the
    fingerprint of its input's dedup, which records when that dedup finished: names are not compared)."""
    got = {f"{k}/{p.name}": p.read_bytes() for k in COMPARED for p in sorted((out / SNAP / k).glob("*.parquet"))}
    tokens = out / "tokens" / "bpe"
    manifest = json.loads((tokens / "manifest.json").read_text())
    for n, shard in enumerate(manifest["shards"]):
        got[f"tokens/shard {n}"] = (tokens / shard["file"]).read_bytes()
        got[f"tokens/shard {n} entry"] = json.dumps({k: v for k, v in shard.items() if k != "file"}).encode()
    got["tokens/totals"] = json.dumps(manifest["totals"]).encode()
    got["tokens/tokenizer.json"] = (tokens / "tokenizer.json").read_bytes()
    return got


@pytest.fixture(scope="module")
def kill_recipe(tmp_path_factory):
    p = tmp_path_factory.mktemp("kill-recipe") / "kill.toml"
    p.write_text(KILL_RECIPE)
    return p


@pytest.fixture(scope="module")
def full_reference(ray_local, minicc, server, kill_recipe, tmp_path_factory):
    """One uninterrupted `crawlproc run` of the whole listing through extract (trafilatura), dedup, tokenize."""
    from pipelines.stages.chain import build_chain

    write_listing(minicc.root, SNAP, minicc.paths)
    out = tmp_path_factory.mktemp("full-reference")
    summary = run_snapshot(SNAP, out, resolve_recipe(str(kill_recipe)), base_url=server.base_url, progress=False,
                           chain=build_chain(["extract", "dedup", "tokenize"]))
    assert summary.ok and summary.done == 5
    return out


@pytest.mark.slow  # several `crawlproc run` processes, each starting its own Ray workers
def test_run_sigkilled_in_every_stage_then_resumed(ray_local, minicc, server, kill_recipe, full_reference,
                                                   tmp_path):
    """Kill `crawlproc run` (SIGKILL, no cleanup) mid-download, mid-extract, mid-dedup and mid-tokenize; each
    rerun is the same command. The final docs/, removed/, final/ and token shards are byte-identical to the
    uninterrupted run's, and no document is lost or twice."""
    from crashpoint import env, run_killed

    out = tmp_path / "out"
    command = ["run", "--snapshot", SNAP, "--base-url", server.base_url, "--out", str(out), "--recipe",
               str(kill_recipe), "--quiet", "--stages", "extract,dedup,tokenize",
               "--address", ray_local.get_runtime_context().gcs_address]
    slow = minicc.paths[3]
    report = []
    for point in KILL_POINTS:
        if point == "mid-download":
            server.add_fault(slow, Fault("slow", delay_s=0.3, chunk=32 * 1024))  # ~10 s for the whole body
            before, sent = len(server.requests), len(server.completed)
            proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *command], cwd=REPO, env=env(),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 300
            while not any(r["path"] == slow and r["fault"] == "slow" for r in server.requests[before:]):
                assert proc.poll() is None and time.monotonic() < deadline, "the slow download never started"
                time.sleep(0.02)
            time.sleep(0.5)  # a few chunks into the body
            assert proc.poll() is None, "the run ended before its kill"
            assert slow not in server.completed[sent:]  # still downloading
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=60)
            code = proc.returncode
        else:
            got = run_killed(command, point)
            code, err = got.returncode, got.stderr
        report.append({"kill_point": point, "exit": code, "done_files": len(list((out / SNAP / "_done").glob("*")))})
        assert code == -signal.SIGKILL, (point, err[-3000:])  # the kill landed in a running command
    final = subprocess.run([sys.executable, "-m", "pipelines.cli", *command], check=False, cwd=REPO, env=env(),
                           capture_output=True, text=True, timeout=600)
    print("\nkill-and-resume:", json.dumps(report))
    assert final.returncode == 0, final.stderr[-3000:]
    ref_docs = ids(full_reference, "docs") + ids(full_reference, "removed")
    got_docs = ids(out, "docs") + ids(out, "removed")
    assert sum((ref_docs - got_docs).values()) == 0 and max(got_docs.values()) == 1  # 0 lost, 0 twice
    want, got = files_bytes(full_reference), files_bytes(out)
    assert sorted(got) == sorted(want)
    assert [k for k in want if got[k] != want[k]] == []  # byte-identical
    shards = out / "tokens" / "bpe"
    listed = {s["file"] for s in json.loads((shards / "manifest.json").read_text())["shards"]}
    assert {p.name for p in shards.glob("*.parquet")} == listed  # no shard left from an interrupted encode
    st = status(out)
    assert (st["done"], st["pending"], st["failed"]) == (5, 0, {})


def test_cache_dir_is_reused_by_a_fresh_output(ray_local, minicc, server, recipe_file, reference, tmp_path, capsys):
    from pipelines.cli import main

    recipe = resolve_recipe(str(recipe_file))
    cache = tmp_path / "cache"
    run_snapshot(SNAP, tmp_path / "a", recipe, base_url=server.base_url, limit=1, cache_dir=str(cache),
                 progress=False)
    assert (cache / minicc.paths[0]).is_file()  # the listing path, mapped safely under the cache
    before = len(server.requests)
    second = run_snapshot(SNAP, tmp_path / "b", recipe, base_url=server.base_url, limit=1,
                          cache_dir=str(cache), progress=False)
    assert second.done == 1 and second.listed == 1 and second.listed_total == 5
    assert [r["path"] for r in server.requests[before:]] == [f"crawl-data/{SNAP}/warc.paths.gz"]
    assert ids(tmp_path / "b", "docs") == ids(tmp_path / "a", "docs")
    assert set(ids(tmp_path / "b", "docs")) <= set(reference["docs"])
    assert main(["status", "--out", str(tmp_path / "b"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["snapshot"], r["listed"], r["done"], r["pending"]) for r in rows] == [(SNAP, 1, 1, 0)]


def test_run_command_refuses_a_missing_listing_or_a_bad_name(server, tmp_path, capsys):
    from pipelines.cli import main

    base = ["--base-url", server.base_url, "--out", str(tmp_path / "out"), "--quiet"]
    assert main(["run", "--snapshot", "CC-MAIN-1999-01", *base]) == 2
    assert "HTTP 404" in capsys.readouterr().err
    assert main(["run", "--snapshot", "../../etc", *base]) == 2
    assert "bad snapshot name" in capsys.readouterr().err
    assert not (tmp_path / "etc").exists()
