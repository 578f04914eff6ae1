"""Tokenization killed (SIGKILL, no cleanup) at several points and rerun by the same command: the token set
equals an uninterrupted run's, shard for shard, with every document once (issue 16)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crashpoint import run_killed
from crawlproc.schema import docs_table

REPO = Path(__file__).resolve().parents[1]
SNAP = "S"
FILES = 10


def build_snapshot(out: Path, data_dir: Path) -> set[str]:
    lines = (data_dir / "tokenizer" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in lines]
    ids = set()
    per = max(1, len(texts) // FILES)
    for f in range(FILES):
        rows = [{"text": t, "id": f"<urn:uuid:{f:04d}-{i:06d}>", "dump": SNAP, "language": "en"}
                for i, t in enumerate(texts[f * per:(f + 1) * per])]
        ids |= {r["id"] for r in rows}
        path = out / SNAP / "final" / f"part-{f:03d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(docs_table(rows), path)
    (out / SNAP / "dedup").mkdir()
    (out / SNAP / "dedup" / "_done.json").write_text(json.dumps({"snapshot": SNAP}))
    return ids


def token_set(out: Path) -> tuple[list[dict], dict[str, str], list[str]]:
    """(manifest shards, sha256 of each shard file, every document id in the shards in order)."""
    d = out / "tokens" / "bpe"
    manifest = json.loads((d / "manifest.json").read_text())
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.glob("*.parquet"))}
    ids = [i for s in manifest["shards"] for i in pq.read_table(d / s["file"], columns=["id"]).column("id").to_pylist()]
    return manifest["shards"], files, ids


@pytest.mark.slow  # several `crawlproc tokenize` processes
def test_tokenize_killed_at_several_points_then_resumed(ray_local, tmp_path, data_dir):
    recipe = tmp_path / "r.toml"
    recipe.write_text("[tokenize]\nvocab_size = 700\nshard_tokens = 3000\nval_fraction = 0.1\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_DEDUP_LOGS": "0"}
    address = ray_local.get_runtime_context().gcs_address

    def cmd(out: Path) -> list[str]:
        return [sys.executable, "-m", "pipelines.cli", "tokenize", "--out", str(out), "--recipe", str(recipe),
                "--quiet", "--address", address]

    ref = tmp_path / "ref"
    expected_ids = build_snapshot(ref, data_dir)
    subprocess.run(cmd(ref), check=True, cwd=REPO, env=env, timeout=300)
    ref_shards, ref_files, ref_ids = token_set(ref)
    assert sorted(ref_ids) == sorted(expected_ids)  # the reference itself is complete, each id once

    out = tmp_path / "out"
    build_snapshot(out, data_dir)
    tok = out / "tokens" / "bpe"

    def parts() -> int:
        return len(list((tok / "parts").glob("*.json"))) if (tok / "parts").is_dir() else 0

    # Each kill is a SIGKILL of the command's own process at a point it always reaches (tests/crashpoint.py):
    # the encoding tasks in flight die with it, mid-write. The last point comes after every input's part was
    # committed and before the manifest: the state the issue found looking finished.
    kill_points = [("tokenizer saved, nothing encoded", 0), ("the first part done", 1),
                   ("three more parts done", 3), ("every part done, no manifest yet", None)]
    for name, k in kill_points:
        before = parts()
        k = FILES - before if k is None else k
        assert before + k <= FILES, name  # there is work left for this kill to interrupt
        got = run_killed(cmd(out)[3:], f"tokenize:{k}")
        assert got.landed, (name, got.returncode, got.stderr[-2000:])
        assert parts() >= before + k
        assert not (tok / "manifest.json").exists()  # a killed first encode leaves no manifest a reader takes
    assert parts() == FILES
    final = subprocess.run(cmd(out), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]
    shards, files, ids = token_set(out)
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(expected_ids)  # 0 lost, 0 twice
    assert shards == ref_shards and files == ref_files  # byte-identical to the uninterrupted run
