"""Listing validation: every line is untrusted (paths, hosts, duplicate names), read over real HTTP."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crawlproc.crawl.listing as listing_module
from crawlproc.crawl.download import MAX_SEGMENT_BYTES, DownloadError, safe_join
from crawlproc.crawl.listing import (
    CC_HTTPS,
    MAX_REJECTED,
    ListingError,
    build_listing,
    check_snapshot,
    https_base,
    listing_url,
    parse_listing_bytes,
    read_listing,
)
from crawlproc.recipe import DownloadConfig
from pipelines.demo.minicc import Fault, MiniCCServer, write_listing

BASE = "http://127.0.0.1:9"
SNAP = "CC-MAIN-2024-10"


def test_real_common_crawl_listing(data_dir):
    lines = parse_listing_bytes((data_dir / "warc" / "CC-MAIN-2019-35-warc.paths.gz").read_bytes())
    listing = build_listing("CC-MAIN-2019-35", lines, "https://data.commoncrawl.org")
    assert len(listing.files) == 100 and not listing.rejected
    f = listing.files[0]
    assert f.url == f"https://data.commoncrawl.org/{f.path}"
    assert f.path.startswith("crawl-data/CC-MAIN-2019-35/segments/") and f.path.endswith(".warc.gz")
    assert f.stem == Path(f.path).name.removesuffix(".warc.gz") and f.cache_path == f.path
    assert len({x.stem for x in listing.files}) == 100


def test_plain_text_listing_and_blank_lines():
    assert parse_listing_bytes(b"a/x.warc.gz\n\nb/y.warc.gz\n") == ["a/x.warc.gz", "", "b/y.warc.gz"]
    listing = build_listing(SNAP, ["a/x.warc.gz", "", "  ", "b/y.warc.gz"], BASE)
    assert [f.stem for f in listing.files] == ["x", "y"] and not listing.rejected


@pytest.mark.parametrize("line,why", [
    ("../../etc/passwd", "'..'"),
    ("crawl-data/../../../x.warc.gz", "'..'"),
    ("/etc/passwd", "absolute"),
    ("crawl-data//x.warc.gz", "empty"),
    ("crawl-data/%2e%2e/x.warc.gz", "unsafe characters"),
    ("crawl-data\\..\\x.warc.gz", "unsafe characters"),
    ("https://evil.example.com/crawl-data/x.warc.gz", "not the base URL's host"),
    ("http://127.0.0.1:9/../x.warc.gz", "'..'"),
    ("file:///etc/passwd", "scheme"),
    ("http://127.0.0.1:9/a/x.warc.gz?x=1", "query"),
    ("crawl-data/.ssh/x.warc.gz", "hidden"),
])
def test_unsafe_lines_are_rejected_with_a_reason(line, why):
    listing = build_listing(SNAP, ["ok/a.warc.gz", line], BASE)
    assert [f.stem for f in listing.files] == ["a"]
    assert len(listing.rejected) == 1 and listing.rejected[0].index == 1
    assert why in listing.rejected[0].reason


def test_other_host_only_when_allowed():
    line = "https://mirror.example.org/crawl-data/x.warc.gz"
    assert build_listing(SNAP, ["a/ok.warc.gz", line], BASE).rejected
    listing = build_listing(SNAP, [line], BASE, allowed_hosts=["MIRROR.example.org"])
    assert listing.files[0].url == line and listing.files[0].cache_path == "crawl-data/x.warc.gz"


def test_duplicate_names_never_overwrite_each_other():
    listing = build_listing(SNAP, ["a/x.warc.gz", "a/x.warc.gz", "b/x.warc.gz", "c/y.warc.gz"], BASE)
    assert [f.stem for f in listing.files] == ["x", "y"]  # the identical repeat is listed once
    assert len(listing.rejected) == 1 and "same output name" in listing.rejected[0].reason


def test_s3_bases_are_read_from_the_store_or_mapped_to_https_and_snapshot_names_are_checked():
    assert https_base("s3://commoncrawl") == "s3://commoncrawl"  # read through the object store by default
    assert https_base("s3://some-mirror/prefix/") == "s3://some-mirror/prefix"
    assert listing_url("s3://commoncrawl", SNAP) == f"s3://commoncrawl/crawl-data/{SNAP}/warc.paths.gz"
    listing = build_listing(SNAP, [f"crawl-data/{SNAP}/x.warc.gz"], "s3://commoncrawl")
    assert listing.files[0].url == f"s3://commoncrawl/crawl-data/{SNAP}/x.warc.gz"
    # download.s3 = "https": Common Crawl's bucket through its HTTPS front door; other buckets have none
    assert https_base("s3://commoncrawl/", s3_mode="https") == CC_HTTPS
    with pytest.raises(ListingError):
        https_base("s3://some-other-bucket", s3_mode="https")
    with pytest.raises(ListingError):
        https_base("ftp://x")
    assert listing_url("s3://commoncrawl", SNAP, "https") == f"{CC_HTTPS}/crawl-data/{SNAP}/warc.paths.gz"
    listing = build_listing(SNAP, ["s3://commoncrawl/crawl-data/x.warc.gz"], "s3://commoncrawl", s3_mode="https")
    assert listing.files[0].url == f"{CC_HTTPS}/crawl-data/x.warc.gz"
    for bad in ("../x", "CC MAIN", "", "a/b", ".hidden"):
        with pytest.raises(ListingError):
            check_snapshot(bad)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("ab./\\:%~-_ ?#@\x00") + ["..", "http://", "https://", "evil.com",
                                                                 "127.0.0.1:9", "127.0.0.1:19", "s3://"]),
                max_size=14).map("".join), st.booleans())
def test_no_accepted_line_escapes_the_cache_or_leaves_the_host(tmp_path_factory, line, warc_suffix):
    root = tmp_path_factory.getbasetemp() / "cache"
    line += ".warc.gz" if warc_suffix else ""
    try:
        listing = build_listing(SNAP, ["ok/ok.warc.gz", line], BASE)  # one good line: never an empty listing
    except ListingError as e:
        pytest.fail(f"{line!r}: {e}")
    for f in listing.files:
        target = safe_join(root, f.cache_path)
        assert target.resolve().is_relative_to(root.resolve())
        assert f.url.startswith(BASE + "/")
        assert "/" not in f.stem and not f.stem.startswith(".")
    assert len(listing.files) + len(listing.rejected) == (2 if line.strip() else 1)


def test_read_listing_over_http_with_retries(tmp_path):
    write_listing(tmp_path, SNAP, ["crawl-data/a/x.warc.gz", "../../escape.warc.gz"])
    with MiniCCServer(tmp_path) as srv:
        srv.add_fault(f"crawl-data/{SNAP}/warc.paths.gz", Fault("status", status=503))
        cfg = DownloadConfig(backoff_s=0.01)
        listing = read_listing(SNAP, cfg, base_url=srv.base_url)
        assert [f.url for f in listing.files] == [f"{srv.base_url}/crawl-data/a/x.warc.gz"]
        assert listing.rejected[0].line == "../../escape.warc.gz"
        assert len(srv.requests) == 2  # the 503 was retried
        with pytest.raises(DownloadError) as e:
            read_listing("CC-MAIN-1999-01", cfg, base_url=srv.base_url)
        assert e.value.status == 404
        bad = tmp_path / "crawl-data" / "CC-MAIN-2000-01" / "warc.paths.gz"
        bad.parent.mkdir(parents=True)
        bad.write_bytes(gzip.compress(b"crawl-data/x.warc.gz\n")[:-6])  # truncated gzip
        with pytest.raises(ListingError, match="gzip"):
            read_listing("CC-MAIN-2000-01", cfg, base_url=srv.base_url)


# ---------------------------------------------------------------------------------------------- hostile listings


def _gzip_stream(piece: bytes, times: int) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join(z.compress(piece) for _ in range(times)) + z.flush()


@pytest.mark.parametrize("piece,times,why", [(b"\n" * (1 << 20), 32, "lines"), (b"a" * (1 << 20), 80, "MiB")],
                         ids=["newlines", "one_endless_line"])
def test_a_gzip_bomb_listing_is_refused_in_constant_memory(piece, times, why):
    bomb = _gzip_stream(b"crawl-data/x/a.warc.gz\n" + piece[:-23], 1) + _gzip_stream(piece, times)
    assert len(bomb) < 1 << 20  # small on the wire
    tracemalloc.start()
    try:
        with pytest.raises(ListingError, match=why):
            parse_listing_bytes(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40 << 20, f"peak {peak >> 20} MiB"


def test_long_lines_and_paths_are_rejected_and_counted_never_fatal(tmp_path):
    lines = ["a/ok.warc.gz", "a/" + "n" * 300 + ".warc.gz", "/".join(["seg"] * 1100) + "/x.warc.gz",
             "a/" + "b" * 200_000, "b/fine.warc.gz"]
    listing = build_listing(SNAP, parse_listing_bytes("\n".join(lines).encode()), BASE)
    assert [f.stem for f in listing.files] == ["ok", "fine"]
    assert [r.index for r in listing.rejected] == [1, 2, 3]
    assert "bytes" in listing.rejected[0].reason and "bytes" in listing.rejected[1].reason
    assert "longer than" in listing.rejected[2].reason and len(listing.rejected[2].line) <= 200


def test_the_longest_accepted_name_fits_every_file_we_derive_from_it(tmp_path):
    name = "c" * (MAX_SEGMENT_BYTES - len(".warc.gz")) + ".warc.gz"
    f = build_listing(SNAP, [f"crawl-data/{name}"], BASE).files[0]
    for derived in (f"_failed/{f.stem}.json", f"docs/.{f.stem}.parquet.1234abcd.tmp", f"docs/{f.stem}-1234abcd.parquet",
                    f"cache/{name}.part.meta", f"cache/{name}.lock"):
        target = tmp_path / derived
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("{}")  # OSError (File name too long) if a segment did not fit


@pytest.mark.parametrize("data,match", [
    (b"", "is empty"),
    (b"\n\n  \n", "is empty"),
    (b"Error\n", "no usable file"),
    (b"../../x.warc.gz\n/etc/passwd\n", "no usable file"),
    (b"<!DOCTYPE html>\n<html><head><title>Error</title></head><body>Error</body></html>\n", "HTML"),
    (gzip.compress(b"<html><body><h1>404 Not Found</h1></body></html>"), "HTML"),
    (bytes(range(256)) * 16, "binary"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "binary"),
    (b'{"error": "not found"}', "JSON"),
    (gzip.compress(b"crawl-data/x.warc.gz\n") + b"trailing junk", "gzip"),
])
def test_what_is_not_a_listing_is_a_clear_error(data, match):
    with pytest.raises(ListingError, match=match):
        build_listing(SNAP, parse_listing_bytes(data), BASE)


@pytest.mark.parametrize("line,why", [
    ("http://127.0.0.1:10/crawl-data/x.warc.gz", "127.0.0.1:10 is not the base URL's host"),
    ("https://127.0.0.1:9/crawl-data/x.warc.gz", "https://127.0.0.1:9 is not"),
    ("http://127.0.0.1/crawl-data/x.warc.gz", "127.0.0.1:80 is not"),
    ("http://127.0.0.1:99999/crawl-data/x.warc.gz", "invalid port"),
    ("http://[::1/crawl-data/x.warc.gz", "IPv6"),
    ("crawl-data/index.html", "not a WARC file"),
])
def test_the_origin_is_scheme_host_and_port(line, why):
    listing = build_listing(SNAP, ["a/ok.warc.gz", line], BASE)
    assert [f.stem for f in listing.files] == ["ok"]
    assert why in listing.rejected[0].reason, listing.rejected[0].reason
    assert build_listing(SNAP, ["http://127.0.0.1:9/crawl-data/x.warc.gz"], BASE).files  # its own origin is fine
    allowed = build_listing(SNAP, ["http://mirror.example:8080/x.warc.gz", "https://mirror.example/y.warc.gz"],
                            BASE, allowed_hosts=["mirror.example:8080"])
    assert [f.stem for f in allowed.files] == ["x"]  # the allowed host on its listed port only


def test_a_listing_of_junk_lines_is_not_a_listing():
    with pytest.raises(ListingError, match="unusable lines"):
        build_listing(SNAP, ["a/ok.warc.gz"] + [f"junk line {i}" for i in range(MAX_REJECTED + 5)], BASE)


def test_an_html_error_page_served_as_the_listing_is_refused_over_http(tmp_path, monkeypatch):
    page = tmp_path / "crawl-data" / SNAP / "warc.paths.gz"
    page.parent.mkdir(parents=True)
    page.write_bytes(b"<html><head><title>Error</title></head><body><p>Error</p></body></html>\n")
    with MiniCCServer(tmp_path) as srv:
        with pytest.raises(ListingError) as e:
            read_listing(SNAP, DownloadConfig(backoff_s=0.01), base_url=srv.base_url)
        assert "HTML" in str(e.value) and srv.base_url in str(e.value)
        page.write_bytes(gzip.compress("".join(f"crawl-data/{i * 7919}.warc.gz\n" for i in range(1000)).encode()))
        monkeypatch.setattr(listing_module, "MAX_LISTING_BYTES", 1000)
        with pytest.raises(DownloadError, match="1000-byte limit"):
            read_listing(SNAP, DownloadConfig(backoff_s=0.01), base_url=srv.base_url)
