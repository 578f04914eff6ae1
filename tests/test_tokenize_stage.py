"""The tokenize stage on a real local Ray: shards, split, manifest, exactly one version of each document,
incremental and resumed runs, re-encoded and vanished inputs, bad input, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawlproc.recipe import Recipe, TokenizeConfig
from crawlproc.schema import docs_table
from pipelines.cli import main as cli_main
from pipelines.stages.tokenize import TokenizeError, run_tokenize
from tokenizer import EOT, load_tokenizer, save_tokenizer
from tokenizer.encode import PY_WHITESPACE
from tokenizer.shards import cut_shards, is_val, tokens_table

CFG = TokenizeConfig(name="bpe", vocab_size=600, sample_bytes=2_000_000, shard_tokens=4000, val_fraction=0.2,
                     max_doc_chars=20_000)  # fmt: skip
RECIPE = Recipe(tokenize=CFG)
QUIET = {"progress": False, "log": lambda _m: None}


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


def finish_dedup(out: Path, snapshot: str, run: int = 1) -> None:
    """What the dedup stage leaves when it finished: its final/ is then what is tokenized."""
    d = out / snapshot / "dedup"
    d.mkdir(parents=True, exist_ok=True)
    (d / "_done.json").write_text(json.dumps({"snapshot": snapshot, "run": run}))


def read_shards(directory: Path, manifest: dict) -> dict[str, tuple[str, list]]:
    """id -> (split, tokens) over every shard the manifest lists; an id twice fails the test."""
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
            assert doc_id not in docs, f"{doc_id} is in the shards twice"
            docs[doc_id] = (shard["split"], tokens)
    return docs


def check_totals(manifest: dict) -> None:
    for split in ("train", "val"):
        shards = [s for s in manifest["shards"] if s["split"] == split]
        assert manifest["totals"][split]["tokens"] == sum(s["tokens"] for s in shards)
        assert manifest["totals"][split]["documents"] == sum(s["documents"] for s in shards)
    # train shards per input, in input order, then the val shards cut by size from every input's val piece
    train = [s for k in sorted(manifest["parts"]) for s in manifest["parts"][k]["shards"]]
    val = [s for s in manifest["shards"] if s["split"] == "val"]
    assert manifest["shards"] == train + val and {s["split"] for s in train} <= {"train"}
    assert [s["file"] for s in val] == manifest["val_pieces"]["shards"]
    pieces = [p["val_piece"] for p in manifest["parts"].values() if p.get("val_piece")]
    assert sum(p["tokens"] for p in pieces) == manifest["totals"]["val"]["tokens"]
    # cut to a size: every val shard but the last is at least half full (never one per input)
    assert all(s["tokens"] * 2 >= CFG.shard_tokens or s["documents"] == 1 for s in val[:-1])


def shard_files(directory: Path) -> set[str]:
    return {p.name for p in directory.glob("*.parquet")}


def test_stage_encodes_splits_and_counts_bad_documents(ray_local, tmp_path, texts):
    out = tmp_path / "out"
    expected = write_docs(out, "SNAP-A", "final", "a-0", texts[:40], 0)
    expected |= write_docs(out, "SNAP-A", "final", "a-1", texts[40:70], 100)
    bad = write_docs(out, "SNAP-A", "final", "a-2", ["", "   \n", "x" * 30_000, "kept short one"], 200)
    expected[next(k for k, v in bad.items() if v == "kept short one")] = "kept short one"
    (out / "SNAP-A" / "final" / "a-3.parquet").write_bytes(b"PAR1 this is not parquet")
    finish_dedup(out, "SNAP-A")

    first = run_tokenize(str(out), RECIPE, ["SNAP-A"], **QUIET)
    directory = out / "tokens" / "bpe"
    assert first.trained and not first.ok
    assert list(first.failed) == ["a-3.parquet"]  # reported with its cause, not fatal, retried next time
    assert "ArrowInvalid" in first.failed["a-3.parquet"] or "Parquet" in first.failed["a-3.parquet"]
    # issue 24: a token set whose inputs did not all encode has no manifest, so no reader takes it as finished
    assert first.manifest is None and not (directory / "manifest.json").exists()
    encoded_before = {n: (directory / n).read_bytes() for n in shard_files(directory)}
    assert encoded_before  # the three good inputs are encoded and kept for the rerun

    # the unreadable input is retried by the next run; nothing else is re-encoded
    (out / "SNAP-A" / "final" / "a-3.parquet").unlink()
    expected |= write_docs(out, "SNAP-A", "final", "a-3", texts[70:75], 300)
    again = run_tokenize(str(out), RECIPE, ["SNAP-A"], **QUIET)
    assert again.ok and again.encoded == 1 and not again.trained
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest == again.manifest
    assert manifest["dtype"] == "uint16" and manifest["tokenizer"]["eot_id"] == 599
    assert manifest["skipped"] == {"empty": 2, "too_long": 1}
    assert sorted(manifest["parts"]) == [f"SNAP-A~a-{i}" for i in range(4)]
    check_totals(manifest)
    assert all((directory / n).read_bytes() == data for n, data in encoded_before.items())

    tok = load_tokenizer(directory)
    docs = read_shards(directory, manifest)
    assert set(docs) == set(expected)
    for doc_id, (split, tokens) in docs.items():
        assert tok.decode(tokens) == expected[doc_id]  # exact, no end-of-text inserted
        assert split == ("val" if is_val(doc_id, CFG.val_fraction) else "train")
    assert {s for s, _ in docs.values()} == {"train", "val"}


def test_only_deduplicated_documents_are_tokenized_never_both_versions(ray_local, tmp_path, texts):
    """Issue 11, item 1: tokenize before dedup, then after it, must not put a document in the shards twice
    nor keep the copies dedup removed or the text PII was removed from."""
    out = tmp_path / "out"
    docs = write_docs(out, "S", "docs", "x", texts[:20], 0)
    with pytest.raises(TokenizeError, match="no finished dedup"):
        run_tokenize(str(out), RECIPE, ["S"], **QUIET)
    assert not (out / "tokens" / "bpe" / "manifest.json").exists()
    # dedup ran: it dropped 5 documents and changed the text of another (PII)
    survivors = dict(list(docs.items())[5:])
    first_id = next(iter(survivors))
    survivors[first_id] = survivors[first_id] + " Contact: email@example.com"
    rows = [{"text": t, "id": i, "dump": "S", "language": "en"} for i, t in survivors.items()]
    (out / "S" / "final").mkdir()
    pq.write_table(docs_table(rows), out / "S" / "final" / "x.parquet")
    finish_dedup(out, "S")
    summary = run_tokenize(str(out), RECIPE, ["S"], **QUIET)
    directory = out / "tokens" / "bpe"
    got = read_shards(directory, summary.manifest)
    assert set(got) == set(survivors)
    tok = load_tokenizer(directory)
    assert tok.decode(got[first_id][1]) == survivors[first_id]


def test_reencoded_and_vanished_inputs_replace_their_shards(ray_local, tmp_path, texts):
    out = tmp_path / "out"
    write_docs(out, "A", "final", "f0", texts[:30], 0)
    write_docs(out, "A", "final", "f1", texts[30:50], 100)
    finish_dedup(out, "A")
    expected_b = write_docs(out, "B", "final", "g0", texts[50:70], 0)
    finish_dedup(out, "B")
    run_tokenize(str(out), RECIPE, None, **QUIET)
    directory = out / "tokens" / "bpe"
    b_files = {n: (directory / n).read_bytes() for n in shard_files(directory) if "-B~" in n}
    assert b_files

    # A is deduplicated again (say its listing grew): f0 now holds fewer documents, f1 is gone
    (out / "A" / "final" / "f1.parquet").unlink()
    expected_a = write_docs(out, "A", "final", "f0", texts[:10], 0)
    finish_dedup(out, "A", run=2)
    summary = run_tokenize(str(out), RECIPE, ["A"], **QUIET)
    assert summary.ok and summary.encoded == 1 and summary.dropped == 1
    got = read_shards(directory, summary.manifest)
    assert set(got) == set(expected_a) | set(expected_b)  # nothing of the old f0/f1 is left, B untouched
    assert not any("A~f1" in n for n in shard_files(directory))
    assert {n for n in shard_files(directory) if "-B~" in n} == set(b_files)
    assert all((directory / n).read_bytes() == data for n, data in b_files.items())
    assert shard_files(directory) == {s["file"] for s in summary.manifest["shards"]}  # no orphan left
    check_totals(summary.manifest)

    # nothing new: no work, the same manifest
    again = run_tokenize(str(out), RECIPE, None, **QUIET)
    assert again.encoded == 0 and again.manifest["shards"] == summary.manifest["shards"]


def test_stage_uses_a_given_tokenizer_and_refuses_a_different_one(ray_local, tmp_path, texts):
    from tokenizer import train_bpe

    out = tmp_path / "out"
    expected = write_docs(out, "S", "final", "f", texts[:20], 0)
    finish_dedup(out, "S")
    own = train_bpe(texts, 520)
    save_tokenizer(own, tmp_path / "own")
    recipe = Recipe(tokenize=TokenizeConfig(name="given", shard_tokens=10**9, val_fraction=0.0))
    summary = run_tokenize(str(out), recipe, ["S"], tokenizer_path=tmp_path / "own", **QUIET)
    assert not summary.trained
    assert load_tokenizer(out / "tokens" / "given") == own
    assert [s["split"] for s in summary.manifest["shards"]] == ["train"]  # one shard, no val
    assert summary.manifest["totals"]["train"]["tokens"] == sum(len(own.encode(t)) for t in expected.values())
    other = train_bpe(texts, 530)
    save_tokenizer(other, tmp_path / "other")
    with pytest.raises(TokenizeError, match="different tokenizer"):
        run_tokenize(str(out), recipe, ["S"], tokenizer_path=tmp_path / "other", **QUIET)
    (tmp_path / "empty" / "NONE" / "final").mkdir(parents=True)
    finish_dedup(tmp_path / "empty", "NONE")
    with pytest.raises(TokenizeError, match="no inputs"):
        run_tokenize(str(tmp_path / "empty"), Recipe(tokenize=TokenizeConfig(name="x")), ["NONE"], **QUIET)


def test_shards_are_cut_at_document_boundaries():
    sizes = [4, 4, 4, 25, 1, 9]
    table = tokens_table([f"d{i}" for i in range(6)], [np.arange(n, dtype=np.uint32) for n in sizes],
                         np.dtype("uint16"))
    pieces = list(cut_shards(table, 10))
    assert [(p.column("id").to_pylist(), n) for p, n in pieces] == [
        (["d0", "d1"], 8), (["d2"], 4), (["d3"], 25), (["d4", "d5"], 10)]
    assert pieces[2][0].column("tokens").to_pylist() == [list(range(25))]


def test_whitespace_set_is_pythons():
    """encode_documents finds whitespace-only texts in Arrow with this set: it must be str.isspace's."""
    assert set(PY_WHITESPACE) == {c for c in map(chr, range(0x110000)) if c.isspace()}


def test_encode_documents_skips_counts_and_splits_as_a_plain_loop(tmp_path, texts):
    """The column-at-once checks, the joined encoding and the split cut from the token array give what a
    plain per-document loop gives (the oracle below: str checks, one encode per text, is_val)."""
    from tokenizer import train_bpe
    from tokenizer.encode import encode_documents

    tok = train_bpe(texts, 600)
    odd = ["", " ", "\u3000\u2028 \x1c", "\n\nstarts with newlines", "\tx", "y" * 300, "é" * 250, "😀" * 200,
           f"holds {EOT} inside", None, "x\u200by"]
    docs = [t for pair in zip(texts, odd * 10) for t in pair][:120]
    ids = [None if i % 17 == 3 else "" if i % 23 == 5 else f"id-{i}" for i in range(len(docs))]
    got = encode_documents(tok, pa.chunked_array([pa.array(ids[:50]), pa.array(ids[50:])]),
                           pa.chunked_array([pa.array(docs[:70]), pa.array(docs[70:])]), 0.3, 250)
    want: dict = {"train": [], "val": []}
    skipped: dict = {}
    for doc_id, text in zip(ids, docs):
        reason = ("missing_id" if not doc_id else "empty" if not text or text.isspace()
                  else "too_long" if len(text) > 250 else None)
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
        else:
            want["val" if is_val(doc_id, 0.3) else "train"].append((doc_id, tok.encode(text)))
    assert got["skipped"] == skipped and set(skipped) == {"missing_id", "empty", "too_long"}
    kept = [tokens for split in want.values() for _, tokens in split]
    assert tok.encode("é" * 250) in kept  # more bytes than the limit but not more characters: kept
    for split in ("train", "val"):
        table = got[split]
        assert table.schema.field("tokens").type == pa.list_(pa.uint16())
        assert list(zip(table.column("id").to_pylist(), table.column("tokens").to_pylist())) == want[split]
    assert got["train"].num_rows and got["val"].num_rows


@pytest.mark.parametrize("vocab_size", [600, 70_000])  # uint16 and uint32 ids
def test_token_files_store_ids_byte_stream_split_and_read_back_whole(tmp_path, vocab_size):
    """Train shards, val pieces and val shards store the ids BYTE_STREAM_SPLIT, without
    a dictionary; pyarrow and `datasets` read back every document's ids as written."""
    import datasets

    from crawlproc.store.layout import TokenSetDir
    from crawlproc.store.storage import Storage
    from tokenizer.encode import merge_val_pieces
    from tokenizer.shards import token_dtype
    from tokenizer.tokenset import write_piece, write_shard

    rng = np.random.default_rng(vocab_size)
    dtype = token_dtype(vocab_size)
    docs = [rng.zipf(1.2, int(n)).clip(1, vocab_size - 1).astype(dtype) for n in rng.integers(1, 3000, 40)]
    docs[3] = np.array([vocab_size - 1, 0, 255, 256, 65535 % vocab_size], dtype)  # every byte position used
    ids = [f"doc-{i}" for i in range(len(docs))]
    table = tokens_table(ids, docs, dtype)
    tokset = TokenSetDir(str(tmp_path / "t"), Storage())
    write_shard(tokset, "train-p-000.parquet", table)
    write_piece(tokset, "val-p.parquet", table)
    merged = merge_val_pieces([{"file": "val-p.parquet"}], "d", tokset, shard_tokens=10**9)
    files = [tmp_path / "t" / "train-p-000.parquet", tmp_path / "t" / merged["shards"][0]["file"],
             *(tmp_path / "t").rglob("val-p.parquet")]
    assert len(files) == 3
    want = [d.tolist() for d in docs]
    for f in files:
        meta = pq.ParquetFile(f).metadata
        for rg in range(meta.num_row_groups):
            chunk = meta.row_group(rg).column(1)
            assert chunk.path_in_schema == "tokens.list.element"
            assert "BYTE_STREAM_SPLIT" in chunk.encodings and "RLE_DICTIONARY" not in chunk.encodings, chunk
        back = pq.read_table(f)
        assert back.column("id").to_pylist() == ids and back.column("tokens").to_pylist() == want
        assert back.schema.field("tokens").type == pa.list_(pa.from_numpy_dtype(dtype))
        ds = datasets.load_dataset("parquet", data_files=str(f), split="train", cache_dir=str(tmp_path / "hf"))
        assert ds["id"] == ids and ds["tokens"] == want


def test_cli_tokenize_reports_and_reuses(ray_local, tmp_path, texts, capsys):
    out = tmp_path / "out"
    write_docs(out, "S", "final", "f", texts[:20], 0)
    finish_dedup(out, "S")
    args = ["tokenize", "--out", str(out), "--vocab-size", "600", "--shard-tokens", "4000", "--quiet"]
    assert cli_main(args) == 0
    assert "1 encoded" in capsys.readouterr().out
    assert cli_main(args) == 0
    assert "0 encoded" in capsys.readouterr().out
    assert cli_main(["tokenize", "--out", str(out), "--snapshot", "MISSING", "--quiet"]) == 2
    assert "no finished dedup" in capsys.readouterr().err


def test_cli_tokens_show_prints_colours_and_writes_html(tmp_path, texts, capsys):
    from tokenizer import train_bpe

    save_tokenizer(train_bpe(texts, 400), tmp_path / "tok")
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
