"""Every real HTML page in tests/data, decoded as the extract stage decodes it: the ScrapingHub articles, the
multilingual pages and the HTML responses of the real WARC files (shared by the equivalence tests)."""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).parent / "data"


@lru_cache(maxsize=1)
def real_pages() -> tuple[tuple[str, str | None, str], ...]:
    """((name, url or None, html), ...)"""
    from crawlproc.warc.charset import decode_html
    from crawlproc.warc.reader import ReadCounts, iter_html_records

    out = []
    for folder in (DATA / "html" / "html", DATA / "html_multilingual"):
        for p in sorted(folder.glob("*.html.gz")):
            out.append((f"{folder.name}/{p.name}", None, decode_html(gzip.decompress(p.read_bytes()), None)[0]))
    for p in sorted((DATA / "warc").glob("*.warc.gz")):
        if p.name.endswith((".wet.gz", ".wat.gz")):
            continue
        for rec in iter_html_records(p, ReadCounts()):
            out.append((f"warc/{p.name}@{rec.offset}", rec.url, decode_html(rec.payload, rec.content_type)[0]))
    return tuple(out)
