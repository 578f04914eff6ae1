"""Text samples from the model with the run's trained tokenizer, when one can be loaded."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)


class _HFTokenizer:
    """Fallback over tokenizer.json with the `tokenizers` library, same encode/decode surface."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids)


def load_sampling_tokenizer(tokens_dir: str | Path):
    """tokenizer.load_tokenizer(tokens_dir) when the tokenizer package is present, else tokenizer.json via
    the `tokenizers` library; None (with a logged note) when neither works: training goes on unsampled."""
    try:
        from tokenizer import load_tokenizer

        return load_tokenizer(tokens_dir)
    except (ImportError, OSError, ValueError, KeyError, RuntimeError) as e:  # only disables sampling
        note = f"tokenizer package unavailable ({type(e).__name__}: {e})"
    path = Path(tokens_dir) / "tokenizer.json"
    if path.is_file():
        try:
            log.info("%s; sampling with tokenizer.json via the tokenizers library", note)
            return _HFTokenizer(path)
        except Exception as e:  # noqa: BLE001 -- tokenizers raises a bare Exception for a bad file
            note += f"; tokenizer.json unreadable ({e})"
    log.warning("no text samples: %s and no usable %s", note, path)
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
