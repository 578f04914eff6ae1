"""fetch.mode = "wet": Common Crawl's own extracted text (a real WET file) into the same language ID and quality
filters, without HTML extraction."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from warcio.archiveiterator import ArchiveIterator

from crawlproc.extract.file import extract_fingerprint, process_warc
from crawlproc.recipe import load_recipe
from crawlproc.warc.reader import ReadCounts
from crawlproc.warc.wet import iter_wet_records

WET = "whirlwind_CC-MAIN-2024-22.warc.wet.gz"


def _cc_text(path) -> tuple[str, str]:
    with open(path, "rb") as f:
        for r in ArchiveIterator(f):
            if r.rec_type == "conversion":
                return r.rec_headers.get_header("WARC-Target-URI"), r.content_stream().read().decode("utf-8")
    raise AssertionError("no conversion record")


def test_wet_records_are_cc_text(data_dir):
    counts = ReadCounts()
    recs = list(iter_wet_records(data_dir / "warc" / WET, counts))
    url, text = _cc_text(data_dir / "warc" / WET)
    assert [r.url for r in recs] == [url] and recs[0].payload.decode("utf-8") == text
    assert counts.records == 2 and counts.skipped == {"not_conversion": 1}
    counts = ReadCounts()
    assert list(iter_wet_records(data_dir / "warc" / WET, counts, max_payload_bytes=100)) == []
    assert counts.skipped["too_large"] == 1


def test_wet_mode_runs_the_filters_on_cc_text(data_dir, tmp_path):
    recipe = load_recipe(None, {"fetch": {"mode": "wet"}, "language": {"keep": []}})
    stats = process_warc(data_dir / "warc" / WET, tmp_path, recipe, dump="d")
    assert stats["steps"]["extract"]["in"] == 1 and stats["steps"]["language"]["in"] == 1
    rows = pq.read_table(tmp_path / "d" / "docs" / f"{stats['stem']}.parquet").to_pylist() + \
        pq.read_table(tmp_path / "d" / "removed" / f"{stats['stem']}.parquet").to_pylist()
    _url, text = _cc_text(data_dir / "warc" / WET)
    assert len(rows) == 1 and rows[0]["language"]
    # the text the filters saw is CC's (C4 may drop lines of it, never add any)
    assert set(rows[0]["text"].splitlines()) <= set(text.splitlines())
    json.dumps(stats)


def test_a_warc_snapshot_refuses_wet_input_without_force():
    warc, index, wet = (load_recipe(None, {"fetch": {"mode": m}}) for m in ("warc", "index", "wet"))
    assert extract_fingerprint(warc) == extract_fingerprint(index) == extract_fingerprint(load_recipe())
    assert extract_fingerprint(wet) != extract_fingerprint(warc)


@pytest.mark.parametrize("junk", [b"", b"not a warc at all\n" * 10])
def test_a_broken_wet_file_is_a_read_error(tmp_path, junk):
    from crawlproc.warc.stream import WarcReadError

    p = tmp_path / "x.warc.wet.gz"
    p.write_bytes(junk)
    try:
        got = list(iter_wet_records(p, ReadCounts()))
    except WarcReadError:
        return
    assert got == []
