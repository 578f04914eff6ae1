"""Export to Hugging Face transformers: a GPT2LMHeadModel plus the run's tokenizer, in one folder.

Our Linear weights are (out, in); GPT-2's Conv1D weights are (in, out), so matrices are transposed. The
vocabulary stays padded (config.vocab_size >= the tokenizer's): the extra ids are never produced by the
tokenizer. `transformers` is imported only here, so training does not need it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from trainer.checkpoint import unwrap
from trainer.shards import EOT_TOKEN

log = logging.getLogger(__name__)


def hf_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our parameters under GPT2LMHeadModel's names (Conv1D matrices transposed)."""
    sd = {k: v.detach().float().cpu() for k, v in unwrap(model).state_dict().items()}
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


def export_hf(model: torch.nn.Module, out_dir: str | Path, tokens_dir: str | Path | None = None,
              eot_id: int | None = None) -> Path:
    """Write out_dir/ loadable by GPT2LMHeadModel.from_pretrained and, when tokens_dir has tokenizer.json,
    AutoTokenizer.from_pretrained."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    cfg = unwrap(model).cfg
    if not cfg.bias:
        raise ValueError("GPT-2 has biases in every Linear and LayerNorm: export needs bias=True")
    hf_cfg = GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.block_size,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        activation_function="gelu_new",  # GELU, tanh approximation: what model.py uses
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        bos_token_id=eot_id,
        eos_token_id=eot_id,
        tie_word_embeddings=True,
    )
    hf = GPT2LMHeadModel(hf_cfg)
    missing, unexpected = hf.load_state_dict(hf_state_dict(model), strict=False)
    # the only names GPT-2 may lack from us are its non-persistent attention-mask buffers
    missing = [k for k in missing if not k.endswith((".attn.bias", ".attn.masked_bias"))]
    if missing or unexpected:
        raise RuntimeError(f"export mapping incomplete: missing {missing}, unexpected {unexpected}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(out, safe_serialization=True)
    tok_file = Path(tokens_dir) / "tokenizer.json" if tokens_dir else None
    if tok_file and tok_file.is_file():
        from transformers import PreTrainedTokenizerFast

        tok = PreTrainedTokenizerFast(
            tokenizer_file=str(tok_file), bos_token=EOT_TOKEN, eos_token=EOT_TOKEN, unk_token=EOT_TOKEN
        )
        tok.model_max_length = cfg.block_size
        tok.save_pretrained(out)
    else:
        log.warning("no tokenizer.json in %s: exported the model without a tokenizer", tokens_dir)
    return out


def export_checkpoint(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Export a run's latest checkpoint (default target: RUN_DIR/hf), e.g. for a run stopped before its end."""
    from trainer.checkpoint import latest_checkpoint, load_checkpoint
    from trainer.model import GPT
    from trainer.presets import GPTConfig

    path = latest_checkpoint(Path(run_dir) / "ckpt")
    if path is None:
        raise FileNotFoundError(f"no checkpoint under {run_dir}/ckpt")
    ckpt = load_checkpoint(path)
    model = GPT(GPTConfig(**ckpt["config"]["model"]))
    model.load_state_dict(ckpt["model"])
    tokens = Path(ckpt["config"]["train"]["tokens"])
    eot_id = None
    if (tokens / "manifest.json").is_file():
        eot_id = json.loads((tokens / "manifest.json").read_text())["tokenizer"]["eot_id"]
    return export_hf(model, out_dir or Path(run_dir) / "hf", tokens, eot_id)


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(prog="python -m trainer.export", description=export_checkpoint.__doc__)
    p.add_argument("run_dir")
    p.add_argument("--out", default=None, help="target folder (default RUN_DIR/hf)")
    a = p.parse_args()
    print(export_checkpoint(a.run_dir, a.out))
