"""A test plugin with a bug: it raises on every document, which must cost that document only."""

from __future__ import annotations

from dataclasses import dataclass

from crawlproc.config import Section
from crawlproc.quality.filter import Filter
from crawlproc.quality.verdict import Verdict


@dataclass
class CrashConfig(Section):
    enabled: bool = True


class Crash(Filter):
    name = "crash"
    Config = CrashConfig
    checks = ()

    def filter(self, doc) -> Verdict:
        return Verdict(None, doc.text, {"x": 1 / len(doc.text[:0])})


FILTERS = [Crash]
