"""Text samples from the model with the run's trained tokenizer, when one can be loaded."""

from __future__ import annotations

import logging

import torch

from tokenizer.formats import HF_FILE, tokenizer_from_json_bytes
from tokenizer.tokenset import TokenSet

log = logging.getLogger(__name__)


class _HFTokenizer:
    """Fallback over tokenizer.json with the `tokenizers` library, same encode/decode surface."""

    def __init__(self, data: bytes):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_str(data.decode("utf-8"))

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids)


def load_sampling_tokenizer(tokset: TokenSet):
    """The token set's tokenizer.json loaded by our tokenizer package, else by the `tokenizers` library; None
    (with a logged note) when neither works: training goes on unsampled."""
    where = f"{tokset.uri}/{HF_FILE}"
    data = tokset.read(HF_FILE)
    if data is None:
        log.warning("no text samples: the token set has no %s", where)
        return None
    try:
        return tokenizer_from_json_bytes(data, tokset.manifest.get("name") or "bpe", where)
    except (ValueError, KeyError, RuntimeError) as e:  # only disables sampling
        note = f"{where} not loadable by the tokenizer package ({type(e).__name__}: {e})"
    try:
        log.info("%s; sampling with the tokenizers library", note)
        return _HFTokenizer(data)
    except Exception as e:  # noqa: BLE001 -- tokenizers raises a bare Exception for a bad file
        log.warning("no text samples: %s, and the tokenizers library cannot read it either (%s)", note, e)
    return None


def sample_texts(model, tok, prompts: list[str], eot_id: int, vocab_limit: int, max_new_tokens: int,
                 seed: int, device, temperature: float = 0.8, top_k: int | None = 40) -> list[str]:
    """One continuation per prompt. A private generator keeps sampling out of the training RNG stream."""
    gen = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    texts = []
    for prompt in prompts:
        ids = tok.encode(prompt) if prompt else []
        idx = torch.tensor([ids or [eot_id]], dtype=torch.long, device=device)
        out = model.generate(idx, max_new_tokens, temperature, top_k, vocab_limit=vocab_limit, generator=gen)
        texts.append(tok.decode(out[0, idx.size(1):].tolist()))
    model.train(was_training)
    return texts


# --- `crawlproc sample`: a checkpoint (a run folder or a step-*.pt file) or an hf/ export ---------------------


class Sampler:
    """A trained model and its tokenizer, ready to continue prompts."""

    def __init__(self, logits_of, tok, eot_id: int, vocab_limit: int, block_size: int, device, source: str):
        self.logits_of, self.tok, self.eot_id = logits_of, tok, eot_id
        self.vocab_limit, self.block_size, self.device, self.source = vocab_limit, block_size, device, source

    @torch.no_grad()
    def continuation(self, prompt: str, max_new_tokens: int, temperature: float, top_k: int | None,
                     generator: torch.Generator) -> str:
        """The prompt's continuation, up to `max_new_tokens` or the end-of-text token (not included)."""
        ids = self.tok.encode(prompt) if prompt else []
        idx = torch.tensor([ids or [self.eot_id]], dtype=torch.long, device=self.device)
        new: list[int] = []
        for _ in range(max_new_tokens):
            logits = self.logits_of(idx[:, -self.block_size:])[:, -1, :].float()
            logits[:, self.vocab_limit:] = -float("inf")  # padding ids the tokenizer cannot decode
            if temperature <= 0:
                nxt = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k:
                    kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                    logits[logits < kth] = -float("inf")
                nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)
            if int(nxt) == self.eot_id:
                break
            new.append(int(nxt))
            idx = torch.cat([idx, nxt], dim=1)
        return self.tok.decode(new)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_sampler(path: str, storage, device: str = "auto", tokenizer: str | None = None) -> Sampler:
    """A Sampler from an hf/ folder (config.json + model.safetensors), a training run folder (its latest
    checkpoint) or one checkpoint file. The tokenizer: --tokenizer, else the hf/ folder's own, else the token
    set the run trained on. Raises ValueError / FileNotFoundError with a message naming what is missing."""
    from crawlproc.store.layout import TrainRunDir
    from crawlproc.store.storage import join, normalize
    from trainer.checkpoint import latest_checkpoint, load_checkpoint

    dev = _device(device)
    path = normalize(path)
    if storage.exists(join(path, "config.json")) and storage.exists(join(path, "model.safetensors")):
        return _hf_sampler(path, storage, dev, tokenizer)
    ckpt_path = path if path.endswith(".pt") else latest_checkpoint(TrainRunDir(path, storage).ckpt_dir, storage)
    if ckpt_path is None:
        raise FileNotFoundError(f"{path}: neither an hf/ folder (config.json, model.safetensors), a training run "
                                "folder with ckpt/latest.json, nor a step-*.pt checkpoint")
    from tokenizer.tokenset import open_token_set
    from trainer.model import GPT
    from trainer.presets import GPTConfig

    ckpt = load_checkpoint(ckpt_path, storage)
    model = GPT(GPTConfig(**ckpt["config"]["model"]))
    model.load_state_dict(ckpt["model"])
    model.to(dev).eval()
    tokens = ckpt["config"]["train"]["tokens"]
    if tokenizer:
        tok, eot, vocab = _tokenizer_file(tokenizer)
    else:
        tokset = open_token_set(tokens, storage)
        tok = load_sampling_tokenizer(tokset)
        if tok is None:
            raise FileNotFoundError(f"no tokenizer for {ckpt_path}: its token set {tokens} has none; pass --tokenizer")
        eot, vocab = tokset.eot_id, tokset.vocab_size
    return Sampler(lambda x: model(x)[0], tok, eot, vocab, model.cfg.block_size, dev,
                   f"{ckpt_path} (step {ckpt['step']})")


def _tokenizer_file(path: str):
    from tokenizer import load_tokenizer

    tok = load_tokenizer(path)
    return tok, tok.eot_id, tok.vocab_size


def _hf_sampler(path: str, storage, dev: torch.device, tokenizer: str | None) -> Sampler:
    import tempfile
    from pathlib import Path

    from crawlproc.store.storage import copy_to_local, join

    try:
        from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
    except ImportError as e:
        raise ValueError(f"sampling an hf/ folder needs transformers (pip install -e .[hf]): {e}") from None
    local = storage.local_path(path)
    if local is None:  # a bucket: the folder's files into a temporary folder first
        tmp = Path(tempfile.mkdtemp(prefix="crawlproc-hf-"))
        for e in storage.list(path):
            copy_to_local(join(path, e.name), tmp / e.name, storage)
        local = tmp
    model = AutoModelForCausalLM.from_pretrained(str(local)).to(dev).eval()
    if tokenizer:
        tok, eot, vocab = _tokenizer_file(tokenizer)
    else:
        if not (Path(local) / "tokenizer.json").is_file():
            raise FileNotFoundError(f"{path} has no tokenizer.json: pass --tokenizer")
        hf_tok = PreTrainedTokenizerFast.from_pretrained(str(local))
        tok = _HFTokenizer((Path(local) / "tokenizer.json").read_bytes())
        eot, vocab = hf_tok.eos_token_id, len(hf_tok)
    return Sampler(lambda x: model(x).logits, tok, eot, vocab, model.config.n_positions, dev, str(path))
