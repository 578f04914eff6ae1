"""The text that shingles are taken from: lowercase, every decimal digit as 0 (a number collapses to one 0),
punctuation and symbols as spaces, diacritics dropped; computed for a whole batch of texts at once.

Non-ASCII characters go through one table lookup in numpy, decoded from and re-encoded into the batch's
UTF-8 bytes in place, with no Python call per character: each maps to one character, to nothing, or to a
space. The table is built
once per process from Python's Unicode database, for every character c:
  a decimal digit in any script (Unicode category Nd: full-width, Arabic-Indic, Devanagari, ...) -> "0";
  a non-spacing mark (Mn: combining accents) -> nothing, so "cafe" + U+0301 is "cafe";
  a letter, number or spacing mark (Mc) -> its lowercase, decomposed (NFD) without its marks: "É" -> "e",
    "ς" -> "σ" like "Σ"; a character whose decomposition is several letters (a Hangul syllable) stays whole;
  anything else (punctuation, symbols, spaces) -> a space.
The UTF-8 bytes then pass bytes.translate (ASCII case and punctuation) and one regex that collapses numbers.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import numpy as np
import pyarrow as pa

from crawlproc.dedup.arrowtext import offsets_and_bytes
from crawlproc.dedup import kernels

SEP = "\x00"  # between the texts of a batch; a text's own NUL bytes become spaces
_DELETE = np.uint32(0xFFFFFFFF)


def _map_char(c: str) -> int:
    """The code point `c` becomes, 32 (space) or _DELETE; see the module docstring. Never a character whose
    UTF-8 is longer than c's (one of a handful, such as U+023A, stays as it is), so the mapped bytes fit
    in place."""
    if 0xD800 <= ord(c) <= 0xDFFF:  # a lone surrogate
        return 32
    cat = unicodedata.category(c)
    if cat == "Nd":
        return 48
    if cat == "Mn":
        return int(_DELETE)
    if not (c.isalnum() or cat == "Mc"):
        return 32
    lower = "σ" if c == "ς" else c.lower() if len(c.lower()) == 1 else c
    out = [d for d in unicodedata.normalize("NFD", lower) if unicodedata.category(d) != "Mn"]
    mapped = out[0] if len(out) == 1 else lower
    return ord(mapped) if len(mapped.encode()) <= len(c.encode()) else ord(c)


def _encoding(cp: int) -> tuple[int, int]:
    """(the UTF-8 bytes of what cp becomes, packed little-endian in an int; their number)."""
    new = _map_char(chr(cp))
    if new == _DELETE:
        return 0, 0
    enc = chr(new).encode("utf-8")
    return int.from_bytes(enc, "little"), len(enc)


@functools.cache
def _bmp_tables() -> tuple[np.ndarray, np.ndarray]:
    """The mapping of every non-ASCII BMP character as (packed UTF-8 bytes, byte count)."""
    enc = np.zeros(0x10000, dtype=np.uint32)
    size = np.zeros(0x10000, dtype=np.uint8)
    for cp in range(128, 0x10000):
        enc[cp], size[cp] = _encoding(cp)
    return enc, size


_astral = functools.cache(_encoding)


def _byte_table() -> bytes:
    """For bytes.translate: ASCII letters lowercased, digits kept, other ASCII (punctuation, symbols,
    whitespace) -> space, NUL (the separator) and the UTF-8 bytes of the non-ASCII letters kept."""
    table = bytearray(b" " * 256)
    for c in b"abcdefghijklmnopqrstuvwxyz0123456789":
        table[c] = c
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        table[c] = c + 32
    table[128:] = bytes(range(128, 256))
    table[0] = 0
    return bytes(table)


_BYTE_TABLE = _byte_table()
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_DELETED = b"\xff"  # what _map_non_ascii leaves where a character shrank or went
_NUMBER = re.compile(rb"0(?:[.,]?0)*")  # after digits became 0: a number, with . or , between its digits


def _map_non_ascii(data: np.ndarray) -> bytes:
    """UTF-8 bytes with every non-ASCII character mapped through the table, in numpy: each multi-byte
    character is decoded at its lead byte from the 4 bytes there (one gather), and its new bytes (never
    more) are written in its place; the bytes it no longer needs become 0xFF, which UTF-8 never contains,
    for the caller's bytes.translate to delete."""
    padded = np.concatenate((data, np.zeros(4, np.uint8)))
    four = np.ndarray(shape=(len(data),), dtype="<u4", buffer=padded, strides=(1,))  # four[i]: bytes i..i+3
    lead = np.flatnonzero(data >= 0xC0)
    w = four[lead]
    b0 = w & 0xFF
    size = 2 + (b0 >= 0xE0) + (b0 >= 0xF0)
    low = (w >> 8 & 0x3F) << 6 | w >> 16 & 0x3F  # the second and third bytes' payloads
    cp = np.where(b0 < 0xE0, (b0 & 0x1F) << 6 | (low >> 6), (b0 & 0x0F) << 12 | low)
    enc_table, size_table = _bmp_tables()
    enc, new_size = enc_table[cp & 0xFFFF], size_table[cp & 0xFFFF]
    for i in np.flatnonzero(size == 4):  # outside the BMP: rare, one at a time
        enc[i], new_size[i] = _astral(ord(data[lead[i]: lead[i] + 4].tobytes().decode("utf-8")))
    for k in range(4):
        at = slice(None) if k < 2 else np.flatnonzero(size > k)
        new_byte = (enc[at] >> np.uint32(8 * k)).astype(np.uint8)
        padded[lead[at] + k] = np.where(new_size[at] > k, new_byte, np.uint8(0xFF))
    return padded[:-4].tobytes()


def utf8_column(texts) -> pa.LargeStringArray | pa.LargeBinaryArray:
    """Texts as one Arrow array of UTF-8 bytes (a str list is converted; an Arrow string column is used as
    it is, without a Python object per text). A lone surrogate, which Arrow refuses, is kept as
    surrogatepass bytes (the table maps it to a space)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if isinstance(texts, pa.Array):
        return texts if texts.type in (pa.large_string(), pa.large_binary()) else texts.cast(pa.large_string())
    try:
        return pa.array(texts, pa.large_string())
    except (pa.ArrowInvalid, UnicodeEncodeError):
        return pa.array([t.encode("utf-8", "surrogatepass") for t in texts], pa.large_binary())


def _joined(column) -> np.ndarray:
    """The column's bytes, its own NUL bytes as spaces, and one 0 byte between texts."""
    offsets, data = offsets_and_bytes(column)
    data = np.where(data == 0, np.uint8(32), data)
    return np.insert(data, offsets[1:-1], np.uint8(0))


def normalized_bytes(texts) -> np.ndarray:
    """The normalized UTF-8 bytes of all texts (a list of str or an Arrow string column), each text followed
    by one 0 byte but the last: crawlproc.dedup.kernels' compiled pass, or the same in numpy without it."""
    column = utf8_column(texts)
    return _normalized_compiled(column) if kernels.AVAILABLE else normalized_bytes_numpy(column)


@functools.cache
def _ascii_table() -> np.ndarray:
    table = np.frombuffer(_BYTE_TABLE, dtype=np.uint8)[:128].copy()
    table[0] = 32  # a text's own NUL is a space; the kernel writes the 0 between texts itself
    return table


def _normalized_compiled(column) -> np.ndarray:
    offsets, data = offsets_and_bytes(column)
    # characters outside the BMP (emoji, some CJK, math letters and digits) are rare: looked up here, in order
    at = np.flatnonzero(data >= 0xF0)
    encs = [_astral_bytes(data[p: p + 4].tobytes()) for p in at.tolist()]
    astral_enc = np.array([e for e, _ in encs], dtype=np.uint32)
    astral_size = np.array([n for _, n in encs], dtype=np.uint8)
    out = np.empty(len(data) + len(column), dtype=np.uint8)
    enc, size = _bmp_tables()
    n = kernels.normalize(data, offsets, _ascii_table(), enc, size, at, astral_enc, astral_size, out)
    return out[:n]


def _astral_bytes(four: bytes) -> tuple[int, int]:
    try:
        return _astral(ord(four.decode("utf-8")))
    except (UnicodeDecodeError, TypeError):  # not a character (invalid UTF-8): the kernel keeps the bytes
        return int.from_bytes(four, "little"), len(four)


def normalized_bytes_numpy(texts) -> np.ndarray:
    """normalized_bytes with numpy operations over the whole batch (the reference for the compiled pass)."""
    data = _joined(utf8_column(texts))
    raw = data.tobytes() if not len(data) or data.max() < 0x80 else _map_non_ascii(data)
    # Every digit -> 0, then a number (digits with "." or "," between them) -> one 0. _NUMBER starts with a
    # literal, so the regex engine skips to each 0 at memchr speed; bytes.translate is one C pass.
    raw = _NUMBER.sub(b"0", raw.translate(_DIGITS_TO_ZERO, _DELETED)).translate(_BYTE_TABLE)
    return np.frombuffer(raw, dtype=np.uint8)


def normalize_text(text: str) -> str:
    """One text, normalized, its words joined by single spaces."""
    return " ".join(normalized_bytes([text]).tobytes().decode("utf-8").split())
