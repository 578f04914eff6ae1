"""The words that decontamination compares: one language-neutral normalization, the same for benchmark items
and for documents.

Why not the project's per-language word splitting (crawlproc/quality/words.py)? An n-gram only matches when
the item and the document are cut into words the same way, and contamination crosses languages: an English
benchmark question quoted on a page that language ID calls German, a Chinese item on a mixed page. A
splitter chosen by the document's language would cut the same sentence differently on the two sides. So
here every character is mapped through one fixed table, whatever the language:

- a letter, a digit that is not decimal, or a spacing mark: NFKD without its combining marks, then case-folded
  ("É" -> "e", "Ａ" -> "a", "ς" -> "σ"), kept when that is one character (else lowercased as it is: "ß");
- a decimal digit in any script: a digit; a run of digits, with single "." or "," between them, is one "0"
  ("1,000.5" -> "0", "covid19" -> "covid0"), as datatrove's normalization does for numbers;
- a combining (non-spacing) mark or a format character (soft hyphen, zero-width joiner): nothing, so it never
  splits a word;
- a letter of a script written without spaces between words (Han, Hiragana, Katakana, Thai, Lao, Khmer,
  Myanmar): a word of its own, one character long;
- anything else (punctuation, symbols, spaces, controls): a word boundary.

A word is a maximal run of mapped characters between boundaries. This is datatrove's `simplify_text` (lower
case, numbers to 0, punctuation to spaces, diacritics dropped) followed by a split on whitespace, plus the
one-character words of unspaced scripts, which datatrove leaves to a per-language tokenizer.

`words(text)` is the reference in plain Python; crawlproc.decontam.kernels computes the same words' hashes
in one compiled pass over a batch's UTF-8 bytes (tests/test_decontam_text.py checks that they agree).
"""

from __future__ import annotations

import functools
import unicodedata

import numpy as np

# What the table holds for a code point (uint32): 0 = a word boundary; DELETE = nothing; DIGIT = a decimal
# digit; UNSPACED | c = the one-character word c; any other value = the mapped character of a word.
BOUNDARY = 0
DELETE = 0xFFFFFFFF
DIGIT = 0xFFFFFFFE
UNSPACED = 0x80000000
TABLE_SIZE = 0x20000  # planes 0 and 1; planes 2 and 3 are Han (UNSPACED), above them boundaries
NUMBER_JOINERS = (ord("."), ord(","))

# Scripts written without spaces between words (ranges of their blocks): each of their letters is a word.
UNSPACED_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF), (0x19E0, 0x19FF),  # Khmer
    (0x2E80, 0x2FDF),  # CJK radicals, Kangxi radicals
    (0x3005, 0x3007), (0x3021, 0x3029), (0x3038, 0x303C),  # ideographic iteration marks and numerals
    (0x3040, 0x30FF), (0x31F0, 0x31FF),  # Hiragana, Katakana
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),  # CJK ideographs
    (0xA9E0, 0xA9FF), (0xAA60, 0xAA7F),  # Myanmar extensions
    (0xFF66, 0xFF9D),  # half-width Katakana
    (0x1B000, 0x1B16F),  # Kana supplement and extensions
    (0x20000, 0x3FFFF),  # CJK ideographs, extensions B-I (planes 2 and 3)
)


def _unspaced(cp: int) -> bool:
    return any(a <= cp <= b for a, b in UNSPACED_RANGES)


def map_char(cp: int) -> int:
    """The table value of code point `cp` (see the module docstring)."""
    if 0xD800 <= cp <= 0xDFFF:  # a lone surrogate
        return BOUNDARY
    c = chr(cp)
    cat = unicodedata.category(c)
    if cat == "Nd":
        return DIGIT
    if cat in ("Mn", "Me", "Cf"):
        return DELETE
    if not (c.isalnum() or cat == "Mc"):
        return BOUNDARY
    if _unspaced(cp):
        return DELETE if cat[0] == "M" else UNSPACED | cp
    base = "".join(d for d in unicodedata.normalize("NFKD", c) if not unicodedata.combining(d))
    if len(base) == 1 and unicodedata.category(base) == "Nd":  # "²", "①" -> a digit
        return DIGIT
    for form in (base.casefold(), base.lower(), c.casefold(), c.lower()):
        if len(form) == 1 and form.isalnum():
            return ord(form)
    return cp


@functools.cache
def table() -> np.ndarray:
    """map_char of every code point below TABLE_SIZE (built once per process; shipped inside an index)."""
    return np.array([map_char(cp) for cp in range(TABLE_SIZE)], dtype=np.uint32)


def lookup(cp: int, tab: np.ndarray | None = None) -> int:
    if cp < TABLE_SIZE:
        return int((tab if tab is not None else table())[cp])
    return UNSPACED | cp if cp <= 0x3FFFF else BOUNDARY


def iter_words(text: str, tab: np.ndarray | None = None):
    """(word, start, end) for each normalized word of `text`: the word as a string of mapped characters,
    and the span of the text it was made from (character offsets)."""
    tab = tab if tab is not None else table()
    word: list[str] = []
    start = end = 0
    in_number = held = False  # inside a number; a "." or "," after its digits, not yet known to join
    for i, ch in enumerate(text):
        v = lookup(ord(ch), tab)
        if v == DELETE:
            continue
        if held:
            held = False
            if v == DIGIT:  # "1,000": the separator joined two digit runs
                end = i + 1
                continue
            if word:
                yield "".join(word), start, end
                word = []
            in_number = False
        if v == DIGIT:
            if not word:
                start = i
            if not in_number:
                word.append("0")
                in_number = True
            end = i + 1
        elif v == BOUNDARY:
            if in_number and ord(ch) in NUMBER_JOINERS:
                held = True
                continue
            if word:
                yield "".join(word), start, end
                word = []
            in_number = False
        elif v & UNSPACED and v != DIGIT:
            if word:
                yield "".join(word), start, end
                word = []
            in_number = False
            yield chr(v & ~UNSPACED & 0xFFFFFFFF), i, i + 1
        else:
            if not word:
                start = i
            word.append(chr(v))
            in_number = False
            end = i + 1
    if word:
        yield "".join(word), start, end


def words(text: str) -> list[str]:
    """The normalized words of `text`."""
    return [w for w, _, _ in iter_words(text)]


def normalized(text: str) -> str:
    """The normalized words joined by single spaces: how a matched n-gram is shown."""
    return " ".join(words(text))


# --- hashing (the compiled kernels compute exactly these) --------------------------------------------------

MASK = (1 << 64) - 1
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
POLY_BASE = 0x9E3779B97F4A7C15  # odd: the polynomial of word hashes that makes an n-gram's key
LENGTH_SALT = 0xD6E8FEB86659FD93


def fmix64(x: int) -> int:
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & MASK
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & MASK
    x ^= x >> 33
    return x


def word_hash(word: str) -> int:
    """FNV-1a over the word's mapped code points (a number is the one point "0"), mixed."""
    h = FNV_OFFSET
    for ch in word:
        h = ((h ^ ord(ch)) * FNV_PRIME) & MASK
    return fmix64(h)


def window_key(hashes: list[int]) -> int:
    """The key of an n-gram given its words' hashes: a polynomial in the hashes (each already mixed, so the
    key's bits are as random as theirs), plus a salt per length so that windows of different lengths differ."""
    p = 0
    for h in hashes:
        p = (p * POLY_BASE + h) & MASK
    return (p + len(hashes) * LENGTH_SALT) & MASK
