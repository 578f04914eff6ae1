"""The tokenize stage on a real local Ray: shards, split, manifest totals, incremental runs, bad input, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawlproc.recipe import TokenizeConfig
from crawlproc.schema import docs_table
from pipelines.cli import main as cli_main
from pipelines.tokenize_stage import ShardWriter, TokenizeError, is_val, run_tokenize, tokens_table
from tokenizer import load_tokenizer

CFG = TokenizeConfig(name="bpe", vocab_size=600, sample_bytes=2_000_000, shard_tokens=4000, val_fraction=0.2,
                     max_doc_chars=20_000)  # fmt: skip


@pytest.fixture(scope="module")
def texts(data_dir) -> list[str]:
    lines = (data_dir / "tokenizer" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines]


def write_docs(
    out: Path, snapshot: str, kind: str, stem: str, texts: list[str], start: int
) -> dict[str, str]:
    rows = [
        {"text": t, "id": f"<urn:uuid:{snapshot}-{start + i:06d}>", "dump": snapshot, "language": "en"}
        for i, t in enumerate(texts)
    ]
    path = out / snapshot / kind / f"{stem}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(docs_table(rows), path)
    return {r["id"]: r["text"] for r in rows}


def read_shards(directory: Path, manifest: dict) -> dict[str, list]:
    docs = {}
    for shard in manifest["shards"]:
        table = pq.read_table(directory / shard["file"])
        assert table.schema.field("id").type == pa.string()
        assert table.schema.field("tokens").type == pa.list_(pa.uint16())
        lengths = [len(t) for t in table.column("tokens").to_pylist()]
        assert sum(lengths) == shard["tokens"] and table.num_rows == shard["documents"]
        # at most shard_tokens, unless one document alone is longer
        assert shard["tokens"] <= CFG.shard_tokens or shard["documents"] == 1
        for doc_id, tokens in zip(table.column("id").to_pylist(), table.column("tokens").to_pylist()):
            assert doc_id not in docs
            docs[doc_id] = (shard["split"], tokens)
    return docs


def check_totals(manifest: dict) -> None:
    for split in ("train", "val"):
        shards = [s for s in manifest["shards"] if s["split"] == split]
        assert manifest["totals"][split]["tokens"] == sum(s["tokens"] for s in shards)
        assert manifest["totals"][split]["documents"] == sum(s["documents"] for s in shards)
        assert [s["file"] for s in shards] == [f"{split}-{i:05d}.parquet" for i in range(len(shards))]


def test_stage_encodes_splits_and_appends_incrementally(ray_local, tmp_path, texts, capsys):
    out = tmp_path / "out"
    expected = write_docs(out, "SNAP-A", "final", "a-0", texts[:40], 0)
    expected |= write_docs(out, "SNAP-A", "final", "a-1", texts[40:70], 100)
    bad = write_docs(out, "SNAP-A", "final", "a-2", ["", "   \n", "x" * 30_000, "kept short one"], 200)
    expected[next(k for k, v in bad.items() if v == "kept short one")] = "kept short one"
    (out / "SNAP-A" / "final" / "a-3.parquet").write_bytes(b"PAR1 this is not parquet")
    logs: list[str] = []

    first = run_tokenize(out, ["SNAP-A"], CFG, log=logs.append)
    directory = out / "tokens" / "bpe"
    manifest = json.loads((directory / "manifest.json").read_text())
    assert first.trained and manifest == first.manifest
    assert manifest["dtype"] == "uint16" and manifest["tokenizer"]["eot_id"] == 599
    assert manifest["skipped"] == {"empty": 2, "too_long": 1}
    assert list(first.failed) == ["SNAP-A/final/a-3.parquet"]  # reported, not fatal, retried next time
    assert manifest["inputs"] == [f"SNAP-A/final/a-{i}.parquet" for i in range(3)]
    check_totals(manifest)

    tok = load_tokenizer(directory)
    docs = read_shards(directory, manifest)
    assert set(docs) == set(expected)
    for doc_id, (split, tokens) in docs.items():
        assert tok.decode(tokens) == expected[doc_id]  # exact, no end-of-text inserted
        assert split == ("val" if is_val(doc_id, CFG.val_fraction) else "train")
    assert {s for s, _ in docs.values()} == {"train", "val"}
    assert all(s["sources"] == ["SNAP-A"] for s in manifest["shards"])
    first_files = {s["file"]: (directory / s["file"]).read_bytes() for s in manifest["shards"]}

    # A new snapshot (docs/ only: no dedup yet) adds shards; nothing earlier is re-encoded or rewritten.
    (out / "SNAP-A" / "final" / "a-3.parquet").unlink()
    expected_b = write_docs(out, "SNAP-B", "docs", "b-0", texts[70:], 300)
    (directory / "train-00077.parquet").write_bytes(b"left by a crashed run")
    logs.clear()
    second = run_tokenize(out, None, CFG, log=logs.append)
    assert not second.trained and second.new_inputs == 1 and not second.failed
    assert any("SNAP-B has no final/" in line for line in logs)
    assert not (directory / "train-00077.parquet").exists()
    manifest2 = second.manifest
    assert manifest2["shards"][: len(manifest["shards"])] == manifest["shards"]
    assert all(s["sources"] == ["SNAP-B"] for s in second.new_shards)
    for name, data in first_files.items():
        assert (directory / name).read_bytes() == data
    check_totals(manifest2)
    docs2 = read_shards(directory, manifest2)
    assert set(docs2) == set(expected) | set(expected_b)
    assert "SNAP-B/docs/b-0.parquet" in manifest2["inputs"]

    # Nothing new: no work, same manifest totals; the CLI reuses the tokenizer the same way.
    code = cli_main(["tokenize", "--out", str(out), "--vocab-size", "600", "--shard-tokens", "4000"])
    assert code == 0
    assert "0 files encoded into 0 new shards" in capsys.readouterr().out
    assert json.loads((directory / "manifest.json").read_text())["totals"] == manifest2["totals"]


def test_stage_uses_a_given_tokenizer_and_refuses_a_different_one(ray_local, tmp_path, texts):
    from tokenizer import train_bpe

    out = tmp_path / "out"
    expected = write_docs(out, "S", "final", "f", texts[:20], 0)
    own = train_bpe(texts, 520)
    own.save(tmp_path / "own")
    cfg = TokenizeConfig(name="given", shard_tokens=10**9, val_fraction=0.0)
    summary = run_tokenize(out, ["S"], cfg, tokenizer_path=tmp_path / "own", log=lambda _m: None)
    assert not summary.trained
    assert load_tokenizer(out / "tokens" / "given") == own
    assert [s["file"] for s in summary.manifest["shards"]] == ["train-00000.parquet"]  # one shard, no val
    assert summary.manifest["totals"]["train"]["tokens"] == sum(len(own.encode(t)) for t in expected.values())
    other = train_bpe(texts, 530)
    other.save(tmp_path / "other")
    with pytest.raises(TokenizeError, match="different tokenizer"):
        run_tokenize(out, ["S"], cfg, tokenizer_path=tmp_path / "other", log=lambda _m: None)
    with pytest.raises(TokenizeError, match="no inputs"):
        run_tokenize(tmp_path / "empty", ["NONE"], TokenizeConfig(name="x"), log=lambda _m: None)


def test_shard_writer_cuts_at_document_boundaries(tmp_path):
    writer = ShardWriter(tmp_path, shard_tokens=10, next_index={"train": 3, "val": 0})
    sizes = [4, 4, 4, 25, 1, 9]
    arrays = [np.arange(n, dtype=np.uint32) for n in sizes]
    writer.add("train", tokens_table([f"d{i}" for i in range(3)], arrays[:3], np.dtype("uint16")), "A")
    writer.add("train", tokens_table([f"d{i}" for i in range(3, 6)], arrays[3:], np.dtype("uint16")), "B")
    writer.flush()
    assert [(s["file"], s["tokens"], s["documents"], s["sources"]) for s in writer.written] == [
        ("train-00003.parquet", 8, 2, ["A"]),
        ("train-00004.parquet", 4, 1, ["A"]),
        ("train-00005.parquet", 25, 1, ["B"]),
        ("train-00006.parquet", 10, 2, ["B"]),
    ]
    assert pq.read_table(tmp_path / "train-00005.parquet").column("tokens").to_pylist() == [list(range(25))]


def test_cli_tokens_show_prints_colours_and_writes_html(tmp_path, texts, capsys):
    from tokenizer import train_bpe

    train_bpe(texts, 400).save(tmp_path / "tok")
    assert cli_main(["tokens", "show", "Hello wörld 日本", "--tokenizer", str(tmp_path / "tok")]) == 0
    shown = capsys.readouterr().out
    assert "\x1b[30;48;5;" in shown and "ids: " in shown
    page = tmp_path / "t.html"
    assert (
        cli_main(["tokens", "show", "Hello", "--out", str(tmp_path), "--name", "none", "--html", str(page)])
        == 2
    )
    assert (
        cli_main(["tokens", "show", "Hello <b>", "--tokenizer", str(tmp_path / "tok"), "--html", str(page)])
        == 0
    )
    html = page.read_text(encoding="utf-8")
    assert html.count("<span ") == 8 and "&lt;" in html and "<b>" not in html and 'title="' in html
