"""Save and load in standard formats: Hugging Face tokenizer.json and tiktoken's ranks file.

tokenizer.json is a byte-level BPE that `tokenizers` and `transformers` load with ids identical to ours:
no normalizer; a Split pre-tokenizer with our regex (isolated pieces) then ByteLevel(use_regex=False) to map
bytes to the byte-level alphabet; the BPE model with vocab = ranks, merges in rank order and ignore_merges=True
(a piece that is itself a token is taken whole, as tiktoken does); special tokens as added tokens.
tokenizer.tiktoken is one line per token: base64(bytes) SPACE rank, in rank order. It holds no regex and no
special tokens, so loading it alone assumes the GPT-4 pattern and <|endoftext|> right after the last rank.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from crawlproc.store.storage import atomic_write_bytes
from tokenizer.bytelevel import bytes_to_symbols, symbols_to_bytes
from tokenizer.core import EOT, GPT4_PATTERN, BPETokenizer, bpe_merge

HF_FILE = "tokenizer.json"
TIKTOKEN_FILE = "tokenizer.tiktoken"
CONFIG_FILE = "tokenizer_config.json"
TOKENIZER_FILES = (HF_FILE, TIKTOKEN_FILE, CONFIG_FILE)
# GPT-2's own split regex: used when a foreign tokenizer.json relies on ByteLevel(use_regex=True).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def recover_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The merge that formed each multi-byte token, in rank order: BPE on the token's own bytes with only
    lower-ranked tokens allowed ends in exactly two parts."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) < 2:
            continue
        parts = bpe_merge(ranks, token, max_rank=rank)
        if len(parts) != 2:
            raise ValueError(f"token {token!r} (rank {rank}) is not a merge of two lower-ranked tokens")
        merges.append((parts[0], parts[1]))
    return merges


def to_hf_dict(tok: BPETokenizer) -> dict:
    vocab = {bytes_to_symbols(t): r for t, r in sorted(tok.mergeable_ranks.items(), key=lambda kv: kv[1])}
    merges = [f"{bytes_to_symbols(a)} {bytes_to_symbols(b)}" for a, b in recover_merges(tok.mergeable_ranks)]
    added = [
        {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for s, i in sorted(tok.special_tokens.items(), key=lambda kv: kv[1])
    ]  # fmt: skip
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": tok.pattern}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": True,
            "vocab": vocab,
            "merges": merges,
        },
    }


def _find_pattern(pre: dict | None) -> str:
    if not pre:
        raise ValueError("tokenizer.json has no pre_tokenizer: not a byte-level BPE this package can load")
    steps = pre["pretokenizers"] if pre.get("type") == "Sequence" else [pre]
    split = next((s for s in steps if s.get("type") == "Split"), None)
    if split is not None:
        pattern = split["pattern"]
        if "Regex" not in pattern:
            raise ValueError(f"Split pre-tokenizer with a plain string pattern is not supported: {pattern}")
        return pattern["Regex"]
    if any(s.get("type") == "ByteLevel" and s.get("use_regex", True) for s in steps):
        return GPT2_PATTERN
    raise ValueError(f"cannot find the split regex in pre_tokenizer {pre}")


def from_hf_dict(data: dict, name: str = "bpe") -> BPETokenizer:
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        raise ValueError(f"tokenizer.json model is {model.get('type')!r}, expected a byte-level 'BPE'")
    ranks = {symbols_to_bytes(s): i for s, i in model["vocab"].items()}
    # Our encoder merges by rank; that equals HF's merge order only if merges come in rank order.
    last = -1
    for m in model.get("merges", []):
        a, b = m.split(" ") if isinstance(m, str) else m
        rank = ranks.get(symbols_to_bytes(a) + symbols_to_bytes(b))
        if rank is None or rank <= last:
            raise ValueError(f"merge {m!r} is not in rank order: this file cannot be encoded by rank")
        last = rank
    specials = {t["content"]: t["id"] for t in data.get("added_tokens", [])}
    return BPETokenizer(
        ranks, pattern=_find_pattern(data.get("pre_tokenizer")), special_tokens=specials, name=name
    )


def tiktoken_bytes(ranks: dict[bytes, int]) -> bytes:
    return "".join(f"{base64.b64encode(t).decode()} {r}\n"
                   for t, r in sorted(ranks.items(), key=lambda kv: kv[1])).encode()


def parse_tiktoken(text: str, where: str = "tiktoken file") -> dict[bytes, int]:
    ranks = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError as e:
            raise ValueError(f"{where}:{n}: not a tiktoken ranks line ({e}): {line[:80]!r}") from None
    return ranks


def read_tiktoken(path: Path) -> dict[bytes, int]:
    return parse_tiktoken(Path(path).read_text(encoding="ascii"), str(path))


def tokenizer_files(tok: BPETokenizer) -> dict[str, bytes]:
    """The files a token set holds for its tokenizer, as bytes (written by whoever owns the storage)."""
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False}
    if EOT in tok.special_tokens:
        config.update(eos_token=EOT, bos_token=EOT)
    return {
        HF_FILE: json.dumps(to_hf_dict(tok), ensure_ascii=False, indent=1).encode("utf-8"),
        TIKTOKEN_FILE: tiktoken_bytes(tok.mergeable_ranks),
        CONFIG_FILE: json.dumps(config, indent=1).encode(),
    }


def tokenizer_from_json_bytes(data: bytes, name: str = "bpe", where: str = HF_FILE) -> BPETokenizer:
    try:
        return from_hf_dict(json.loads(data.decode("utf-8")), name)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{where} is not valid JSON: {e}") from None


def save_tokenizer(tok: BPETokenizer, directory: str | Path) -> dict:
    """Write tokenizer.json (Hugging Face), tokenizer.tiktoken (ranks) and tokenizer_config.json into a local
    `directory`; returns {"file", "tiktoken_file", "sha256", ...} for a manifest."""
    files = tokenizer_files(tok)
    for name, data in files.items():
        atomic_write_bytes(Path(directory) / name, data)
    return tokenizer_info(tok, files[HF_FILE])


def tokenizer_info(tok: BPETokenizer, hf_bytes: bytes) -> dict:
    """The manifest's "tokenizer" entry; sha256 is of tokenizer.json's bytes (check with sha256sum)."""
    info = {
        "file": HF_FILE,
        "tiktoken_file": TIKTOKEN_FILE,
        "sha256": hashlib.sha256(hf_bytes).hexdigest(),
        "vocab_size": tok.vocab_size,
        "pattern": tok.pattern,
        "special_tokens": tok.special_tokens,
    }
    if EOT in tok.special_tokens:
        info.update(eot_token=EOT, eot_id=tok.eot_id)
    return info


def load_tokenizer(path: str | Path, name: str | None = None) -> BPETokenizer:
    """Load from a directory (tokenizer.json, else tokenizer.tiktoken), a tokenizer.json or a .tiktoken file."""
    path = Path(path)
    if path.is_dir():
        for candidate in (HF_FILE, TIKTOKEN_FILE):
            if (path / candidate).is_file():
                return load_tokenizer(path / candidate, name or path.name)
        raise FileNotFoundError(f"{path} holds neither {HF_FILE} nor {TIKTOKEN_FILE}")
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer at {path}")
    name = name or path.parent.name or "bpe"
    if path.suffix == ".json":
        return tokenizer_from_json_bytes(path.read_bytes(), name, str(path))
    ranks = read_tiktoken(path)
    return BPETokenizer(ranks, pattern=GPT4_PATTERN, special_tokens={EOT: max(ranks.values()) + 1}, name=name)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
