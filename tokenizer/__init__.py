"""Byte-level BPE: train on the corpus (train.py), encode/decode (core.py), save/load tokenizer.json and
tiktoken ranks (formats.py), show token boundaries (show.py). Imports nothing of ours beyond itself."""

from tokenizer.core import EOT, GPT4_PATTERN, BPETokenizer, bpe_merge, replace_surrogates
from tokenizer.formats import load_tokenizer, save_tokenizer
from tokenizer.train import train_bpe

__all__ = [
    "EOT",
    "GPT4_PATTERN",
    "BPETokenizer",
    "bpe_merge",
    "load_tokenizer",
    "replace_surrogates",
    "save_tokenizer",
    "train_bpe",
]
