"""Export to Hugging Face transformers, in one folder with the run's tokenizer: the GPT-2 layout as
GPT2LMHeadModel, rotary + RMSNorm + SwiGLU as LlamaForCausalLM, and with QK-norm as Qwen3ForCausalLM
(trainer/presets.py hf_architecture says which; each gives the same logits as our model).

GPT-2's Conv1D weights are (in, out) where our Linear weights are (out, in), so its matrices are transposed;
Llama's and Qwen3's are Linear like ours, with the fused qkv split into q, k and v. The vocabulary stays
padded (config.vocab_size >= the tokenizer's): the extra ids are never produced by the tokenizer.
`transformers` is imported only here, so training does not need it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from crawlproc.store.layout import TrainRunDir
from crawlproc.store.storage import Storage, default_storage, join, normalize, private_tmpdir
from tokenizer.formats import HF_FILE
from tokenizer.tokenset import EOT, ShardError, TokenSet, open_token_set
from trainer.checkpoint import unwrap
from trainer.presets import hf_architecture

log = logging.getLogger(__name__)


def hf_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our parameters under the names of the model's transformers class (hf_architecture)."""
    cfg = unwrap(model).cfg
    sd = {k: v.detach().float().cpu() for k, v in unwrap(model).state_dict().items()}
    if hf_architecture(cfg) == "GPT2LMHeadModel":
        return _gpt2_state_dict(sd)
    return _llama_state_dict(sd, cfg)


def _gpt2_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {
        "transformer.wte.weight": sd["wte.weight"],
        "transformer.wpe.weight": sd["wpe.weight"],
        "transformer.ln_f.weight": sd["ln_f.weight"],
        "lm_head.weight": sd["wte.weight"],
    }
    if "ln_f.bias" in sd:
        out["transformer.ln_f.bias"] = sd["ln_f.bias"]
    names = {"ln_1": "ln_1", "ln_2": "ln_2", "attn.qkv": "attn.c_attn", "attn.proj": "attn.c_proj",
             "mlp.fc": "mlp.c_fc", "mlp.proj": "mlp.c_proj"}
    for key, value in sd.items():
        if not key.startswith("blocks."):
            continue
        _, i, rest = key.split(".", 2)
        module, kind = rest.rsplit(".", 1)
        hf = f"transformer.h.{i}.{names[module]}.{kind}"
        is_matrix = kind == "weight" and not module.startswith("ln_")
        out[hf] = value.t().contiguous() if is_matrix else value
    return out


def _llama_state_dict(sd: dict[str, torch.Tensor], cfg) -> dict[str, torch.Tensor]:
    """Llama's (and Qwen3's) names: model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj, q_norm, k_norm,
    post_attention_layernorm, mlp.{gate,up,down}_proj}."""
    out = {"model.embed_tokens.weight": sd["wte.weight"], "model.norm.weight": sd["ln_f.weight"],
           "lm_head.weight": sd["wte.weight"]}
    names = {"ln_1": "input_layernorm", "ln_2": "post_attention_layernorm", "attn.proj": "self_attn.o_proj",
             "attn.q_norm": "self_attn.q_norm", "attn.k_norm": "self_attn.k_norm", "mlp.fc": "mlp.gate_proj",
             "mlp.up": "mlp.up_proj", "mlp.proj": "mlp.down_proj"}
    for key, value in sd.items():
        if not key.startswith("blocks."):
            continue
        _, i, rest = key.split(".", 2)
        module, kind = rest.rsplit(".", 1)
        prefix = f"model.layers.{i}"
        if module == "attn.qkv":  # fused (3C, C) rows: q, then k, then v
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.split(cfg.n_embd, dim=0)):
                out[f"{prefix}.self_attn.{name}.{kind}"] = part.contiguous()
        else:
            out[f"{prefix}.{names[module]}.{kind}"] = value
    return out


def hf_config(cfg, eot_id: int | None):
    """The transformers config of our model's architecture."""
    import transformers

    arch = hf_architecture(cfg)
    common = {"vocab_size": cfg.vocab_size, "bos_token_id": eot_id, "eos_token_id": eot_id,
              "tie_word_embeddings": True}
    if arch == "GPT2LMHeadModel":
        return transformers.GPT2Config(
            n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer, n_head=cfg.n_head,
            activation_function="gelu_new",  # GELU, tanh approximation: what model.py uses
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=cfg.norm_eps, **common)
    llama = {"hidden_size": cfg.n_embd, "intermediate_size": cfg.ffn_hidden, "num_hidden_layers": cfg.n_layer,
             "num_attention_heads": cfg.n_head, "num_key_value_heads": cfg.n_head, "hidden_act": "silu",
             "max_position_embeddings": cfg.block_size, "rms_norm_eps": cfg.norm_eps,
             "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
             "attention_bias": cfg.bias, "attention_dropout": 0.0, **common}
    if arch == "LlamaForCausalLM":
        return transformers.LlamaConfig(mlp_bias=cfg.bias, head_dim=cfg.head_dim, **llama)
    return transformers.Qwen3Config(head_dim=cfg.head_dim, use_sliding_window=False, **llama)


def export_hf(model: torch.nn.Module, out_dir: str | Path, tokset: TokenSet | None = None,
              eot_id: int | None = None, storage: Storage | None = None) -> str:
    """Write out_dir/ (a folder or URI) loadable by GPT2LMHeadModel.from_pretrained and, when the token set
    has tokenizer.json, AutoTokenizer.from_pretrained. For an object store the folder is built in a local
    temporary folder and uploaded file by file."""
    storage = storage or default_storage()
    out = normalize(str(out_dir))
    local = storage.local_path(out)
    if local is not None:
        _export_to(model, local, tokset, eot_id)
        return out
    with private_tmpdir("hf") as d:
        _export_to(model, Path(d), tokset, eot_id)
        for f in sorted(Path(d).iterdir()):
            storage.upload(f, join(out, f.name))
    return out


def _export_to(model: torch.nn.Module, out: Path, tokset: TokenSet | None, eot_id: int | None) -> None:
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    cfg = unwrap(model).cfg
    hf_cfg = hf_config(cfg, eot_id)
    hf = getattr(transformers, hf_architecture(cfg))(hf_cfg)
    missing, unexpected = hf.load_state_dict(hf_state_dict(model), strict=False)
    # the only names GPT-2 may lack from us are its non-persistent attention-mask buffers
    missing = [k for k in missing if not k.endswith((".attn.bias", ".attn.masked_bias"))]
    if missing or unexpected:
        raise RuntimeError(f"export mapping incomplete: missing {missing}, unexpected {unexpected}")
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(out, safe_serialization=True)
    data = tokset.read(HF_FILE) if tokset is not None else None
    if data is None:
        log.warning("no %s in %s: exported the model without a tokenizer", HF_FILE,
                    tokset.uri if tokset else "(no token set)")
        return
    from transformers import PreTrainedTokenizerFast

    with private_tmpdir("tok") as d:
        (Path(d) / HF_FILE).write_bytes(data)
        tok = PreTrainedTokenizerFast(tokenizer_file=str(Path(d) / HF_FILE), bos_token=EOT,
                                      eos_token=EOT, unk_token=EOT)
    tok.model_max_length = cfg.block_size
    tok.save_pretrained(out)


def export_checkpoint(run_dir: str | Path, out_dir: str | Path | None = None,
                      storage: Storage | None = None) -> str:
    """Export a run's latest checkpoint (default target: RUN_DIR/hf), e.g. for a run stopped before its end."""
    from trainer.checkpoint import latest_checkpoint, load_checkpoint
    from trainer.model import GPT
    from trainer.presets import GPTConfig

    storage = storage or default_storage()
    run = TrainRunDir(str(run_dir), storage)
    path = latest_checkpoint(run.ckpt_dir, storage)
    if path is None:
        raise FileNotFoundError(f"no checkpoint under {run.ckpt_dir}")
    ckpt = load_checkpoint(path, storage)
    model = GPT(GPTConfig(**ckpt["config"]["model"]))
    model.load_state_dict(ckpt["model"])
    try:
        tokset = open_token_set(ckpt["config"]["train"]["tokens"], storage, verify="manifest")
    except ShardError as e:
        log.warning("the run's token set is not readable (%s): exporting without a tokenizer", e)
        tokset = None
    return export_hf(model, out_dir or run.hf_dir, tokset, tokset.eot_id if tokset else None, storage)


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(prog="python -m trainer.export", description=export_checkpoint.__doc__)
    p.add_argument("run_dir", help="a run folder or URI")
    p.add_argument("--out", default=None, help="target folder or URI (default RUN_DIR/hf)")
    a = p.parse_args()
    print(export_checkpoint(a.run_dir, a.out))
