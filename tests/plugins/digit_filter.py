"""A filter from outside crawlproc, as a user writes one (README, "Adding your own filter"): a recipe that
lists this module in `extract.plugins` runs it after the built-in filters.

Removes documents in which digits are more than `max_digit_ratio` of the characters (tables of numbers,
price lists, scores).
"""

from __future__ import annotations

from dataclasses import dataclass

from crawlproc.config import Section, fraction
from crawlproc.quality.filter import Check, Filter


@dataclass
class DigitRatioConfig(Section):
    enabled: bool = True
    max_digit_ratio: float = 0.25

    def check(self):
        fraction(self, "max_digit_ratio")


def digit_ratio(doc, cfg) -> float:
    return sum(c.isdigit() for c in doc.text) / max(len(doc.text), 1)


class DigitRatio(Filter):
    name = "digit_ratio"
    Config = DigitRatioConfig
    checks = (Check("digit_ratio", ">", "max_digit_ratio", digit_ratio),)


FILTERS = [DigitRatio]
