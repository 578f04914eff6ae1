"""Listing validation: every line is untrusted (paths, hosts, duplicate names), read over real HTTP."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawlproc.download import DownloadError, safe_join
from crawlproc.listing import (
    CC_HTTPS,
    ListingError,
    build_listing,
    check_snapshot,
    https_base,
    listing_url,
    parse_listing_bytes,
    read_listing,
)
from crawlproc.recipe import DownloadConfig
from pipelines.minicc import Fault, MiniCCServer, write_listing

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
    assert build_listing(SNAP, [line], BASE).rejected
    listing = build_listing(SNAP, [line], BASE, allowed_hosts=["MIRROR.example.org"])
    assert listing.files[0].url == line and listing.files[0].cache_path == "crawl-data/x.warc.gz"


def test_duplicate_names_never_overwrite_each_other():
    listing = build_listing(SNAP, ["a/x.warc.gz", "a/x.warc.gz", "b/x.warc.gz", "c/y.warc.gz"], BASE)
    assert [f.stem for f in listing.files] == ["x", "y"]  # the identical repeat is listed once
    assert len(listing.rejected) == 1 and "same output name" in listing.rejected[0].reason


def test_s3_base_maps_to_https_and_snapshot_names_are_checked():
    assert https_base("s3://commoncrawl/") == CC_HTTPS
    assert https_base("s3://commoncrawl", s3_mode="pyarrow") == "s3://commoncrawl"
    with pytest.raises(ListingError):
        https_base("s3://some-other-bucket")
    with pytest.raises(ListingError):
        https_base("ftp://x")
    assert listing_url("s3://commoncrawl", SNAP) == f"{CC_HTTPS}/crawl-data/{SNAP}/warc.paths.gz"
    listing = build_listing(SNAP, ["s3://commoncrawl/crawl-data/x.warc.gz"], "s3://commoncrawl")
    assert listing.files[0].url == f"{CC_HTTPS}/crawl-data/x.warc.gz"
    for bad in ("../x", "CC MAIN", "", "a/b", ".hidden"):
        with pytest.raises(ListingError):
            check_snapshot(bad)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("ab./\\:%~-_ ?#@\x00") + ["..", "http://", "https://", "evil.com",
                                                                 "127.0.0.1:9", "s3://"]),
                max_size=14).map("".join))
def test_no_accepted_line_escapes_the_cache_or_leaves_the_host(tmp_path_factory, line):
    root = tmp_path_factory.getbasetemp() / "cache"
    listing = build_listing(SNAP, [line], BASE)
    for f in listing.files:
        target = safe_join(root, f.cache_path)
        assert target.resolve().is_relative_to(root.resolve())
        assert f.url.startswith(BASE + "/")
        assert "/" not in f.stem and not f.stem.startswith(".")
    assert len(listing.files) + len(listing.rejected) == (1 if line.strip() else 0)


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
