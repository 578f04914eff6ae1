"""A plugin filter that reads the document's URL and language, not only its text (tests/test_explain.py):
removes a document whose URL path is deeper than `max_depth` segments, judged only once its language is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from crawlproc.config import Section, at_least
from crawlproc.quality.filter import Check, Filter


@dataclass
class UrlDepthConfig(Section):
    enabled: bool = True
    max_depth: int = 8

    def check(self):
        at_least(self, 0, "max_depth")


def url_depth(doc, cfg) -> float | None:
    if doc.language is None:  # not identified: no judgement (a measure returning None skips its check)
        return None
    return float(len([p for p in urlsplit(doc.url).path.split("/") if p]))


class UrlDepth(Filter):
    name = "url_depth"
    Config = UrlDepthConfig
    checks = (Check("url_depth", ">", "max_depth", url_depth),)


FILTERS = [UrlDepth]
