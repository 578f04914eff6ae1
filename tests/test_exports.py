"""`crawlproc export`: llm.c .bin files read back by an independent reader (numpy, llm.c's published header
layout), Megatron .bin/.idx read back by megatron-core's own IndexedDataset, both also written to a real
S3-compatible server; a header that would lie is refused."""

from __future__ import annotations

import io
import json
import pickle
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


# --- the readers' own code (issue 31: each format is read by what its name says reads it) -------------------
# Reproduced exactly from karpathy/llm.c train_gpt2.py (commit f1e2ace, lines 317-327): how llm.c's PyTorch
# reference reads a .bin shard.
def _load_data_shard(filename):
    with open(filename, "rb") as f:
        # first read the header, which is 256 int32 integers (4 bytes each)
        header = np.frombuffer(f.read(256*4), dtype=np.int32)
        assert header[0] == 20240520, "magic number mismatch in the data .bin file"
        assert header[1] == 1, "unsupported version"
        ntok = header[2] # number of tokens (claimed)
        # the rest of it are tokens, stored as uint16
        tokens = np.frombuffer(f.read(), dtype=np.uint16)
    assert len(tokens) == ntok, "number of tokens read does not match header?"
    return tokens


def nanogpt_get_batch(data_dir, split, block_size, batch_size):
    """Reproduced exactly from karpathy/nanoGPT train.py (commit 3adf61e1, lines 116-125, get_batch): how
    nanoGPT reads train.bin / val.bin (the device transfer after it left out)."""
    import os

    import torch

    # We recreate np.memmap every batch to avoid a memory leak, as per
    # https://stackoverflow.com/questions/45132940/numpy-memmap-memory-usage-want-to-iterate-once/61472122#61472122
    if split == 'train':
        data = np.memmap(os.path.join(data_dir, 'train.bin'), dtype=np.uint16, mode='r')
    else:
        data = np.memmap(os.path.join(data_dir, 'val.bin'), dtype=np.uint16, mode='r')
    ix = torch.randint(len(data) - block_size, (batch_size,))
    x = torch.stack([torch.from_numpy((data[i:i+block_size]).astype(np.int64)) for i in ix])
    y = torch.stack([torch.from_numpy((data[i+1:i+1+block_size]).astype(np.int64)) for i in ix])
    return x, y, ix


def nanogpt_stream(docs: list[list[int]]) -> list[int]:
    return [t for d in docs for t in [*d, EOT]]  # as nanoGPT's prepare.py: ids.append(enc.eot_token)


@pytest.fixture(scope="module")
def small_vocab_tokens(tmp_path_factory) -> Path:
    """A token set whose ids fit nanoGPT's uint16 and its default 50304-id model."""
    rng = np.random.default_rng(1)
    docs = {"train": [rng.integers(1, 30_000, rng.integers(1, 300)).tolist() for _ in range(120)],
            "val": [rng.integers(1, 30_000, rng.integers(1, 80)).tolist() for _ in range(12)]}
    out = tmp_path_factory.mktemp("tokens") / "small"
    write_token_set(out, docs, vocab_size=30_000, eot_id=EOT, docs_per_shard=50, docs_per_row_group=16)
    return out


def test_nanogpt_train_py_reads_train_and_val_bin_as_they_are(small_vocab_tokens, tmp_path):
    import torch

    out = tmp_path / "data" / "crawl"
    assert crawlproc(["export", "--tokens", str(small_vocab_tokens), "--format", "nanogpt", "--out", str(out),
                      "--quiet"]) == 0
    assert {p.name for p in out.iterdir()} == {"train.bin", "val.bin", "export.json"}  # no tokenizer.json here
    for split in ("train", "val"):
        want = nanogpt_stream(documents(small_vocab_tokens, split))
        torch.manual_seed(0)
        x, y, ix = nanogpt_get_batch(str(out), split, block_size=32, batch_size=8)
        assert x.shape == (8, 32) and x.dtype == torch.int64
        for row, i in enumerate(ix.tolist()):  # every window nanoGPT draws is a window of our stream
            assert x[row].tolist() == want[i:i + 32] and y[row].tolist() == want[i + 1:i + 33]
        whole = np.memmap(out / f"{split}.bin", dtype=np.uint16, mode="r")  # no header: token 0 is a token
        assert whole.tolist() == want
    record = json.loads((out / "export.json").read_text())
    assert record["separator"] == "eot after each document" and "nanoGPT" in record["reader"]


def test_llmc_train_gpt2_reads_its_shards_and_refuses_the_nanogpt_ones(tokens, small_vocab_tokens, tmp_path):
    llmc, nano = tmp_path / "llmc", tmp_path / "nano"
    run_export(str(tokens), "llmc", str(llmc), Storage(), max_tokens=9000, log=lambda *_: None)
    run_export(str(small_vocab_tokens), "nanogpt", str(nano), Storage(), log=lambda *_: None)
    read = np.concatenate([_load_data_shard(str(p)) for p in sorted(llmc.glob("train_*.bin"))])
    assert read.tolist() == llmc_stream(documents(tokens, "train"))
    assert _load_data_shard(str(llmc / "val_000000.bin")).tolist() == llmc_stream(documents(tokens, "val"))
    # the two formats are not interchangeable, and each reader says so or shows it
    with pytest.raises(AssertionError, match="magic number"):
        _load_data_shard(str(nano / "train.bin"))
    header_as_tokens = np.memmap(llmc / "val_000000.bin", dtype=np.uint16, mode="r")[:4].tolist()
    assert header_as_tokens == [20240520 & 0xFFFF, 20240520 >> 16, 1, 0]  # nanoGPT would train on the header


def test_nanogpt_refuses_what_it_cannot_read(tokens, tmp_path):
    from tokenizer.exports import ExportError

    with pytest.raises(ExportError, match="uint16"):  # 50,257 ids fit uint16, but not 70,000
        docs = {"train": [[1, 2, 69_999]], "val": [[3]]}
        write_token_set(tmp_path / "big", docs, vocab_size=70_000, eot_id=EOT)
        run_export(str(tmp_path / "big"), "nanogpt", str(tmp_path / "o1"), Storage(), log=lambda *_: None)
    write_token_set(tmp_path / "noval", {"train": [[1, 2, 3]]}, vocab_size=100, eot_id=EOT)
    with pytest.raises(ExportError, match="val.bin"):
        run_export(str(tmp_path / "noval"), "nanogpt", str(tmp_path / "o2"), Storage(), log=lambda *_: None)
    # a vocabulary past nanoGPT's default 50,304 ids gets the meta.pkl its train.py reads vocab_size from
    write_token_set(tmp_path / "wide", {"train": [[1, 59_999]], "val": [[3]]}, vocab_size=60_000, eot_id=EOT)
    run_export(str(tmp_path / "wide"), "nanogpt", str(tmp_path / "o3"), Storage(), log=lambda *_: None)
    with open(tmp_path / "o3" / "meta.pkl", "rb") as f:
        assert pickle.load(f)["vocab_size"] == 60_000
    run_export(str(tokens), "nanogpt", str(tmp_path / "o4"), Storage(), log=lambda *_: None)
    assert not (tmp_path / "o4" / "meta.pkl").exists()  # 50,257 ids: nanoGPT's default model holds them
