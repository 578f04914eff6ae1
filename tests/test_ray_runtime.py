"""Where a command's Ray comes from, against real clusters started with `ray start --head` in their own temp dir.

Without --address a command starts its own local Ray, even when Ray's temp dir names a live cluster or one
whose head was killed. With --address it joins a token-auth cluster when the token is where Ray documents it,
and a failure to connect is one message that names the address and what to check, with exit status 2.

Every cluster here runs in its own RAY_TMPDIR and HOME (so no real ~/.ray/auth_token is read or written), on
127.0.0.1, and is stopped through its own process group: `ray stop` would stop every Ray on the machine,
this test session's included.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from raycluster import Head, accepts, address_file, clean_env, free_port, write_token

REPO = Path(__file__).resolve().parents[1]
WARC = REPO / "tests" / "data" / "warc" / "dolma_sample-0000.warc.gz"


def crawlproc(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def extract(out: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    return crawlproc(["extract", str(WARC), "--out", str(out), "--quiet", *extra], env)


def kept_documents(out: Path) -> int:
    return pq.read_table(out / "local" / "docs" / f"{WARC.name.removesuffix('.warc.gz')}.parquet").num_rows


# --- no --address: a private local Ray, whatever Ray's temp dir says ---------------------------------------------

@pytest.mark.slow  # a head and a command that starts its own Ray: ~30 s on 2 cores
def test_without_address_a_live_cluster_on_the_machine_is_left_alone(short_tmp, head_factory, tmp_path):
    home, ray_tmp = tmp_path / "home", short_tmp()
    write_token(home, "live-head-token")  # as after any local ray.init(): the head runs with token auth
    env = clean_env(home, ray_tmp)
    head = head_factory(env, tmp_path / "head.log")
    proc = extract(tmp_path / "out", env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert kept_documents(tmp_path / "out") > 0
    assert accepts(head.port)  # the running cluster was neither used nor disturbed


@pytest.mark.slow
def test_without_address_a_stale_address_file_is_ignored(short_tmp, head_factory, tmp_path):
    ray_tmp = short_tmp()
    env = clean_env(tmp_path / "home", ray_tmp)
    head = head_factory(env, tmp_path / "head.log")
    head.stop(signal.SIGKILL)  # the head dies without cleaning up: Ray's address file still names it
    assert address_file(ray_tmp).read_text().strip().endswith(f":{head.port}")
    assert not accepts(head.port)
    proc = extract(tmp_path / "out", env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert kept_documents(tmp_path / "out") > 0


# --- --address: a token-auth cluster ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def token_head(tmp_path_factory):
    """One cluster for this module's --address tests, started with RAY_AUTH_MODE=token, its token in the head's
    own ~/.ray/auth_token."""
    home = tmp_path_factory.mktemp("head-home")
    ray_tmp = Path(tempfile.mkdtemp(prefix="cpr-", dir="/tmp"))
    token = "0123456789abcdef" * 4
    write_token(home, token)
    head = Head(clean_env(home, ray_tmp, RAY_AUTH_MODE="token"), home / "head.log")
    yield head, token
    head.stop()
    shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.slow
def test_extract_joins_a_token_auth_cluster_with_the_token_in_the_default_file(short_tmp, token_head, tmp_path):
    """The client has the token where Ray puts it and nothing else set: connecting just works."""
    head, token = token_head
    home = tmp_path / "client-home"
    write_token(home, token)
    proc = extract(tmp_path / "out", clean_env(home, short_tmp()), "--address", head.address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert kept_documents(tmp_path / "out") > 0


CLIENT = """
import sys, ray
from pipelines.engine.ray_runtime import init_ray_or_exit
init_ray_or_exit(sys.argv[1])
from crawlproc.schema import docs_table  # our code, shipped to the cluster's workers
print("task:", ray.get(ray.remote(lambda: docs_table([{"text": "x", "id": "a"}]).num_rows).remote()))
"""


def client(address: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # Ray retries a refused connection for 20 s by default; 3 tries are enough to see it fail here
    env = {**env, "RAY_gcs_server_port_wait_time_s": "3"}
    return subprocess.run([sys.executable, "-c", CLIENT, address], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=180)


@pytest.mark.parametrize("where", ["RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"])
def test_a_client_with_the_token_in_an_environment_variable_runs_a_task(short_tmp, token_head, tmp_path, where):
    head, token = token_head
    token_file = tmp_path / "secret" / "token"
    token_file.parent.mkdir()
    token_file.write_text(token)
    extra = {"RAY_AUTH_TOKEN": token} if where == "RAY_AUTH_TOKEN" else {"RAY_AUTH_TOKEN_PATH": str(token_file)}
    proc = client(head.address, clean_env(tmp_path / "client-home", short_tmp(), **extra))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "task: 1" in proc.stdout


def assert_clear_failure(proc: subprocess.CompletedProcess, address: str, *phrases: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"cannot connect to the Ray cluster at {address}" in proc.stderr
    for what in ("address:", "auth mode:", "token:", "versions:", *phrases):
        assert what in proc.stderr, (what, proc.stderr[-3000:])


def test_a_wrong_token_is_one_clear_message(short_tmp, token_head, tmp_path):
    head, _ = token_head
    home = tmp_path / "client-home"
    write_token(home, "not-the-cluster-token")
    proc = client(head.address, clean_env(home, short_tmp()))
    assert_clear_failure(proc, head.address, "rejected this client's authentication token",
                         str(home / ".ray" / "auth_token"))


def test_no_token_is_one_clear_message(short_tmp, token_head, tmp_path):
    head, _ = token_head
    proc = client(head.address, clean_env(tmp_path / "client-home", short_tmp()))
    assert_clear_failure(proc, head.address, "requires an authentication token", "found no token")


def test_token_mode_without_a_token_is_one_clear_message(short_tmp, token_head, tmp_path):
    head, _ = token_head
    proc = client(head.address, clean_env(tmp_path / "client-home", short_tmp(), RAY_AUTH_MODE="token"))
    assert_clear_failure(proc, head.address, "no token was found", "RAY_AUTH_MODE=token")


# --- --address where nothing listens ------------------------------------------------------------------------------

def test_an_address_where_nothing_listens_fails_at_once_with_the_message(short_tmp, tmp_path):
    """Ray itself would retry such an address for minutes; the probe answers before Ray is asked."""
    address = f"127.0.0.1:{free_port()}"
    proc = client(address, clean_env(tmp_path / "home", short_tmp()))
    assert_clear_failure(proc, address, "nothing accepts connections there")


def test_train_on_an_unreachable_cluster_exits_2_with_the_message(short_tmp, tmp_path):
    address = f"127.0.0.1:{free_port()}"
    env = clean_env(tmp_path / "home", short_tmp())
    proc = crawlproc(["train", "--tokens", str(tmp_path / "tokens"), "--out", str(tmp_path / "run"), "--ray",
                      "--address", address], env, timeout=120)
    assert_clear_failure(proc, address, "nothing accepts connections there")


def test_extract_on_an_unreachable_cluster_exits_2_with_the_message(short_tmp, tmp_path):
    address = f"ray://127.0.0.1:{free_port()}"
    proc = extract(tmp_path / "out", clean_env(tmp_path / "home", short_tmp()), "--address", address)
    assert_clear_failure(proc, address, "nothing accepts connections there")
