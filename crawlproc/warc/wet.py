"""Read Common Crawl's WET files: the text CC extracted from each HTML page (`WARC-Type: conversion`).

A WET record holds the page's text (UTF-8, one line per block of the page: no markup, no boilerplate
removal), its URL, date and `WARC-Refers-To` (the response record it came from). Records come back as
HtmlRecord with the text as payload and a text/plain content type, so the extract stage decodes them as it
decodes pages; `fetch.mode = "wet"` then skips HTML extraction (crawlproc/extract/steps.py TextStep).
Memory per record is bounded by `max_payload_bytes`: a longer text is skipped and counted ("too_large").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from crawlproc.warc.reader import HtmlRecord, ReadCounts
from crawlproc.warc.stream import WarcReadError

WET_TYPE = "text/plain; charset=utf-8"


def iter_wet_records(path: str | Path, counts: ReadCounts, max_payload_bytes: int = 5_000_000
                     ) -> Iterator[HtmlRecord]:
    """Yield the conversion records of a WET file; count every other record in `counts.skipped`. Raises
    WarcReadError when the file is truncated or not a WARC: the records yielded before stay valid."""
    with open(path, "rb") as raw:
        it = ArchiveIterator(raw)
        try:
            for rec in it:
                counts.records += 1
                if rec.rec_type != "conversion":
                    counts.skipped["not_conversion"] += 1
                    continue
                counts.responses += 1
                uri = (rec.rec_headers.get_header("WARC-Target-URI") or "").strip().strip("<>")
                if not uri:
                    counts.skipped["malformed:no_target_uri"] += 1
                    continue
                text = rec.content_stream().read(max_payload_bytes + 1)
                if len(text) > max_payload_bytes:
                    counts.skipped["too_large"] += 1
                    continue
                if not text.strip():
                    counts.skipped["empty"] += 1
                    continue
                counts.decompressed_bytes += len(text)
                offset = it.get_record_offset()
                yield HtmlRecord(id=rec.rec_headers.get_header("WARC-Record-ID") or f"<offset:{offset}>", url=uri,
                                 date=rec.rec_headers.get_header("WARC-Date") or "", offset=offset, payload=text,
                                 content_type=WET_TYPE)
        except (ArchiveLoadFailed, EOFError, OSError, ValueError) as e:
            raise WarcReadError(f"cannot read WET file {Path(path).name}: {type(e).__name__}: {e}") from None
