"""Every stage removes the temporaries of dead processes when it starts (issue 25).

Each command is killed for real in the middle of a write -- SIGKILL to every process of its session (driver,
local Ray, the Ray worker writing) the moment inotify reports a temporary file -- and the kill must land: the
temporary is still there afterwards. Then the same command runs again, and the folders it writes (and the
system temp folder it uses) hold exactly the files an uninterrupted run leaves: no temporary, nothing more.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from killing import files_under, is_temporary, kill_mid_write
from tokenizer.tokenset import write_token_set

REPO = Path(__file__).resolve().parents[1]
ATTEMPTS = 6  # a command may finish before a temporary shows up; each attempt starts clean

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="inotify and /proc: Linux only")


@pytest.fixture
def env(tmp_path):
    """Each command's own system temp folder (to see its scratch folders) and Ray temp folder (short: Ray's
    sockets); no cluster address, so a killed command takes its own local Ray down with it."""
    tmp = tmp_path / "systmp"
    tmp.mkdir()
    ray_tmp = Path(f"/tmp/rk-{uuid.uuid4().hex[:6]}")
    ray_tmp.mkdir()
    e = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    e.update(PYTHONPATH=str(REPO), RAY_DEDUP_LOGS="0", TMPDIR=str(tmp), RAY_TMPDIR=str(ray_tmp))
    yield e
    subprocess.run(["rm", "-rf", str(ray_tmp)], check=False)


def cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args]


def run_ok(args: list[str], env: dict) -> None:
    r = subprocess.run(cli(args), cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


def scratch(env: dict) -> set[str]:
    return files_under(Path(env["TMPDIR"])) | {p.name for p in Path(env["TMPDIR"]).iterdir() if is_temporary(p.name)}


def check_kill_and_rerun(make_args, env: dict, tmp_path: Path, wanted=lambda p: "-probe." not in p.name,
                         ray=None) -> list[Path]:
    """make_args(folder) -> the command's args writing into `folder`. Uninterrupted run, then killed runs
    until one is killed mid-write, then the rerun; compares the files left. `ray`: the session's Ray, which
    the uninterrupted run and the rerun join (a killed run starts its own, to take it down with it)."""
    join = ["--address", ray.get_runtime_context().gcs_address] if ray is not None else []
    ref = tmp_path / "ref"
    run_ok(make_args(ref) + join, env)
    expected = files_under(ref)
    assert expected and not [f for f in expected if is_temporary(Path(f).name)]
    assert not scratch(env)
    for attempt in range(ATTEMPTS):
        out = tmp_path / f"killed{attempt}"
        left = kill_mid_write(cli(make_args(out)), env, [out, Path(env["TMPDIR"])], REPO, wanted=wanted)
        if left:
            break
    assert left, "no kill landed mid-write"  # the kill landed: its temporaries outlived the process
    run_ok(make_args(out) + join, env)
    got = files_under(out)
    assert not [f for f in got if is_temporary(Path(f).name)], got
    assert got == expected, (sorted(got - expected), sorted(expected - got))
    assert not scratch(env), scratch(env)  # the killed run's scratch folders are gone too
    return left


def token_set(path: Path, docs: int = 600, length: int = 3000, vocab: int = 4000) -> Path:
    rng = np.random.default_rng(0)
    splits = {"train": [rng.integers(0, vocab - 1, length).tolist() for _ in range(docs)],
              "val": [rng.integers(0, vocab - 1, length).tolist() for _ in range(docs // 20)]}
    write_token_set(path, splits, vocab_size=vocab, eot_id=vocab - 1, docs_per_shard=50, name=path.name)
    return path


@pytest.mark.slow
def test_export_killed_mid_write(env, tmp_path):
    tokens = token_set(tmp_path / "tokens" / "src")
    left = check_kill_and_rerun(lambda out: ["export", "--tokens", str(tokens), "--format", "megatron",
                                             "--out", str(out), "--quiet"], env, tmp_path,
                                wanted=lambda p: ".bin." in p.name)
    assert any(".bin." in p.name for p in left)


@pytest.mark.slow
def test_mix_killed_mid_write(env, tmp_path, ray_local):
    a, b = token_set(tmp_path / "a" / "tokens" / "a", docs=300), token_set(tmp_path / "b" / "tokens" / "b", docs=300)
    check_kill_and_rerun(lambda out: ["mix", "--out", str(out), "--name", "m", "--source", f"{a}:0.5",
                                      "--source", f"{b}:0.5", "--tokens", "600k", "--bucket-tokens", "100k",
                                      "--quiet"], env, tmp_path, ray=ray_local,
                         wanted=lambda p: ".parquet." in p.name and "_work" not in p.parts)  # an output shard


def _snapshot(out: Path, data_dir: Path, files: int = 6) -> None:
    from crawlproc.schema import docs_table

    lines = (data_dir / "tokenizer" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in lines]
    per = max(1, len(texts) // files)
    for f in range(files):
        rows = [{"text": t, "id": f"<urn:uuid:{f:04d}-{i:06d}>", "dump": "S", "language": "en"}
                for i, t in enumerate(texts[f * per:(f + 1) * per])]
        path = out / "S" / "final" / f"part-{f:03d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(docs_table(rows), path)
    (out / "S" / "dedup").mkdir()
    (out / "S" / "dedup" / "_done.json").write_text(json.dumps({"snapshot": "S", "inputs": {}}))


@pytest.mark.slow
def test_tokenize_killed_mid_write(env, tmp_path, data_dir, ray_local):
    recipe = tmp_path / "r.toml"
    recipe.write_text("[tokenize]\nvocab_size = 600\nshard_tokens = 2000\nval_fraction = 0.1\n")

    def args(out: Path) -> list[str]:
        if not (out / "S").exists():
            _snapshot(out, data_dir)
        return ["tokenize", "--out", str(out), "--recipe", str(recipe), "--quiet"]

    check_kill_and_rerun(args, env, tmp_path, wanted=lambda p: ".parquet." in p.name, ray=ray_local)


@pytest.mark.slow
def test_classify_killed_mid_write(env, tmp_path, data_dir, ray_local):
    from classify_data import pages
    from crawlproc.classify.train import TrainParams, train_classifier
    from crawlproc.schema import docs_table

    ps = pages(data_dir)
    model = tmp_path / "model"
    train_classifier([p.article for p in ps], [n for p in ps for n in p.negatives], [], str(model),
                     TrainParams(dim=16, bucket=20_000), log=lambda _m: None)
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[classifiers.q]\nkind = "fasttext"\nmodel = "{model / "model.bin"}"\nlabel = "hq"\n'
                      "threshold = 0.5\n")
    rows = [{"text": t, "id": f"<urn:uuid:{i:08d}>", "dump": "S"}
            for i, t in enumerate([p.article for p in ps] + [n for p in ps for n in p.negatives])]

    def args(out: Path) -> list[str]:
        if not (out / "S").exists():
            (out / "S" / "final").mkdir(parents=True)
            for i in range(8):
                pq.write_table(docs_table(rows[i::8] * 20), out / "S" / "final" / f"part-{i}.parquet")
            (out / "S" / "dedup").mkdir()
            (out / "S" / "dedup" / "_done.json").write_text(json.dumps({"snapshot": "S", "inputs": {}}))
        return ["classifier", "run", "--out", str(out), "--snapshot", "S", "--recipe", str(recipe), "--quiet"]

    check_kill_and_rerun(args, env, tmp_path, wanted=lambda p: ".parquet." in p.name, ray=ray_local)


@pytest.mark.slow
def test_train_checkpoint_killed_mid_write(env, tmp_path):
    tokens = token_set(tmp_path / "tokens" / "src", docs=200, length=600, vocab=300)
    left = check_kill_and_rerun(lambda out: ["train", "--tokens", str(tokens), "--out", str(out), "--preset", "tiny",
                                             "--max-steps", "6", "--batch-size", "2", "--block-size", "64",
                                             "--eval-interval", "2", "--eval-iters", "1", "--sample-tokens", "0",
                                             "--no-export", "--resume", "--device", "cpu"],
                                env, tmp_path, wanted=lambda p: ".pt." in p.name)
    assert any(".pt." in p.name for p in left)


@pytest.mark.slow
def test_classifier_train_killed_mid_write(env, tmp_path, data_dir):
    from classify_data import pages, write_jsonl

    ps = pages(data_dir)
    pos = write_jsonl(tmp_path / "pos.jsonl", [p.article for p in ps] * 2)
    neg = write_jsonl(tmp_path / "neg.jsonl", [n for p in ps for n in p.negatives] * 2)
    left = check_kill_and_rerun(lambda out: ["classifier", "train", "--positives", str(pos), "--negatives", str(neg),
                                             "--out", str(out), "--dim", "16", "--bucket", "20000", "--quantize"],
                                env, tmp_path, wanted=lambda p: p.name.startswith(".crawlproc-ft."))
    assert left  # its scratch folder (with the training file being written), removed by the rerun
