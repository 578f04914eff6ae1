"""Model sizes by name (a tiny model that trains on a laptop CPU up to GPT-2 small, 124M) and the
architecture choices a user compares (GPT-2's layout, or rotary positions + RMSNorm + SwiGLU as Llama, plus
QK-norm as Qwen3). Each architecture exports to its own transformers class (trainer/export.py)."""

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
    pos: str = "learned"  # "learned" position embeddings (GPT-2) | "rope": rotary, on queries and keys
    norm: str = "layernorm"  # "layernorm" | "rmsnorm"
    mlp: str = "gelu"  # "gelu": 4x GELU (tanh approximation) | "swiglu": gated SiLU, ~8/3x wide
    qk_norm: bool = False  # RMSNorm over each head's queries and keys, before the rotary (Qwen3, OLMo2)
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name, allowed in (("pos", POS), ("norm", NORMS), ("mlp", MLPS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.pos == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError("rotary positions need an even head size (n_embd / n_head)")
        hf_architecture(self)  # only combinations that export to a transformers architecture

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def ffn_hidden(self) -> int:
        """The MLP's hidden width: 4x for GELU; 8/3x (a multiple of 16) for SwiGLU, which has three matrices,
        so that both MLPs have about the same parameters and FLOPs."""
        if self.mlp == "gelu":
            return 4 * self.n_embd
        return max(16, round(8 * self.n_embd / 3 / 16) * 16)


POS, NORMS, MLPS = ("learned", "rope"), ("layernorm", "rmsnorm"), ("gelu", "swiglu")

# name -> the choices it stands for; every one exports to the transformers class hf_architecture names
ARCHS: dict[str, dict] = {
    "gpt2": {"pos": "learned", "norm": "layernorm", "mlp": "gelu", "qk_norm": False, "bias": True},
    "llama": {"pos": "rope", "norm": "rmsnorm", "mlp": "swiglu", "qk_norm": False, "bias": False},
    "qwen3": {"pos": "rope", "norm": "rmsnorm", "mlp": "swiglu", "qk_norm": True, "bias": False},
}


def hf_architecture(cfg: GPTConfig) -> str:
    """The transformers class this combination of choices is exactly (GPT2LMHeadModel, LlamaForCausalLM,
    Qwen3ForCausalLM); a ValueError for a combination that none of them is."""
    choice = (cfg.pos, cfg.norm, cfg.mlp, cfg.qk_norm)
    if choice == ("learned", "layernorm", "gelu", False) and cfg.bias:
        return "GPT2LMHeadModel"
    if choice == ("rope", "rmsnorm", "swiglu", False):
        return "LlamaForCausalLM"  # attention_bias and mlp_bias carry `bias` either way
    if choice == ("rope", "rmsnorm", "swiglu", True) and not cfg.bias:
        return "Qwen3ForCausalLM"
    raise ValueError(
        f"no transformers architecture has pos={cfg.pos}, norm={cfg.norm}, mlp={cfg.mlp}, qk_norm={cfg.qk_norm}, "
        f"bias={cfg.bias}: use an arch ({', '.join(f'{k} = {v}' for k, v in ARCHS.items())})")


# name -> (n_layer, n_head, n_embd, block_size)
PRESETS: dict[str, tuple[int, int, int, int]] = {
    "tiny": (2, 2, 64, 64),  # milliseconds per step on a laptop CPU; used by the tests
    "mini": (4, 4, 128, 128),  # the demo: learns word shapes from a mini crawl in a couple of CPU minutes
    "small": (6, 6, 384, 256),  # ~10M parameters plus embeddings: a few minutes on a CPU shows learning
    "124m": (12, 12, 768, 1024),  # GPT-2 small
}


def padded_vocab(vocab_size: int, multiple: int = 64) -> int:
    return ((vocab_size + multiple - 1) // multiple) * multiple


def preset_config(name: str, vocab_size: int, block_size: int | None = None, dropout: float = 0.0,
                  arch: str = "gpt2") -> GPTConfig:
    """The GPTConfig of a named preset and architecture for a tokenizer of `vocab_size` ids (padded to a
    multiple of 64)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    n_layer, n_head, n_embd, block = PRESETS[name]
    return GPTConfig(
        vocab_size=padded_vocab(vocab_size),
        block_size=block_size or block,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        dropout=dropout,
        **ARCHS[arch],
    )
