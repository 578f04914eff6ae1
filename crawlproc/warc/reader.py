"""Read HTML response records from a WARC file, with a counted reason for everything skipped.

Common Crawl publishes WARCs gzipped per record. `WarcStream` inflates them member by member with an output
limit, raises `WarcReadError` at a truncated or corrupt member, and knows the compressed offset of each member,
so that every document keeps the byte offset Common Crawl's index uses. Uncompressed WARCs are read as they are.

warcio parses the WARC and HTTP headers; the record loop is ours, so that what one record can cost is bounded
and a bad record costs only itself:

- Memory per record is bounded by `max_payload_bytes` (plus one 256 KB piece), whatever the compression
  ratio; headers are capped at `MAX_HEADER_BYTES`. The payload is never read past the cap.
- Skipping the rest of a record (too large, not HTML, ...) inflates and drops it piece by piece. A gzip record
  that would need more than `max_skip_bytes` inflated to skip (a bomb) is counted as `too_large` and its gzip
  member abandoned: reading goes on at the next member that starts a WARC record, found in the compressed
  bytes and checked by inflating its first bytes (WarcStream.next_record_member). Time stays proportional to
  the cap plus the compressed size. Only when records share gzip members (a whole-file gzip) does a bomb end
  the file with a WarcReadError, since the records after it cannot be reached without inflating it.
- A record that cannot be read (no WARC-Target-URI, broken WARC or HTTP headers, a bad Content-Length) is
  counted as `malformed:<what>` and reading goes on: with the next record when its length is known, else at the
  next gzip member (or, uncompressed, the next line that starts a WARC record).
- A record is handed out only once its gzip member has been inflated to the end (CRC checked), and every record
  that ends before a corrupt or truncated member is handed out before the error.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from warcio.recordloader import ArcWarcRecordLoader
from warcio.statusandheaders import StatusAndHeadersParser

from crawlproc.warc.httpbody import read_payload
from crawlproc.warc.stream import OverBudget, WarcReadError, WarcStream

__all__ = ["HTML_TYPES", "HtmlRecord", "ReadCounts", "WarcReadError", "iter_html_records", "skip_limit"]

HTML_TYPES = ("text/html", "application/xhtml+xml", "application/xml+html")
MAX_HEADER_BYTES = 1 << 20  # WARC headers, and HTTP headers, of one record (real ones are a few KB)
MAX_LINE = 64 << 10  # one header line
_DIGITS = re.compile(r"\s*[0-9]+\s*")
_FIRST = (b"WARC/", b"filedesc://")  # how the first record of a WARC file, or of an ARC file, begins


def skip_limit(max_payload_bytes: int) -> int:
    """Most bytes inflated to skip one gzip record: 64 payload caps, at least 64 MiB, at most 1 GiB (~1 s)."""
    return min(max(64 * max_payload_bytes, 64 << 20), 1 << 30)


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
    decompressed_bytes: int = 0  # bytes inflated (gzip files): what reading the file cost
    resynced: int = 0  # gzip members abandoned past the skip limit, reading going on at the next record


class _Malformed(Exception):
    def __init__(self, what: str, detail: str = ""):
        super().__init__(detail or what)
        self.what = what


class _TooLong(Exception):
    pass


class _Lines:
    """readline() for warcio's header parsers: lines of at most MAX_LINE bytes, MAX_HEADER_BYTES in all."""

    def __init__(self, read_line):
        self._read_line = read_line
        self._left = MAX_HEADER_BYTES

    def readline(self, size: int | None = None) -> bytes:
        line = self._read_line(MAX_LINE if size is None or size < 0 else min(size, MAX_LINE))
        self._left -= len(line)
        if self._left < 0:
            raise _TooLong
        return line


class _Block:
    """Reads of one record's block: never past its Content-Length, nor (in a gzip-per-record file) into the
    next gzip member when that member starts a new record: then `cut` is set, the length was wrong."""

    def __init__(self, stream: WarcStream, length: int):
        self.s = stream
        self.end = stream.tell() + length
        self.member = stream.current_member()
        self.cut = False

    def _room(self, n: int) -> int:
        s = self.s
        left = self.end - s.tell()
        if left <= 0:
            return 0
        if s.gzipped and s.current_member() != self.member:
            m = s.current_member()
            if s.tell() == s.member_starts[m] and s.peek(5) == b"WARC/":
                self.cut, self.end = True, s.tell()
                return 0
            self.member = m
        return min(n, left)

    def read(self, n: int) -> bytes:
        parts, got = [], 0
        while got < n and (k := self._room(n - got)):
            piece = self.s.read_piece(k)
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readline(self, limit: int) -> bytes:
        parts, got = [], 0
        while got < limit and (k := self._room(limit - got)):
            piece = self.s.readline(k, one_piece=True)
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
            if piece.endswith(b"\n"):
                break
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def skip_rest(self, budget: int | None) -> int:
        """Drop the rest of the block; raises OverBudget when that would inflate more than `budget`."""
        if budget is not None and self.s.gzipped and self.end - self.s.tell() > budget:
            raise OverBudget(self.end - self.s.tell())
        done = 0
        while k := self._room(1 << 30):
            n = self.s.skip_piece(k)
            if not n:
                break
            done += n
        return done

    def short(self) -> bool:
        return self.cut or self.s.tell() < self.end


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _looks_like_html(head: bytes) -> bool:
    head = head[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head or b"<body" in head


def _short(e: Exception | str, n: int = 160) -> str:
    text = repr(str(e))[1:-1]  # escape binary garbage so the message stays one readable line
    return text if len(text) <= n else text[:n] + "..."


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


class _Reader:
    def __init__(self, stream: WarcStream, counts: ReadCounts, max_payload_bytes: int, html_only: bool,
                 max_skip_bytes: int):
        self.s = stream
        self.counts = counts
        self.max_payload = max_payload_bytes
        self.html_only = html_only
        self.max_skip = max_skip_bytes if stream.gzipped else None  # skipping plain bytes inflates nothing
        self.loader = ArcWarcRecordLoader(verify_http=False, arc2warc=True)
        self.http_parser = StatusAndHeadersParser(["HTTP/1.0", "HTTP/1.1"], verify=False)
        self.seen = 0  # records of this file, malformed ones included
        self.per_record = True  # every record so far began its own gzip member (Common Crawl's layout)

    def records(self) -> Iterator[HtmlRecord]:
        s = self.s
        pending: HtmlRecord | None = None
        pending_member = -1  # the last gzip member that holds part of `pending`
        while True:
            try:
                s.skip_blank(self.max_skip)
                done = s.at_eof()
            except WarcReadError as e:
                if pending is not None and (e.member is None or e.member > pending_member):
                    yield pending  # it ended before the fault, its own member is whole
                raise
            except OverBudget:
                # its member never ends: `pending` (in that member) cannot be verified and is counted instead
                self._past_limit(f"the blank bytes after record {self.seen}", 1)
                pending = None
                continue
            if pending is not None:
                yield pending
                pending = None
            if done:
                return
            if self.seen == 0:
                self._check_first_record()
            start = s.tell()
            start_member = s.current_member()
            # a record that does not begin its gzip member shares it: members cannot be skipped one by one then
            # (junk that is not a record says nothing about the layout)
            shares = s.gzipped and s.member_starts[start_member] != start
            self.seen += 1
            self.counts.records += 1
            counted = sum(self.counts.skipped.values())
            try:
                pending = self._record(start, start_member)
            except _Malformed as m:
                self.counts.skipped[f"malformed:{m.what}"] += 1
                try:
                    self._resync(start_member, m)
                except OverBudget:
                    self._past_limit(f"the gzip member of record {self.seen}, malformed ({m.what}),", 0)
                continue
            except OverBudget as e:
                self.per_record &= not shares
                uncounted = 0 if sum(self.counts.skipped.values()) > counted else 1
                self._past_limit(f"record {self.seen} (at byte {self._offset(start_member, start)}), which needs "
                                 f"{_mib(e.args[0])} or more inflated to skip,", uncounted)
                continue
            self.per_record &= not shares
            pending_member = s.member_of(s.tell() - 1)

    def _past_limit(self, what: str, uncounted: int) -> None:
        """A gzip member that would inflate past the skip limit (a bomb). With one member per record (as Common
        Crawl writes them), its record is counted as too_large (`uncounted` of them not counted yet) and reading
        goes on at the next member that starts a record; otherwise the rest of the file is not read."""
        if not (self.s.gzipped and self.per_record):
            raise WarcReadError(f"{what} would inflate past the {_mib(self.max_skip)} limit (a gzip bomb?), and "
                                "records share its gzip member: the rest of the file is not read")
        if uncounted:
            self.counts.skipped["too_large"] += uncounted
        self.counts.resynced += 1
        self.s.next_record_member()

    def _check_first_record(self) -> None:
        """A WARC starts with a WARC/ version line, an ARC with its filedesc:// block. Anything else is not
        read as records: warcio would take any line of five space-separated fields for an ARC header."""
        head = self.s.peek(len(_FIRST[1]))
        if not any(p.startswith(head) or head.startswith(p) for p in _FIRST):
            raise WarcReadError(f"not a WARC file: it starts with '{_short(head.decode('latin-1'), 40)}', not 'WARC/' or "
                                "'filedesc://'")

    def _offset(self, member: int, start: int) -> int:
        return self.s.member_offsets[member] if self.s.gzipped else start

    def _resync(self, member: int, m: _Malformed) -> None:
        """After a record whose end is unknown: go on at the next gzip member, or the next line that starts a
        WARC record. A file whose very first record is unreadable is not a WARC file."""
        if self.seen == 1 and m.what.startswith("warc_headers"):
            raise WarcReadError(f"not a WARC file: {_short(m)}")
        if self.s.gzipped:
            self.s.skip_member(member, self.max_skip)  # OverBudget: see records()
        else:
            self.s.skip_blank()
            if self.s.peek(5) != b"WARC/":  # unless the next record begins right where this one broke
                self.s.skip_to_line(b"WARC/")

    def _record(self, start: int, member: int) -> HtmlRecord | None:
        """Read one record (its block, to the end); the HtmlRecord to hand out, or None (counted)."""
        s, counts = self.s, self.counts
        try:
            record = self.loader.parse_record_stream(_Lines(lambda n: s.readline(n)), no_record_parse=True)
        except (WarcReadError, OverBudget):
            raise
        except _TooLong:
            raise _Malformed("warc_headers_too_long") from None
        except Exception as e:  # warcio raises ArchiveLoadFailed, StatusAndHeadersParserException, ValueError...
            raise _Malformed("warc_headers", f"{type(e).__name__}: {e}") from None
        headers = record.rec_headers
        declared = headers.get_header("Content-Length")
        if declared is None or not _DIGITS.fullmatch(declared) or record.length is None or record.length < 0:
            raise _Malformed("content_length", f"Content-Length {declared!r}")
        block = _Block(s, record.length)
        result = self._response(record, block, start, member)
        block.skip_rest(self.max_skip)
        if block.short():
            if not s.gzipped:
                raise WarcReadError(f"truncated record after {self.seen - 1} records: shorter than its "
                                    "Content-Length")
            counts.skipped["malformed:content_length"] += 1  # the block ended early: its member did
            return None
        return result

    def _response(self, record, block: _Block, start: int, member: int) -> HtmlRecord | None:
        counts = self.counts
        rtype = record.rec_type
        if rtype != "response":
            counts.skipped["revisit" if rtype == "revisit" else "not_response"] += 1
            return None
        counts.responses += 1
        headers = record.rec_headers
        uri = (headers.get_header("WARC-Target-URI") or "").strip()
        if not uri:
            counts.skipped["malformed:no_target_uri"] += 1
            return None
        if not uri.lower().startswith(("http:", "https:")):
            counts.skipped["not_http"] += 1  # dns:, whois:, ... carry no HTTP response
            return None
        try:
            http = self.http_parser.parse(_Lines(block.readline))
        except (WarcReadError, OverBudget):
            raise
        except _TooLong:
            counts.skipped["malformed:http_headers_too_long"] += 1
            return None
        except Exception:  # EOFError for an empty block, anything a garbled header block raises
            counts.skipped["malformed:http_headers"] += 1
            return None
        status = http.get_statuscode()
        if status and not status.startswith("2"):
            counts.skipped["not_ok_status"] += 1
            return None
        ctype = http.get_header("Content-Type")
        media = _media_type(ctype) or _media_type(headers.get_header("WARC-Identified-Payload-Type"))
        if self.html_only and media and media not in HTML_TYPES:
            counts.skipped["non_html"] += 1
            return None
        declared = http.get_header("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_payload:
            counts.skipped["too_large"] += 1
            return None
        try:
            payload = read_payload(block.read, block.readline, http.get_header("Transfer-Encoding"),
                                   http.get_header("Content-Encoding"), self.max_payload)
        except (WarcReadError, OverBudget):
            raise
        if len(payload) > self.max_payload:
            counts.skipped["too_large"] += 1
            return None
        if self.html_only and not media and not _looks_like_html(payload):
            counts.skipped["non_html"] += 1
            return None
        if not payload.strip():
            counts.skipped["empty"] += 1
            return None
        offset = self._offset(member, start)
        return HtmlRecord(
            id=headers.get_header("WARC-Record-ID") or f"<offset:{offset}>",
            url=uri.strip("<>"),
            date=headers.get_header("WARC-Date") or "",
            offset=offset,
            payload=payload,
            content_type=ctype,
        )


def iter_html_records(
    path: str | Path, counts: ReadCounts, max_payload_bytes: int = 5_000_000, html_only: bool = True,
    max_skip_bytes: int | None = None,
) -> Iterator[HtmlRecord]:
    """Yield the HTML responses of a WARC file; count every other record in `counts.skipped` by reason.

    `max_skip_bytes` (default `skip_limit(max_payload_bytes)`): most bytes inflated to skip one gzip record.
    Raises WarcReadError when the file is truncated, corrupt or not a WARC: the records yielded before stay valid.
    """
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = WarcStream(raw, gzipped)
        limit = skip_limit(max_payload_bytes) if max_skip_bytes is None else max_skip_bytes
        try:
            yield from _Reader(stream, counts, max_payload_bytes, html_only, limit).records()
        finally:
            counts.decompressed_bytes += stream.inflated
