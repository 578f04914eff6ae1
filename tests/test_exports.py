"""`crawlproc export`: llm.c .bin files read back by an independent reader (numpy, llm.c's published header
layout), Megatron .bin/.idx read back by megatron-core's own IndexedDataset, both also written to a real
S3-compatible server; a header that would lie is refused."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from crawlproc.store.storage import Storage, copy_to_local, join
from pipelines.cli import main as crawlproc
from pipelines.stages.export import run_export
from tokenizer.exports import ExportError, LlmcWriter
from tokenizer.tokenset import write_token_set

EOT = 0


@pytest.fixture(scope="module")
def tokens(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    docs = {"train": [rng.integers(1, 50_000, rng.integers(0, 200)).tolist() for _ in range(230)],
            "val": [rng.integers(1, 50_000, rng.integers(1, 50)).tolist() for _ in range(17)]}
    out = tmp_path_factory.mktemp("tokens") / "set"
    write_token_set(out, docs, vocab_size=50_257, eot_id=EOT, docs_per_shard=60, docs_per_row_group=16)
    return out


def documents(tokens: Path, split: str) -> list[list[int]]:
    import pyarrow.parquet as pq

    manifest = json.loads((tokens / "manifest.json").read_text())
    return [d for s in manifest["shards"] if s["split"] == split
            for d in pq.read_table(tokens / s["file"]).column("tokens").to_pylist()]


def read_llmc(path: Path) -> np.ndarray:
    """llm.c's layout, read independently: 256 int32 (magic 20240520, version 1, count), then uint16."""
    header = np.fromfile(path, dtype="<i4", count=256)
    assert header[0] == 20240520 and header[1] == 1 and not header[3:].any()
    assert path.stat().st_size == 256 * 4 + 2 * int(header[2])
    return np.memmap(path, dtype="<u2", mode="r", offset=256 * 4, shape=(int(header[2]),))


def llmc_stream(docs: list[list[int]]) -> list[int]:
    return [t for d in docs for t in [EOT, *d]]  # as llm.c's fineweb.py: the eot token before each document


def test_llmc_bin_reads_back_with_llmc_layout(tokens, tmp_path):
    out = tmp_path / "llmc"
    assert crawlproc(["export", "--tokens", str(tokens), "--format", "llmc", "--out", str(out),
                      "--max-tokens", "9000", "--quiet"]) == 0
    record = json.loads((out / "export.json").read_text())
    train = sorted(out.glob("train_*.bin"))
    assert len(train) > 1 and [f["file"] for f in record["files"] if f["split"] == "train"] == [p.name for p in train]
    stream = np.concatenate([read_llmc(p) for p in train])
    assert stream.tolist() == llmc_stream(documents(tokens, "train"))
    assert all(read_llmc(p).size <= 9000 for p in train)
    assert read_llmc(out / "val_000000.bin").tolist() == llmc_stream(documents(tokens, "val"))
    assert record["manifest_sha256"] and record["separator"].startswith("eot before")


def test_megatron_dataset_reads_back_with_megatron_core(tokens, tmp_path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    out = tmp_path / "meg"
    run_export(str(tokens), "megatron", str(out), Storage(), log=lambda *_: None)
    for split in ("train", "val"):
        docs = documents(tokens, split)
        ds = IndexedDataset(str(out / f"{split}_text_document"))
        assert len(ds) == len(docs) and ds.index.dtype == np.uint16
        assert all(ds[i].tolist() == [*d, EOT] for i, d in enumerate(docs))  # end of document after each
        assert ds.sequence_lengths.tolist() == [len(d) + 1 for d in docs]
        assert ds.document_indices.tolist() == list(range(len(docs) + 1))
        assert ds.get(3, offset=1, length=2).tolist() == [*docs[3], EOT][1:3]


def test_both_formats_write_to_object_storage(s3_server, tokens, tmp_path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    storage = Storage()
    bucket = s3_server.bucket(f"exp-{uuid.uuid4().hex[:8]}")
    for fmt in ("llmc", "megatron"):
        run_export(str(tokens), fmt, f"{bucket}/{fmt}", storage, max_tokens=9000, log=lambda *_: None)
        names = sorted(e.name for e in storage.list(f"{bucket}/{fmt}"))
        assert "export.json" in names
        for name in names:
            copy_to_local(join(bucket, fmt, name), tmp_path / fmt / name, storage)
    local = tmp_path / "llmc-local"
    run_export(str(tokens), "llmc", str(local), storage, max_tokens=9000, log=lambda *_: None)
    for p in sorted(local.glob("*.bin")):
        assert (tmp_path / "llmc" / p.name).read_bytes() == p.read_bytes()
    ds = IndexedDataset(str(tmp_path / "megatron" / "train_text_document"))
    assert [ds[i].tolist() for i in range(len(ds))] == [[*d, EOT] for d in documents(tokens, "train")]


def test_a_header_that_would_lie_is_refused():
    w = LlmcWriter(io.BytesIO(), 10, EOT, 100)
    w.add(np.array([1, 2, 3]), np.array([0, 3]))  # 4 tokens, not 10
    with pytest.raises(ExportError, match="announces 10 tokens but 4"):
        w.close()
    with pytest.raises(ExportError, match="2\\*\\*31"):
        LlmcWriter(io.BytesIO(), 2**31, EOT, 100)
