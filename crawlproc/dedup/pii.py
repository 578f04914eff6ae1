"""PII anonymization after dedup, as FineWeb does: e-mail addresses and *public* IP addresses are replaced
by fixed placeholders (PiiConfig). Private, loopback, link-local, reserved and documentation addresses are
left alone: they identify no one, and code samples and tutorials are full of them.

E-mail addresses are found from their '@': the domain (a host name with a top-level domain, a dotted IPv4
address, or a bracketed literal such as [123.123.123.123]) is matched forwards, the local part backwards
over every character a local part may hold, dots included, so that nothing of it survives: not after a
'.', not with two dots in a row (`Abc..123@example.com`), not quoted (`"john doe"@example.com`), not in
another script. Only a run of three or more dots (an ellipsis, "write to us...info@x.com") or a leading
dot ends it. FineWeb's formatter starts its match at a word boundary, which leaves `Abc.` of
`Abc..123@example.com` in place, and keeps the local part of `email@123.123.123.123`.

Speed: each detector runs only where its cheap trigger is found ('@'; a '.' before a digit; two colons a
hex group apart). Those triggers are literal-first patterns, which Python's regex engine scans at memchr
speed; the full checks run only around the hits.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from crawlproc.dedup.arrowtext import offsets_and_bytes
from crawlproc.recipe import PiiConfig

# forwards from the '@': a bracketed literal, a dotted IPv4 address, or a host name with a top-level domain
_DOMAIN = re.compile(
    r"\[[^\]\s]{1,255}\]"
    r"|\d{1,3}(?:\.\d{1,3}){3}(?!\w|\.\d)"
    r"|(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}(?![\w-])"
)
# backwards from the '@' (matched on the reversed text): RFC 5322's atext, any letter or digit, and dots
_LOCAL_REVERSED = re.compile(r"[\w!#$%&'*+/=?^`{|}~.-]+")
_QUOTED_MAX = 256

_DOT_DIGIT = re.compile(r"\.\d")  # the trigger of an IPv4 candidate
_DIGITS_DOTS = re.compile(r"[\d.]+")
_COLON_PAIR = re.compile(r":[0-9A-Fa-f]{0,4}:")  # the trigger of an IPv6 candidate
_HEX_RUN = re.compile(r"[0-9A-Fa-f:.]+")
_HEX_CHARS = frozenset("0123456789abcdefABCDEF:.")
_DIGIT_CHARS = frozenset("0123456789.")


def is_public_ip(candidate: str) -> bool:
    """True for a syntactically valid, globally routable address (ipaddress's `is_global`)."""
    try:
        return ipaddress.ip_address(candidate).is_global
    except ValueError:
        return False


def _is_word(text: str, i: int) -> bool:
    """Is text[i] a word character (what `\\w` matches); False outside the text."""
    return 0 <= i < len(text) and (text[i].isalnum() or text[i] == "_")


def _local_start(text: str, reversed_text: str, at: int) -> int:
    """Where the local part ending at text[at] ('@') starts; `at` itself when there is none."""
    if at and text[at - 1] == '"':  # a quoted local part
        q = text.rfind('"', max(0, at - 1 - _QUOTED_MAX), at - 1)
        if q >= 0 and "\n" not in text[q:at]:
            return q
    m = _LOCAL_REVERSED.match(reversed_text, len(text) - at)
    if not m:
        return at
    start = at - (m.end() - m.start())
    local = text[start:at]
    ellipsis = local.rfind("...")
    if ellipsis >= 0:
        start += ellipsis + 3
    while start < at and text[start] == ".":
        start += 1
    return start


def _email_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    reversed_text = text[::-1]
    at = text.find("@")
    while at >= 0:
        domain = _DOMAIN.match(text, at + 1)
        start = _local_start(text, reversed_text, at)
        if spans:
            start = max(start, spans[-1][1])
        if domain and start < at:
            spans.append((start, domain.end()))
            at = text.find("@", domain.end())
        else:
            at = text.find("@", at + 1)
    return spans


def _address_spans(text: str, trigger: re.Pattern, run: re.Pattern, run_chars, dotted_quad: bool) -> list[tuple[int, int]]:
    """The public addresses among the maximal runs of `run_chars` around each `trigger` hit: the run (less
    a trailing '.') must stand alone (no word character on either side) and parse as a public address; a
    dotted quad must also be exactly four numbers (a version like 1.2.3.4.5 or .1.2.3.4 is not one)."""
    spans: list[tuple[int, int]] = []
    end = 0
    for m in trigger.finditer(text):
        if m.start() < end:
            continue
        start = m.start()
        while start and text[start - 1] in run_chars:
            start -= 1
        end = run.match(text, m.start()).end()
        candidate = text[start:end].rstrip(".")
        if dotted_quad and (candidate.count(".") != 3 or candidate.startswith(".")):
            continue
        if not _is_word(text, start - 1) and not _is_word(text, start + len(candidate)) and is_public_ip(candidate):
            spans.append((start, start + len(candidate)))
    return spans


def _ipv4_spans(text: str) -> list[tuple[int, int]]:
    return _address_spans(text, _DOT_DIGIT, _DIGITS_DOTS, _DIGIT_CHARS, dotted_quad=True)


def _ipv6_spans(text: str) -> list[tuple[int, int]]:
    return _address_spans(text, _COLON_PAIR, _HEX_RUN, _HEX_CHARS, dotted_quad=False)


def _replace(text: str, spans: list[tuple[int, int]], replacement: str) -> str:
    parts, last = [], 0
    for start, end in spans:
        parts += [text[last:start], replacement]
        last = end
    parts.append(text[last:])
    return "".join(parts)


@dataclass
class PiiCounts:
    emails: int = 0
    ips: int = 0


class PiiAnonymizer:
    def __init__(self, config: PiiConfig | None = None):
        self.config = config or PiiConfig()
        self.counts = PiiCounts()

    def __call__(self, text: str) -> str:
        if not self.config.enabled or not text:
            return text
        if "@" in text:
            spans = _email_spans(text)
            self.counts.emails += len(spans)
            text = _replace(text, spans, self.config.email_replacement)
        for trigger, find in ((_DOT_DIGIT, _ipv4_spans), (_COLON_PAIR, _ipv6_spans)):
            if trigger.search(text):
                spans = find(text)
                self.counts.ips += len(spans)
                text = _replace(text, spans, self.config.ip_replacement)
        return text


def anonymize(text: str, config: PiiConfig | None = None) -> str:
    """Replace e-mail addresses and public IPv4/IPv6 addresses in one text."""
    return PiiAnonymizer(config)(text)


def candidate_rows(texts: pa.Array) -> np.ndarray:
    """Indices of the texts of an Arrow string column that may hold an address, found over the column's bytes
    at once, with no Python object per text: an '@' between a byte that can end a local part and one that
    can start a domain; ".d.d." (a dotted quad has it); two colons a hex group apart (an IPv6 address has
    them). Every text that the anonymizer would change is a candidate; most texts are not."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    col = texts if texts.type == pa.large_string() else texts.cast(pa.large_string())
    offsets, raw = offsets_and_bytes(col)
    if len(raw) == 0:
        return np.empty(0, dtype=np.int64)
    # an '@' is an address's only when a local part can end before it and a domain start after it: a handle
    # ("follow @name") is not, and would cost a pass of the anonymizer over its whole text
    at = np.flatnonzero(raw == 64)
    before, after = raw[np.maximum(at - 1, 0)], raw[np.minimum(at + 1, len(raw) - 1)]
    at = at[_LOCAL_END[before] & _DOMAIN_START[after] & (at > 0) & (at < len(raw) - 1)]
    hits = [at] + [np.array([m.start() for m in pattern.finditer(raw)], dtype=np.int64) for pattern in _CANDIDATES]
    # a match that starts in one text and ends in the next only adds a candidate
    return np.unique(np.searchsorted(offsets[:-1], np.concatenate(hits), side="right") - 1)


# Each consumes one byte and looks ahead for the rest: a match never eats the start of the next one (the
# column's texts are contiguous, so "...1.69." + "8.8.8.8" must still find the second text's ".8.8.").
_CANDIDATES = (re.compile(rb"\.(?=[0-9]{1,3}\.[0-9]{1,3}\.)"), re.compile(rb":(?=[0-9A-Fa-f]{0,4}:)"))


def _byte_set(ascii_chars: str) -> np.ndarray:
    """A lookup table of bytes: the given ASCII characters, and every non-ASCII byte (UTF-8 of any letter,
    digit or mark of another script, which _LOCAL_REVERSED's and _DOMAIN's \\w take)."""
    table = np.zeros(256, dtype=bool)
    table[list(ascii_chars.encode())] = True
    table[128:] = True
    return table


_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_LOCAL_END = _byte_set(_ALNUM + "_!#$%&'*+/=?^`{|}~.-\"")  # _LOCAL_REVERSED's characters, or a quoted part's
_DOMAIN_START = _byte_set(_ALNUM + "[")  # a host name, a dotted IPv4 address or a bracketed literal
