"""Decode an HTTP payload to text: byte-order mark, HTTP header charset, <meta> charset, UTF-8, detection.

Two exceptions to that order: a page without a BOM whose HTTP header declares UTF-16 (and whose bytes look
like it) is decoded as UTF-16 first; non-ASCII bytes that are valid UTF-8 are decoded as UTF-8 whatever the
declaration says (legacy-encoded text practically never forms valid UTF-8; wrong declarations are common).

Declared labels follow the WHATWG Encoding Standard where it differs from Python's codecs (a page that says
"iso-8859-1" is decoded as windows-1252, "shift_jis" as cp932, ...), as browsers do. A payload that is not
text (many NULs, or mostly replacement/control characters after decoding) raises `UndecodableError`, which
the caller counts as a skip.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer


class UndecodableError(ValueError):
    """The payload is not text in any encoding we can identify (e.g. binary data served as text/html)."""


_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))

# WHATWG label -> the Python codec that decodes what browsers decode for it
_WHATWG = {
    "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "l1": "cp1252",
    "us-ascii": "cp1252", "ascii": "cp1252", "iso-8859-9": "cp1254", "latin5": "cp1254",
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "ms_kanji": "cp932",
    "windows-31j": "cp932", "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949", "tis-620": "cp874", "iso-8859-11": "cp874", "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8", "x-user-defined": "cp1252",
}

_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9._:()+-]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._:()+-]+)""", re.IGNORECASE)
_SNIFF_BYTES = 4096  # browsers look for <meta charset> in the first 1024 bytes; pages are often sloppier

_MAX_NUL_FRACTION = 0.01
_MIN_UTF16_NUL_FRACTION = 0.1  # UTF-16 HTML: every ASCII character of the markup has a NUL byte
_MAX_BAD_CHAR_FRACTION = 0.02
_BAD_CHARS = re.compile("[\ufffd\x00-\x08\x0b\x0e-\x1f\x7f]")


def codec_for(label: str | None) -> str | None:
    """A declared charset label -> a Python codec name, or None when the label is unknown or unusable."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _WHATWG.get(label, label)
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    # a page cannot really be UTF-16/32 when its bytes carried an ASCII declaration: browsers ignore it too
    if name.startswith(("utf-16", "utf-32")):
        return "utf-8"
    return name


def header_charset(content_type_header: str | None) -> str | None:
    m = _HEADER_CHARSET.search(content_type_header or "")
    return m.group(1) if m else None


def meta_charset(payload: bytes) -> str | None:
    """<meta charset="x"> or <meta http-equiv="Content-Type" content="text/html; charset=x">."""
    m = _META_CHARSET.search(payload[:_SNIFF_BYTES])
    return m.group(1).decode("ascii", "replace") if m else None


def _declared_utf16(content_type_header: str | None, payload: bytes) -> str | None:
    """The UTF-16 codec for a page without a BOM that the HTTP header (not a <meta>, which UTF-16 bytes
    could not carry readably) declares UTF-16, when its bytes agree: the NULs of its ASCII markup. Byte
    order from where those NULs sit (the declared order is often wrong, and plain "utf-16" says none)."""
    label = (header_charset(content_type_header) or "").strip("\"'").lower()
    try:
        if not codecs.lookup(label).name.startswith("utf-16"):
            return None
    except LookupError:
        return None
    sample = payload[:_SNIFF_BYTES]
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if even + odd < _MIN_UTF16_NUL_FRACTION * len(sample):
        return None
    return "utf-16-be" if even > odd else "utf-16-le"


def _strict(payload: bytes, codec: str) -> str | None:
    try:
        return payload.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _looks_like_text(text: str) -> bool:
    if not text:
        return True
    sample = text[:32_768]  # garbage shows in the first 32 KB; scanning whole pages cost ~0.3 ms each
    return len(_BAD_CHARS.findall(sample)) <= _MAX_BAD_CHAR_FRACTION * len(sample)


def decode_html(payload: bytes, content_type_header: str | None = None) -> tuple[str, str]:
    """Return (text, codec used). Raises UndecodableError for binary or undecodable payloads."""
    if not payload:
        return "", "utf-8"
    for bom, codec in _BOMS:
        if payload.startswith(bom):
            text = payload.decode(codec, "replace")
            if _looks_like_text(text):
                return text, codec
            raise UndecodableError(f"payload has a {codec} byte-order mark but does not decode as text")
    utf16 = _declared_utf16(content_type_header, payload)
    if utf16:
        text = payload.decode(utf16, "replace")
        if _looks_like_text(text):
            return text, utf16
    if payload.count(b"\x00") > _MAX_NUL_FRACTION * len(payload):
        raise UndecodableError("payload is binary (too many NUL bytes)")

    declared = [c for c in (codec_for(header_charset(content_type_header)), codec_for(meta_charset(payload))) if c]
    if not payload.isascii():
        # non-ASCII bytes that form valid UTF-8 are almost never legacy-encoded text: a wrong declaration
        # (very common: servers default to iso-8859-1) must not turn a UTF-8 page into mojibake
        text = _strict(payload, "utf-8")
        if text is not None and _looks_like_text(text):
            return text, "utf-8"
    for codec in (*declared, "utf-8"):
        text = _strict(payload, codec)
        if text is not None and _looks_like_text(text):
            return text, codec

    detected = None
    best = charset_normalizer.from_bytes(payload[:200_000]).best()
    if best is not None and best.encoding:
        detected = codec_for(best.encoding)
        text = _strict(payload, detected) if detected else None
        if text is not None and _looks_like_text(text):
            return text, detected

    # a declared or detected encoding with a few stray bytes beats failing: accept it when damage is small
    for codec in dict.fromkeys((*declared, *([detected] if detected else []), "utf-8")):
        text = payload.decode(codec, "replace")
        if _looks_like_text(text):
            return text, codec
    raise UndecodableError("payload does not decode as text in its declared, UTF-8 or detected encoding")
