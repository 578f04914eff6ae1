"""A snapshot's file listing (`crawl-data/<snapshot>/warc.paths.gz`), read and validated.

Every line is untrusted: it becomes a download URL, a cache path and an output file name (its stem). A line is
rejected (and counted, never silently dropped) when it could escape the output or cache directory ('..',
an absolute path, odd characters), points to a host that neither the base URL nor `allowed_hosts` names, or
maps to the same stem as an earlier line (two files would overwrite each other's outputs).
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from crawlproc.download import UnsafePathError, fetch_bytes, host_of, safe_relpath
from crawlproc.recipe import DownloadConfig
from crawlproc.layout import warc_stem

# Common Crawl's public bucket and its HTTPS front door: s3://commoncrawl/<key> == https://data.commoncrawl.org/<key>
CC_BUCKET = "commoncrawl"
CC_HTTPS = "https://data.commoncrawl.org"
SNAPSHOT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")  # e.g. CC-MAIN-2024-10; also a folder name
_STEM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=~@-]*$")


class ListingError(ValueError):
    """The listing as a whole is unusable (not found, not gzip, bad snapshot name)."""


@dataclass
class ListedFile:
    index: int  # 0-based line number in the listing
    path: str  # the line as listed (relative path, or URL)
    url: str  # where to download it from
    stem: str  # key of its outputs: docs/<stem>.parquet, _done/<stem>.json, ...
    cache_path: str  # relative path under a cache directory (validated, cannot escape it)


@dataclass
class RejectedLine:
    index: int
    line: str
    reason: str


@dataclass
class Listing:
    snapshot: str
    url: str
    files: list[ListedFile] = field(default_factory=list)
    rejected: list[RejectedLine] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"snapshot": self.snapshot, "url": self.url, "files": [asdict(f) for f in self.files],
                "rejected": [asdict(r) for r in self.rejected]}

    @classmethod
    def from_dict(cls, d: dict) -> Listing:
        return cls(d["snapshot"], d["url"], [ListedFile(**f) for f in d.get("files", [])],
                   [RejectedLine(**r) for r in d.get("rejected", [])])


def check_snapshot(snapshot: str) -> str:
    if not isinstance(snapshot, str) or not SNAPSHOT_RE.match(snapshot):
        raise ListingError(f"bad snapshot name {snapshot!r}: expected e.g. CC-MAIN-2024-10 "
                           "(letters, digits, '-' and '_' only)")
    return snapshot


def https_base(base_url: str, s3_mode: str = "https") -> str:
    """Normalize the base URL. `s3://commoncrawl` becomes Common Crawl's HTTPS endpoint unless s3_mode is
    "pyarrow" (then s3:// URLs are kept and read with pyarrow.fs, credentials from the environment)."""
    base = base_url.rstrip("/")
    parts = urlsplit(base)
    if parts.scheme == "s3":
        if s3_mode == "pyarrow":
            return base
        if parts.netloc != CC_BUCKET:
            raise ListingError(f"s3 base {base_url!r}: only s3://{CC_BUCKET} has a known HTTPS equivalent; "
                               "set download.s3 = \"pyarrow\" to read other buckets with pyarrow.fs")
        return CC_HTTPS + parts.path.rstrip("/")
    if parts.scheme not in ("http", "https", "file"):
        raise ListingError(f"base URL {base_url!r} must be http(s)://, s3:// or file://")
    return base


def listing_url(base_url: str, snapshot: str, s3_mode: str = "https") -> str:
    return f"{https_base(base_url, s3_mode)}/crawl-data/{check_snapshot(snapshot)}/warc.paths.gz"


def parse_listing_bytes(data: bytes) -> list[str]:
    """Lines of a listing, gzipped (as Common Crawl serves it) or plain text."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise ListingError(f"listing is not valid gzip: {e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ListingError(f"listing is not UTF-8 text: {e}") from None
    return text.splitlines()


def _map_s3(url: str, base: str) -> str:
    # an s3://commoncrawl/<key> line under an HTTPS base is the same object on the HTTPS endpoint
    parts = urlsplit(url)
    if parts.netloc == CC_BUCKET and urlsplit(base).scheme in ("http", "https"):
        return f"{CC_HTTPS}{parts.path}"
    return url


def validate_line(index: int, line: str, base: str, allowed_hosts: set[str]) -> ListedFile:
    """Map one listing line to a ListedFile, or raise UnsafePathError saying why not."""
    raw = line.strip()
    parts = urlsplit(raw)
    if parts.scheme:  # a full URL: it must stay on the base host or an allowed one
        if parts.scheme == "s3":
            raw_url = _map_s3(raw, base)
            parts = urlsplit(raw_url)
        else:
            raw_url = raw
        if parts.scheme not in ("http", "https", "s3"):
            raise UnsafePathError(f"scheme {parts.scheme!r} is not allowed in a listing")
        host = (parts.hostname or "").lower()
        if parts.scheme != urlsplit(base).scheme and parts.scheme == "s3":
            raise UnsafePathError("s3:// lines need an s3:// base or s3://commoncrawl")
        if host != host_of(base) and host not in allowed_hosts:
            raise UnsafePathError(f"host {host!r} is not the base URL's host nor in download.allowed_hosts")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise UnsafePathError("URLs with a query, fragment or credentials are not allowed")
        rel = safe_relpath(parts.path.lstrip("/") if parts.path.startswith("/") else parts.path)
        url = f"{parts.scheme}://{parts.netloc}/{rel}"
    else:
        rel = safe_relpath(raw)
        url = f"{base}/{rel}"
    stem = warc_stem(str(rel))
    if not _STEM_RE.match(stem):
        raise UnsafePathError(f"file name {rel.name!r} does not give a usable output name")
    return ListedFile(index=index, path=raw, url=url, stem=stem, cache_path=str(rel))


def build_listing(snapshot: str, lines: list[str], base_url: str, allowed_hosts: list[str] | None = None,
                  *, s3_mode: str = "https", url: str = "") -> Listing:
    """Validate every line; identical duplicate lines are listed once, a different path with an existing
    stem is rejected."""
    base = https_base(base_url, s3_mode)
    allowed = {h.lower() for h in (allowed_hosts or [])}
    listing = Listing(check_snapshot(snapshot), url or listing_url(base_url, snapshot, s3_mode))
    seen: dict[str, ListedFile] = {}
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            f = validate_line(i, line, base, allowed)
        except UnsafePathError as e:
            listing.rejected.append(RejectedLine(i, line[:500], str(e)))
            continue
        prev = seen.get(f.stem)
        if prev is not None:
            if prev.url != f.url:
                listing.rejected.append(RejectedLine(i, line[:500], f"same output name {f.stem!r} as line "
                                                                    f"{prev.index + 1} ({prev.path})"))
            continue
        seen[f.stem] = f
        listing.files.append(f)
    return listing


def read_listing(snapshot: str, config: DownloadConfig | None = None, *, base_url: str | None = None) -> Listing:
    """Download `<base>/crawl-data/<snapshot>/warc.paths.gz` (with the download retries) and validate it."""
    config = config or DownloadConfig()
    base_url = base_url or config.base_url
    s3_mode = getattr(config, "s3", "https")
    url = listing_url(base_url, snapshot, s3_mode)
    allowed = {host_of(url)} | {h.lower() for h in config.allowed_hosts}
    data = fetch_bytes(url, config, allowed_hosts=allowed, verify=False)
    return build_listing(snapshot, parse_listing_bytes(data), base_url, config.allowed_hosts,
                         s3_mode=s3_mode, url=url)
