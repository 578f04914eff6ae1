"""URL filter: the shipped UT1 lists (loaded once), the word lists, and real benign URLs from the WARC fixtures."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
from warcio.archiveiterator import ArchiveIterator

from crawlproc.extract import urlfilter
from crawlproc.recipe import UrlFilterConfig
from crawlproc.extract.urlfilter import UT1_TARBALL, UrlFilter


def _lines(path):
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def full_filter(tmp_path_factory):
    """The real 4.5M-domain list, hashed into a cache dir private to this test session."""
    cache = tmp_path_factory.mktemp("crawlproc-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRAWLPROC_CACHE_DIR", str(cache))
        urlfilter._domain_hashes.clear()
        yield UrlFilter(UrlFilterConfig())
    urlfilter._domain_hashes.clear()


@pytest.fixture(scope="module")
def small_filter():
    """Word lists only, plus a few extra domains and URLs: no big list."""
    return UrlFilter(
        UrlFilterConfig(
            use_ut1_lists=False,
            extra_domains=["blocked.example", "Shouty.Example."],
            extra_urls=["http://site.example/bad/page"],
        )
    )


def test_shipped_domain_list_blocks_real_entries(full_filter, data_dir):
    domains = _lines(data_dir / "url_blocklist" / "ut1_domains_picked.txt")
    assert len(domains) >= 10
    for d in domains:
        assert full_filter.check(f"http://{d}/") == "domain", d
        assert full_filter.check(f"https://WWW.{d.upper()}/index.html") == "parent_domain", d
        assert full_filter.check(f"https://a.b.{d}:8080/x?y=1") == "parent_domain", d


def test_shipped_domain_list_is_complete(full_filter):
    """Entries spread over the whole tarball member (not just a sample) are all found."""
    with tarfile.open(UT1_TARBALL, "r:gz") as tar:
        member = next(m for m in tar if m.name == "domains")
        f = tar.extractfile(member)
        picked = []
        for i, line in enumerate(f):
            if i % 250_000 == 0:
                picked.append(line.decode().strip())
    assert len(picked) >= 18  # 4.5M lines
    for d in picked:
        assert full_filter.check(f"http://{d}/") == "domain", d


def test_domain_cache_is_compact_and_memory_mapped(full_filter):
    domains = urlfilter.load_domain_hashes()
    arr = domains.hashes
    assert isinstance(arr, np.memmap)
    assert arr.dtype == np.uint64 and len(domains) > 4_000_000
    assert bool(np.all(arr[1:] > arr[:-1]))  # sorted and unique: binary search is valid
    assert urlfilter.load_domain_hashes() is domains  # cached per process
    assert "0-1avsex.com" in domains and "example.com" not in domains


def test_shipped_url_list_blocks_real_entries(full_filter, data_dir):
    urls = _lines(data_dir / "url_blocklist" / "ut1_urls_picked.txt")
    only_urls = UrlFilter(UrlFilterConfig(use_ut1_lists=False, extra_urls=urls))
    for u in urls:
        assert full_filter.check(f"http://{u}") is not None, u
        assert only_urls.check(f"https://www.{u}") == "url", u
        assert only_urls.check(f"http://{u}/more/below") == "url", u  # a listed URL covers what is below it
    # the full list blocks the entry even where no domain or word rule applies
    assert full_filter.check("https://www.tumblr.com/screechingnightmarewonderland") == "url"
    assert full_filter.check("https://www.tumblr.com/staff") is None


def test_adult_tlds_are_blocked(full_filter):
    # UT1 lists the TLDs themselves: every host below them is blocked
    assert full_filter.check("https://anything.xxx/") == "parent_domain"
    assert full_filter.check("https://example.porn/page") == "parent_domain"


def _warc_urls(warc_dir):
    urls = set()
    for path in sorted(warc_dir.glob("*.warc.gz")):
        with open(path, "rb") as f:
            for rec in ArchiveIterator(f):
                if rec.rec_type == "response":
                    u = rec.rec_headers.get_header("WARC-Target-URI") or ""
                    urls.add(u.strip("<>"))
    return sorted(u for u in urls if u)


def test_benign_urls_from_fixtures_pass(full_filter, data_dir):
    urls = _warc_urls(data_dir / "warc")
    gt = json.loads((data_dir / "html" / "ground-truth.json").read_text(encoding="utf-8"))
    urls += [v["url"] for v in gt.values() if v.get("url")]
    assert len(urls) > 200
    blocked = {u: full_filter.check(u) for u in urls if full_filter.check(u) is not None}
    assert blocked == {}


def test_extra_domains_and_parents(small_filter):
    assert small_filter.check("https://blocked.example/x") == "domain"
    assert small_filter.check("https://a.b.blocked.example/") == "parent_domain"
    assert small_filter.check("https://shouty.example") == "domain"  # case and trailing dot normalised
    assert small_filter.check("https://notblocked.example/") is None
    assert small_filter.check("https://blocked.example.org/") is None  # a suffix match is not a parent


def test_extra_urls(small_filter):
    assert small_filter.check("https://site.example/bad/page") == "url"
    assert small_filter.check("http://www.site.example/bad/page/") == "url"
    assert small_filter.check("http://site.example/bad/page?x=1") == "url"
    assert small_filter.check("http://site.example/bad/pages") is None
    assert small_filter.check("http://site.example/bad") is None


def test_banned_word_in_path(small_filter):
    assert small_filter.check("https://news.example/bdsm/article-1") == "banned_word"
    assert small_filter.check("https://news.example/Videos-BDSM.html") == "banned_word"
    # a banned word inside a longer word is not a word match (it may still be a subword)
    assert small_filter.check("https://news.example/bdsmith/page") is None


def test_commented_banned_words_are_disabled(small_filter):
    assert "ass" not in small_filter.banned_words  # "#ass" in banned_words.txt
    assert "ass" in small_filter.soft_banned_words


def test_soft_banned_words_one_versus_two(small_filter):
    assert small_filter.check("https://shop.example/babes") is None
    assert small_filter.check("https://shop.example/babes/ass") == "soft_banned_words"
    assert small_filter.check("https://shop.example/babes/babes") is None  # distinct words are counted
    lenient = UrlFilter(UrlFilterConfig(use_ut1_lists=False, soft_banned_threshold=3))
    assert lenient.check("https://shop.example/babes/ass") is None


def test_banned_subword(small_filter):
    assert small_filter.check("https://videos.example/watch-2-girls-1-cup-reaction") == "banned_subword"
    assert small_filter.check("https://videos.example/MyAutoEroticStories") == "banned_subword"


def test_every_listed_subword_is_found(small_filter):
    words = urlfilter.read_word_list(urlfilter.BLOCKLIST_DIR / "banned_subwords.txt")
    assert len(words) > 100
    for w in words:
        assert small_filter.check(f"https://x.example/zz{w}zz") == "banned_subword", w


def test_bad_urls_do_not_crash(small_filter):
    assert small_filter.check("") == "no_url"
    assert small_filter.check("http://[::1/broken") is None
    assert small_filter.check("not a url at all") is None
    assert small_filter.check("https://bücher.example/straße") is None


def test_disabled_lists_do_not_load_the_tarball(small_filter):
    assert small_filter._ut1_domains is None
    assert small_filter.check("http://0-1avsex.com/") is None


def test_picked_fixture_entries_are_in_the_shipped_list(data_dir):
    # the picked entries really are in the shipped list's URL member
    urls = set(_lines(data_dir / "url_blocklist" / "ut1_urls_picked.txt"))
    with tarfile.open(UT1_TARBALL, "r:gz") as tar:
        member = next(m for m in tar if m.name == "urls")
        listed = set(tar.extractfile(member).read().decode().split("\n"))
    assert urls <= listed
