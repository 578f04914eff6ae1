"""Model sizes by name: a tiny model that trains on a laptop CPU up to GPT-2 small (124M)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GPTConfig:
    vocab_size: int = 50304  # pad the tokenizer's vocabulary up to a multiple of 64 (faster matmuls)
    block_size: int = 1024
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # biases in Linear and LayerNorm, as GPT-2 (needed for a faithful HF export)

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


# name -> (n_layer, n_head, n_embd, block_size)
PRESETS: dict[str, tuple[int, int, int, int]] = {
    "tiny": (2, 2, 64, 64),  # milliseconds per step on a laptop CPU; used by the tests
    "mini": (4, 4, 128, 128),  # the demo: learns word shapes from a mini crawl in a couple of CPU minutes
    "small": (6, 6, 384, 256),  # ~10M parameters plus embeddings: a few minutes on a CPU shows learning
    "124m": (12, 12, 768, 1024),  # GPT-2 small
}


def padded_vocab(vocab_size: int, multiple: int = 64) -> int:
    return ((vocab_size + multiple - 1) // multiple) * multiple


def preset_config(name: str, vocab_size: int, block_size: int | None = None, dropout: float = 0.0) -> GPTConfig:
    """The GPTConfig of a named preset for a tokenizer of `vocab_size` ids (padded to a multiple of 64)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    n_layer, n_head, n_embd, block = PRESETS[name]
    return GPTConfig(
        vocab_size=padded_vocab(vocab_size),
        block_size=block_size or block,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        dropout=dropout,
    )
