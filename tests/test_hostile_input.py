"""Hostile WARC input: gzip bombs, malformed records, flipped bytes. A bad record costs only itself, memory
per record stays bounded by max_payload_bytes, and nothing before (or, where it can be found, after) a fault
is lost. Also: UTF-16 pages declared only by their HTTP header."""

from __future__ import annotations

import gzip
import tracemalloc
import uuid
import zlib
from pathlib import Path

import pytest

from crawlproc.warc.charset import decode_html
from crawlproc.warc.reader import ReadCounts, WarcReadError, iter_html_records

MiB = 1 << 20


# ---------------------------------------------------------------------------------------------- building


def _warc_record(headers: list[tuple[str, str]], block: bytes, content_length: str | None = None) -> bytes:
    length = str(len(block)) if content_length is None else content_length
    head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    if content_length != "omit":
        head += f"Content-Length: {length}\r\n"
    return head.encode() + b"\r\n" + block + b"\r\n\r\n"


def _response(url: str | None, body: bytes, http_head: bytes | None = None, content_length: str | None = None,
              extra: list[tuple[str, str]] | None = None) -> bytes:
    if http_head is None:
        http_head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    headers = [("WARC-Type", "response"), ("WARC-Record-ID", f"<urn:uuid:{uuid.uuid4()}>"),
               ("WARC-Date", "2024-02-17T00:00:00Z")]
    if url is not None:
        headers.append(("WARC-Target-URI", url))
    headers += [("Content-Type", "application/http; msgtype=response"), *(extra or [])]
    return _warc_record(headers, http_head + body, content_length)


def _good(i: int) -> bytes:
    return _response(f"http://good.example/{i}", f"<html><body><p>page {i}</p></body></html>".encode())


def _write(path: Path, records: list[bytes], gz: bool = True) -> Path:
    path.write_bytes(b"".join(gzip.compress(r, mtime=0) for r in records) if gz else b"".join(records))
    return path


def _read(path: Path, **kw):
    counts, got, error = ReadCounts(), [], None
    try:
        for rec in iter_html_records(path, counts, **kw):
            got.append(rec)
    except WarcReadError as e:
        error = str(e)
    return got, counts, error


def _urls(recs) -> list[str]:
    return [r.url for r in recs]


GOOD_BEFORE = [f"http://good.example/{i}" for i in range(4)]
GOOD_AFTER = [f"http://good.example/{i}" for i in range(4, 8)]


def _around(bad: bytes | list[bytes]) -> list[bytes]:
    return [*map(_good, range(4)), *(bad if isinstance(bad, list) else [bad]), *map(_good, range(4, 8))]


def _bomb_member(inflated: int) -> bytes:
    """One gzip member: an HTML response whose payload is `inflated` NUL bytes, compressed streamed."""
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
    warc = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:{uuid.uuid4()}>\r\n"
            "WARC-Target-URI: http://bomb.example/\r\nContent-Type: application/http; msgtype=response\r\n"
            f"Content-Length: {len(http) + inflated}\r\n\r\n").encode()
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [z.compress(warc + http)]
    block = b"\x00" * MiB
    parts += [z.compress(block) for _ in range(inflated // MiB)]
    parts += [z.compress(b"\r\n\r\n"), z.flush()]
    return b"".join(parts)


def _write_with_bomb(path: Path, bomb: bytes) -> Path:
    path.write_bytes(b"".join(gzip.compress(r, mtime=0) for r in map(_good, range(4))) + bomb
                     + b"".join(gzip.compress(r, mtime=0) for r in map(_good, range(4, 8))))
    return path


# ---------------------------------------------------------------------------------------------- bad records


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_a_response_without_target_uri_costs_only_itself(tmp_path, gz):
    p = _write(tmp_path / "w.warc", _around(_response(None, b"<html><body>no uri</body></html>")), gz)
    got, counts, error = _read(p)
    assert error is None
    assert _urls(got) == GOOD_BEFORE + GOOD_AFTER
    assert counts.records == 9 and counts.skipped["malformed:no_target_uri"] == 1


BAD_RECORDS = {
    "empty_http_block": (_response("http://bad.example/", b"", http_head=b""), "malformed:http_headers"),
    "bad_content_length": (_response("http://bad.example/", b"<html>x</html>", content_length="12abc"),
                           "malformed:content_length"),
    "negative_content_length": (_response("http://bad.example/", b"<html>x</html>", content_length="-5"),
                                "malformed:content_length"),
    "no_content_length": (_response("http://bad.example/", b"<html>x</html>", content_length="omit"),
                          "malformed:content_length"),
    "broken_warc_headers": (b"WARC/1.0\r\nthis is not a header block\x00\xff" + b"\x00" * 300 + b"\r\n\r\n",
                            None),
    "not_a_record": (b"<html>an HTML page where a record should be</html>\r\n\r\n", None),  # ARC-like
    "huge_warc_header": (_response("http://bad.example/", b"<html>x</html>",
                                   extra=[("X-Junk", "a" * (3 * MiB))]), "malformed:warc_headers_too_long"),
    "huge_http_headers": (_response("http://bad.example/", b"<html>x</html>",
                                    http_head=b"HTTP/1.1 200 OK\r\n" + b"X-Junk: aaaaaaaaaaaaaaaa\r\n" * 100_000
                                    + b"\r\n"), "malformed:http_headers_too_long"),
    "binary_http_block": (_response("http://bad.example/", bytes(range(256)) * 8, http_head=b""), None),
    "chunk_claims_2_GiB": (_response("http://bad.example/", b"7fffffff\r\n<html>tiny</html>",
                                     http_head=b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                                               b"Transfer-Encoding: chunked\r\n\r\n"), None),
}


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize("kind", list(BAD_RECORDS))
def test_a_malformed_record_costs_only_itself(tmp_path, gz, kind):
    bad, reason = BAD_RECORDS[kind]
    p = _write(tmp_path / "w.warc", _around(bad), gz)
    got, counts, error = _read(p)
    assert error is None, error
    urls = _urls(got)
    assert urls[:4] == GOOD_BEFORE and urls[-4:] == GOOD_AFTER
    assert set(urls[4:-4]) <= {"http://bad.example/"}  # a lenient reading of the bad record may keep it
    if reason:
        assert counts.skipped[reason] == 1, dict(counts.skipped)
    assert counts.records >= 9
    assert sum(counts.skipped.values()) + len(got) == counts.records  # every record is accounted for


def test_a_record_longer_than_its_member_is_cut_at_the_next_record(tmp_path):
    """gzip per record: a Content-Length that runs into the next member does not swallow the next records."""
    bad = _response("http://bad.example/", b"<html>x</html>", content_length="5000")
    got, counts, error = _read(_write(tmp_path / "w.warc.gz", _around(bad)))
    assert error is None and _urls(got) == GOOD_BEFORE + GOOD_AFTER
    assert counts.skipped["malformed:content_length"] == 1


def test_a_plain_record_shorter_than_the_file_is_a_truncation(tmp_path):
    data = b"".join(map(_good, range(3)))
    p = tmp_path / "w.warc"
    p.write_bytes(data[:-10])  # the last record ends 6 bytes into its block's end
    got, _, error = _read(p)
    assert _urls(got) == GOOD_BEFORE[:2] and "truncated" in error


# ---------------------------------------------------------------------------------------------- gzip bombs


def _read_traced(path: Path, **kw):
    """_read, and the peak of memory traced meanwhile (zlib's buffers included)."""
    tracemalloc.start()
    try:
        result = _read(path, **kw)
        return *result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_gzip_bomb_is_too_large_with_memory_bounded_by_the_payload_cap(tmp_path):
    p = _write_with_bomb(tmp_path / "bomb.warc.gz", _bomb_member(48 * MiB))
    got, counts, error, peak = _read_traced(p, max_payload_bytes=MiB)
    assert error is None and _urls(got) == GOOD_BEFORE + GOOD_AFTER
    assert counts.skipped["too_large"] == 1
    assert peak < 8 * MiB, f"peak traced memory {peak / MiB:.1f} MiB for a 1 MiB payload cap"


def _bomb(shape: str) -> bytes:
    if shape == "declared":  # honest Content-Length: the record itself is 32 MiB of NULs
        return _bomb_member(32 * MiB)
    # the record is small; the rest of its gzip member is 32 MiB of junk (or of blank bytes)
    small = _response("http://bomb.example/", b"<html>small</html>")
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    fill = (b"\x00" if shape == "junk_after_record" else b" ") * MiB
    return z.compress(small) + b"".join(z.compress(fill) for _ in range(32)) + z.flush()


@pytest.mark.parametrize("shape", ["declared", "junk_after_record", "blank_after_record"])
def test_a_bomb_past_the_skip_limit_is_skipped_and_the_file_completes_in_bounded_work(tmp_path, shape):
    """Issue 25: the member past the skip limit is abandoned and reading resumes at the next member that
    starts a record, found in the compressed bytes: every other record is kept, and the file is not failed."""
    cap, skip = 256 << 10, 4 * MiB
    p = _write_with_bomb(tmp_path / "bomb.warc.gz", _bomb(shape))
    got, counts, error = _read(p, max_payload_bytes=cap, max_skip_bytes=skip)
    assert error is None
    # the small record of the junk shape was read whole before its junk; the blank shape's cannot be verified
    small = ["http://bomb.example/"] if shape == "junk_after_record" else []
    assert _urls(got) == GOOD_BEFORE + small + GOOD_AFTER
    assert counts.resynced == 1
    skipped = "malformed:warc_headers" if shape == "junk_after_record" else "too_large"
    assert counts.skipped[skipped] == 1 and sum(counts.skipped.values()) == 1, counts.skipped
    # bounded work: what was inflated is the good records, the cap and the skip limit, not the 32 MiB
    assert counts.decompressed_bytes < cap + 2 * skip + 2 * MiB, counts.decompressed_bytes


def test_a_bomb_in_a_whole_file_gzip_still_ends_the_file_clearly(tmp_path):
    """Records that share the bomb's gzip member cannot be reached without inflating it: the file ends with
    a clear error, keeping the records before it."""
    cap, skip = 256 << 10, 4 * MiB
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [z.compress(_good(i)) for i in range(4)]
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
    parts.append(z.compress(_warc_record([("WARC-Type", "response"), ("WARC-Target-URI", "http://bomb.example/")],
                                         http, content_length=str(len(http) + 32 * MiB))[:-4]))
    parts += [z.compress(b"\x00" * MiB) for _ in range(32)]
    parts += [z.compress(b"\r\n\r\n" + b"".join(_good(i) for i in range(4, 8))), z.flush()]
    p = tmp_path / "whole.warc.gz"
    p.write_bytes(b"".join(parts))
    got, counts, error = _read(p, max_payload_bytes=cap, max_skip_bytes=skip)
    assert error and "limit" in error and "rest of the file" in error
    assert _urls(got) == GOOD_BEFORE and counts.resynced == 0
    assert counts.decompressed_bytes < cap + 2 * skip + 2 * MiB, counts.decompressed_bytes


def test_resync_skips_a_gzip_magic_inside_the_bomb_that_does_not_start_a_record(tmp_path):
    """The bomb's compressed bytes hold a whole gzip member (stored verbatim: deflate level 0) that is not a
    WARC record: a candidate is checked by inflating its first bytes, and only a member that starts a record
    is taken."""
    cap, skip = 256 << 10, MiB
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
    fake = gzip.compress(b"NOT A WARC RECORD " * 100, mtime=0)
    warc = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: http://bomb.example/\r\n"
            f"Content-Length: {len(http) + len(fake) + 4 * MiB}\r\n\r\n").encode()
    stored = zlib.compressobj(0, zlib.DEFLATED, 31)
    member = stored.compress(warc + http + fake + b"\x00" * (4 * MiB)) + stored.flush()
    assert fake in member  # the fake member's magic is there to be found
    p = _write_with_bomb(tmp_path / "fake.warc.gz", member)
    got, counts, error = _read(p, max_payload_bytes=cap, max_skip_bytes=skip)
    assert error is None and _urls(got) == GOOD_BEFORE + GOOD_AFTER
    assert counts.skipped["too_large"] == 1 and counts.resynced == 1


def test_bomb_work_does_not_grow_with_the_bomb(tmp_path):
    work = []
    for size in (16, 64):
        p = _write_with_bomb(tmp_path / f"bomb{size}.warc.gz", _bomb_member(size * MiB))
        got, counts, error = _read(p, max_payload_bytes=256 << 10, max_skip_bytes=4 * MiB)
        assert error is None and counts.skipped["too_large"] == 1 and _urls(got) == GOOD_BEFORE + GOOD_AFTER
        work.append(counts.decompressed_bytes)
    assert work[1] < 1.2 * work[0], work  # 4x the bomb, the same work


def test_a_content_encoding_bomb_inside_a_record_is_bounded(tmp_path):
    body = gzip.compress(b"<html>" + b" " * (64 * MiB), compresslevel=9)
    bomb = _response("http://bomb.example/", body, http_head=b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                                                              b"Content-Encoding: gzip\r\n\r\n")
    got, counts, error, peak = _read_traced(_write(tmp_path / "w.warc.gz", _around(bomb)), max_payload_bytes=MiB)
    assert error is None and _urls(got) == GOOD_BEFORE + GOOD_AFTER
    assert counts.skipped["too_large"] == 1 and peak < 8 * MiB, peak


# ---------------------------------------------------------------------------------------------- flipped bytes


def _members(data: bytes) -> list[int]:
    offsets, off = [], 0
    while off < len(data):
        offsets.append(off)
        d = zlib.decompressobj(31)
        d.decompress(data[off:])
        off = len(data) - len(d.unused_data)
    return offsets


@pytest.mark.parametrize("name", ["dolma_sample-0000.warc.gz", "fastwarc_CC-MAIN-2020-34_excerpt.warc.gz"])
def test_a_flipped_byte_keeps_every_record_before_its_member(data_dir, tmp_path, name):
    src = data_dir / "warc" / name
    data = src.read_bytes()
    whole, _, _ = _read(src)
    members = _members(data)
    for k in range(2, len(members) - 1, 3):
        start, end = members[k], members[k + 1]
        bad = bytearray(data)
        bad[(start + end) // 2] ^= 0xFF
        p = tmp_path / name
        p.write_bytes(bytes(bad))
        got, counts, error = _read(p)
        expected = [r.id for r in whole if r.offset < start]
        assert error and ("corrupt" in error or "malformed" in error or "limit" in error), error
        assert [r.id for r in got] == expected, f"member {k}: kept {len(got)} of {len(expected)}"
        assert counts.records >= k  # records 0..k-1 (one per member) were all read and counted


# ---------------------------------------------------------------------------------------------- charset


@pytest.mark.parametrize("label,codec", [("utf-16le", "utf-16-le"), ("utf-16be", "utf-16-be"),
                                         ("UTF-16", "utf-16-le"), ("utf-16", "utf-16-be")])
def test_utf16_without_bom_declared_by_http_header_is_decoded(label, codec):
    page = "<html><head><title>Zürich</title></head><body><p>Grüezi mitenand, ça va? Ελληνικά.</p></body></html>"
    text, used = decode_html(page.encode(codec), f"text/html; charset={label}")
    assert text == page and used == codec
