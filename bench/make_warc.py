"""Build a larger, Common Crawl-like WARC from the real pages in tests/data, deterministically (seeded).

Why: the real fixtures hold ~250 HTML pages in all, too few to time a stage. This writes thousands of
captures in CC's shape -- one gzip member per record; warcinfo, then request + response (or revisit) +
metadata per capture; WARC-Record-ID, WARC-Date, WARC-IP-Address, payload/block digests,
WARC-Identified-Payload-Type, real-looking HTTP headers -- whose payloads are the real pages, mutated so that
documents differ (paragraph shuffles, sentence drops, boilerplate, link-list pages, "lorem ipsum"), plus real
non-HTML payloads (images, robots.txt, XML), a small PDF, revisits, URLs on the block list and a few exact
duplicates. Same seed, same bytes.

    python bench/make_warc.py --records 3000 --seed 0 --out bench/out/cc-sample.warc.gz

`--records` counts captures (a response or revisit each); the file holds about 3x as many WARC records.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import html as html_lib
import json
import random
import re
import sys
import tarfile
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator

ROOT = Path(__file__).resolve().parent.parent
HTML_DIR = ROOT / "tests" / "data" / "html"
WARC_DIR = ROOT / "tests" / "data" / "warc"
BLOCKLIST_DIR = ROOT / "crawlproc" / "data" / "url_blocklist"
DUMP = "CC-MAIN-BENCH"

# Share of captures per kind (the rest are mutated article pages). CC's own mix is mostly HTML.
KIND_WEIGHTS = {
    "article": 0.70,
    "real_warc_html": 0.10,  # the real WARCs' HTML responses: zh, de, ru, en, legacy charsets
    "link_list": 0.04,  # nav/list pages: many short lines, the quality filters' bread and butter
    "non_html": 0.04,
    "revisit": 0.04,
    "blocked_url": 0.04,
    "duplicate": 0.02,  # exact payload of an earlier capture under another URL (a mirror)
    "robots": 0.02,
}

BOILERPLATE = [
    "We use cookies to improve your experience. By continuing to browse you agree to our use of cookies.",
    "Subscribe to our newsletter",
    "Share on Facebook | Share on Twitter | Email this article",
    "Related articles",
    "Advertisement",
    "Sign in | Register | My account",
    "Copyright © All rights reserved. Terms of use | Privacy policy",
    "Click here to read more",
    "Most popular stories this week",
    "Follow us on Instagram",
]
SERVERS = ["nginx", "Apache", "cloudflare", "Microsoft-IIS/10.0", "nginx/1.18.0 (Ubuntu)", "LiteSpeed"]
CONTENT_TYPES = ["text/html; charset=UTF-8", "text/html; charset=utf-8", "text/html"]
# Made-up adult URLs used when the project's block list is absent: words on FineWeb's banned-word list.
FALLBACK_BLOCKED = [
    "http://free-porn-videos.example.com/watch/{n}",
    "https://www.hotxxxtube.example.net/gallery/{n}.html",
    "http://sexcam-live.example.org/room/{n}",
    "https://xxx.example.com/videos/porno-{n}",
]
MINIMAL_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
_P_BLOCK = re.compile(rb"(<p\b[^>]*>)(.*?)(</p>)", re.IGNORECASE | re.DOTALL)
_SENTENCE_END = re.compile(rb"(?<=[.!?])\s+(?=[A-Z\"'])")
_BODY_CLOSE = re.compile(rb"</body>", re.IGNORECASE)
_BODY_OPEN = re.compile(rb"<body\b[^>]*>", re.IGNORECASE)
_HEADLINE = re.compile(rb"<(h[1-4]|a)\b[^>]*>(.*?)</\1>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(rb"<[^>]+>")


@dataclass
class Payload:
    url: str
    body: bytes
    content_type: str  # HTTP Content-Type header
    identified: str  # WARC-Identified-Payload-Type (CC's detected MIME type)


# ---------------------------------------------------------------- sources (real data only)


def load_articles(html_dir: Path) -> list[Payload]:
    pages = sorted((html_dir / "html").glob("*.html.gz")) or sorted(html_dir.glob("*.html.gz"))
    if not pages:
        raise SystemExit(f"no *.html.gz pages under {html_dir}")
    truth_file = html_dir / "ground-truth.json"
    urls = {}
    if truth_file.is_file():
        urls = {k: v.get("url") for k, v in json.loads(truth_file.read_text(encoding="utf-8")).items()}
    out = []
    for p in pages:
        key = p.name.split(".")[0]
        url = urls.get(key) or f"https://news-{key[:8]}.example.com/articles/{key[8:20]}.html"
        out.append(Payload(url, gzip.decompress(p.read_bytes()), "", "text/html"))
    return out


def load_warc_payloads(warc_dir: Path) -> tuple[list[Payload], list[Payload]]:
    """(HTML responses, other responses) of the real WARCs, payloads decoded from chunked/gzip transfer."""
    html, other = [], []
    for path in sorted(warc_dir.glob("*.warc.gz")):
        if path.name.endswith((".wat.gz", ".wet.gz")):
            continue
        with open(path, "rb") as f:
            for rec in ArchiveIterator(f):
                if rec.rec_type != "response" or rec.http_headers is None:
                    continue
                url = (rec.rec_headers.get_header("WARC-Target-URI") or "").strip("<>")
                ctype = rec.http_headers.get_header("Content-Type") or "application/octet-stream"
                body = rec.content_stream().read()
                mime = ctype.split(";")[0].strip().lower()
                if not url or not body:
                    continue
                if mime in ("text/html", "application/xhtml+xml"):
                    ident = rec.rec_headers.get_header("WARC-Identified-Payload-Type") or "text/html"
                    html.append(Payload(url, body, ctype, ident))
                else:
                    other.append(Payload(url, body, ctype, mime))
    return html, other


def _spread_lines(data: bytes, limit: int) -> list[str]:
    """About `limit` entries spread evenly over a sorted list (its head is all IP addresses and digits)."""
    lines = data.splitlines()
    step = max(1, len(lines) // limit)
    out = (ln.decode("utf-8", "replace").strip() for ln in lines[::step])
    return [ln for ln in out if ln and not ln.startswith("#") and " " not in ln]


def read_blocklist(blocklist_dir: Path, limit: int = 20_000) -> dict[str, list[str]]:
    """Entries of the UT1 `domains` and `urls` lists, from the tarball FineWeb ships or from plain files
    named like them."""
    found: dict[str, list[str]] = {"domains": [], "urls": []}
    if not blocklist_dir.is_dir():
        return found
    for path in sorted(blocklist_dir.iterdir()):
        if path.name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(path) as tar:
                for member in tar:
                    kind = member.name.rsplit("/", 1)[-1]
                    if kind in found and member.isfile() and not found[kind]:
                        found[kind] = _spread_lines(tar.extractfile(member).read(), limit)
        elif path.is_file() and path.name.split(".")[0] in found:
            data = path.read_bytes()
            found[path.name.split(".")[0]] = _spread_lines(
                gzip.decompress(data) if path.suffix == ".gz" else data, limit
            )
    return found


def load_blocked_urls(blocklist_dir: Path, rng: random.Random, n: int = 200) -> list[str]:
    """URLs on the project's block list when present, else made-up ones. Mostly listed domains (both FineWeb
    implementations block those); one in ten from the URL list (host/path entries, matched differently)."""
    lists = read_blocklist(blocklist_dir)
    domains, urls = lists["domains"], lists["urls"]
    if not domains and not urls:
        return [FALLBACK_BLOCKED[i % len(FALLBACK_BLOCKED)].format(n=i) for i in range(n)]
    picked = [f"http://{d}/index.html" for d in rng.sample(domains, min(n - n // 10, len(domains)))]
    picked += [f"http://{u}" for u in rng.sample(urls, min(n // 10, len(urls)))]
    return picked


# ---------------------------------------------------------------- page mutations


def _split_sentences(text: bytes) -> list[bytes]:
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def mutate_article(body: bytes, rng: random.Random) -> tuple[bytes, list[str]]:
    """Make a variant of a real page so that copies are not identical documents; returns (html, applied)."""
    applied = []
    blocks = list(_P_BLOCK.finditer(body))
    inner = [m.group(2) for m in blocks]
    if len(inner) >= 4 and rng.random() < 0.5:  # shuffle a window of paragraphs
        i = rng.randrange(0, len(inner) - 3)
        j = min(len(inner), i + rng.randint(3, 8))
        window = inner[i:j]
        rng.shuffle(window)
        inner[i:j] = window
        applied.append("shuffle")
    if inner and rng.random() < 0.6:  # drop one sentence in some paragraphs
        for k in range(len(inner)):
            sents = _split_sentences(inner[k])
            if len(sents) >= 2 and rng.random() < 0.3:
                del sents[rng.randrange(len(sents))]
                inner[k] = b" ".join(sents)
        applied.append("sentence_drop")
    if inner and rng.random() < 0.15:  # cut the article short: some fall under the word/sentence minimums
        keep = rng.randint(1, max(1, len(inner) // 3))
        inner = inner[:keep] + [b""] * (len(inner) - keep)
        applied.append("truncate")
    if inner and rng.random() < 0.04:
        inner[rng.randrange(len(inner))] += b" Lorem ipsum dolor sit amet, consectetur adipiscing elit."
        applied.append("lorem_ipsum")
    if blocks:
        parts, last = [], 0
        for m, text in zip(blocks, inner):
            parts += [body[last : m.start()], m.group(1), text, m.group(3)]
            last = m.end()
        parts.append(body[last:])
        body = b"".join(parts)
    if rng.random() < 0.5:  # site chrome: cookie banners, share bars, related links
        lines = rng.sample(BOILERPLATE, rng.randint(1, 4))
        chrome = b"".join(b'<div class="bp"><p>%s</p></div>\n' % html_lib.escape(s).encode() for s in lines)
        where = _BODY_CLOSE if rng.random() < 0.6 else _BODY_OPEN
        m = where.search(body)
        if m:
            at = m.start() if where is _BODY_CLOSE else m.end()
            body = body[:at] + chrome + body[at:]
            applied.append("boilerplate")
    return body, applied


def link_list_page(body: bytes, rng: random.Random) -> bytes:
    """A nav/index page built from a real page's headlines and link texts: many short lines."""
    items = [_TAG.sub(b"", m.group(2)).strip() for m in _HEADLINE.finditer(body)]
    items = [i for i in items if 0 < len(i) < 200] or [b"Home", b"News", b"Sport", b"Contact"]
    rng.shuffle(items)
    lis = b"".join(b'<li><a href="/p/%d">%s</a></li>\n' % (k, t) for k, t in enumerate(items[:60]))
    return (
        b"<!DOCTYPE html><html><head><title>Index</title></head>"
        b"<body><h1>Latest</h1><ul>\n%s</ul></body></html>" % lis
    )


def variant_url(url: str, n: int, rng: random.Random) -> str:
    parts = urlsplit(url)
    base = f"{parts.scheme or 'http'}://{parts.netloc}{parts.path or '/'}"
    style = rng.randrange(4)
    if style == 0:
        return f"{base}?page={n}"
    if style == 1:
        return f"{base.rstrip('/')}/amp/{n}"
    if style == 2:
        return f"{base}?utm_source=feed&id={n}"
    return f"{parts.scheme or 'http'}://m.{parts.netloc.removeprefix('www.')}{parts.path or '/'}?v={n}"


# ---------------------------------------------------------------- WARC serialization


def _sha1_b32(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def _record(headers: list[tuple[str, str]], block: bytes) -> bytes:
    head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    head += f"WARC-Block-Digest: {_sha1_b32(block)}\r\nContent-Length: {len(block)}\r\n\r\n"
    return gzip.compress(head.encode() + block + b"\r\n\r\n", compresslevel=6, mtime=0)


class CaptureWriter:
    def __init__(self, out, rng: random.Random, start: datetime):
        self.out = out
        self.rng = rng
        self.when = start
        self.counts: Counter = Counter()
        self.info_id = self.new_id()

    def new_id(self) -> str:
        return f"<urn:uuid:{uuid.UUID(int=self.rng.getrandbits(128), version=4)}>"

    def ip(self) -> str:
        r = self.rng
        return f"{r.randint(23, 216)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"

    def write(self, rec: bytes, kind: str) -> None:
        self.out.write(rec)
        self.counts[kind] += 1

    def warcinfo(self, filename: str) -> None:
        body = (
            b"isPartOf: CC-MAIN-BENCH\r\n"
            b"publisher: Common Crawl (synthetic bench file built from real pages)\r\n"
            b"description: crawlproc bench/make_warc.py\r\nformat: WARC File Format 1.0\r\n"
            b"software: crawlproc-make-warc\r\nrobots: checked via crawler-commons\r\n"
        )
        hdr = [
            ("WARC-Type", "warcinfo"),
            ("WARC-Date", self._date()),
            ("WARC-Filename", filename),
            ("WARC-Record-ID", self.info_id),
            ("Content-Type", "application/warc-fields"),
        ]
        self.write(_record(hdr, body), "warcinfo")

    def _date(self) -> str:
        return self.when.strftime("%Y-%m-%dT%H:%M:%SZ")

    def _request(self, url: str, date: str, ip: str, rid: str, concurrent: str) -> None:
        p = urlsplit(url)
        path = (p.path or "/") + (f"?{p.query}" if p.query else "")
        block = (
            f"GET {path} HTTP/1.1\r\nUser-Agent: CCBot/2.0 (https://commoncrawl.org/faq/)\r\n"
            f"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
            f"Accept-Language: en-US,en;q=0.5\r\nIf-Modified-Since: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
            f"Accept-Encoding: br,gzip\r\nHost: {p.netloc}\r\nConnection: Keep-Alive\r\n\r\n"
        ).encode()
        hdr = [
            ("WARC-Type", "request"),
            ("WARC-Date", date),
            ("WARC-Record-ID", rid),
            ("Content-Type", "application/http; msgtype=request"),
            ("WARC-Warcinfo-ID", self.info_id),
            ("WARC-IP-Address", ip),
            ("WARC-Target-URI", url),
            ("WARC-Concurrent-To", concurrent),
        ]
        self.write(_record(hdr, block), "request")

    def _metadata(self, url: str, date: str, concurrent: str, charset: str | None) -> None:
        fields = f"fetchTimeMs: {self.rng.randint(40, 2500)}\r\n"
        if charset:
            fields += f"charset-detected: {charset}\r\n"
        hdr = [
            ("WARC-Type", "metadata"),
            ("WARC-Date", date),
            ("WARC-Record-ID", self.new_id()),
            ("Content-Type", "application/warc-fields"),
            ("WARC-Warcinfo-ID", self.info_id),
            ("WARC-Target-URI", url),
            ("WARC-Concurrent-To", concurrent),
        ]
        self.write(_record(hdr, fields.encode()), "metadata")

    def capture(self, p: Payload) -> str:
        """request + response + metadata; returns the response's record id."""
        self.when += timedelta(seconds=self.rng.randint(0, 3))
        date, ip = self._date(), self.ip()
        req_id, resp_id = self.new_id(), self.new_id()
        http = (
            f"HTTP/1.1 200 OK\r\nDate: {self.when.strftime('%a, %d %b %Y %H:%M:%S GMT')}\r\n"
            f"Server: {self.rng.choice(SERVERS)}\r\nContent-Type: {p.content_type}\r\n"
            + ("X-Crawler-Content-Encoding: gzip\r\n" if self.rng.random() < 0.6 else "")
            + ("Vary: Accept-Encoding\r\nCache-Control: max-age=600\r\n" if self.rng.random() < 0.5 else "")
            + f"Content-Length: {len(p.body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        block = http + p.body
        self._request(p.url, date, ip, req_id, resp_id)
        hdr = [
            ("WARC-Type", "response"),
            ("WARC-Date", date),
            ("WARC-Record-ID", resp_id),
            ("Content-Type", "application/http; msgtype=response"),
            ("WARC-Warcinfo-ID", self.info_id),
            ("WARC-Concurrent-To", req_id),
            ("WARC-IP-Address", ip),
            ("WARC-Target-URI", p.url),
            ("WARC-Payload-Digest", _sha1_b32(p.body)),
            ("WARC-Identified-Payload-Type", p.identified),
        ]
        self.write(_record(hdr, block), "response")
        m = re.search(r"charset=([\w-]+)", p.content_type, re.IGNORECASE)
        self._metadata(p.url, date, resp_id, m.group(1).upper() if m else None)
        return resp_id

    def revisit(self, url: str, refers_date: str, digest: str) -> None:
        self.when += timedelta(seconds=self.rng.randint(0, 3))
        date, ip = self._date(), self.ip()
        req_id, rid = self.new_id(), self.new_id()
        http = (
            f"HTTP/1.1 304 Not Modified\r\nDate: {self.when.strftime('%a, %d %b %Y %H:%M:%S GMT')}\r\n"
            f"Server: {self.rng.choice(SERVERS)}\r\nConnection: close\r\n\r\n"
        ).encode()
        self._request(url, date, ip, req_id, rid)
        hdr = [
            ("WARC-Type", "revisit"),
            ("WARC-Date", date),
            ("WARC-Record-ID", rid),
            ("Content-Type", "application/http; msgtype=response"),
            ("WARC-Warcinfo-ID", self.info_id),
            ("WARC-Concurrent-To", req_id),
            ("WARC-IP-Address", ip),
            ("WARC-Target-URI", url),
            ("WARC-Profile", "http://netpreserve.org/warc/1.1/revisit/server-not-modified"),
            ("WARC-Refers-To-Target-URI", url),
            ("WARC-Refers-To-Date", refers_date),
            ("WARC-Payload-Digest", digest),
        ]
        self.write(_record(hdr, http), "revisit")


# ---------------------------------------------------------------- the generator


def _with_content_type(p: Payload, rng: random.Random) -> Payload:
    """Articles get a Content-Type with or without charset; a few are re-encoded to a legacy charset."""
    if rng.random() < 0.05:
        text = p.body.decode("utf-8", errors="replace")
        body = text.encode("windows-1252", errors="xmlcharrefreplace")
        return Payload(p.url, body, "text/html; charset=windows-1252", "text/html")
    ident = "application/xhtml+xml" if rng.random() < 0.3 else "text/html"
    return Payload(p.url, p.body, rng.choice(CONTENT_TYPES), ident)


def generate(
    out_path: Path,
    captures: int,
    seed: int,
    html_dir: Path = HTML_DIR,
    warc_dir: Path = WARC_DIR,
    blocklist_dir: Path = BLOCKLIST_DIR,
) -> dict:
    """Write the WARC; returns a summary (counts per record type and per capture kind)."""
    rng = random.Random(seed)
    articles = load_articles(html_dir)
    warc_html, others = load_warc_payloads(warc_dir)
    if not warc_html:
        raise SystemExit(f"no HTML responses in {warc_dir}/*.warc.gz")
    others.append(
        Payload("http://files.example.org/report.pdf", MINIMAL_PDF, "application/pdf", "application/pdf")
    )
    robots = [o for o in others if o.url.endswith("robots.txt")] or [
        Payload(
            "http://example.org/robots.txt",
            b"User-agent: *\nDisallow: /private/\n",
            "text/plain",
            "text/plain",
        )
    ]
    blocked = load_blocked_urls(blocklist_dir, rng)
    kinds, weights = zip(*KIND_WEIGHTS.items())
    start = datetime(2024, 5, 17, 23, 31, 22, tzinfo=UTC)
    seen: list[tuple[str, str, Payload]] = []  # (url, date, payload) of earlier HTML captures
    kind_counts: Counter = Counter()
    mutations: Counter = Counter()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    with open(tmp, "wb") as out:
        w = CaptureWriter(out, rng, start)
        w.warcinfo(out_path.name)
        for n in range(captures):
            kind = rng.choices(kinds, weights)[0]
            if kind in ("revisit", "duplicate") and not seen:
                kind = "article"
            kind_counts[kind] += 1
            if kind == "article":
                src = rng.choice(articles)
                body, applied = mutate_article(src.body, rng)
                mutations.update(applied)
                url = src.url if rng.random() < 0.1 else variant_url(src.url, n, rng)
                p = _with_content_type(Payload(url, body, "", "text/html"), rng)
            elif kind == "real_warc_html":
                src = rng.choice(warc_html)
                p = Payload(
                    variant_url(src.url, n, rng) if rng.random() < 0.7 else src.url,
                    src.body,
                    src.content_type,
                    src.identified,
                )
            elif kind == "link_list":
                src = rng.choice(articles)
                p = Payload(
                    variant_url(src.url, n, rng),
                    link_list_page(src.body, rng),
                    rng.choice(CONTENT_TYPES),
                    "text/html",
                )
            elif kind == "blocked_url":
                src = rng.choice(articles)
                body, _ = mutate_article(src.body, rng)
                p = Payload(rng.choice(blocked), body, rng.choice(CONTENT_TYPES), "text/html")
            elif kind == "non_html":
                p = rng.choice(others)
            elif kind == "robots":
                p = rng.choice(robots)
            elif kind == "duplicate":
                url, _, orig = rng.choice(seen)
                p = Payload(variant_url(url, n, rng), orig.body, orig.content_type, orig.identified)
            else:  # revisit of an earlier capture: headers only, no payload
                url, date, orig = rng.choice(seen)
                w.revisit(url, date, _sha1_b32(orig.body))
                continue
            date = w._date()
            w.capture(p)
            if p.identified in ("text/html", "application/xhtml+xml"):
                seen.append((p.url, date, p))
    tmp.replace(out_path)
    return {
        "file": str(out_path),
        "captures": captures,
        "seed": seed,
        "records": dict(sorted(w.counts.items())),
        "kinds": dict(sorted(kind_counts.items())),
        "mutations": dict(sorted(mutations.items())),
        "sources": {"articles": len(articles), "warc_html": len(warc_html), "non_html": len(others)},
    }


def verify(path: Path) -> dict:
    """Read the file back: warcio must parse every record, each gzip member must hold exactly one record,
    and fastwarc must confirm every block and payload digest. Raises AssertionError otherwise."""
    from fastwarc.warc import ArchiveIterator as FastIterator

    types: Counter = Counter()
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f):
            types[rec.rec_type] += 1
            rec.content_stream().read()
    members, data = 0, path.read_bytes()
    while data:  # one gzip member per record, as Common Crawl writes them
        d = zlib.decompressobj(31)
        d.decompress(data)
        data, members = d.unused_data, members + 1
    bad = checked = 0
    for parse_http in (False, True):  # a digest check consumes the record: one pass per kind of digest
        with open(path, "rb") as f:
            for rec in FastIterator(f, parse_http=parse_http):
                if not parse_http:
                    checked += 1
                    bad += not rec.verify_block_digest()
                elif rec.headers.get("WARC-Type") == "response":
                    bad += not rec.verify_payload_digest()
    assert members == sum(types.values()), f"{members} gzip members for {sum(types.values())} records"
    assert bad == 0, f"{bad} records with a wrong digest"
    return {"records": dict(sorted(types.items())), "gzip_members": members, "digests_checked": checked}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=3000, help="captures (responses + revisits) to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "cc-sample.warc.gz")
    ap.add_argument("--html-dir", type=Path, default=HTML_DIR)
    ap.add_argument("--warc-dir", type=Path, default=WARC_DIR)
    ap.add_argument("--check", action="store_true", help="read the file back and verify records and digests")
    args = ap.parse_args(argv)
    if args.records < 1:
        ap.error("--records must be >= 1")
    summary = generate(args.out, args.records, args.seed, args.html_dir, args.warc_dir)
    if args.check:
        summary["check"] = verify(args.out)
    json.dump(summary, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
