"""Data-parallel training on CPU (gloo): torchrun with 2 processes and Ray Train with 2 workers both match
one process with the same global batch; the `crawlproc train` command drives all three."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_trainer_data import build_tokens

from pipelines.cli import main as crawlproc

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["--preset", "tiny", "--max-steps", "4", "--eval-interval", "2", "--eval-iters", "2", "--lr", "3e-3",
          "--device", "cpu", "--no-export", "--sample-tokens", "0", "--log-interval", "1", "--eval-tasks", "none",
          "--eval-refs", "none"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokens(tmp_path_factory) -> Path:
    return build_tokens(tmp_path_factory.mktemp("tokens") / "articles")


@pytest.fixture(scope="module")
def single(tokens, tmp_path_factory) -> Path:
    """The reference: one process, 4 sequences per step, through `crawlproc train`."""
    run = tmp_path_factory.mktemp("single")
    assert crawlproc(["train", "--tokens", str(tokens), "--out", str(run), "--batch-size", "4", *COMMON]) == 0
    return run


def losses(run: Path) -> tuple[list[float], list[float]]:
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["train_loss"] for r in recs if "train_loss" in r], [r["val_loss"] for r in recs if "val_loss" in r]


def assert_same_run(run: Path, reference: Path) -> None:
    (train, val), (ref_train, ref_val) = losses(run), losses(reference)
    assert len(train) == len(ref_train) == 4 and len(val) == len(ref_val) == 2
    # the same global batches and averaged gradients: equal up to float summation order
    assert train == pytest.approx(ref_train, rel=1e-4)
    assert val == pytest.approx(ref_val, rel=1e-4)
    assert json.loads((run / "config.json").read_text())["world_size"] == 2


def test_cli_reports_bad_input_clearly(tmp_path, capsys):
    assert crawlproc(["train", "--tokens", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert "manifest.json" in capsys.readouterr().err


def torchrun(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "trainer.train", *args]
    proc = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_torchrun_two_processes_match_one(tokens, single, tmp_path):
    run = tmp_path / "ddp"
    proc = torchrun(["--tokens", str(tokens), "--out", str(run), "--batch-size", "2", *COMMON])
    assert "tok/s" in proc.stdout and "loss" in proc.stdout
    assert_same_run(run, single)


def test_ddp_resume_with_dropout_is_bit_exact(tokens, tmp_path):
    """Each rank draws its own dropout masks and saves and restores its own RNG state (issue 11, item 9):
    restoring rank 0's state on every rank would give rank 1 rank 0's masks after the resume."""
    args = ["--tokens", str(tokens), "--batch-size", "2", "--preset", "tiny", "--lr", "3e-3", "--device", "cpu",
            "--no-export", "--sample-tokens", "0", "--eval-interval", "2", "--eval-iters", "1", "--dropout", "0.2",
            "--eval-tasks", "none", "--eval-refs", "none",
            "--decay-steps", "4", "--warmup-steps", "1", "--log-interval", "1"]
    torchrun([*args, "--out", str(tmp_path / "whole"), "--max-steps", "4"])
    torchrun([*args, "--out", str(tmp_path / "split"), "--max-steps", "2"])
    torchrun([*args, "--out", str(tmp_path / "split"), "--max-steps", "4", "--resume"])
    (whole, _), (split, _) = losses(tmp_path / "whole"), losses(tmp_path / "split")
    assert len(split) == 4 and split == whole  # exactly equal floats, not approximately


@pytest.mark.slow  # ~40 s, nearly all of it Ray Train starting its controller and two worker processes
def test_ray_train_two_workers_match_one(ray_local, tokens, single, tmp_path):
    run = tmp_path / "ray"
    code = crawlproc(["train", "--tokens", str(tokens), "--out", str(run), "--batch-size", "2", *COMMON,
                      "--ray", "--num-workers", "2", "--cpus-per-worker", "0.5"])
    assert code == 0
    assert_same_run(run, single)
    assert (run / "ckpt" / "latest.json").is_file()


def test_trains_on_the_tokenize_stage_output(ray_local, tmp_path):
    """End to end with the real tokenize stage: final/ documents -> token shards -> train -> samples, hf/."""
    stage = pytest.importorskip("pipelines.stages.tokenize")
    import pyarrow.parquet as pq

    from crawlproc.recipe import Recipe, TokenizeConfig
    from crawlproc.schema import docs_table

    articles = json.loads((Path(__file__).parent / "data" / "trainer" / "articles.json").read_text())
    rows = [{"text": a["articleBody"], "id": f"<urn:uuid:{i:08d}>", "dump": "SNAP", "language": "en"}
            for i, a in enumerate(articles.values())]
    final = tmp_path / "SNAP" / "final"
    final.mkdir(parents=True)
    pq.write_table(docs_table(rows), final / "a.parquet")
    (tmp_path / "SNAP" / "dedup").mkdir()
    (tmp_path / "SNAP" / "dedup" / "_done.json").write_text(f'{{"documents": {len(rows)}}}')  # as dedup ends
    cfg = TokenizeConfig(name="bpe", vocab_size=400, sample_bytes=1_000_000, shard_tokens=20_000,
                         val_fraction=0.2)
    stage.run_tokenize(str(tmp_path), Recipe(tokenize=cfg), ["SNAP"], progress=False, log=lambda *_: None)
    tokens, run = tmp_path / "tokens" / "bpe", tmp_path / "train" / "run"
    assert crawlproc(["train", "--tokens", str(tokens), "--out", str(run), "--preset", "tiny", "--max-steps", "3",
                      "--eval-interval", "3", "--eval-iters", "1", "--batch-size", "2", "--device", "cpu",
                      "--sample-tokens", "8", "--prompt", "The", "--eval-tasks", "none", "--eval-refs", "none",
                      "--log-interval", "1"]) == 0
    train, val = losses(run)
    assert len(train) == 3 and len(val) == 1
    sample = json.loads((run / "samples.jsonl").read_text().splitlines()[0])
    assert sample["step"] == 3 and sample["prompt"] == "The" and isinstance(sample["text"], str)
    assert (run / "hf" / "model.safetensors").is_file() and (run / "hf" / "tokenizer.json").is_file()
    # the exported tokenizer encodes like the stage's own
    from transformers import AutoTokenizer

    from tokenizer import load_tokenizer

    text = "The court ruled on Tuesday, 3 May: “don’t” — 42%."
    assert AutoTokenizer.from_pretrained(run / "hf")(text)["input_ids"] == load_tokenizer(tokens).encode(text)


def test_cli_takes_settings_from_the_recipe_train_table_flags_win(tokens, tmp_path, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[train]\npreset = "tiny"\nmax_steps = 3\nbatch_size = 2\nlr = 2e-3\neval_interval = 3\n'
                      'eval_iters = 1\nsample_tokens = 0\nexport = false\ndevice = "cpu"\neval_tasks = []\n'
                      'eval_refs = []\nlog_interval = 1\n')
    run = tmp_path / "run"
    assert crawlproc(["train", "--tokens", str(tokens), "--out", str(run), "--recipe", str(recipe),
                      "--max-steps", "2"]) == 0
    config = json.loads((run / "config.json").read_text())["train"]
    assert (config["max_steps"], config["batch_size"], config["lr"], config["export"]) == (2, 2, 2e-3, False)
    assert len(losses(run)[0]) == 2
    recipe.write_text("[train]\nbatch_size = 0\n")
    assert crawlproc(["train", "--tokens", str(tokens), "--out", str(tmp_path / "r2"), "--recipe", str(recipe)]) == 2
    assert "train.batch_size" in capsys.readouterr().err
