"""The model `crawlproc eval` scores, from what a user points it at: a training run folder (its latest
checkpoint, else its hf/ export), one checkpoint file, or a transformers folder (our hf/ export or any causal
LM saved with save_pretrained). Local paths or object-store URIs.

A checkpoint is scored with the tokenizer of the token set it was trained on (or the one given); an hf/
folder with its own tokenizer through transformers' AutoTokenizer, called exactly as lm-eval-harness calls
it, so that both tools tokenize the same strings the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from crawlproc.store.layout import TrainRunDir
from crawlproc.store.storage import Storage, default_storage, join, normalize, private_tmpdir
from tokenizer.formats import HF_FILE
from trainer.evaluate import LM, lm_from_model

log = logging.getLogger(__name__)

@dataclass
class Loaded:
    lm: LM
    kind: str  # "checkpoint" | "hf"
    source: str  # the file or folder the weights came from
    step: int | None = None
    model: torch.nn.Module | None = None
    info: dict | None = None


def _encoder_from_tokenizer_json(data: bytes, where: str):
    from tokenizer.formats import tokenizer_from_json_bytes

    try:
        return tokenizer_from_json_bytes(data, "bpe", where).encode
    except (ValueError, KeyError) as e:
        from trainer.sample import _HFTokenizer

        log.info("%s: not ours (%s); tokenizing with the tokenizers library", where, e)
        return _HFTokenizer(data).encode


def _checkpoint_tokenizer(ckpt: dict, tokenizer: str | None, storage: Storage):
    """(encode, eot_id): from `tokenizer` (a tokenizer.json or a token set folder) or the run's token set."""
    from tokenizer.tokenset import ShardError, open_token_set

    if tokenizer and tokenizer.endswith(".json"):
        data = storage.read_bytes(normalize(tokenizer))
        enc = _encoder_from_tokenizer_json(data, tokenizer)
        from tokenizer.formats import tokenizer_from_json_bytes

        try:
            eot = tokenizer_from_json_bytes(data, "bpe", tokenizer).eot_id
        except (ValueError, KeyError):
            eot = ckpt["config"].get("tokens", {}).get("eot_id")
        return enc, eot
    where = tokenizer or ckpt["config"]["train"]["tokens"]
    try:
        tokset = open_token_set(where, storage, verify="manifest")  # only its tokenizer is read
    except ShardError as e:
        raise FileNotFoundError(f"the checkpoint's tokenizer is not readable ({e}): pass --tokenizer "
                                "TOKENIZER.json or a token set folder") from None
    data = tokset.read(HF_FILE)
    if data is None:
        raise FileNotFoundError(f"{tokset.uri} has no {HF_FILE}: pass --tokenizer")
    return _encoder_from_tokenizer_json(data, f"{tokset.uri}/{HF_FILE}"), tokset.eot_id


def load_checkpoint_lm(path: str, device: torch.device, tokenizer: str | None = None,
                       storage: Storage | None = None, autocast=None) -> Loaded:
    from trainer.checkpoint import load_checkpoint
    from trainer.model import GPT
    from trainer.presets import GPTConfig

    storage = storage or default_storage()
    ckpt = load_checkpoint(path, storage)
    model = GPT(GPTConfig(**ckpt["config"]["model"]))
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    encode, eot = _checkpoint_tokenizer(ckpt, tokenizer, storage)
    return Loaded(lm_from_model(model, encode, eot, device, autocast), "checkpoint", path, ckpt["step"], model,
                  {"model": ckpt["config"]["model"], "tokens": ckpt["config"].get("tokens")})


def load_hf_lm(folder: str, device: torch.device, storage: Storage | None = None, dtype=None) -> Loaded:
    """A transformers causal LM and its tokenizer, used as lm-eval's HFLM uses them."""
    storage = storage or default_storage()
    local = storage.local_path(normalize(folder))
    if local is not None:
        return _load_hf_local(local, device, folder, dtype)
    with private_tmpdir("eval-hf") as d:
        from crawlproc.store.storage import copy_to_local

        for e in storage.list(normalize(folder)):
            copy_to_local(e.uri, Path(d) / e.name, storage)
        return _load_hf_local(Path(d), device, folder, dtype)


def _max_length(config, tok) -> int:
    """lm-eval's rule: the config's n_positions / max_position_embeddings / n_ctx, else the tokenizer's
    model_max_length when it is set, else 2048."""
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        v = getattr(config, name, None)
        if isinstance(v, int) and v > 0:
            return v
    v = getattr(tok, "model_max_length", None)
    return v if isinstance(v, int) and 0 < v < 10**8 else 2048


def _load_hf_local(path: Path, device: torch.device, source: str, dtype) -> Loaded:
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise ImportError("scoring an hf/ folder needs transformers: pip install 'crawlproc[hf]'") from None
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype or "auto")
    model.to(device).eval()
    tok = AutoTokenizer.from_pretrained(str(path))
    prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    if prefix is None:
        raise ValueError(f"{source}: the tokenizer has neither a bos nor an eos token to condition on")

    def logits(idx: torch.Tensor) -> torch.Tensor:
        return model(idx).logits

    # the base model's last hidden state (its final norm applied) and the output embeddings: the logits of
    # a causal LM, computed only where they are needed
    base, head = getattr(model, "base_model", None), model.get_output_embeddings()
    hidden = (lambda idx: base(idx).last_hidden_state) if base is not None and base is not model and head else None
    lm = LM(lambda s: tok.encode(s), logits, _max_length(model.config, tok), prefix, device,
            hidden=hidden, head=head if hidden else None)
    return Loaded(lm, "hf", source, None, model, {"architecture": type(model).__name__})


def load_lm(target: str, device: torch.device | str = "cpu", tokenizer: str | None = None,
            storage: Storage | None = None, autocast=None) -> Loaded:
    """Whatever `target` is: a .pt checkpoint, a folder with config.json (transformers), or a run folder
    (ckpt/latest.json, else hf/)."""
    from trainer.checkpoint import latest_checkpoint

    storage = storage or default_storage()
    device = torch.device(device)
    target = normalize(target)
    if target.endswith(".pt"):
        return load_checkpoint_lm(target, device, tokenizer, storage, autocast)
    if storage.exists(join(target, "config.json")) and _has_weights(storage, target):  # a run's has none
        return load_hf_lm(target, device, storage)
    run = TrainRunDir(target, storage)
    ckpt = latest_checkpoint(run.ckpt_dir, storage)
    if ckpt is not None:
        return load_checkpoint_lm(ckpt, device, tokenizer, storage, autocast)
    if storage.exists(join(run.hf_dir, "config.json")):
        return load_hf_lm(run.hf_dir, device, storage)
    raise FileNotFoundError(f"{target}: neither a checkpoint (.pt), a run folder (ckpt/latest.json or hf/) nor "
                            "a transformers folder (config.json + weights)")


def _has_weights(storage: Storage, folder: str) -> bool:
    return any(e.name.endswith((".safetensors", ".bin")) for e in storage.list(folder))
