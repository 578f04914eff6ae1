"""The training loop on real tokenized text: learning, exact resume, checkpoints, samples, HF export."""

from __future__ import annotations

import itertools
import json
import math
import pickle
from pathlib import Path

import pytest
import torch
from test_trainer_data import build_tokens

from trainer.checkpoint import latest_checkpoint, load_checkpoint
from trainer.export import export_checkpoint, export_hf
from trainer.model import GPT
from trainer.presets import GPTConfig, preset_config
from tokenizer.tokenset import write_token_set
from trainer.train import TrainConfig, lr_at, run_training


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokens(tmp_path_factory) -> Path:
    return build_tokens(tmp_path_factory.mktemp("tokens") / "articles")


def tiny(tokens: Path, out: Path, **kw) -> TrainConfig:
    """The tiny preset (2 layers, 64 dims, block 64): each step takes milliseconds on a CPU."""
    base = {"tokens": str(tokens), "out": str(out), "preset": "tiny", "batch_size": 4, "lr": 3e-3,
            "eval_iters": 2, "sample_tokens": 0, "export": False, "device": "cpu", "log_interval": 1,
            "eval_tasks": [], "eval_refs": []}  # benchmarks in the loop: tests/test_evaluate.py
    base.update(kw)
    return TrainConfig(**base)


def records(run: Path, key: str) -> list[tuple[int, float]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r[key]) for r in map(json.loads, lines) if key in r]


def test_loss_falls_on_real_text(tokens, tmp_path):
    run = tmp_path / "run"
    summary = run_training(tiny(tokens, run, max_steps=60, eval_interval=30, sample_tokens=16,
                                prompts=["The", ""]))
    train = [v for _, v in records(run, "train_loss")]
    val = records(run, "val_loss")
    assert summary["step"] == 60 and len(train) == 60
    assert train[0] == pytest.approx(math.log(512), abs=0.3)  # starts near uniform over the vocabulary
    assert sum(train[-10:]) / 10 < train[0] - 0.8
    assert [s for s, _ in val] == [30, 60] and val[1][1] < val[0][1] < train[0] - 0.5
    # metrics carry the documented fields; tokens/s is measured
    start, first = map(json.loads, (run / "metrics.jsonl").read_text().splitlines()[:2])
    assert start["event"] == "start" and start["tokens"]["uri"] == str(tokens)  # which data it trained on
    assert len(start["tokens"]["manifest_sha256"]) == 64
    assert set(first) == {"step", "train_loss", "lr", "tokens_per_s", "mfu"} and first["tokens_per_s"] > 0
    assert first["mfu"] is None  # no peak FLOPs known for a CPU unless --peak-tflops is given
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert [(s["step"], s["prompt"]) for s in samples] == [(30, "The"), (30, ""), (60, "The"), (60, "")]
    assert all(isinstance(s["text"], str) and s["text"] for s in samples)
    png = (run / "loss.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["n_layer"] == 2 and config["model"]["vocab_size"] == 512


def test_resume_continues_with_identical_losses(tokens, tmp_path):
    kw = {"eval_interval": 4, "decay_steps": 10, "warmup_steps": 2, "grad_accum": 2}
    run_training(tiny(tokens, tmp_path / "whole", max_steps=10, **kw))
    run_training(tiny(tokens, tmp_path / "split", max_steps=4, **kw))  # "interrupted" after step 4
    with pytest.raises(FileExistsError, match="--resume"):
        run_training(tiny(tokens, tmp_path / "split", max_steps=10, **kw))
    summary = run_training(tiny(tokens, tmp_path / "split", max_steps=10, resume=True, **kw))
    whole, split = records(tmp_path / "whole", "train_loss"), records(tmp_path / "split", "train_loss")
    assert [s for s, _ in split] == list(range(1, 11))
    assert split == whole  # bit-for-bit the same losses after the resume
    assert records(tmp_path / "split", "val_loss") == records(tmp_path / "whole", "val_loss")
    assert summary["train_losses"] == [v for _, v in whole[4:]]


def test_resume_rejects_a_different_model(tokens, tmp_path):
    run_training(tiny(tokens, tmp_path, max_steps=2, eval_interval=2))
    with pytest.raises(ValueError, match="differs"):
        run_training(tiny(tokens, tmp_path, max_steps=4, eval_interval=2, block_size=32, resume=True))


def test_checkpoint_is_plain_data_and_refuses_pickled_objects(tokens, tmp_path):
    run_training(tiny(tokens, tmp_path, max_steps=3, eval_interval=1, keep_checkpoints=2))
    ckpts = sorted(p.name for p in (tmp_path / "ckpt").glob("step-*.pt"))
    assert ckpts == ["step-00000002.pt", "step-00000003.pt"]  # older ones pruned
    ckpt = load_checkpoint(latest_checkpoint(tmp_path / "ckpt"))
    assert ckpt["step"] == 3 and set(ckpt["loader"]) == {"epoch", "unit", "offset", "seed"}
    assert isinstance(ckpt["rng"][0]["torch"], torch.Tensor)  # one entry per rank

    class Payload:
        def __reduce__(self):
            return (print, ("unpickled!",))

    evil = tmp_path / "evil.pt"
    torch.save({"model": Payload()}, evil)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(evil)


def test_no_tokenizer_means_no_samples_but_training_goes_on(tmp_path, caplog):
    docs = [[(i * 7 + j) % 30 + 1 for j in range(50)] for i in range(20)]
    write_token_set(tmp_path / "tokens", {"train": docs, "val": docs[:4]}, vocab_size=32, eot_id=0)
    with caplog.at_level("WARNING", logger="trainer"):
        summary = run_training(tiny(tmp_path / "tokens", tmp_path / "run", max_steps=2, eval_interval=1,
                                    sample_tokens=8))
    assert summary["step"] == 2 and not (tmp_path / "run" / "samples.jsonl").exists()
    assert "no text samples" in caplog.text


def test_lr_schedule_warms_up_then_decays():
    cfg = TrainConfig(tokens="", out="", lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)
    lrs = [lr_at(s, cfg) for s in range(120)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:111]))
    assert lrs[60] == pytest.approx(0.55) and lrs[115] == pytest.approx(0.1)


def test_weight_decay_groups_split_matrices_from_vectors():
    model = GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, n_embd=16))
    decay, no_decay = model.optimizer_groups(0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    total = sum(p.numel() for p in model.parameters())  # the tied head is counted once
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == total


def test_export_matches_transformers_logits(tokens, tmp_path):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, GPT2LMHeadModel

    run_training(tiny(tokens, tmp_path / "run", max_steps=5, eval_interval=5, export=True))
    hf_dir = tmp_path / "run" / "hf"
    ckpt = load_checkpoint(latest_checkpoint(tmp_path / "run" / "ckpt"))
    ours = GPT(preset_config("tiny", 512))
    ours.load_state_dict(ckpt["model"])
    ours.eval()
    hf = GPT2LMHeadModel.from_pretrained(hf_dir).eval()

    text = "The court ruled on Tuesday that the new law"
    ids = Tokenizer.from_file(str(tokens / "tokenizer.json")).encode(text).ids
    hf_tok = AutoTokenizer.from_pretrained(hf_dir)
    assert hf_tok(text)["input_ids"] == ids and hf_tok.eos_token == "<|endoftext|>"
    x = torch.tensor([ids])
    with torch.no_grad():
        a, _ = ours(x)
        b = hf(x).logits
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    assert torch.equal(a[0].argmax(-1), b[0].argmax(-1))
    # exporting the checkpoint later gives the same model
    again = GPT2LMHeadModel.from_pretrained(export_checkpoint(tmp_path / "run", tmp_path / "again")).eval()
    with torch.no_grad():
        assert torch.equal(again(x).logits, b)
    # a freshly initialised model exports the same way (no reliance on trained values)
    fresh = GPT(preset_config("tiny", 512))
    export_hf(fresh, tmp_path / "fresh")
    with torch.no_grad():
        assert torch.allclose(fresh(x)[0], GPT2LMHeadModel.from_pretrained(tmp_path / "fresh")(x).logits,
                              atol=1e-4, rtol=1e-4)
