"""A snapshot's file listing (`crawl-data/<snapshot>/warc.paths.gz`), read and validated.

Every line is untrusted: it becomes a download URL, a cache path and an output file name (its stem). A line is
rejected (and counted, never silently dropped) when it could escape the output or cache directory ('..',
an absolute path, odd characters), does not fit the file system (MAX_LINE_BYTES, and download.safe_relpath's
segment and path limits), does not name a WARC file, points to an origin (scheme, host, port) that neither the
base URL nor `allowed_hosts` names, or maps to the same stem as an earlier line (two files would overwrite each
other's outputs).

The listing as a whole is untrusted too: its size on the wire, its decompressed size and its number of lines
are capped (decompression is streamed, so a gzip bomb costs constant memory), something that is not a list of
paths (an HTML error page served with 200, binary data) is refused saying what it looks like, and a listing
with no usable line is an error, not an empty success.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from crawlproc.crawl.download import DownloadError, UnsafePathError, allowed_origin, fetch_bytes, origin, safe_relpath
from crawlproc.recipe import DownloadConfig
from crawlproc.store.layout import warc_stem

# Common Crawl's public bucket and its HTTPS front door: s3://commoncrawl/<key> == https://data.commoncrawl.org/<key>
CC_BUCKET = "commoncrawl"
CC_HTTPS = "https://data.commoncrawl.org"
SNAPSHOT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")  # e.g. CC-MAIN-2024-10; also a folder name
_STEM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=~@-]*$")
_WARC_NAME = re.compile(r"\.(?:warc|arc)(?:\.(?:wet|wat))?(?:\.gz)?$", re.IGNORECASE)

# a Common Crawl listing is ~100,000 lines of ~140 bytes (~14 MB, ~2 MB gzipped): these leave a wide margin
MAX_LISTING_BYTES = 64 << 20  # on the wire
MAX_LISTING_TEXT_BYTES = 64 << 20  # decompressed
MAX_LISTING_LINES = 1_000_000  # blank ones included
MAX_LINE_BYTES = 2048
MAX_REJECTED = 10_000  # more unusable lines than this: not a listing
_INFLATE_PIECE = 1 << 20


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


def https_base(base_url: str, s3_mode: str = "store") -> str:
    """Normalize the base URL. An s3:// base is read through the object store (crawlproc.store.storage: ranged,
    resumed, retried; credentials from the environment, s3://commoncrawl anonymously), unless s3_mode is
    "https": then `s3://commoncrawl` becomes Common Crawl's HTTPS endpoint."""
    base = base_url.rstrip("/")
    parts = urlsplit(base)
    if parts.scheme == "s3":
        if s3_mode != "https":
            return base
        if parts.netloc != CC_BUCKET:
            raise ListingError(f"s3 base {base_url!r}: only s3://{CC_BUCKET} has a known HTTPS equivalent; "
                               "set download.s3 = \"store\" to read other buckets through the object store")
        return CC_HTTPS + parts.path.rstrip("/")
    if parts.scheme not in ("http", "https", "file"):
        raise ListingError(f"base URL {base_url!r} must be http(s)://, s3:// or file://")
    return base


def listing_url(base_url: str, snapshot: str, s3_mode: str = "store", name: str = "warc.paths.gz") -> str:
    """`name`: warc.paths.gz, or wet.paths.gz for CC's extracted text (fetch.mode = "wet")."""
    return f"{https_base(base_url, s3_mode)}/crawl-data/{check_snapshot(snapshot)}/{name}"


def _text_pieces(data: bytes) -> Iterator[bytes]:
    """The listing's text: gzip (any number of members) inflated a piece at a time, or the bytes as they are."""
    if data[:2] != b"\x1f\x8b":
        yield data
        return
    view, pos, total = memoryview(data), 0, 0
    while pos < len(data):
        if data[pos:pos + 2] != b"\x1f\x8b":
            raise ListingError(f"listing is not valid gzip: {len(data) - pos} bytes of garbage after the gzip data")
        d = zlib.decompressobj(31)
        while not d.eof:
            try:
                out = d.decompress(view[pos:], _INFLATE_PIECE)
            except zlib.error as e:
                raise ListingError(f"listing is not valid gzip: {e}") from None
            pos = len(data) - len(d.unused_data if d.eof else d.unconsumed_tail)
            total += len(out)
            if total > MAX_LISTING_TEXT_BYTES:
                raise ListingError(f"listing inflates past {MAX_LISTING_TEXT_BYTES >> 20} MiB "
                                   f"({len(data)} bytes compressed): not a listing (a gzip bomb?)")
            if out:
                yield out
            elif not d.eof and pos >= len(data):
                raise ListingError("listing is not valid gzip: it is truncated")


def _what_it_looks_like(head: bytes) -> str | None:
    """Why the start of a listing shows it is not a list of paths, or None."""
    if not head.strip():
        return None
    if re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", head[:4096]):
        return "binary data"
    try:
        head[:4096].decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < 4092:  # not merely a character cut at the sample's end
            return "binary data (not UTF-8 text)"
    text = head[:4096].lstrip().lower()
    if text.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")) or (
            text.startswith(b"<") and b">" in text[:200]):
        first = head.lstrip()[:80].decode("utf-8", "replace").replace("\n", " ")
        return f"an HTML or XML page (it starts {first!r})"
    if text.startswith((b"{", b"[")):
        return "JSON"
    return None


def parse_listing_bytes(data: bytes) -> list[str]:
    """Lines of a listing, gzipped (as Common Crawl serves it) or plain text. Streamed and capped: raises
    ListingError for a listing too big (MAX_LISTING_TEXT_BYTES, MAX_LISTING_LINES), broken gzip, or what is
    not a listing at all. A line longer than MAX_LINE_BYTES comes back cut to MAX_LINE_BYTES + 1 characters,
    still too long for validate_line, which rejects it."""
    lines: list[str] = []
    partial: list[bytes] = []  # the line being assembled across pieces, at most MAX_LINE_BYTES + 1 bytes
    partial_len = 0
    first = True
    for piece in _text_pieces(data):
        if first:
            looks = _what_it_looks_like(piece)
            if looks:
                raise ListingError(f"this is not a listing of WARC paths: it looks like {looks}")
            first = False
        parts = piece.split(b"\n")
        if len(lines) + len(parts) - 1 > MAX_LISTING_LINES:
            raise ListingError(f"listing has more than {MAX_LISTING_LINES:,} lines: not a listing")
        for i, part in enumerate(parts):
            if partial_len <= MAX_LINE_BYTES:
                partial.append(part[: MAX_LINE_BYTES + 1 - partial_len])
            partial_len += len(part)
            if i < len(parts) - 1:  # a newline ended it
                lines.append(b"".join(partial).decode("utf-8", "replace").rstrip("\r"))
                partial, partial_len = [], 0
    if partial_len:
        lines.append(b"".join(partial).decode("utf-8", "replace").rstrip("\r"))
    return lines


def _map_s3(url: str, base: str) -> str:
    # an s3://commoncrawl/<key> line under an HTTPS base is the same object on the HTTPS endpoint
    parts = urlsplit(url)
    if parts.netloc == CC_BUCKET and urlsplit(base).scheme in ("http", "https"):
        return f"{CC_HTTPS}{parts.path}"
    return url


def validate_line(index: int, line: str, base: str, allowed_hosts: set[str]) -> ListedFile:
    """Map one listing line to a ListedFile, or raise UnsafePathError saying why not."""
    if len(line.encode("utf-8", "replace")) > MAX_LINE_BYTES:
        raise UnsafePathError(f"line is longer than {MAX_LINE_BYTES} bytes")
    raw = line.strip()
    parts = urlsplit(raw)
    if parts.scheme:  # a full URL: it must stay on the base URL's origin or an allowed host
        if parts.scheme == "s3":
            raw_url = _map_s3(raw, base)
            parts = urlsplit(raw_url)
        else:
            raw_url = raw
        if parts.scheme not in ("http", "https", "s3"):
            raise UnsafePathError(f"scheme {parts.scheme!r} is not allowed in a listing")
        if parts.scheme != urlsplit(base).scheme and parts.scheme == "s3":
            raise UnsafePathError("s3:// lines need an s3:// base or s3://commoncrawl")
        if not allowed_origin(raw_url, base, allowed_hosts):
            scheme, host, port = origin(raw_url)
            raise UnsafePathError(f"{scheme}://{host}:{port} is not the base URL's host (with its scheme and port) "
                                  "nor in download.allowed_hosts")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise UnsafePathError("URLs with a query, fragment or credentials are not allowed")
        rel = safe_relpath(parts.path.lstrip("/") if parts.path.startswith("/") else parts.path)
        url = f"{parts.scheme}://{parts.netloc}/{rel}"
    else:
        rel = safe_relpath(raw)
        url = f"{base}/{rel}"
    if not _WARC_NAME.search(rel.name):
        raise UnsafePathError(f"file name {rel.name[:80]!r} is not a WARC file (.warc.gz, .warc, .arc.gz)")
    stem = warc_stem(str(rel))
    if not _STEM_RE.match(stem):
        raise UnsafePathError(f"file name {rel.name!r} does not give a usable output name")
    return ListedFile(index=index, path=raw, url=url, stem=stem, cache_path=str(rel))


def build_listing(snapshot: str, lines: list[str], base_url: str, allowed_hosts: list[str] | None = None,
                  *, s3_mode: str = "store", url: str = "") -> Listing:
    """Validate every line; identical duplicate lines are listed once, a different path with an existing
    stem is rejected. Raises ListingError when no line is usable, or more than MAX_REJECTED are not."""
    base = https_base(base_url, s3_mode)
    allowed = {h.lower() for h in (allowed_hosts or [])}
    listing = Listing(check_snapshot(snapshot), url or listing_url(base_url, snapshot, s3_mode))
    seen: dict[str, ListedFile] = {}
    nonblank = 0
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        nonblank += 1
        try:
            f = validate_line(i, line, base, allowed)
        except (UnsafePathError, ValueError) as e:  # urlsplit raises ValueError on e.g. "http://[::1"
            _reject(listing, i, line, str(e))
            continue
        prev = seen.get(f.stem)
        if prev is not None:
            if prev.url != f.url:
                _reject(listing, i, line, f"same output name {f.stem!r} as line {prev.index + 1} ({prev.path})")
            continue
        seen[f.stem] = f
        listing.files.append(f)
    if not listing.files:
        if not nonblank:
            raise ListingError(f"listing {listing.url} is empty: it names no file")
        first = listing.rejected[0]
        raise ListingError(f"listing {listing.url} names no usable file: none of its {nonblank} lines is "
                           f"(line {first.index + 1}: {first.reason})")
    return listing


def unreachable_message(url: str, why: str) -> str:
    host = urlsplit(url).netloc
    return (f"cannot reach {host} for the listing {url}: {why}. No network here, or a proxy or firewall in "
            "the way? --base-url reads the same crawl-data/ tree elsewhere: s3://commoncrawl (from AWS), a "
            "mirror or local server (http://host:port), or a local copy (file:///path/to/copy)")


def _reject(listing: Listing, index: int, line: str, reason: str) -> None:
    if len(listing.rejected) >= MAX_REJECTED:
        raise ListingError(f"listing {listing.url} has more than {MAX_REJECTED:,} unusable lines: not a listing "
                           f"(line {listing.rejected[0].index + 1}: {listing.rejected[0].reason})")
    listing.rejected.append(RejectedLine(index, line[:200], reason))


def read_listing(snapshot: str, config: DownloadConfig | None = None, *, base_url: str | None = None,
                 storage=None, name: str = "warc.paths.gz") -> Listing:
    """Download `<base>/crawl-data/<snapshot>/warc.paths.gz` (with the download retries; an s3:// base
    through `storage`) and validate it."""
    config = config or DownloadConfig()
    base_url = base_url or config.base_url
    s3_mode = getattr(config, "s3", "store")
    url = listing_url(base_url, snapshot, s3_mode, name)
    try:
        # a server that cannot be reached at all (no network, a typo, a firewall) is said within seconds: one
        # quick retry, not the minute of backoff a flaky server deserves
        data = fetch_bytes(url, config, allowed_hosts={h.lower() for h in config.allowed_hosts}, verify=False,
                           max_bytes=MAX_LISTING_BYTES, storage=storage, connect_retries=1)
    except DownloadError as e:
        if e.unreachable:
            raise ListingError(unreachable_message(url, e.unreachable)) from None
        raise
    try:
        lines = parse_listing_bytes(data)
    except ListingError as e:
        raise ListingError(f"{url}: {e}") from None
    return build_listing(snapshot, lines, base_url, config.allowed_hosts, s3_mode=s3_mode, url=url)
