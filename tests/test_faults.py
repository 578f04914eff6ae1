"""Every fault of the environment is one line within seconds, exit 2, and nothing is left behind (issue 25).

Real conditions only: a real S3 server (moto) with a bucket that does not exist, an endpoint where nothing
listens or that never answers, a server that checks credentials; tmpfs mounts that are full or read-only (root
only: skipped elsewhere); named pipes, devices and sockets given as inputs; a Ray temp folder that is full,
read-only or too deep for Ray's sockets; a recipe asking more CPUs than any node has.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from s3 import free_port, moto_command
from tokenizer.tokenset import write_token_set
from warcs import articles, write_warc

REPO = Path(__file__).resolve().parents[1]
BOUND_S = 10.0  # an object-store mistake ends within this, start-up of the interpreter included
SECRET = "s3cr3t-value-never-printed"


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> tuple[int, str, str, float]:
    e = {**os.environ, "PYTHONPATH": str(REPO), "RAY_DEDUP_LOGS": "0", **(env or {})}
    e.pop("RAY_ADDRESS", None)
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=REPO, env=e, capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr, time.monotonic() - started


# Ray's own log lines: its driver's, and those its log monitor forwards from its own processes (a raylet warns
# of a disk over 95% full whatever the command does), colour codes or not
RAY_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+(INFO|WARNING) "
                     r"|^(\x1b\[[0-9;]*m)?\((raylet|gcs_server|dashboard|autoscaler|monitor|log_monitor)(, ip=[^)]*)?\)")


def one_line(rc: int, err: str, *words: str) -> str:
    """Exit 2 and exactly one line on stderr (Ray's own log lines aside), naming every word; no traceback."""
    lines = [ln for ln in err.splitlines() if ln.strip() and not RAY_LOG.match(ln)]
    assert rc == 2, (rc, err[-2000:])
    assert "Traceback" not in err and len(lines) == 1, err[-2000:]
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def test_one_line_sets_aside_rays_own_lines_but_not_a_second_line_of_ours():
    """What a CI run printed on a machine whose disk was over 95% full: Ray's driver warning and a raylet's
    warning forwarded to the driver beside our one line. Those are Ray's; a second line of ours is not."""
    ours = ("crawlproc extract: stopped, every file would fail the same way: OSError: [Errno 28] No space left on "
            "device: the output's disk is full: free space or give another --out, then run the same command")
    err = ("2026-12-07 17:49:40,582\tWARNING packaging.py:536 -- File /x/url_filterblacklistsv0_3_0.tar.gz is very "
           "large (17.33MiB).\n"
           "\x1b[33m(raylet)\x1b[0m [2026-12-07 17:49:43,285 E 25765 25780] (raylet) file_system_monitor.cc:116: "
           "/tmp/ray/session_x is over 95% full, available space: 10.5546 GB; capacity: 251.972 GB.\n"
           "(raylet, ip=10.0.0.2) [2026-12-07 17:49:44,001 E 1 2] (raylet) file_system_monitor.cc:116: full\n"
           + ours + "\n")
    assert one_line(2, err, "disk is full") == ours
    with pytest.raises(AssertionError):
        one_line(2, err + "(extract_unit pid=123) something of ours\n")
    with pytest.raises(AssertionError):
        one_line(2, err + "a second line\n")


@pytest.fixture
def warc(tmp_path) -> Path:
    arts = articles()
    p = tmp_path / "in" / "one.warc.gz"
    write_warc(p, [(f"https://example.com/{i}", a["text"]) for i, a in enumerate(arts[:5])])
    return p


@pytest.fixture
def tokens(tmp_path) -> Path:
    t = tmp_path / "tokset" / "tokens" / "t"
    write_token_set(t, {"train": [[1, 2, 3] * 400] * 20, "val": [[4, 5] * 300] * 3}, vocab_size=300, eot_id=299)
    return t


# --------------------------------------------------------------------------------------------- object stores


def store_env(endpoint: str) -> dict:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET}


def _commands(uri: str, warc: Path, tokens: Path, local: Path) -> dict[str, list[str]]:
    return {
        "extract": ["extract", str(warc), "--out", uri, "--quiet"],
        "status": ["status", "--out", uri],
        "report": ["report", "--out", uri],
        "explain": ["explain", "--out", uri, "https://example.com/0"],
        "tokenize": ["tokenize", "--out", uri, "--quiet"],
        "dedup": ["dedup", "--out", uri, "--snapshot", "S"],
        "decontaminate": ["decontaminate", "--out", uri, "--snapshot", "S"],
        "mix": ["mix", "--out", uri, "--source", f"{tokens}:all", "--quiet"],
        "export": ["export", "--tokens", f"{uri}/tokens/t", "--format", "llmc", "--out", str(local / "exp")],
        "train": ["train", "--tokens", str(tokens), "--out", f"{uri}/run", "--max-steps", "1"],
        "run": ["run", "--snapshot", "CC-MAIN-2024-10", "--out", uri, "--base-url", "http://127.0.0.1:9"],
        "classifier train": ["classifier", "train", "--positives", str(warc), "--negatives", str(warc),
                             "--out", f"{uri}/model"],
    }


COMMANDS = list(_commands("s3://x", Path("w"), Path("t"), Path("l")))


@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_bucket_is_one_line_naming_uri_endpoint_and_credentials(s3_server, warc, tokens, tmp_path, command):
    uri = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/out"
    rc, _, err, took = cli(*_commands(uri, warc, tokens, tmp_path)[command], env=store_env(s3_server.endpoint))
    line = one_line(rc, err, uri.split("/")[2], "does not exist", s3_server.endpoint, "AWS_ENDPOINT_URL",
                    "AWS_ACCESS_KEY_ID")
    assert SECRET not in line and "AKIDEXAMPLE" not in line  # where the credentials come from, never their values
    assert took < BOUND_S, took


@pytest.mark.parametrize("command", ["extract", "status", "tokenize", "train"])
def test_an_endpoint_where_nothing_listens_is_one_line_within_seconds(warc, tokens, tmp_path, command):
    endpoint = f"http://127.0.0.1:{free_port()}"
    rc, _, err, took = cli(*_commands("s3://bucket/out", warc, tokens, tmp_path)[command], env=store_env(endpoint))
    one_line(rc, err, "s3://bucket/out", "does not answer", endpoint)
    assert took < BOUND_S, took


@contextlib.contextmanager
def silent_endpoint():
    """A TCP port that accepts connections (the kernel's backlog) and never answers a byte."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    try:
        yield f"http://127.0.0.1:{s.getsockname()[1]}"
    finally:
        s.close()


def test_an_endpoint_that_never_answers_is_one_line_within_the_bound(warc, tokens, tmp_path):
    with silent_endpoint() as endpoint:
        for command in ("status", "extract"):
            rc, _, err, took = cli(*_commands("s3://bucket/out", warc, tokens, tmp_path)[command],
                                   env=store_env(endpoint))
            one_line(rc, err, "does not answer", endpoint)
            assert took < BOUND_S, (command, took)


@pytest.fixture(scope="module")
def checking_server():
    """moto with its access control on (INITIAL_NO_AUTH_ACTION_COUNT=0): unknown credentials are refused."""
    port = free_port()
    proc = subprocess.Popen(moto_command(port), env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.mark.parametrize("command", ["extract", "status", "report", "mix"])
def test_refused_credentials_are_one_line_naming_where_they_came_from(checking_server, warc, tokens, tmp_path,
                                                                      command):
    rc, _, err, took = cli(*_commands("s3://bucket/out", warc, tokens, tmp_path)[command],
                           env=store_env(checking_server))
    line = one_line(rc, err, "s3://bucket/out", "credentials were refused", checking_server,
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment")
    assert SECRET not in line and "AKIDEXAMPLE" not in line
    assert took < BOUND_S, took


def test_a_profile_is_named_as_the_credentials_source(checking_server, tmp_path):
    creds = tmp_path / "credentials"
    creds.write_text(f"[ci]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = {SECRET}\n")
    env = {"AWS_ENDPOINT_URL": checking_server, "AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_PROFILE": "ci",
           "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    rc, _, err, _ = cli("status", "--out", "s3://bucket/out", env=env)
    line = one_line(rc, err, "profile 'ci' (AWS_PROFILE)", str(creds))
    assert SECRET not in line


def test_the_recipe_endpoint_is_named_as_the_endpoint_source(warc, tmp_path):
    endpoint = f"http://127.0.0.1:{free_port()}"
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[storage]\nendpoint_url = "{endpoint}"\n')
    rc, _, err, took = cli("extract", str(warc), "--out", "s3://bucket/out", "--recipe", str(recipe),
                           env={"AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
    one_line(rc, err, endpoint, "from [storage] endpoint_url")
    assert took < BOUND_S


def test_a_bucket_that_exists_passes_and_leaves_no_probe(s3_server, warc, tokens, tmp_path):
    from crawlproc.store.storage import Storage

    bucket = s3_server.bucket(f"ok-{uuid.uuid4().hex[:8]}")
    rc, out, err, _ = cli("mix", "--out", f"{bucket}/out", "--source", f"{tokens}:all", "--quiet",
                          env={"AWS_ENDPOINT_URL": s3_server.endpoint})
    assert rc == 0, err[-2000:]
    fs, path = Storage().resolve(bucket)
    everything = [i.path for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))]  # hidden ones too
    assert any(p.endswith("manifest.json") for p in everything)
    assert not [p for p in everything if "probe" in p]  # the write check took its probe back


# --------------------------------------------------------------------------------------------- local disks


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "4m", ro: bool = False, inodes: int | None = None):
    """A real tmpfs mounted at `path` (needs root: skipped elsewhere), unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if ro else "") + (f",nr_inodes={inodes}" if inodes else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root needed): {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path, leave: int = 0) -> None:
    """Fill the file system of `path` until `leave` bytes are free (a file system already full is filled)."""
    try:
        f = open(path / "filler", "wb")
    except OSError as e:
        if e.errno == errno.ENOSPC:
            return
        raise
    with f:
        while True:
            free = os.statvfs(path).f_bavail * os.statvfs(path).f_frsize
            if free <= leave:
                return
            try:
                f.write(b"\0" * min(1 << 20, max(4096, free - leave)))
                f.flush()
            except OSError:
                return


def test_out_that_is_a_file_is_refused_in_one_line(warc, tokens, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    for args in (["extract", str(warc), "--out", str(afile)], ["tokenize", "--out", str(afile)],
                 ["export", "--tokens", str(tokens), "--format", "llmc", "--out", str(afile)],
                 ["classifier", "train", "--positives", str(warc), "--negatives", str(warc), "--out", str(afile)],
                 ["extract", str(warc), "--out", str(afile / "below")]):
        rc, _, err, took = cli(*args)
        one_line(rc, err, str(afile), "is a file, not a folder")
        assert took < BOUND_S
    assert afile.read_text() == "not a folder"


def test_a_glob_in_a_buckets_name_is_one_line_naming_it(tmp_path):
    """The preflight checked the part of a remote glob before its first wildcard, cut at a '/': `s3://b*/x`
    gave `s3:/`, checked as a local path ("input .../s3: does not exist")."""
    rc, _, err, took = cli("extract", "s3://warcs-*/crawl/*.warc.gz", "--out", str(tmp_path / "out"))
    one_line(rc, err, "s3://warcs-*/crawl/*.warc.gz", "name the bucket in full")
    assert took < BOUND_S


def test_a_read_only_out_is_refused_before_any_work(warc, tokens, tmp_path):
    with tmpfs(tmp_path / "ro", ro=True) as ro:
        for args in (["extract", str(warc), "--out", str(ro / "out")],
                     ["export", "--tokens", str(tokens), "--format", "megatron", "--out", str(ro)],
                     ["train", "--tokens", str(tokens), "--out", str(ro / "run"), "--max-steps", "1"]):
            rc, _, err, took = cli(*args)
            one_line(rc, err, str(ro), "Read-only file system", "EROFS")
            assert took < BOUND_S


def test_a_full_out_is_refused_before_any_work(warc, tmp_path):
    with tmpfs(tmp_path / "full", size="2m") as full:
        fill(full)
        rc, _, err, took = cli("extract", str(warc), "--out", str(full / "out"))
        one_line(rc, err, str(full), "No space left on device")
        assert took < BOUND_S


def test_a_disk_that_fills_mid_run_stops_the_stage_at_once_with_one_line(ray_local, tmp_path):
    """The disk fills after the first file is done (the test fills it): the next files fail with ENOSPC, the
    stage stops at the first of them, the failure records cannot be written either and the cause still reaches
    the terminal, once, with exit 2; every committed file is whole."""
    arts = articles()
    inputs = tmp_path / "in"
    for f in range(24):
        write_warc(inputs / f"w{f:02d}.warc.gz", [(f"https://e.com/{f}/{i}", arts[(f * 7 + i) % len(arts)]["text"])
                                                  for i in range(6)], seed=f)
    with tmpfs(tmp_path / "disk", size="8m") as disk:
        out = disk / "out"
        e = {**os.environ, "PYTHONPATH": str(REPO), "RAY_DEDUP_LOGS": "0"}
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "extract", f"{inputs}/*.warc.gz", "--out",
                                 str(out), "--quiet", "--address", ray_local.get_runtime_context().gcs_address],
                                cwd=REPO, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        done = out / "local" / "_done"
        deadline = time.monotonic() + 120
        while proc.poll() is None and not (done.is_dir() and any(done.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.005)
        fill(disk)
        filled = time.monotonic()
        stdout, err = proc.communicate(timeout=120)
        took = time.monotonic() - filled
        one_line(proc.returncode, err, "No space left on device", "disk is full")
        assert took < BOUND_S, took
        markers = sorted(done.glob("*.json"))
        assert 1 <= len(markers) < 24  # stopped, not every file tried and failed
        for m in markers:  # what is committed is whole: its documents, and its counts in the marker
            stem = m.name.split(".")[0]
            stats = json.loads(m.read_text())["stats"]
            assert stats["stem"] == stem and stats["complete"]
            assert pq.read_table(out / "local" / "docs" / f"{stem}.parquet").num_rows == stats["kept"]
        assert not [p for p in out.rglob(".*.tmp")]  # no temporary left


def test_a_lock_that_is_a_folder_is_one_line(warc, tmp_path):
    (tmp_path / "out" / "local" / "_lock").mkdir(parents=True)
    rc, _, err, took = cli("extract", str(warc), "--out", str(tmp_path / "out"))
    one_line(rc, err, "_lock", "is a folder")
    assert took < BOUND_S


# --------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["tokens", "train", "minicc", "Tokens", "report.html", "_index"])
def test_a_snapshot_may_not_take_a_name_of_the_output_folder(warc, tmp_path, name):
    rc, _, err, _ = cli("extract", str(warc), "--out", str(tmp_path / "out"), "--dump", name)
    one_line(rc, err, repr(name))
    assert not (tmp_path / "out" / name).exists()


def test_dedup_and_classify_refuse_a_reserved_snapshot_too(tmp_path):
    for args in (["dedup", "--out", str(tmp_path), "--snapshot", "tokens"],
                 ["decontaminate", "--out", str(tmp_path), "--snapshot", "tokens"],
                 ["classifier", "run", "--out", str(tmp_path), "--snapshot", "train", "--recipe", "demo"]):
        rc, _, err, _ = cli(*args)
        assert rc == 2 and "Traceback" not in err, err


def test_status_lists_every_folder_that_holds_documents(tmp_path):
    """Documents written under a reserved name by an older version are shown, not hidden."""
    from crawlproc.schema import docs_table

    for name in ("tokens", "CC-MAIN-2024-10"):
        (tmp_path / name / "docs").mkdir(parents=True)
        pq.write_table(docs_table([{"text": "x", "id": "a"}]), tmp_path / name / "docs" / "f.parquet")
        (tmp_path / name / "_done").mkdir()
        (tmp_path / name / "_done" / "f.0123456789abcdef.json").write_text(json.dumps({"stats": {"kept": 1}}))
    (tmp_path / "tokens" / "bpe").mkdir()  # a token set beside them
    rc, out, err, _ = cli("status", "--out", str(tmp_path), "--json")
    assert rc == 0, err
    assert sorted(r["snapshot"] for r in json.loads(out)) == ["CC-MAIN-2024-10", "tokens"]


# --------------------------------------------------------------------------------------------- inputs


def test_a_named_pipe_given_as_a_warc_is_refused_at_once(tmp_path):
    fifo = tmp_path / "pipe.warc.gz"
    os.mkfifo(fifo)
    rc, _, err, took = cli("extract", str(fifo), "--out", str(tmp_path / "out"), timeout=60)
    one_line(rc, err, str(fifo), "named pipe (FIFO)")
    rc, _, err, _ = cli("extract", f"{tmp_path}/*.warc.gz", "--out", str(tmp_path / "out"), timeout=60)
    one_line(rc, err, "named pipe (FIFO)")
    assert took < BOUND_S


def test_a_device_and_a_socket_are_refused(tmp_path):
    sock_path = tmp_path / "s.warc.gz"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock_path))
    try:
        for path, kind in (("/dev/zero", "a device"), (str(sock_path), "a socket")):
            rc, _, err, _ = cli("extract", path, "--out", str(tmp_path / "out"), timeout=60)
            one_line(rc, err, path, kind)
    finally:
        s.close()


def test_a_folder_or_pipe_where_a_file_is_wanted_is_refused(tokens, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = [
        (["mix", "--out", str(tmp_path / "o"), "--mix", str(folder)], "is a folder"),
        (["mix", "--out", str(tmp_path / "o"), "--mix", str(fifo)], "named pipe"),
        (["tokenize", "--out", str(tmp_path / "o"), "--tokenizer", str(fifo)], "named pipe"),
        (["export", "--tokens", str(tokens / "manifest.json"), "--format", "llmc", "--out", str(tmp_path / "e")],
         "not a folder"),
        (["classifier", "train", "--positives", str(fifo), "--negatives", str(fifo), "--out", str(tmp_path / "m")],
         "named pipe"),
    ]
    for args, words in cases:
        rc, _, err, took = cli(*args, timeout=60)
        one_line(rc, err, words)
        assert took < BOUND_S


# --------------------------------------------------------------------------------------------- Ray


def test_a_task_no_node_can_place_is_refused_naming_the_key(ray_local, warc, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("[ray]\nnum_cpus_per_task = 1e9\n")
    rc, _, err, took = cli("extract", str(warc), "--out", str(tmp_path / "out"), "--recipe", str(recipe),
                           "--address", ray_local.get_runtime_context().gcs_address, timeout=120)
    one_line(rc, err, "ray.num_cpus_per_task", "1e+09 CPU", "no node")
    assert took < 60, took
    assert not list((tmp_path / "out").rglob("docs/*.parquet"))


@pytest.mark.parametrize("case", ["too_deep", "full", "read_only", "no_inodes"])
def test_a_local_ray_that_cannot_start_is_one_line_naming_its_temp_folder(warc, tmp_path, case):
    if case == "too_deep":
        ray_tmp = tmp_path / ("d" * 90)
        ray_tmp.mkdir()
        ctx = contextlib.nullcontext(ray_tmp)
    else:
        ray_tmp = Path(f"/tmp/rt-{uuid.uuid4().hex[:6]}")  # Ray's sockets live there: a short path
        ctx = tmpfs(ray_tmp, size="64m" if case == "no_inodes" else "4m", ro=case == "read_only",
                    inodes=16 if case == "no_inodes" else None)
    try:
        with ctx as ray_tmp:
            if case == "full":
                fill(ray_tmp)
            rc, _, err, took = cli("extract", str(warc), "--out", str(tmp_path / "out"), "--quiet",
                                   env={"RAY_TMPDIR": str(ray_tmp)}, timeout=120)
            words = {"too_deep": "too long", "full": "free", "read_only": "read-only", "no_inodes": "inodes"}[case]
            one_line(rc, err, "cannot start a local Ray", str(ray_tmp), words)
            assert took < BOUND_S, took
    finally:
        if case != "too_deep" and ray_tmp.is_dir() and not os.path.ismount(ray_tmp):
            subprocess.run(["rm", "-rf", str(ray_tmp)], check=False)


# --------------------------------------------------------------------------------------------- sizes


def test_mix_sizes_that_would_flood_are_refused(tokens, tmp_path):
    rc, _, err, took = cli("mix", "--out", str(tmp_path / "o"), "--source", f"{tokens}:all", "--bucket-tokens", "1",
                           "--shard-tokens", "1")
    one_line(rc, err, "floor")
    rc, _, err, _ = cli("mix", "--out", str(tmp_path / "o"), "--source", f"{tokens}:all", "--shard-tokens", "10")
    one_line(rc, err, "shard tokens", "floor")
    assert not (tmp_path / "o" / "tokens").exists()


def test_a_val_fraction_that_empties_the_train_split_is_refused(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("[tokenize]\nval_fraction = 1.0\n")
    rc, _, err, _ = cli("tokenize", "--out", str(tmp_path), "--recipe", str(recipe))
    one_line(rc, err, "tokenize.val_fraction", "train split empty")



# --------------------------------------------------------------------------------------------- token sets


def damaged(tokens: Path, how: str) -> Path:
    """A token set damaged the way a hand, a sync tool or a half-copied bucket damages one."""
    manifest = json.loads((tokens / "manifest.json").read_text())
    if how == "deleted_shard":
        (tokens / manifest["shards"][0]["file"]).unlink()
    elif how == "no_counts":
        for s in manifest["shards"]:
            s.pop("tokens")
    elif how == "small_vocabulary":  # the shards hold ids up to 5; the manifest declares 4 ids
        manifest["tokenizer"]["vocab_size"], manifest["tokenizer"]["eot_id"] = 4, 3
    elif how == "wrong_documents":
        manifest["shards"][0]["documents"] += 7
    (tokens / "manifest.json").write_text(json.dumps(manifest))
    return tokens


DAMAGE = {"deleted_shard": "do not exist", "no_counts": "tokens must be a count",
          "small_vocabulary": "outside the vocabulary", "wrong_documents": "documents where"}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_token_set_is_one_line_in_export_mix_and_train(tokens, tmp_path, how):
    damaged(tokens, how)
    for args in (["export", "--tokens", str(tokens), "--format", "megatron", "--out", str(tmp_path / "exp")],
                 ["export", "--tokens", str(tokens), "--format", "llmc", "--out", str(tmp_path / "exp")],
                 ["mix", "--out", str(tmp_path / "mixed"), "--source", f"{tokens}:all"],
                 ["train", "--tokens", str(tokens), "--out", str(tmp_path / "run"), "--max-steps", "1",
                  "--preset", "tiny", "--device", "cpu", "--no-export", "--sample-tokens", "0"]):
        rc, _, err, took = cli(*args, timeout=120)
        one_line(rc, err, str(tokens), DAMAGE[how])
        assert took < 60, (args[0], took)
    assert not [p for p in (tmp_path / "exp").rglob("*") if p.is_file()]  # nothing of the failed export
    assert not (tmp_path / "mixed" / "tokens").exists() or not list((tmp_path / "mixed" / "tokens").rglob("*.parquet"))


def test_tokens_show_names_a_missing_shard_too(tokens, tmp_path):
    tok = tmp_path / "tok.json"
    from tokenizer import train_bpe
    from tokenizer.formats import tokenizer_files

    t = train_bpe(["some text to learn a few merges from, some text again"] * 20, vocab_size=300)
    tok.write_bytes(tokenizer_files(t)["tokenizer.json"])
    out = tmp_path / "out"
    write_token_set(out / "tokens" / "bpe", {"train": [[1, 2, 3] * 10] * 4}, vocab_size=t.vocab_size,
                    eot_id=t.vocab_size - 1, tokenizer_file=str(tok))
    damaged(out / "tokens" / "bpe", "deleted_shard")
    rc, _, err, _ = cli("tokens", "show", "hello", "--out", str(out), "--name", "bpe")
    one_line(rc, err, "do not exist")
