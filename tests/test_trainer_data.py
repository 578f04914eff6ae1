"""The token-shard loader: packing, seeded shuffle, rank partition, exact resume, bad input.

Also home of `build_tokens`, which the other trainer tests import: real article text, a tiny byte-level BPE
trained with the `tokenizers` library, encoded into shards in the tokenize stage's format.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from tokenizer.tokenset import write_token_set
from trainer.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from trainer.data import ShardLoader
from tokenizer.tokenset import ShardError, open_token_set


def read_manifest(tokens_dir) -> dict:
    return open_token_set(str(tokens_dir)).manifest


def shard_path(tokens_dir: Path, split: str, index: int) -> Path:
    return tokens_dir / [s["file"] for s in read_manifest(tokens_dir)["shards"] if s["split"] == split][index]

DATA = Path(__file__).parent / "data" / "trainer"


def build_tokens(out: Path, vocab_size: int = 512, val_docs: int = 4) -> Path:
    """tokens/<name>-style directory made from tests/data/trainer/articles.json; returns its path."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    articles = json.loads((DATA / "articles.json").read_text())
    texts = [articles[k]["articleBody"] for k in sorted(articles)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False),
    )
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    docs = [tok.encode(t).ids for t in texts]
    write_token_set(out, {"train": docs[:-val_docs], "val": docs[-val_docs:]}, tok.get_vocab_size(),
                       tok.token_to_id("<|endoftext|>"), docs_per_shard=10, docs_per_row_group=4,
                       tokenizer_file=out / "tokenizer.json")
    return out


@pytest.fixture(scope="module")
def tokens(tmp_path_factory) -> Path:
    return build_tokens(tmp_path_factory.mktemp("tokens") / "articles")


@pytest.fixture
def small_tokens(tmp_path) -> Path:
    """Hand-made documents whose stream is easy to predict (ids 1..), eot 0."""
    docs = [[i] * n for i, n in zip(range(1, 8), [5, 0, 3, 7, 2, 4, 6])]
    write_token_set(tmp_path, {"train": docs}, vocab_size=16, eot_id=0, docs_per_shard=4, docs_per_row_group=2)
    return tmp_path


def test_unshuffled_stream_is_documents_joined_by_eot(small_tokens):
    loader = ShardLoader(small_tokens, "train", batch_size=1, block_size=4, shuffle=False)
    stream = []
    for _ in range(6):
        x, y = loader.next_batch()
        assert torch.equal(x[0, 1:], y[0, :-1])  # y is x shifted by one
        stream.extend(x[0].tolist())
    expected = []
    for i, n in zip(range(1, 8), [5, 0, 3, 7, 2, 4, 6]):
        if n:  # an empty document contributes nothing, not even an eot
            expected += [i] * n + [0]
    assert stream == (expected * 2)[:24]  # 23 tokens per epoch: the stream wraps into epoch 1


def test_one_epoch_holds_every_token_once(tokens):
    manifest = read_manifest(tokens)
    n_train = manifest["totals"]["train"]["tokens"] + manifest["totals"]["train"]["documents"]
    T = 64
    loader = ShardLoader(tokens, "train", batch_size=1, block_size=T, seed=3)
    got = np.concatenate([loader.next_batch()[0][0].numpy() for _ in range(n_train // T)])
    all_tokens = np.concatenate(
        [np.concatenate(pq.read_table(tokens / s["file"]).column("tokens").to_pylist() or [[]])
         for s in manifest["shards"] if s["split"] == "train"]
    )
    expected = np.bincount(all_tokens, minlength=512)
    expected[manifest["tokenizer"]["eot_id"]] += manifest["totals"]["train"]["documents"]
    counts = np.bincount(got, minlength=512)
    assert (counts <= expected).all()  # no token appears more often than in the data
    assert counts.sum() == len(got) and len(got) >= n_train - T


def test_shuffle_is_seeded(tokens):
    def first(seed):
        return ShardLoader(tokens, "train", 4, 32, seed=seed).next_batch()[0]

    assert torch.equal(first(1), first(1))
    assert not torch.equal(first(1), first(2))
    unshuffled = ShardLoader(tokens, "train", 4, 32, shuffle=False).next_batch()[0]
    assert not torch.equal(first(1), unshuffled)


def test_ranks_split_the_global_batch(tokens):
    whole = ShardLoader(tokens, "train", 6, 32, seed=5)
    ranks = [ShardLoader(tokens, "train", 3, 32, rank=r, world_size=2, seed=5) for r in range(2)]
    for _ in range(3):
        x, y = whole.next_batch()
        parts = [loader.next_batch() for loader in ranks]
        assert torch.equal(x, torch.cat([p[0] for p in parts]))
        assert torch.equal(y, torch.cat([p[1] for p in parts]))
    assert ranks[0].state_dict() == ranks[1].state_dict() == whole.state_dict()


def test_resume_gives_the_same_batches(tokens):
    a = ShardLoader(tokens, "train", 4, 64, seed=9)
    for _ in range(37):  # well past one row group, into later shards
        a.next_batch()
    state = json.loads(json.dumps(a.state_dict()))  # plain JSON round trip
    expected = [a.next_batch()[0] for _ in range(5)]
    b = ShardLoader(tokens, "train", 4, 64, seed=0)  # the seed comes from the state
    b.load_state_dict(state)
    assert all(torch.equal(e, b.next_batch()[0]) for e in expected)


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(ShardError, match="manifest.json"):
        ShardLoader(tmp_path, "train", 1, 8)


def test_missing_shard_is_an_error(small_tokens):
    missing = shard_path(small_tokens, "train", 1)
    missing.unlink()
    with pytest.raises(ShardError, match=missing.name):
        ShardLoader(small_tokens, "train", 1, 8)


def _shard_with_id_99(small_tokens, **write):
    """Shard 0 rewritten with its 4 documents, one holding id 99 (the vocabulary has 16)."""
    table = pa.table({"id": list("wxyz"), "tokens": pa.array([[1, 2, 99], [1], [2], [3]], pa.list_(pa.uint16()))})
    pq.write_table(table, shard_path(small_tokens, "train", 0), **write)


def test_out_of_vocabulary_id_is_named_when_the_set_is_opened(small_tokens):
    """From the shard's own statistics, before any batch (issue 25)."""
    _shard_with_id_99(small_tokens)
    with pytest.raises(ShardError, match="token id 99, outside the vocabulary of 16"):
        ShardLoader(small_tokens, "train", 1, 4, shuffle=False)


def test_out_of_vocabulary_id_is_named_as_it_streams_without_statistics(small_tokens):
    _shard_with_id_99(small_tokens, write_statistics=False)
    loader = ShardLoader(small_tokens, "train", 1, 4, shuffle=False)
    with pytest.raises(ShardError, match="99 >= vocab_size 16"):
        for _ in range(10):
            loader.next_batch()


def test_split_without_tokens_is_an_error(tmp_path):
    write_token_set(tmp_path, {"train": [[], []]}, vocab_size=16, eot_id=0)
    loader = ShardLoader(tmp_path, "train", 1, 4)
    with pytest.raises(ShardError, match="no tokens"):
        loader.next_batch()


# ---- hostile manifests and checkpoints ------------------------------------------------------------------


def _rewrite_manifest(tokens_dir: Path, change) -> None:
    path = tokens_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("name", ["../outside.parquet", "/etc/passwd", "a/../../outside.parquet", "..\\x.parquet"])
def test_manifest_shard_paths_outside_the_directory_are_refused(small_tokens, tmp_path_factory, name):
    outside = small_tokens.parent / "outside.parquet"
    outside.write_bytes(shard_path(small_tokens, "train", 0).read_bytes())  # there to be followed
    _rewrite_manifest(small_tokens, lambda m: m["shards"][0].update(file=name))
    with pytest.raises(ShardError, match="outside"):
        ShardLoader(small_tokens, "train", 1, 4)


def test_a_symlinked_shard_leading_out_is_refused(small_tokens, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "x.parquet"
    elsewhere.write_bytes(shard_path(small_tokens, "train", 0).read_bytes())
    (small_tokens / "link.parquet").symlink_to(elsewhere)
    _rewrite_manifest(small_tokens, lambda m: m["shards"][0].update(file="link.parquet"))
    with pytest.raises(ShardError, match="resolves outside"):
        read_manifest(small_tokens)


@pytest.mark.parametrize("eot", [16, 1000, -1])
def test_eot_outside_the_vocabulary_is_one_clear_error(small_tokens, eot):
    _rewrite_manifest(small_tokens, lambda m: m["tokenizer"].update(eot_id=eot))
    with pytest.raises(ShardError) as e:
        ShardLoader(small_tokens, "train", 1, 4)
    msg = str(e.value)
    assert "manifest.json" in msg and f"eot_id {eot}" in msg and "vocab_size 16" in msg and "\n" not in msg


@pytest.mark.parametrize("manifest", [[], {"tokenizer": [], "shards": []},
                                      {"tokenizer": {"vocab_size": 16, "eot_id": 0}, "shards": ["train.parquet"]},
                                      {"tokenizer": {"vocab_size": 0, "eot_id": 0}, "shards": []}])
def test_malformed_manifests_are_shard_errors(tmp_path, manifest):
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="manifest.json"):
        read_manifest(tmp_path)


@pytest.fixture
def checkpoint_dir(tmp_path) -> Path:
    model = torch.nn.Linear(4, 4)
    opt = torch.optim.AdamW(model.parameters())
    save_checkpoint(tmp_path / "ckpt", 7, model, opt, {"epoch": 0, "unit": 1, "offset": 2, "seed": 3}, {"a": 1})
    return tmp_path / "ckpt"


def test_a_good_checkpoint_still_loads(checkpoint_dir):
    ckpt = load_checkpoint(latest_checkpoint(checkpoint_dir))
    assert ckpt["step"] == 7 and ckpt["config"] == {"a": 1}


@pytest.mark.parametrize("name", ["../../outside.pt", "/etc/passwd", "sub/step-00000007.pt", 7, None])
def test_latest_json_pointing_elsewhere_is_refused(checkpoint_dir, name):
    (checkpoint_dir.parent / "outside.pt").write_bytes((checkpoint_dir / "step-00000007.pt").read_bytes())
    (checkpoint_dir / "latest.json").write_text(json.dumps({"step": 7, "file": name}))
    with pytest.raises(CheckpointError, match="latest.json"):
        latest_checkpoint(checkpoint_dir)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "other_keys", "pickled_object"])
def test_a_damaged_checkpoint_is_one_clear_error(checkpoint_dir, damage):
    path = checkpoint_dir / "step-00000007.pt"
    good = path.read_bytes()

    class Payload:
        def __reduce__(self):
            return (print, ("unpickled!",))

    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        path.write_bytes(bytes(range(256)) * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "other_keys":
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        torch.save({"model": Payload()}, path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, ValueError)  # the CLI prints ValueErrors as one line
