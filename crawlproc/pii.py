"""PII anonymization after dedup, as FineWeb does: e-mail addresses and *public* IP addresses are replaced
by fixed placeholders (PiiConfig). Private, loopback, link-local, reserved and documentation addresses are
left alone: they identify no one, and code samples and tutorials are full of them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from crawlproc.recipe import PiiConfig

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\w-])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Not part of a longer dotted number (a version like 1.2.3.4.5) or of a word.
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)")
# Candidates only: hex groups with 2..7 colons; ipaddress decides what is really an address.
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|:)?(?![\w:])")


def is_public_ip(candidate: str) -> bool:
    """True for a syntactically valid, globally routable address (ipaddress's `is_global`)."""
    try:
        return ipaddress.ip_address(candidate).is_global
    except ValueError:
        return False


@dataclass
class PiiCounts:
    emails: int = 0
    ips: int = 0


class PiiAnonymizer:
    def __init__(self, config: PiiConfig | None = None):
        self.config = config or PiiConfig()
        self.counts = PiiCounts()

    def _ip(self, m: re.Match) -> str:
        if is_public_ip(m.group(0)):
            self.counts.ips += 1
            return self.config.ip_replacement
        return m.group(0)

    def _email(self, m: re.Match) -> str:
        self.counts.emails += 1
        return self.config.email_replacement

    def __call__(self, text: str) -> str:
        if not self.config.enabled or not text:
            return text
        if "@" in text:
            text = _EMAIL.sub(self._email, text)
        if "." in text:
            text = _IPV4.sub(self._ip, text)
        if ":" in text:
            text = _IPV6.sub(self._ip, text)
        return text


def anonymize(text: str, config: PiiConfig | None = None) -> str:
    """Replace e-mail addresses and public IPv4/IPv6 addresses in one text."""
    return PiiAnonymizer(config)(text)
