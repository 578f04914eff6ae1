"""The trainer on object storage (a real S3-compatible server on 127.0.0.1): shards streamed with read-ahead
give the batches of a local read, also through injected faults; a run writes its checkpoints, logs and hf/
to the bucket, and a fresh process with nothing on its disk resumes from the bucket bit-identically."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from test_trainer_data import build_tokens

from crawlproc.store.storage import Storage, join
from s3 import FaultProxy, Rule
from trainer.data import ShardLoader

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def upload_tree(storage: Storage, local: Path, uri: str) -> str:
    for f in sorted(local.iterdir()):
        if f.is_file():
            storage.upload(f, join(uri, f.name))
    return uri


@pytest.fixture(scope="module")
def tokens(tmp_path_factory) -> Path:
    return build_tokens(tmp_path_factory.mktemp("tokens") / "articles")


@pytest.fixture(scope="module")
def s3_tokens(s3_server, tokens) -> str:
    bucket = s3_server.bucket(f"tok-{uuid.uuid4().hex[:8]}")
    return upload_tree(Storage(), tokens, f"{bucket}/tokens/articles")


def batches(loader: ShardLoader, n: int) -> list[torch.Tensor]:
    out = [torch.cat(loader.next_batch(), dim=1) for _ in range(n)]
    loader.close()
    return out


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_s3_batches_equal_local_batches_with_and_without_read_ahead(tokens, s3_tokens):
    local = batches(ShardLoader(tokens, "train", 4, 64, seed=7, prefetch=0), 40)  # crosses row groups
    assert same(batches(ShardLoader(s3_tokens, "train", 4, 64, seed=7, prefetch=4), 40), local)
    assert same(batches(ShardLoader(s3_tokens, "train", 4, 64, seed=7, prefetch=0), 40), local)
    assert same(batches(ShardLoader(tokens, "train", 4, 64, seed=7, prefetch=8), 40), local)
    # a resumed S3 loader continues exactly where a local one was
    a = ShardLoader(tokens, "train", 4, 64, seed=7)
    for _ in range(23):
        a.next_batch()
    b = ShardLoader(s3_tokens, "train", 4, 64, seed=0)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert same(batches(b, 10), batches(a, 10))


def test_reads_through_503_resets_and_truncated_bodies_give_the_same_batches(s3_server, tokens, s3_tokens):
    expected = batches(ShardLoader(tokens, "train", 4, 64, seed=3), 30)
    proxy = FaultProxy(s3_server.port)
    try:
        storage = Storage(SimpleNamespace(endpoint_url=proxy.endpoint, retries=10, connect_timeout_s=5,
                                          request_timeout_s=10, anonymous_buckets=[]))
        proxy.add(Rule("503", path_contains=".parquet", times=4), Rule("reset", path_contains=".parquet", times=4),
                  Rule("truncate", path_contains=".parquet", times=4), Rule("503", path_contains="manifest"),
                  Rule("slow", path_contains=".parquet", times=2, delay_s=0.2))
        got = batches(ShardLoader(s3_tokens, "train", 4, 64, seed=3, storage=storage), 30)
        assert {k for k, _, _ in proxy.injected} == {"503", "reset", "truncate", "slow"}
        assert same(got, expected)
    finally:
        proxy.close()


def train(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "trainer.train", "--preset", "tiny", "--batch-size", "4", "--lr", "3e-3",
           "--device", "cpu", "--sample-tokens", "0", "--eval-interval", "3", "--eval-iters", "1",
           "--dropout", "0.1", "--decay-steps", "8", "--warmup-steps", "2", "--log-interval", "1",
           "--eval-tasks", "none", "--eval-refs", "none", *args]  # the loss is what is compared; no benchmarks
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def metrics(storage: Storage, run: str) -> list[dict]:
    return [json.loads(x) for x in storage.read_bytes(join(run, "metrics.jsonl")).decode().splitlines()]


def test_resume_from_the_bucket_on_a_fresh_machine_is_bit_identical(s3_server, s3_tokens, tmp_path):
    storage = Storage()
    bucket = s3_server.bucket(f"run-{uuid.uuid4().hex[:8]}")
    whole, split = f"{bucket}/runs/whole", f"{bucket}/runs/split"
    train(["--tokens", s3_tokens, "--out", whole, "--max-steps", "8", "--no-export"], tmp_path)
    first = tmp_path / "node-a"
    first.mkdir()
    train(["--tokens", s3_tokens, "--out", split, "--max-steps", "5"], first)  # preempted after step 5
    assert json.loads(storage.read_bytes(join(split, "ckpt", "latest.json")))["step"] == 5
    replacement = tmp_path / "node-b"  # a new machine: nothing of the first run on its disk
    replacement.mkdir()
    proc = train(["--tokens", s3_tokens, "--out", split, "--max-steps", "8", "--resume"], replacement)
    assert "resumed from s3://" in proc.stderr
    assert list(first.iterdir()) == [] and list(replacement.iterdir()) == []  # nothing written locally

    def losses(run: str, key: str) -> list[tuple[int, float]]:
        return [(r["step"], r[key]) for r in metrics(storage, run) if key in r]

    assert [s for s, _ in losses(split, "train_loss")] == list(range(1, 9))
    assert losses(split, "train_loss") == losses(whole, "train_loss")  # bit for bit, dropout included
    # the interrupted run also evaluated at its last step (5); every other evaluation is the same
    assert [v for v in losses(split, "val_loss") if v[0] != 5] == losses(whole, "val_loss")
    events = [r["event"] for r in metrics(storage, split) if "event" in r]
    assert events == ["start", "resume"]
    names = {e.name for e in storage.list(split, recursive=True)}
    assert {"config.json", "loss.png", "latest.json", "step-00000008.pt", "model.safetensors",
            "tokenizer.json"} <= names
    config = json.loads(storage.read_bytes(join(split, "config.json")))
    assert config["tokens"]["uri"] == s3_tokens and len(config["tokens"]["manifest_sha256"]) == 64


def test_trainer_imports_only_tokenizer_and_the_storage_layer_of_ours():
    """The dependency rule: trainer -> tokenizer, crawlproc.store (the one URI layer and the run's paths) and
    crawlproc.evalsuite (the reader of benchmark items, a leaf); nothing else of ours."""
    import ast

    ours = {"crawlproc", "pipelines", "tokenizer", "trainer"}
    seen = set()
    for path in (ROOT / "trainer").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            seen |= {n for n in names if n.split(".")[0] in ours and n.split(".")[0] != "trainer"}
    assert {n.split(".")[0] for n in seen} == {"crawlproc", "tokenizer"}
    assert {n for n in seen if n.startswith("crawlproc")} <= {"crawlproc.store.storage", "crawlproc.store.layout",
                                                             "crawlproc.evalsuite"}
    assert "crawlproc.store.storage" in seen
