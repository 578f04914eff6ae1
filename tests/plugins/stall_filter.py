"""A test plugin that never finishes: the per-document CPU budget must stop it."""

from __future__ import annotations

from dataclasses import dataclass

from crawlproc.config import Section
from crawlproc.quality.filter import Filter
from crawlproc.quality.verdict import Verdict


@dataclass
class StallConfig(Section):
    enabled: bool = True


class Stall(Filter):
    name = "stall"
    Config = StallConfig
    checks = ()

    def filter(self, doc) -> Verdict:
        while True:  # pure Python, so the budget's signal gets through
            pass


FILTERS = [Stall]
