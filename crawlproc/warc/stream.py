"""The decompressed bytes of a WARC file, read forward in bounded pieces: what `crawlproc.warc.reader` parses.

A gzip file is inflated member by member with `max_length`, so one call never produces more than `PIECE`
bytes whatever the compression ratio (a 4 MB member can hold 4 GiB of NULs). A piece never spans two members:
the reader knows at every byte which member it came from, which gives each record the compressed offset that
Common Crawl's index uses, a member boundary to resynchronise at after a malformed record, and the moment a
member's CRC has been checked. Reads advance an offset into the current piece; nothing is copied twice.

Every way to move forward is bounded: `readline` by a line length, `skip_blank` and `skip_member` by a byte
budget (the bytes they may inflate and throw away), reads by their size and by the current piece, so that no
input can make a read cost more than its caller allowed.

A member too large to inflate (a gzip bomb) need not end the file: `next_record_member` abandons it and goes on
at the next member that starts a WARC record, found in the compressed bytes (the gzip magic) and checked by
inflating only its first bytes, so a bomb costs the compressed bytes read past it, never its inflated size.
"""

from __future__ import annotations

import bisect
import re
import zlib
from typing import BinaryIO

PIECE = 256 << 10  # most decompressed bytes produced by one inflate call
_INPUT = 64 << 10  # compressed bytes read at a time (a member boundary copies at most this much)
_BLANK = re.compile(rb"[^\r\n \t]")
_GZIP_MAGIC = b"\x1f\x8b\x08"  # a gzip member's first bytes: magic and the deflate method
_CHECK_INPUT = 4096  # compressed bytes given to zlib to check a candidate member (its header and first bytes)
_RECORD_START = b"WARC/"


class WarcReadError(Exception):
    """The file cannot be read past this point (truncated, corrupt, not a WARC). Records before it are kept.

    `member`: index of the gzip member where reading failed (None for uncompressed files)."""

    def __init__(self, message: str, member: int | None = None):
        super().__init__(message)
        self.member = member


class OverBudget(Exception):
    """Skipping would inflate more bytes than the caller allowed."""


class WarcStream:
    """Forward-only reader over the decompressed contents of an open WARC file (gzip or plain)."""

    def __init__(self, raw: BinaryIO, gzipped: bool):
        self.raw = raw
        self.gzipped = gzipped
        self.member_offsets: list[int] = []  # compressed offset of each gzip member
        self.member_starts: list[int] = []  # decompressed offset where each member begins
        self.inflated = 0  # decompressed bytes produced so far (0 for plain files)
        self._d = None  # the current member's decompressor, None between members
        self._in = b""  # compressed input and how far into it zlib has consumed
        self._in_pos = 0
        self._in_offset = 0  # file offset of self._in[self._in_pos]
        self._buf = b""  # the current piece, how far into it the caller has read, its offset, its member
        self._pos = 0
        self._base = 0
        self._buf_member = -1
        self._eof = False

    # -- pieces -----------------------------------------------------------------------------------------
    def _next_piece(self) -> bytes:
        if not self.gzipped:
            return self.raw.read(PIECE)
        while True:
            if self._d is None:
                if self._in_pos >= len(self._in) and not self._read_input():
                    return b""  # the file ends between members: a clean end
                self._d = zlib.decompressobj(31)
                self.member_offsets.append(self._in_offset)
                self.member_starts.append(self._base + len(self._buf))
            view = memoryview(self._in)[self._in_pos:]
            try:
                out = self._d.decompress(view, PIECE)  # with no input left, this flushes what zlib holds
            except zlib.error as e:
                raise WarcReadError(f"corrupt gzip data in member at byte {self.member_offsets[-1]}: {e}",
                                    len(self.member_offsets) - 1) from None
            d = self._d  # at the end of a member both attributes hold what follows it: count it once
            used = len(view) - len(d.unused_data if d.eof else d.unconsumed_tail)
            self._in_pos += used
            self._in_offset += used
            if self._d.eof:  # trailer read, CRC and length checked: the next byte starts a new member
                self._d = None
            if out:
                self.inflated += len(out)
                return out
            if self._d is not None and self._in_pos >= len(self._in) and not self._read_input():
                # zlib has taken all the input and wants more: there is none
                raise WarcReadError(f"truncated gzip member starting at byte {self.member_offsets[-1]}",
                                    len(self.member_offsets) - 1)

    def _read_input(self) -> bool:
        self._in, self._in_pos = self.raw.read(_INPUT), 0
        return bool(self._in)

    def _refill(self, keep: bool = False) -> bool:
        """Replace the used-up piece with the next one; False at the end of the file. `keep` (plain files
        only): the unread rest of the current piece stays in front of the next one."""
        if self._eof:
            return False
        rest = self._buf[self._pos:] if keep else b""
        self._base += self._pos if keep else len(self._buf)
        self._buf, self._pos = rest, 0
        piece = self._next_piece()  # may raise: self._base is exact meanwhile
        if not piece:
            self._eof = True
            return False
        self._buf = rest + piece
        self._buf_member = len(self.member_starts) - 1
        return True

    # -- position ---------------------------------------------------------------------------------------
    def tell(self) -> int:
        return self._base + self._pos

    def at_eof(self) -> bool:
        return self._pos >= len(self._buf) and not self._refill()

    def member_of(self, offset: int) -> int:
        """Index of the gzip member holding decompressed byte `offset` (-1 for plain files)."""
        return bisect.bisect_right(self.member_starts, offset) - 1

    def current_member(self) -> int:
        """The member of the next unread byte (fetches it if the current piece is used up)."""
        if self._pos >= len(self._buf):
            self._refill()
        return self._buf_member

    def peek(self, n: int) -> bytes:
        """Up to n bytes of the current piece from the read position, without consuming them."""
        if self._pos >= len(self._buf):
            self._refill()
        return self._buf[self._pos:self._pos + n]

    # -- reading ----------------------------------------------------------------------------------------
    def readline(self, limit: int, one_piece: bool = False) -> bytes:
        """Bytes up to and including the next b"\\n", or `limit` bytes if the line is longer; b"" at the end.
        `one_piece`: stop at the end of the current piece too (the caller checks member boundaries)."""
        if self._pos >= len(self._buf) and not self._refill():
            return b""
        buf, pos = self._buf, self._pos
        i = buf.find(b"\n", pos, pos + limit)
        if i >= 0 or one_piece:
            end = i + 1 if i >= 0 else min(len(buf), pos + limit)
            self._pos = end
            return buf[pos:end]
        parts, n = [], 0
        while n < limit:
            if self._pos >= len(self._buf) and not self._refill():
                break
            buf, pos = self._buf, self._pos
            i = buf.find(b"\n", pos, pos + limit - n)
            end = i + 1 if i >= 0 else min(len(buf), pos + limit - n)
            parts.append(buf[pos:end])
            n += end - pos
            self._pos = end
            if i >= 0:
                break
        return b"".join(parts)

    def read_piece(self, n: int) -> bytes:
        """Up to n bytes from the current piece only (the next piece if it is used up); b"" at the end."""
        if self._pos >= len(self._buf) and not self._refill():
            return b""
        pos = self._pos
        self._pos = min(len(self._buf), pos + n)
        return self._buf[pos:self._pos]

    def skip_piece(self, n: int) -> int:
        """Like read_piece, without making the bytes."""
        if self._pos >= len(self._buf) and not self._refill():
            return 0
        pos = self._pos
        self._pos = min(len(self._buf), pos + n)
        return self._pos - pos

    def skip(self, n: int) -> int:
        """Discard up to n bytes; return how many (fewer only at the end of the file)."""
        done = 0
        while done < n and (step := self.skip_piece(n - done)):
            done += step
        return done

    def skip_blank(self, budget: int | None = None) -> int:
        """Skip whitespace (the blank lines between records); return how many bytes."""
        done = 0
        while True:
            if self._pos >= len(self._buf) and not self._refill():
                return done
            m = _BLANK.search(self._buf, self._pos)
            end = m.start() if m else len(self._buf)
            done += end - self._pos
            self._pos = end
            if m:
                return done
            if budget is not None and done > budget:
                raise OverBudget(done)

    def skip_member(self, member: int, budget: int | None = None) -> int:
        """Discard everything up to the first byte of the member after `member`; return bytes skipped."""
        done = 0
        while True:
            if self._pos >= len(self._buf) and not self._refill():
                return done
            if self._buf_member > member:
                return done
            done += len(self._buf) - self._pos
            self._pos = len(self._buf)
            if budget is not None and done > budget:
                raise OverBudget(done)

    # -- resynchronising after a member too large to inflate ------------------------------------------------
    def next_record_member(self) -> bool:
        """Abandon the rest of the current gzip member and continue at the first later member whose inflated
        bytes begin with 'WARC/'. Candidates are found by the gzip magic in the compressed bytes and checked by
        inflating at most a few bytes of each (a magic inside deflate data does not inflate to a record). The
        skipped bytes are never inflated. False when no such member follows: the stream is then at its end."""
        data, offset = self._in[self._in_pos:], self._in_offset
        self._d = None
        self._base += len(self._buf)  # the rest of the current piece is dropped with its member
        self._buf, self._pos = b"", 0
        start = 0
        while True:
            i = data.find(_GZIP_MAGIC, start)
            if i >= 0 and len(data) - i < _CHECK_INPUT:  # too few bytes after it to check: read more first
                more = self.raw.read(_INPUT)
                if more:  # what lies before the candidate is done with: memory stays at two reads
                    data, offset, start = data[i:] + more, offset + i, 0
                    continue
            if i >= 0:
                if _starts_record(data[i:i + _CHECK_INPUT]):
                    self._in, self._in_pos, self._in_offset = data, i, offset + i
                    return True
                start = i + 1
                continue
            keep = min(len(_GZIP_MAGIC) - 1, len(data))  # a magic may straddle two reads
            offset += len(data) - keep
            more = self.raw.read(_INPUT)
            if not more:
                self._in, self._in_pos, self._in_offset = b"", 0, offset + keep
                self._eof = True
                return False
            data, start = data[len(data) - keep:] + more, 0

    def skip_to_line(self, prefix: bytes) -> int:
        """Plain files: discard up to the next line that starts with `prefix` (a record's first line)."""
        pattern = re.compile(b"\n" + re.escape(prefix))
        done = 0
        while True:
            m = pattern.search(self._buf, self._pos)
            if m:
                done += m.start() + 1 - self._pos
                self._pos = m.start() + 1
                return done
            keep = min(len(prefix), len(self._buf) - self._pos)  # a match may straddle two pieces
            done += len(self._buf) - self._pos - keep
            self._pos = len(self._buf) - keep
            if not self._refill(keep=True):
                return done + self.skip(len(self._buf) - self._pos)


def _starts_record(head: bytes) -> bool:
    """Whether `head` (compressed bytes) begins a gzip member whose first inflated bytes are 'WARC/'."""
    d = zlib.decompressobj(31)
    try:
        out = d.decompress(head, len(_RECORD_START))
    except zlib.error:
        return False
    return out == _RECORD_START
