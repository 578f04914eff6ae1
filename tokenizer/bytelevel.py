"""The byte-level alphabet of GPT-2-style BPE files (Hugging Face tokenizer.json).

tokenizer.json stores tokens as strings, so each of the 256 byte values gets a printable Unicode stand-in:
printable Latin-1 bytes stand for themselves, the rest (control bytes, space, 0x7F-0xA0, 0xAD) are shifted to
U+0100 and up in byte order. `tokenizers`' ByteLevel pre-tokenizer and decoder use this same mapping.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def byte_to_char() -> dict[int, str]:
    printable = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAC + 1)) | set(range(0xAE, 0xFF + 1))
    table: dict[int, str] = {}
    shifted = 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


@lru_cache(maxsize=1)
def char_to_byte() -> dict[str, int]:
    return {c: b for b, c in byte_to_char().items()}


def bytes_to_symbols(data: bytes) -> str:
    table = byte_to_char()
    return "".join(table[b] for b in data)


def symbols_to_bytes(symbols: str) -> bytes:
    table = char_to_byte()
    try:
        return bytes(table[c] for c in symbols)
    except KeyError as e:
        raise ValueError(f"{symbols!r} is not in the byte-level alphabet (character {e.args[0]!r})") from None
