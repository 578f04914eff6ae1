"""The trainer's architecture choices (trainer/presets.py ARCHS): each trains, resumes, and exports to its
transformers class (GPT2LMHeadModel, LlamaForCausalLM, Qwen3ForCausalLM) with the same logits as our model,
whatever the weights (trained, freshly initialised, norm weights moved off 1); combinations no transformers
class has are refused before any training."""

from __future__ import annotations

import json

import pytest
import torch
from test_trainer_data import build_tokens

from trainer.checkpoint import latest_checkpoint, load_checkpoint
from trainer.export import export_checkpoint, export_hf
from trainer.model import GPT
from trainer.presets import ARCHS, GPTConfig, hf_architecture, preset_config
from trainer.train import TrainConfig, run_training

CLASSES = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM"}
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    return build_tokens(tmp_path_factory.mktemp("tokens") / "articles")


def hf_logits(folder, x):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(x).logits, type(model).__name__


@pytest.mark.parametrize("arch", list(ARCHS))
def test_each_architecture_trains_and_exports_to_its_transformers_class(tokens, tmp_path, arch):
    run = tmp_path / "run"
    summary = run_training(TrainConfig(tokens=str(tokens), out=str(run), preset="tiny", arch=arch, max_steps=6,
                                       batch_size=4, lr=3e-3, eval_interval=3, eval_iters=1, sample_tokens=0,
                                       device="cpu", eval_tasks=[], eval_refs=[], log_interval=1))
    assert summary["train_losses"][-1] < summary["train_losses"][0]
    ckpt = load_checkpoint(latest_checkpoint(run / "ckpt"))
    cfg = GPTConfig(**ckpt["config"]["model"])
    assert (cfg.pos, cfg.norm, cfg.mlp, cfg.qk_norm, cfg.bias) == tuple(ARCHS[arch][k] for k in
                                                                         ("pos", "norm", "mlp", "qk_norm", "bias"))
    ours = GPT(cfg)
    ours.load_state_dict(ckpt["model"])
    ours.eval()
    x = torch.randint(0, 512, (2, 64))
    with torch.no_grad():
        a = ours(x)[0]
    b, cls = hf_logits(run / "hf", x)
    assert cls == CLASSES[arch] == hf_architecture(cfg)
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-4) and torch.equal(a.argmax(-1), b.argmax(-1))
    export_checkpoint(run, tmp_path / "again")  # from the checkpoint alone
    assert torch.equal(hf_logits(tmp_path / "again", x)[0], b)
    assert json.loads((tmp_path / "again" / "config.json").read_text())["architectures"] == [CLASSES[arch]]


@pytest.mark.parametrize("arch", list(ARCHS))
def test_export_is_exact_for_any_weights(tmp_path, arch):
    """Fresh weights, with every vector (norm weights, biases) moved off its initial value: a mapping that
    dropped or swapped one of them would show."""
    torch.manual_seed(1)
    model = GPT(preset_config("tiny", 300, block_size=40, arch=arch)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.3)
    export_hf(model, tmp_path / "hf")
    x = torch.randint(0, 300, (3, 40))
    with torch.no_grad():
        a = model(x)[0]
    b, cls = hf_logits(tmp_path / "hf", x)
    assert cls == CLASSES[arch]
    assert (a - b).abs().max().item() < 1e-4


def test_choices_without_a_transformers_class_are_refused():
    with pytest.raises(ValueError, match="no transformers architecture"):
        GPTConfig(pos="rope", norm="layernorm", mlp="gelu", bias=True)
    with pytest.raises(ValueError, match="no transformers architecture"):
        GPTConfig(pos="rope", norm="rmsnorm", mlp="swiglu", qk_norm=True, bias=True)
    with pytest.raises(ValueError, match="pos must be one of"):
        GPTConfig(pos="alibi")
    with pytest.raises(ValueError, match="unknown arch"):
        TrainConfig(tokens="t", out="o", arch="mamba")


def test_swiglu_keeps_the_parameter_count_of_the_gelu_mlp():
    """Equal tokens and about equal parameters: an architecture comparison is not a size comparison."""
    counts = {a: GPT(preset_config("small", 4096, arch=a)).num_params() for a in ARCHS}
    assert max(counts.values()) / min(counts.values()) < 1.03, counts


def test_a_checkpoint_of_one_architecture_is_not_resumed_as_another(tokens, tmp_path):
    base = dict(tokens=str(tokens), out=str(tmp_path / "run"), preset="tiny", max_steps=2, batch_size=2,
                eval_interval=2, eval_iters=1, sample_tokens=0, device="cpu", export=False, eval_tasks=[],
                eval_refs=[])
    run_training(TrainConfig(**base, arch="gpt2"))
    with pytest.raises(ValueError, match="differs from the requested"):
        run_training(TrainConfig(**{**base, "max_steps": 4}, arch="llama", resume=True))
