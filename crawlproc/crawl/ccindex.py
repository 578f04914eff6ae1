"""Select, from Common Crawl's columnar index, the WARC records a recipe can keep, and plan their ranged reads.

The index (`cc-index/table/cc-main/warc/crawl=<snapshot>/subset=warc/*.parquet`, listed in
`crawl-data/<snapshot>/cc-index-table.paths.gz`) has one row per capture; the columns used here are
INDEX_COLUMNS. A record is selected when

- it was fetched with status 200 and CC detected HTML (`content_mime_detected`, else the HTTP type);
- its languages (`content_languages`, CLD2's up to three ISO 639-3 codes) include one under which a kept
  language may be listed (crawlproc.crawl.cclang.index_codes), or CLD2 named no language; a recipe that keeps
  every language, or a language the index cannot tell, selects every language;
- its URL passes the recipe's URL filter.

Everything not selected is counted per WARC file and reason (`index:not_html`, `index:status`,
`index:language`, `index:url_filter`), never silently dropped. `plan_ranges` merges the selected records
of one WARC into few reads: records closer than `max_gap_bytes` share one read (the gap's bytes are fetched
and dropped), up to `max_range_bytes` per read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crawlproc.crawl.cclang import index_codes
from crawlproc.store.fingerprint import digest

INDEX_COLUMNS = ("url", "fetch_status", "content_mime_type", "content_mime_detected", "content_languages",
                 "warc_filename", "warc_record_offset", "warc_record_length")
HTML_MIMES = ("text/html", "application/xhtml+xml", "application/xml+html")
SELECTED_SCHEMA = pa.schema([("warc_filename", pa.string()), ("offset", pa.int64()), ("length", pa.int64()),
                             ("url", pa.string())])
REASONS = ("selected", "index:status", "index:not_html", "index:language", "index:url_filter")


@dataclass(frozen=True)
class SelectRule:
    """What to select: `languages` (ISO 639-3 codes; None = every language), whether rows without a language
    count as selected (`unknown`), and how many of CLD2's listed languages are looked at (`positions`: 1 =
    the page's main language only, 3 = any listed)."""

    languages: frozenset[str] | None = None
    unknown: bool = True
    positions: int = 3
    html_only: bool = True

    def to_dict(self) -> dict:
        return {"languages": sorted(self.languages) if self.languages is not None else None,
                "unknown": self.unknown, "positions": self.positions, "html_only": self.html_only}


def rule_for(recipe) -> SelectRule:
    """The selection a recipe's own settings imply (language.keep, fetch.language_margin, ...)."""
    lang, fetch = recipe.language, recipe.fetch
    codes = index_codes(lang.keep, fetch.language_margin) if lang.enabled else None
    return SelectRule(languages=codes, unknown=fetch.select_unknown_language, positions=fetch.language_positions,
                      html_only=recipe.input.html_only)


def _language_mask(langs: pa.ChunkedArray | pa.Array, rule: SelectRule) -> np.ndarray:
    if rule.languages is None:
        return np.ones(len(langs), bool)
    values = langs.to_pylist()
    wanted = rule.languages
    out = np.empty(len(values), bool)
    for i, v in enumerate(values):
        if not v:
            out[i] = rule.unknown
        else:
            out[i] = any(c.strip() in wanted for c in v.split(",")[: rule.positions])
    return out


def _media(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    # "text/html; charset=utf-8" -> "text/html"
    s = pc.utf8_lower(pc.utf8_trim_whitespace(pc.fill_null(col.cast(pa.string()), "")))
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(s, r";.*$", ""))


def classify_rows(table: pa.Table, rule: SelectRule, url_ok: Callable[[str], bool] | None = None) -> np.ndarray:
    """The reason code of every row: an index into REASONS (0 = selected). The first reason that applies
    wins, in REASONS order."""
    n = table.num_rows
    reason = np.zeros(n, np.int8)
    status = table.column("fetch_status").to_numpy(zero_copy_only=False)
    reason[status != 200] = REASONS.index("index:status")
    if rule.html_only:
        detected = _media(table.column("content_mime_detected"))
        declared = _media(table.column("content_mime_type")) if "content_mime_type" in table.column_names \
            else detected
        media = pc.if_else(pc.equal(detected, ""), declared, detected)
        html = pc.is_in(media, value_set=pa.array(HTML_MIMES)).to_numpy(zero_copy_only=False)
        reason[(reason == 0) & ~html] = REASONS.index("index:not_html")
    langs = table.column("content_languages").cast(pa.string())
    open_rows = np.flatnonzero(reason == 0)
    lang_ok = _language_mask(langs.take(pa.array(open_rows)), rule)
    reason[open_rows[~lang_ok]] = REASONS.index("index:language")
    if url_ok is not None:
        open_rows = np.flatnonzero(reason == 0)
        urls = table.column("url").take(pa.array(open_rows)).to_pylist()
        bad = np.fromiter((not url_ok(u or "") for u in urls), bool, len(urls))
        reason[open_rows[bad]] = REASONS.index("index:url_filter")
    return reason


def select_table(table: pa.Table, rule: SelectRule, url_ok: Callable[[str], bool] | None = None
                 ) -> tuple[pa.Table, pa.Table]:
    """(selected rows in SELECTED_SCHEMA sorted by file and offset, counts per file and reason: a table of
    warc_filename, reason, n)."""
    reason = classify_rows(table, rule, url_ok)
    picked = table.filter(pa.array(reason == 0))
    selected = pa.table({
        "warc_filename": picked.column("warc_filename").cast(pa.string()),
        "offset": picked.column("warc_record_offset").cast(pa.int64()),
        "length": picked.column("warc_record_length").cast(pa.int64()),
        "url": picked.column("url").cast(pa.string()),
    }, schema=SELECTED_SCHEMA).sort_by([("warc_filename", "ascending"), ("offset", "ascending")])
    counts = pa.table({"warc_filename": table.column("warc_filename").cast(pa.string()),
                       "reason": pa.array(np.asarray(REASONS)[reason])})
    counts = counts.group_by(["warc_filename", "reason"]).aggregate([([], "count_all")])
    counts = counts.rename_columns(["warc_filename", "reason", "n"])
    return selected, counts


# ---------------------------------------------------------------------------------------------- ranges


@dataclass
class Range:
    start: int  # first byte of the read
    end: int  # one past its last byte
    records: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) of the records in it

    @property
    def size(self) -> int:
        return self.end - self.start

    def header(self) -> str:
        return f"bytes={self.start}-{self.end - 1}"


def plan_ranges(records: list[tuple[int, int]], max_gap_bytes: int = 0, max_range_bytes: int = 16 << 20
                ) -> list[Range]:
    """Group (offset, length) records, sorted or not, into reads. Duplicates are read once; a record longer
    than max_range_bytes gets a read of its own."""
    out: list[Range] = []
    for off, length in sorted(set(records)):
        if length <= 0 or off < 0:
            raise ValueError(f"bad record (offset {off}, length {length})")
        end = off + length
        last = out[-1] if out else None
        if last is not None and off < last.end:
            raise ValueError(f"records overlap: ({off}, {length}) starts inside {last.records[-1]}")
        if last is not None and off - last.end <= max_gap_bytes and end - last.start <= max_range_bytes:
            last.end = end
            last.records.append((off, length))
        else:
            out.append(Range(off, end, [(off, length)]))
    return out


def selection_digest(records: list[tuple[int, int]]) -> str:
    """What identifies a WARC's selection: its sorted (offset, length) list."""
    return digest(sorted(records))
