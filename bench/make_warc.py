"""Build a larger, Common Crawl-like WARC from the real pages in tests/data, deterministically (seeded).

Why: the real fixtures hold ~250 HTML pages in all, too few to time a stage. This writes thousands of
captures in CC's shape -- one gzip member per record; warcinfo, then request + response (or revisit) +
metadata per capture; WARC-Record-ID, WARC-Date, WARC-IP-Address, payload/block digests,
WARC-Identified-Payload-Type, real-looking HTTP headers -- whose payloads are the real pages, mutated so that
documents differ (paragraph shuffles, sentence drops, boilerplate, link-list pages, "lorem ipsum"), plus real
non-HTML payloads (images, robots.txt, XML), a small PDF, revisits, URLs on the block list and a few exact
duplicates. Same seed, same bytes.

    python bench/make_warc.py --records 3000 --seed 0 --out bench/out/cc-sample.warc.gz
    python bench/make_warc.py --mix cc --records 3000 --out bench/out/cc-mix.warc.gz

`--records` counts captures (a response or revisit each); the file holds about 3x as many WARC records.

`--mix cc`: the HTML documents follow Common Crawl's language mix (CC-MAIN-2024-22: en 46%, then ru, de, ja,
es, fr, zh, it, pt, nl, pl, ...; see CC_LANGUAGES). A document of language L is a real page whose text is in L
(the ScrapingHub articles, the real WARCs' pages and tests/data/html_multilingual, labelled by lid.176 on
their trafilatura text), mutated as above; where there are few or no real pages in L (n of them: a real one is
taken with probability min(1, n / 8)), it is a *wrapped* page: a real page's structure -- its markup,
navigation, footer, scripts, styles and boilerplate layout -- whose every piece of visible text is replaced by
text of about the same length made of labelled sentences of L from tests/data/langid (lingua-py's test
sentences). 5% of the English documents are the reverse: English article paragraphs inside a non-English
page whose chrome stays in its own language, the case a language pre-check must not remove.
Block-listed URLs are listed domains only (no exact entries of the UT1 URL list, which real crawls rarely hit).
`--english-share S` (with `--mix cc`) sets English's share of the articles to S, the other languages keeping
CC's proportions among themselves: the input of the pre-check's gain as a function of that share.
The default mix (`--mix en`) is unchanged: ~90% English pages.
"""

from __future__ import annotations

import argparse
import base64
import csv
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
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator

ROOT = Path(__file__).resolve().parent.parent
HTML_DIR = ROOT / "tests" / "data" / "html"
WARC_DIR = ROOT / "tests" / "data" / "warc"
MULTILINGUAL_DIR = ROOT / "tests" / "data" / "html_multilingual"
SENTENCES = ROOT / "tests" / "data" / "langid" / "lingua_sample_30_per_lang.tsv"
BLOCKLIST_DIR = ROOT / "crawlproc" / "data" / "url_blocklist"
DUMP = "CC-MAIN-BENCH"
sys.path.insert(0, str(ROOT))  # --mix cc labels pages with crawlproc's language model

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

# Share of pages per primary language (CLD2) in CC-MAIN-2024-22, in percent, from Common Crawl's own statistics:
# commoncrawl/cc-crawl-statistics, plots/languages-top-200.html @ b482c80dc7b48af70ca9e699bb2bb3a39673f38f
# (https://commoncrawl.github.io/cc-crawl-statistics/plots/languages). The languages listed are those the real
# pages or the labelled sentences cover (lid.176 codes; CC's "nor" is lid.176's "no"); they hold 94% of the
# crawl. English keeps its share; the others are scaled up together to fill the rest (CC_MIX_WEIGHTS).
CC_LANGUAGES = {
    "en": 45.97, "ru": 5.92, "de": 5.57, "ja": 4.98, "es": 4.62, "fr": 4.22, "zh": 4.07, "it": 2.42, "pt": 2.04,
    "nl": 1.84, "pl": 1.73, "cs": 1.12, "tr": 1.11, "vi": 0.96, "id": 0.89, "ko": 0.70, "fa": 0.68, "ar": 0.64,
    "sv": 0.63, "da": 0.47, "uk": 0.45, "sk": 0.37, "no": 0.31, "sr": 0.22, "hr": 0.20, "hi": 0.19, "ms": 0.07,
}
_OTHERS = sum(v for k, v in CC_LANGUAGES.items() if k != "en")
CC_MIX_WEIGHTS = {k: v if k == "en" else v * (100 - CC_LANGUAGES["en"]) / _OTHERS for k, v in CC_LANGUAGES.items()}
# The kinds of capture in the CC mix: every HTML article page draws its language from CC_MIX_WEIGHTS, so the real
# WARCs' pages join the per-language pools instead of being a kind of their own.
CC_KIND_WEIGHTS = {**{k: v for k, v in KIND_WEIGHTS.items() if k != "real_warc_html"}, "article": 0.80}
REAL_PAGE_SATURATION = 8  # a language with n real pages takes a real one with probability min(1, n / 8)
ENGLISH_IN_FOREIGN_CHROME = 0.05
_LINGUA_TO_LID = {"nb": "no"}  # lingua-py's Norwegian Bokmål code, lid.176's label

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


def load_multilingual(folder: Path) -> list[Payload]:
    """The pages of tests/data/html_multilingual; a URL made from the file name (`<source>__<site>.<slug>`)."""
    out = []
    for p in sorted(folder.glob("*.html.gz")):
        name = p.name.removesuffix(".html.gz").split("__", 1)[-1]
        host, _, slug = name.rpartition(".") if name.count(".") >= 2 else (name, "", "")
        host = host if "." in host else f"www.{host}.example.org"
        body = gzip.decompress(p.read_bytes())
        out.append(Payload(f"https://{host}/{slug}", body, _declared_content_type(body), "text/html"))
    return out


def _declared_content_type(body: bytes) -> str:
    """UTF-8 pages get a Content-Type with or without charset later; others keep the charset they declare."""
    try:
        body.decode("utf-8")
        return ""
    except UnicodeDecodeError:
        m = re.search(rb"charset=[\"']?([\w-]+)", body[:8192], re.IGNORECASE)
        return f"text/html; charset={m.group(1).decode()}" if m else "text/html"


def load_sentences(path: Path) -> dict[str, list[str]]:
    """Labelled sentences per lid.176 language code (lingua-py's test sentences, 30 per language)."""
    out: dict[str, list[str]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            code = _LINGUA_TO_LID.get(row["iso639_1"], row["iso639_1"])
            out.setdefault(code, []).append(row["text"])
    return out


def label_languages(pages: list[Payload]) -> list[tuple[str, str]]:
    """(language, main text) of each page as the FineWeb recipe sees it: lid.176 on trafilatura's main text
    (favour precision, tables kept); "und" when the text is missing or the top score is under 0.5."""
    import trafilatura

    from crawlproc.warc.charset import UndecodableError, decode_html
    from crawlproc.extract.language import LanguageIdentifier

    lid = LanguageIdentifier()
    labels = []
    for p in pages:
        try:
            html, _ = decode_html(p.body, p.content_type or None)
        except UndecodableError:
            labels.append(("und", ""))
            continue
        text = trafilatura.extract(html, favor_precision=True, include_comments=False, deduplicate=False) or ""
        code, score = lid.predict(text)
        labels.append((code if score >= 0.5 else "und", text))
    return labels


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


def load_blocked_urls(blocklist_dir: Path, rng: random.Random, n: int = 200, from_url_list: int = 10) -> list[str]:
    """URLs on the project's block list when present, else made-up ones. Mostly listed domains (both FineWeb
    implementations block those); `from_url_list` in a hundred from the URL list (host/path entries, which
    datatrove 0.10.1 compares with the whole URL, scheme included, so that it never blocks them; we do)."""
    lists = read_blocklist(blocklist_dir)
    domains, urls = lists["domains"], lists["urls"]
    if not domains and not urls:
        return [FALLBACK_BLOCKED[i % len(FALLBACK_BLOCKED)].format(n=i) for i in range(n)]
    k = n * from_url_list // 100
    picked = [f"http://{d}/index.html" for d in rng.sample(domains, min(n - k, len(domains)))]
    picked += [f"http://{u}" for u in rng.sample(urls, min(k, len(urls)))]
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


_TITLE = re.compile(rb"(<title\b[^>]*>)(.*?)(</title>)", re.IGNORECASE | re.DOTALL)
_HEADING = re.compile(rb"(<h[1-3]\b[^>]*>)(.*?)(</h[1-3]>)", re.IGNORECASE | re.DOTALL)
_HTML_LANG = re.compile(rb"(<html\b[^>]*?)\s(?:xml:)?lang\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+)", re.IGNORECASE)


def _utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def can_wrap(body: bytes, main_text: str) -> bool:
    """A page whose paragraphs can carry another article: UTF-8, with enough paragraphs, and whose own article
    is in them (nine in ten words of its main text): replacing them replaces the article, leaving the site's
    chrome, not half an article in the old language."""
    if not _utf8(body):
        return False
    blocks = _P_BLOCK.findall(body)
    words = main_text.split()
    if len(blocks) < 5 or not words:
        return False
    in_paragraphs = set(b" ".join(_TAG.sub(b" ", inner) for _, inner, _ in blocks).decode("utf-8").split())
    return sum(w in in_paragraphs for w in words) >= 0.9 * len(words)


def wrap_text(template: bytes, paragraphs: list[bytes], rng: random.Random) -> bytes:
    """The template page with its paragraphs, title and first headings replaced by `paragraphs` (in order,
    cycled); everything else -- navigation, footer, scripts, boilerplate -- stays as it was."""
    it = iter(paragraphs * (1 + len(_P_BLOCK.findall(template)) // max(1, len(paragraphs))))
    body = _P_BLOCK.sub(lambda m: m.group(1) + next(it, b"") + m.group(3), template)
    head = paragraphs[0][:80].rsplit(b" ", 1)[0] if b" " in paragraphs[0][:80] else paragraphs[0][:40]
    body = _TITLE.sub(lambda m: m.group(1) + head + m.group(3), body, count=1)
    return _HEADING.sub(lambda m: m.group(1) + rng.choice(paragraphs)[:60] + m.group(3), body, count=2)


_NOT_TEXT = re.compile(rb"<(script|style|noscript|template|textarea|svg)\b.*?</\1\s*>|<!--.*?-->",
                       re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(rb"(<[^>]*>)")
_UNSPACED = {"zh", "ja"}  # scripts written without spaces between words


class Retexter:
    """Text in language `lang` of about a given length from its labelled sentences, drawn in a random order
    (so that no two paragraphs repeat: trafilatura's deduplication would drop them) and cut at a word."""

    def __init__(self, sentences: list[str], lang: str, rng: random.Random):
        self.sentences, self.rng = sentences, rng
        self.sep = "" if lang in _UNSPACED else " "

    def text(self, n: int) -> bytes:
        rng, parts, size = self.rng, [], 0
        while size < n:
            s = rng.choice(self.sentences)
            parts.append(s)
            size += len(s) + len(self.sep)
        text = self.sep.join(parts)
        if len(text) > n:
            cut = text[:n]
            text = cut.rsplit(" ", 1)[0] if self.sep and " " in cut else cut
        return html_lib.escape(text, quote=False).encode()


def retext_page(template: bytes, retexter: Retexter) -> bytes:
    """The template page with every piece of visible text -- article, navigation, footer, title -- replaced
    by text of about the same length in another language; markup, scripts, styles and attributes stay. The
    <html lang> attributes go (they would name the template's language)."""
    def retext(chunk: bytes) -> bytes:  # text between tags, wherever it sits; tags (attributes too) unchanged
        parts = _TAGS.split(chunk)
        for i in range(0, len(parts), 2):
            if parts[i].strip():
                parts[i] = retexter.text(len(parts[i].strip())) + parts[i][len(parts[i].rstrip()):]
        return b"".join(parts)

    out, last = [], 0
    for m in _NOT_TEXT.finditer(template):
        out += [retext(template[last:m.start()]), m.group(0)]
        last = m.end()
    body = b"".join([*out, retext(template[last:])])
    while _HTML_LANG.search(body, 0, 8192):  # lang= and xml:lang=, however many
        body = _HTML_LANG.sub(rb"\1", body, count=1)
    return body


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


def mix_weights(english_share: float | None = None) -> dict[str, float]:
    """Percent of articles per language: CC's (CC_MIX_WEIGHTS), or English at `english_share` (0..1) and the
    other languages in CC's proportions among themselves."""
    if english_share is None:
        return dict(CC_MIX_WEIGHTS)
    if not 0.0 <= english_share <= 1.0:
        raise ValueError(f"english_share must be in [0, 1], got {english_share}")
    return {k: 100 * english_share if k == "en" else v * 100 * (1 - english_share) / _OTHERS
            for k, v in CC_LANGUAGES.items()}


class CcMix:
    """The sources of `--mix cc`: real pages per language, page structures to wrap text in, labelled sentences."""

    def __init__(self, pages: list[Payload], sentences: dict[str, list[str]], rng: random.Random,
                 english_share: float | None = None):
        self.rng = rng
        self.weights = mix_weights(english_share)
        self.langs = [k for k, w in self.weights.items() if w > 0]
        self.drawn: Counter = Counter()
        self.pools: dict[str, list[Payload]] = {}
        labels = label_languages(pages)
        for page, (lang, _) in zip(pages, labels):
            if lang in self.weights:
                self.pools.setdefault(lang, []).append(page)
        missing = [k for k in self.langs if k not in sentences and k not in self.pools]
        if missing or "en" not in self.pools:
            raise SystemExit(f"no real pages nor sentences for {missing or ['en']}")
        self.sentences = sentences
        texts = {id(p): text for p, (_, text) in zip(pages, labels)}
        self.templates = [p for p in pages if len(texts[id(p)]) >= 500 and _utf8(p.body)]
        self.foreign = [p for k, pool in self.pools.items() if k != "en" for p in pool if can_wrap(p.body, texts[id(p)])]
        self.sources: Counter = Counter()  # "<lang>:real", "<lang>:wrapped", "en:foreign_chrome"

    def language(self) -> str:
        """The next article's language: the one furthest below its share so far, so that every prefix of the
        file (and so a small file) holds the mix in CC's proportions."""
        n = sum(self.drawn.values()) + 1
        lang = max(self.langs, key=lambda k: self.weights[k] / 100 * n - self.drawn[k])
        self.drawn[lang] += 1
        return lang

    def page_in(self, lang: str) -> Payload:
        """A real page of `lang` when there is one, else an English one (link lists)."""
        return self.rng.choice(self.pools.get(lang) or self.pools["en"])

    def article(self, n: int, mutations: Counter) -> Payload:
        rng, lang = self.rng, self.language()
        pool = self.pools.get(lang, [])
        if lang == "en" and self.foreign and rng.random() < ENGLISH_IN_FOREIGN_CHROME:
            tpl, src = rng.choice(self.foreign), rng.choice(pool)
            paragraphs = [m.group(2) for m in _P_BLOCK.finditer(src.body)] or [b"..."]
            self.sources["en:foreign_chrome"] += 1
            body = wrap_text(tpl.body, paragraphs, rng)
            return Payload(variant_url(tpl.url, n, rng), body, rng.choice(CONTENT_TYPES), "text/html")
        if pool and (lang not in self.sentences or rng.random() < min(1.0, len(pool) / REAL_PAGE_SATURATION)):
            src = rng.choice(pool)
            body, applied = mutate_article(src.body, rng)
            mutations.update(applied)
            self.sources[f"{lang}:real"] += 1
            url = src.url if rng.random() < 0.1 else variant_url(src.url, n, rng)
            p = Payload(url, body, src.content_type, src.identified)
            if p.content_type:
                return p
            return _with_content_type(p, rng) if lang == "en" else replace(p, content_type=rng.choice(CONTENT_TYPES))
        tpl = rng.choice(self.templates)
        self.sources[f"{lang}:wrapped"] += 1
        body = retext_page(tpl.body, Retexter(self.sentences[lang], lang, rng))
        return Payload(variant_url(tpl.url, n, rng), body, rng.choice(CONTENT_TYPES), "text/html")


def generate(
    out_path: Path,
    captures: int,
    seed: int,
    html_dir: Path = HTML_DIR,
    warc_dir: Path = WARC_DIR,
    blocklist_dir: Path = BLOCKLIST_DIR,
    mix: str = "en",
    multilingual_dir: Path = MULTILINGUAL_DIR,
    sentences: Path = SENTENCES,
    english_share: float | None = None,
) -> dict:
    """Write the WARC; returns a summary (counts per record type and per capture kind). `mix`: "en" (the
    English-heavy default) or "cc" (Common Crawl's language mix, see the module docstring); with "cc",
    `english_share` (0..1) replaces CC's share of English articles, the other languages keeping their
    proportions among themselves."""
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
    # CC mix: only listed domains. Pages at the UT1 list's 19,586 exact URLs are a vanishing share of a real
    # crawl; the English mix plants some to exercise that path (a known difference from datatrove).
    blocked = load_blocked_urls(blocklist_dir, rng, from_url_list=0 if mix == "cc" else 10)
    cc = None
    if mix == "cc":
        cc = CcMix(articles + warc_html + load_multilingual(multilingual_dir), load_sentences(sentences), rng,
                   english_share)
    kinds, weights = zip(*(CC_KIND_WEIGHTS if cc else KIND_WEIGHTS).items())
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
            if kind == "article" and cc:
                p = cc.article(n, mutations)
            elif kind == "article":
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
                src = cc.page_in(cc.language()) if cc else rng.choice(articles)
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
    summary = {
        "file": str(out_path),
        "captures": captures,
        "seed": seed,
        "mix": mix,
        "english_share": english_share,
        "records": dict(sorted(w.counts.items())),
        "kinds": dict(sorted(kind_counts.items())),
        "mutations": dict(sorted(mutations.items())),
        "sources": {"articles": len(articles), "warc_html": len(warc_html), "non_html": len(others)},
    }
    if cc:
        summary["cc_mix"] = {
            "real_pages_per_language": {k: len(v) for k, v in sorted(cc.pools.items())},
            "article_sources": dict(sorted(cc.sources.items())),
        }
    return summary


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
    ap.add_argument("--mix", choices=["en", "cc"], default="en",
                    help="en: ~90%% English pages (default); cc: Common Crawl's language mix")
    ap.add_argument("--english-share", type=float, default=None,
                    help="with --mix cc: the share of English articles (0..1) instead of CC's 0.46")
    ap.add_argument("--check", action="store_true", help="read the file back and verify records and digests")
    args = ap.parse_args(argv)
    if args.records < 1:
        ap.error("--records must be >= 1")
    summary = generate(args.out, args.records, args.seed, args.html_dir, args.warc_dir, mix=args.mix,
                       english_share=args.english_share)
    if args.check:
        summary["check"] = verify(args.out)
    json.dump(summary, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
