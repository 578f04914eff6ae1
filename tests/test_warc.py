"""WARC reading on real files: HTML responses only, counted skips, faults keep the records before them."""

from __future__ import annotations

import gzip
import io
import random
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawlproc.warc.reader import ReadCounts, WarcReadError, iter_html_records


def read_all(path, **kw):
    counts = ReadCounts()
    return list(iter_html_records(path, counts, **kw)), counts


def read_until_error(path):
    counts, got = ReadCounts(), []
    with pytest.raises(WarcReadError) as err:
        for rec in iter_html_records(path, counts):
            got.append(rec)
    return got, counts, str(err.value)


def test_common_crawl_excerpt_yields_html_responses_only(data_dir):
    recs, counts = read_all(data_dir / "warc" / "fastwarc_CC-MAIN-2020-34_excerpt.warc.gz")
    # 50 records: warcinfo, 17 requests, 16 responses (all text/html), 16 metadata
    assert counts.records == 50
    assert counts.responses == 16
    assert len(recs) == 16
    assert counts.skipped["not_response"] == 34
    assert all(r.id.startswith("<urn:uuid:") and r.url.startswith("http") for r in recs)
    assert all(b"<html" in r.payload[:4096].lower() for r in recs)


def test_offsets_point_at_the_records(data_dir):
    path = data_dir / "warc" / "dolma_sample-0000.warc.gz"
    recs, _ = read_all(path)
    assert len(recs) == 22
    with open(path, "rb") as f:
        for rec in recs:
            f.seek(rec.offset)
            first = next(iter(ArchiveIterator(f)))
            assert first.rec_headers.get_header("WARC-Record-ID") == rec.id


def test_revisits_and_non_html_are_counted(data_dir):
    _, counts = read_all(data_dir / "warc" / "warcio_example.warc.gz")
    assert counts.skipped["revisit"] == 1
    recs, counts = read_all(data_dir / "warc" / "ia-web-commons_IAH-urls-wget.warc.gz")
    assert counts.skipped["non_html"] == 5  # robots.txt, xml, jpeg, gif, png
    assert counts.skipped["not_ok_status"] > 0  # redirects carry no page
    assert counts.responses == len(recs) + counts.skipped["non_html"] + counts.skipped["not_ok_status"]


def test_uncompressed_warc_reads_the_same(data_dir, tmp_path):
    src = data_dir / "warc" / "dolma_sample-0000.warc.gz"
    plain = tmp_path / "plain.warc"
    plain.write_bytes(gzip.decompress(src.read_bytes()))
    a, _ = read_all(src)
    b, _ = read_all(plain)
    assert [r.id for r in a] == [r.id for r in b]
    assert [r.payload for r in a] == [r.payload for r in b]


def test_truncated_gzip_keeps_records_before_the_fault(data_dir, tmp_path):
    data = (data_dir / "warc" / "dolma_sample-0000.warc.gz").read_bytes()
    whole, _ = read_all(data_dir / "warc" / "dolma_sample-0000.warc.gz")
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: len(data) // 2])
    got, _, msg = read_until_error(cut)
    assert "truncated" in msg
    assert 0 < len(got) < len(whole)
    assert [r.id for r in got] == [r.id for r in whole[: len(got)]]


def test_truncated_uncompressed_record_is_an_error(data_dir, tmp_path):
    raw = gzip.decompress((data_dir / "warc" / "dolma_sample-0000.warc.gz").read_bytes())
    cut = tmp_path / "cut.warc"
    cut.write_bytes(raw[: len(raw) // 2])
    got, _, msg = read_until_error(cut)
    assert "truncated" in msg and len(got) > 0


def test_corrupt_gzip_member_is_an_error(data_dir, tmp_path):
    data = bytearray((data_dir / "warc" / "dolma_sample-0000.warc.gz").read_bytes())
    data[50_000:50_100] = b"x" * 100
    bad = tmp_path / "bad.warc.gz"
    bad.write_bytes(bytes(data))
    got, _, msg = read_until_error(bad)
    assert "corrupt gzip" in msg and len(got) > 0


@pytest.mark.parametrize("content", [b"\x00" * 4096, b"hello, not a warc\n" * 50])
def test_garbage_is_an_error_not_a_crash(tmp_path, content):
    for name in ("g.warc", "g.warc.gz"):
        p = tmp_path / name
        p.write_bytes(content)
        got, _, msg = read_until_error(p)
        assert got == [] and msg


def test_random_bytes_are_never_read_as_records(tmp_path):
    # Seeded, so that a failure reproduces; one buffer in about 20 once slipped through as an "ARC" record.
    rng = random.Random(15)
    p = tmp_path / "g.warc"
    for _ in range(300):
        p.write_bytes(rng.randbytes(rng.choice((64, 4096))))
        got, _, msg = read_until_error(p)
        assert got == [] and "not a WARC file" in msg


@pytest.mark.parametrize("content", [
    b"one two three four five\n" * 50,  # warcio reads a line of five fields as an ARC header
    b"http://x.org/ 1.2.3.4 20200101000000 text/html 5\nhello\n",  # an ARC record with no filedesc:// block
    b"a b c d e f g h i j k\n" * 20,
])
def test_text_that_warcio_takes_for_arc_is_not_a_warc(tmp_path, content):
    # Random bytes hit this about one time in 20: their first "line" split into five fields (a CI flake).
    for name in ("g.warc", "g.warc.gz", "g.arc"):
        p = tmp_path / name
        p.write_bytes(content)
        got, _, msg = read_until_error(p)
        assert got == [] and "not a WARC file" in msg


def test_arc_file_still_reads(tmp_path):
    body = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html><body>an arc page</body></html>"
    filedesc = b"1 0 Example\nURL IP-address Archive-date Content-type Archive-length\n"
    arc = (b"filedesc://x.arc 0.0.0.0 20200101000000 text/plain %d\n" % len(filedesc) + filedesc + b"\n"
           + b"http://example.org/ 1.2.3.4 20200101000000 text/html %d\n" % len(body) + body + b"\n")
    p = tmp_path / "x.arc"
    p.write_bytes(arc)
    recs, counts = read_all(p)
    assert [r.url for r in recs] == ["http://example.org/"]
    assert b"an arc page" in recs[0].payload


def test_empty_file_has_no_records(tmp_path):
    p = tmp_path / "empty.warc.gz"
    p.write_bytes(b"")
    recs, counts = read_all(p)
    assert recs == [] and counts.records == 0


def _write_warc(path, pages):
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        for url, ctype, body in pages:
            headers = [("Content-Type", ctype)] if ctype else []
            http = StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http))


def test_payload_cap_and_sniffing(tmp_path):
    p = tmp_path / "mixed.warc.gz"
    big = b"<html><body>" + b"a" * 3000 + b"</body></html>"
    _write_warc(p, [
        ("http://a.example/big", "text/html", big),
        ("http://a.example/small", "text/html; charset=utf-8", b"<html><body>hi</body></html>"),
        ("http://a.example/untyped", None, b"<!DOCTYPE html><html><body>x</body></html>"),
        ("http://a.example/bin", None, b"\x89PNG\r\n\x1a\n" + b"\x00" * 100),
        ("http://a.example/pdf", "application/pdf", b"%PDF-1.4"),
    ])
    recs, counts = read_all(p, max_payload_bytes=1000)
    assert [r.url for r in recs] == ["http://a.example/small", "http://a.example/untyped"]
    assert counts.skipped["too_large"] == 1
    assert counts.skipped["non_html"] == 2
    assert recs[0].content_type == "text/html; charset=utf-8"


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).parent / "data" / "warc").glob("*.warc.gz")))
def test_payloads_are_warcios(data_dir, name):
    """Our record loop and body decoding (chunked, gzip) give exactly what warcio's ArchiveIterator and
    content_stream() give, on every real file, for every HTML response."""
    path = data_dir / "warc" / name
    expected = []
    with open(path, "rb") as f:
        it = ArchiveIterator(f, arc2warc=True)
        for rec in it:
            if rec.rec_type != "response" or not rec.http_headers:
                continue
            status = rec.http_headers.get_statuscode() or ""
            ctype = (rec.http_headers.get_header("Content-Type") or "").split(";")[0].strip().lower()
            if status.startswith("2") and ctype in ("text/html", "application/xhtml+xml", ""):
                payload = rec.content_stream().read()
                expected.append((rec.rec_headers.get_header("WARC-Record-ID"), payload, it.get_record_offset()))
    recs, _ = read_all(path)
    got = [(r.id, r.payload, r.offset) for r in recs]
    assert got == [e for e in expected if e[1].strip()]
