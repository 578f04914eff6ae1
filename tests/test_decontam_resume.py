"""`crawlproc decontaminate` killed (SIGKILL, no cleanup) at several points and rerun by the same command:
its outputs equal an uninterrupted run's, every document once, and `crawlproc tokenize` then encodes each
kept document once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crashpoint import run_killed
from crawlproc.schema import docs_table
from crawlproc.store.layout import Layout

REPO = Path(__file__).resolve().parents[1]
SNAP = "S"
FILES = 10


def build_snapshot(out: Path, data_dir: Path) -> set[str]:
    """final/ of 10 files: the real articles, a real benchmark item planted in every 9th."""
    gold = json.loads((data_dir / "html" / "ground-truth.json").read_text(encoding="utf-8"))
    texts = [v["articleBody"] for _, v in sorted(gold.items())][:150]
    items = [json.loads(line) for line in (data_dir / "evalsuite" / "hellaswag.jsonl").read_text().splitlines()]
    planted = set()
    rows = []
    for i, t in enumerate(texts):
        doc_id = f"<urn:uuid:{i:06d}>"
        if i % 9 == 0:
            item = items[i]
            t = t + "\n" + item["context"] + item["choices"][item["gold"]]
            planted.add(doc_id)
        rows.append({"text": t, "id": doc_id, "dump": SNAP, "url": f"https://site{i}.example/page"})
    for f in range(FILES):
        path = out / SNAP / "final" / f"part-{f:03d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(docs_table(rows[f::FILES]), path)
    (out / SNAP / "dedup").mkdir()
    (out / SNAP / "dedup" / "_done.json").write_text(json.dumps({"snapshot": SNAP}))
    return planted


def ids(out: Path, kind: str) -> Counter:
    c: Counter = Counter()
    for f in sorted((out / SNAP / kind).glob("*.parquet")):
        c.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return c


@pytest.mark.slow  # several `crawlproc decontaminate` processes
def test_decontaminate_killed_at_several_points_then_resumed(ray_local, tmp_path, data_dir):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f"[decontaminate]\ndefault_suite = false\nbenchmarks = [{json.dumps(str(data_dir / 'evalsuite'))}]\n"
                      "[tokenize]\nvocab_size = 600\nshard_tokens = 50000\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_DEDUP_LOGS": "0"}
    address = ray_local.get_runtime_context().gcs_address

    def cmd(out: Path, what: str = "decontaminate") -> list[str]:
        extra = ["--snapshot", SNAP] if what == "decontaminate" else []
        return [sys.executable, "-m", "pipelines.cli", what, "--out", str(out), "--recipe", str(recipe), "--quiet",
                "--address", address, *extra]

    ref = tmp_path / "ref"
    planted = build_snapshot(ref, data_dir)
    subprocess.run(cmd(ref), check=True, cwd=REPO, env=env, timeout=300, capture_output=True)
    assert set(ids(ref, "decontaminated_removed")) == planted

    out = tmp_path / "out"
    build_snapshot(out, data_dir)
    snap = Layout(str(out)).snapshot(SNAP)

    def done() -> int:
        return len(snap.decontam_markers().done())

    # Each kill is a SIGKILL of the command's own process at a point it always reaches (tests/crashpoint.py):
    # the stage's start (its plan just written), or after the K-th file came back, the others dying mid-write.
    kill_points = [("plan written", 0), ("first file done", 1), ("one more file", 1), ("up to half of the files", None)]
    report = []
    for name, k in kill_points:
        start = done()
        k = max(1, FILES // 2 - start) if k is None else k
        assert start + k < FILES, name  # this kill interrupts work still to do
        got = run_killed(cmd(out)[3:], f"decontaminate:{k}")
        report.append({"kill_point": name, "exit": got.returncode, "done_before": start, "done_after": done()})
        assert got.landed, (name, got.returncode, got.stderr[-2000:])
        assert done() >= start + k and not snap.storage.exists(snap.decontam.done_uri)
    assert snap.storage.exists(snap.decontam.plan_uri)
    final = subprocess.run(cmd(out), check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    print("\nkill-and-resume:", json.dumps(report, indent=1))
    for kind in ("decontaminated", "decontaminated_removed"):
        assert ids(out, kind) == ids(ref, kind) and max(ids(out, kind).values()) == 1
    for f in sorted((ref / SNAP / "decontaminated").glob("*.parquet")):
        assert pq.read_table(out / SNAP / "decontaminated" / f.name).equals(pq.read_table(f))

    tok = subprocess.run(cmd(out, "tokenize"), check=False, cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert tok.returncode == 0, tok.stderr[-3000:]
    manifest = json.loads((out / "tokens" / "bpe" / "manifest.json").read_text())
    shard_ids = Counter(i for s in manifest["shards"] for i in pq.read_table(
        out / "tokens" / "bpe" / s["file"], columns=["id"]).column("id").to_pylist())
    assert shard_ids == ids(ref, "decontaminated") and not set(shard_ids) & planted
