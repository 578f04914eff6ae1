"""An HTTP body as stored in a WARC record -> the payload, undoing chunked transfer and gzip/deflate/br.

Bounded by construction: the body is read in small pieces, every decompressor is called with an output limit,
and reading stops as soon as the payload is one byte over the caller's limit. So a chunk that claims 2 GiB or a
Content-Encoding bomb costs at most `limit` bytes of memory and the time to produce them (warcio's own
readers read a whole chunk at once and inflate each 16 KB block without a limit).

Lenient where warcio is lenient, so that real files read the same: a body that does not parse as chunked is
taken as it is from there on; a compressed body that fails at its first bytes is taken as uncompressed; one
that fails later ends where it broke.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

try:  # warcio decodes br when brotli is installed; we do too, with an output limit (brotli >= 1.1)
    import brotli
except ImportError:  # pragma: no cover - optional
    brotli = None

_READ = 64 << 10  # body bytes read at a time
_OUT = 256 << 10  # most bytes one decompressor call may return
_CHUNK_LINE = 64  # a chunk-size line longer than this is not chunked encoding


def _raw(read: Callable[[int], bytes]) -> Iterator[bytes]:
    while piece := read(_READ):
        yield piece


def _dechunked(read: Callable[[int], bytes], readline: Callable[[int], bytes]) -> Iterator[bytes]:
    while True:
        line = readline(_CHUNK_LINE)
        if not line:
            return
        try:
            if not line.endswith(b"\r\n"):
                raise ValueError
            size = int(line[:-2].split(b";")[0], 16)
        except ValueError:  # not chunked after all: the rest of the body is the payload as it is
            yield line
            yield from _raw(read)
            return
        if size == 0:
            return
        while size > 0:  # a chunk is read in pieces: its declared size costs nothing
            piece = read(min(size, _READ))
            if not piece:
                return  # cut off: keep what arrived
            size -= len(piece)
            yield piece
        crlf = read(2)
        if crlf != b"\r\n":  # the chunk did not end where it said: the rest is taken as it is
            yield crlf
            yield from _raw(read)
            return


def _zlib_decoder(wbits: int):
    d = zlib.decompressobj(wbits)

    def decode(data: bytes) -> Iterator[bytes]:
        out = d.decompress(data, _OUT)
        while True:
            if out:
                yield out
            # a full output buffer may leave output inside zlib even when all input was taken
            if d.eof or (not d.unconsumed_tail and len(out) < _OUT):
                return
            out = d.decompress(d.unconsumed_tail, _OUT)

    return decode, lambda: d.eof


def _brotli_decoder(_wbits: int):
    d = brotli.Decompressor()

    def decode(data: bytes) -> Iterator[bytes]:
        out = d.process(data, output_buffer_limit=_OUT)
        while True:
            if out:
                yield out
            if d.is_finished() or d.can_accept_more_data():
                return
            out = d.process(b"", output_buffer_limit=_OUT)

    return decode, d.is_finished


_DECODERS = {"gzip": (_zlib_decoder, (31,)), "x-gzip": (_zlib_decoder, (31,)),
             "deflate": (_zlib_decoder, (15, -15))}  # deflate: zlib-wrapped, or raw as some servers send it
if brotli is not None and hasattr(brotli.Decompressor, "can_accept_more_data"):
    _DECODERS["br"] = (_brotli_decoder, (0,))
_ERRORS = (zlib.error,) + ((brotli.error,) if brotli is not None else ())


def _decoded(pieces: Iterator[bytes], encoding: str) -> Iterator[bytes]:
    make, variants = _DECODERS[encoding]
    first = next(pieces, b"")
    for wbits in variants:  # the first variant that accepts the first bytes decodes the body
        decode, finished = make(wbits)
        out = decode(first)
        try:
            head = next(out, b"")  # one bounded call: enough to see whether the data is compressed
        except _ERRORS:
            continue
        try:
            yield head
            yield from out
            for piece in pieces:
                if finished():
                    return
                yield from decode(piece)
        except _ERRORS:
            return  # broken part-way: the payload ends where it broke
        return
    yield first  # not compressed after all (a wrong Content-Encoding header)
    yield from pieces


def read_payload(read: Callable[[int], bytes], readline: Callable[[int], bytes], transfer_encoding: str | None,
                 content_encoding: str | None, limit: int) -> bytes:
    """The decoded payload, or its first limit + 1 bytes when it is longer (the caller counts it too large)."""
    chunked = (transfer_encoding or "").strip().lower() == "chunked"
    encoding = (content_encoding or "").strip().lower()
    if not chunked and encoding not in _DECODERS:
        return read(limit + 1)  # the common case: the body is the payload
    pieces = _dechunked(read, readline) if chunked else _raw(read)
    if encoding in _DECODERS:
        pieces = _decoded(pieces, encoding)
    parts, n = [], 0
    for piece in pieces:
        parts.append(piece)
        n += len(piece)
        if n > limit:
            break
    return b"".join(parts)[: limit + 1]
