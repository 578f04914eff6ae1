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
