"""Read HTML response records from a WARC file, with a counted reason for everything skipped.

Common Crawl publishes WARCs gzipped per record. warcio alone stops silently at a truncated gzip member, which
would lose records without a trace; so gzip input is decompressed here by `CheckedGzipStream`, which raises
`WarcReadError` at a truncated or corrupt member, and records the compressed offset of each member so that every
document keeps the byte offset Common Crawl's index uses. Uncompressed WARCs are read as they are, and a record
shorter than its Content-Length is reported the same way.
"""

from __future__ import annotations

import bisect
import io
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from collections.abc import Iterator

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

HTML_TYPES = ("text/html", "application/xhtml+xml", "application/xml+html")
_CHUNK = 1 << 20


class WarcReadError(Exception):
    """The file cannot be read past this point (truncated, corrupt, not a WARC). Records before it are kept."""


@dataclass
class HtmlRecord:
    id: str
    url: str
    date: str
    offset: int  # byte offset of the record in the WARC file (compressed, for gzip files)
    payload: bytes
    content_type: str | None  # the HTTP Content-Type header, for the charset


@dataclass
class ReadCounts:
    records: int = 0
    responses: int = 0
    skipped: Counter = field(default_factory=Counter)


class CheckedGzipStream(io.RawIOBase):
    """A multi-member gzip file as one decompressed stream that raises on truncation or corruption.

    `member_offsets`/`member_starts` map a position in the decompressed stream back to the compressed offset of
    the gzip member it came from (for gzip-per-record files: the record's offset in the file).
    """

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.compressed_pos = 0
        self.decompressed_pos = 0
        self.member_offsets: list[int] = [0]  # compressed offset of each member
        self.member_starts: list[int] = [0]  # decompressed offset where each member begins
        self._d = zlib.decompressobj(31)
        self._in_member = False
        self._buf = b""
        self._pending = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        while not self._buf and not self._eof:
            if self._d.eof:  # the previous member is whole: what it left over starts the next one
                self._pending = self._d.unused_data
                self.member_offsets.append(self.compressed_pos)
                self.member_starts.append(self.decompressed_pos)
                self._d = zlib.decompressobj(31)
                self._in_member = False
            data, self._pending = (self._pending or self.raw.read(_CHUNK)), b""
            if not data:
                if self._in_member:
                    raise WarcReadError(f"truncated gzip member starting at byte {self.member_offsets[-1]}")
                self._eof = True
                return
            try:
                out = self._d.decompress(data)
            except zlib.error as e:
                raise WarcReadError(f"corrupt gzip data in member at byte {self.member_offsets[-1]}: {e}") from None
            self._in_member = True
            self.compressed_pos += len(data) - len(self._d.unused_data)
            self.decompressed_pos += len(out)
            self._buf = out

    def readinto(self, b) -> int:
        self._fill()
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def compressed_offset(self, decompressed_offset: int) -> int:
        i = bisect.bisect_right(self.member_starts, decompressed_offset) - 1
        return self.member_offsets[max(i, 0)]


def _short(e: Exception, n: int = 160) -> str:
    text = repr(str(e))[1:-1]  # escape binary garbage so the message stays one readable line
    return text if len(text) <= n else text[:n] + "..."


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _looks_like_html(head: bytes) -> bool:
    head = head[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head or b"<body" in head


def iter_html_records(
    path: str | Path, counts: ReadCounts, max_payload_bytes: int = 5_000_000, html_only: bool = True
) -> Iterator[HtmlRecord]:
    """Yield the HTML responses of a WARC file; count every other record in `counts.skipped` by reason.

    Raises WarcReadError when the file is truncated, corrupt or not a WARC: the records yielded before stay valid.
    """
    path = Path(path)
    raw = open(path, "rb")
    try:
        gz = CheckedGzipStream(raw) if _is_gzip(path) else None
        stream = io.BufferedReader(gz, _CHUNK) if gz else raw
        try:
            iterator = ArchiveIterator(stream, no_record_parse=False, arc2warc=True)
        except ArchiveLoadFailed as e:
            raise WarcReadError(f"not a WARC file: {_short(e)}") from None
        try:
            yield from _records(iterator, gz, counts, max_payload_bytes, html_only)
        except ArchiveLoadFailed as e:
            raise WarcReadError(f"malformed WARC after {counts.records} records: {_short(e)}") from None
        except (EOFError, ValueError, zlib.error) as e:
            raise WarcReadError(
                f"unreadable WARC after {counts.records} records: {type(e).__name__}: {_short(e)}"
            ) from None
    finally:
        raw.close()


def _records(iterator, gz, counts, max_payload_bytes, html_only) -> Iterator[HtmlRecord]:
    for record in iterator:
        counts.records += 1
        rtype = record.rec_type
        if rtype != "response":
            counts.skipped["revisit" if rtype == "revisit" else "not_response"] += 1
            continue
        counts.responses += 1
        headers = record.rec_headers
        http = record.http_headers
        if http is None:
            counts.skipped["malformed"] += 1  # a response without HTTP headers (e.g. dns:)
            continue
        status = http.get_statuscode()
        if status and not status.startswith("2"):
            counts.skipped["not_ok_status"] += 1
            continue
        ctype = http.get_header("Content-Type")
        media = _media_type(ctype) or _media_type(headers.get_header("WARC-Identified-Payload-Type"))
        if html_only and media and media not in HTML_TYPES:
            counts.skipped["non_html"] += 1
            continue
        declared = http.get_header("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_payload_bytes:
            counts.skipped["too_large"] += 1
            continue
        stream = record.content_stream()
        payload = stream.read(max_payload_bytes + 1)
        if len(payload) > max_payload_bytes:
            counts.skipped["too_large"] += 1
            continue
        if gz is None and record.raw_stream.limit > 0 and record.raw_stream.read(1) == b"":
            raise WarcReadError(f"truncated record after {counts.records - 1} records: shorter than its Content-Length")
        # warcio knows a record's offset only once it is read to the end, so ask after reading the payload
        offset = iterator.get_record_offset()
        if gz is not None:
            offset = gz.compressed_offset(offset)
        if html_only and not media and not _looks_like_html(payload):
            counts.skipped["non_html"] += 1
            continue
        if not payload.strip():
            counts.skipped["empty"] += 1
            continue
        yield HtmlRecord(
            id=headers.get_header("WARC-Record-ID") or f"<offset:{offset}>",
            url=(headers.get_header("WARC-Target-URI") or "").strip("<>"),
            date=headers.get_header("WARC-Date") or "",
            offset=offset,
            payload=payload,
            content_type=ctype,
        )
