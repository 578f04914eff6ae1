"""A mini Common Crawl: a CC-shaped tree built from the bundled real pages, and an HTTP server for it.

    crawl-data/<snapshot>/warc.paths.gz
    crawl-data/<snapshot>/segments/<segment>/warc/CC-MAIN-<start>-<end>-<NNNNN>.warc.gz

Each WARC is gzip-per-record, like Common Crawl's: a warcinfo record, then request/response/metadata records
for the 181 ScrapingHub article pages (tests/data/html/*.html.gz, URLs from ground-truth.json) and every record
of the real WARC files in tests/data/warc/ (their own WARC headers and HTTP blocks, re-packed). The build is
deterministic (fixed record ids, dates, gzip mtime 0), so two builds give byte-identical files.

`MiniCCServer` serves the tree on 127.0.0.1 with Range support and, per path, a plan of faults to inject
(503 then success, 429 with Retry-After, connection reset mid-body, truncated body, slow body, 404, ...), so
tests and the demo exercise the downloader against a real socket.

    python -m pipelines.demo.minicc build DIR [--files 6] [--snapshot CC-MAIN-2024-10]
    python -m pipelines.demo.minicc serve DIR [--port 8000]      # prints the base URL for `crawlproc run --base-url`
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import socket
import struct
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import unquote, urlsplit

from warcio.archiveiterator import ArchiveIterator

from crawlproc.crawl.download import UnsafePathError, safe_join

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
DEFAULT_SNAPSHOT = "CC-MAIN-2024-10"
_NS = uuid.UUID("6f1c1a5e-9d1b-4c3e-8a51-3b2f0c0e7a11")  # namespace for the deterministic record ids


# ---------------------------------------------------------------------------------------------- building


def _record(headers: list[tuple[str, str]], block: bytes, protocol: str = "WARC/1.0") -> bytes:
    """One WARC record as its own gzip member (mtime 0: deterministic bytes)."""
    lines = [protocol] + [f"{k}: {v}" for k, v in headers if k.lower() != "content-length"]
    lines.append(f"Content-Length: {len(block)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + block + b"\r\n\r\n"
    return gzip.compress(raw, compresslevel=6, mtime=0)


def _rid(*parts: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(_NS, '/'.join(parts))}>"


def _page_captures(html_dir: Path, limit: int | None) -> list[list[bytes]]:
    """request/response/metadata triples for the ScrapingHub pages, in a stable order."""
    truth: dict = {}
    for cand in (html_dir / "ground-truth.json", html_dir.parent / "ground-truth.json"):
        if cand.is_file():
            truth = json.loads(cand.read_text(encoding="utf-8"))
            break
    files = sorted(html_dir.glob("*.html.gz")) + sorted(html_dir.glob("*.html"))
    captures = []
    for i, f in enumerate(files[:limit] if limit is not None else files):
        key = f.name.split(".")[0]
        payload = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        url = truth.get(key, {}).get("url") or f"https://pages.example.org/{key}.html"
        host = urlsplit(url).hostname or "pages.example.org"
        date = f"2024-02-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z"
        req_id, resp_id = _rid("request", key), _rid("response", key)
        request = (f"GET {urlsplit(url).path or '/'} HTTP/1.1\r\nHost: {host}\r\n"
                   "User-Agent: CCBot/2.0 (https://commoncrawl.org/faq/)\r\nAccept: text/html\r\n\r\n").encode()
        http = (f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload
        digest = hashlib.sha1(payload).hexdigest()
        meta = f"fetchTimeMs: {50 + i % 400}\r\ncharset-detected: UTF-8\r\n".encode()
        common = [("WARC-Date", date), ("WARC-Target-URI", url), ("WARC-IP-Address", f"10.0.{i // 250}.{i % 250}")]
        captures.append([
            _record([("WARC-Type", "request"), ("WARC-Record-ID", req_id), *common,
                     ("Content-Type", "application/http; msgtype=request")], request),
            _record([("WARC-Type", "response"), ("WARC-Record-ID", resp_id), *common,
                     ("Content-Type", "application/http; msgtype=response"), ("WARC-Concurrent-To", req_id),
                     ("WARC-Payload-Digest", f"sha1:{digest}"), ("WARC-Identified-Payload-Type", "text/html")],
                    http),
            _record([("WARC-Type", "metadata"), ("WARC-Record-ID", _rid("metadata", key)), *common,
                     ("WARC-Refers-To", resp_id), ("Content-Type", "application/warc-fields")], meta),
        ])
    return captures


def _warc_records(warc_dir: Path) -> list[list[bytes]]:
    """Every non-warcinfo record of the real WARC files, headers and blocks as they are."""
    out = []
    for f in sorted(warc_dir.glob("*.warc.gz")):
        with open(f, "rb") as fh:
            for rec in ArchiveIterator(fh, no_record_parse=True):
                if rec.rec_type == "warcinfo":
                    continue
                block = rec.raw_stream.read()
                out.append([_record(rec.rec_headers.headers, block, rec.rec_headers.protocol)])
    return out


@dataclass
class MiniCC:
    root: Path
    snapshot: str
    paths: list[str]  # listing order, relative to root
    response_ids: dict[str, list[str]] = field(default_factory=dict)  # path -> response record ids

    def listing_path(self) -> Path:
        return self.root / "crawl-data" / self.snapshot / "warc.paths.gz"


def warc_name(snapshot: str, n: int) -> tuple[str, str]:
    """(segment, file name) for the n-th WARC of a snapshot, shaped like Common Crawl's."""
    year = int(snapshot.split("-")[2]) if snapshot.count("-") >= 3 and snapshot.split("-")[2].isdigit() else 2024
    segment = f"{1707000000000 + (n // 3) * 1000}.{10 + n // 3}"  # three files per segment
    start = f"{year}0217{n % 24:02d}0000"
    return segment, f"CC-MAIN-{start}-{year}0217{(n + 2) % 24:02d}0000-{n:05d}.warc.gz"


def write_listing(root: str | Path, snapshot: str, lines: list[str]) -> Path:
    """(Re)write crawl-data/<snapshot>/warc.paths.gz with exactly these lines (tests add or break lines)."""
    p = Path(root) / "crawl-data" / snapshot / "warc.paths.gz"
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    tmp.replace(p)
    return p


def build_minicc(root: str | Path, *, snapshot: str = DEFAULT_SNAPSHOT, files: int = 6,
                 data_dir: str | Path | None = None, max_pages: int | None = None,
                 include_warcs: bool = True, listed: int | None = None) -> MiniCC:
    """Build the tree under `root` from tests/data (or `data_dir`): `files` WARCs, all listed unless `listed`
    says how many of them the listing names (the rest can be listed later: incremental runs)."""
    root = Path(root)
    data = Path(data_dir) if data_dir else DATA
    # tests/data/html/ holds ground-truth.json and the pages, either beside it or in an html/ subfolder
    html_dir = next((d for d in (data / "html" / "html", data / "html") if any(d.glob("*.html*"))), data / "html")
    captures = _page_captures(html_dir, max_pages) if html_dir.is_dir() else []
    if include_warcs and (data / "warc").is_dir():
        captures += _warc_records(data / "warc")
    if not captures:
        raise FileNotFoundError(f"no pages found under {html_dir} or {data / 'warc'}")
    files = max(1, min(files, len(captures)))
    paths: list[str] = []
    ids: dict[str, list[str]] = {}
    for n in range(files):
        segment, name = warc_name(snapshot, n)
        rel = f"crawl-data/{snapshot}/segments/{segment}/warc/{name}"
        info = (f"isPartOf: {snapshot}\r\npublisher: crawlproc minicc (re-packed real pages)\r\n"
                f"format: WARC File Format 1.1\r\n").encode()
        members = [_record([("WARC-Type", "warcinfo"), ("WARC-Date", "2024-02-17T00:00:00Z"),
                            ("WARC-Record-ID", _rid("warcinfo", snapshot, name)), ("WARC-Filename", name),
                            ("Content-Type", "application/warc-fields")], info)]
        for cap in captures[n::files]:  # round robin: every file mixes article pages and real WARC records
            members.extend(cap)
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"".join(members))
        paths.append(rel)
        ids[rel] = _response_ids(target)
    write_listing(root, snapshot, paths[:listed] if listed is not None else paths)
    return MiniCC(root, snapshot, paths, ids)


def index_rows(path: Path, rel: str, languages=None, cld2: dict | None = None, collect: bool = False) -> list[dict]:
    """One row per response of a WARC, in the columns of Common Crawl's index table (the ones crawlproc reads;
    crawlproc.crawl.ccindex.INDEX_COLUMNS). `content_languages` comes from the record's CC metadata
    (`languages-cld2`) when the file (or `cld2`, url -> codes, gathered from other files) has it, else from
    `languages(url)` (None: no language)."""
    rows = []
    cld2 = cld2 if collect else dict(cld2 or {})
    with open(path, "rb") as f:
        it = ArchiveIterator(f)
        for rec in it:
            uri = (rec.rec_headers.get_header("WARC-Target-URI") or "").strip("<>")
            if rec.rec_type == "metadata":
                for line in rec.content_stream().read().decode("utf-8", "replace").splitlines():
                    if line.startswith("languages-cld2:"):
                        got = json.loads(line.split(":", 1)[1]).get("languages", [])
                        cld2[uri] = ",".join(x["code-iso-639-3"] for x in got) or None
                continue
            if rec.rec_type != "response" or rec.http_headers is None:
                continue
            rec.content_stream().read()
            status = rec.http_headers.get_statuscode()
            rows.append({"url": uri, "fetch_status": int(status) if status and status.isdigit() else 0,
                         "content_mime_type": rec.http_headers.get_header("Content-Type"),
                         "content_mime_detected": rec.rec_headers.get_header("WARC-Identified-Payload-Type"),
                         "content_languages": None, "warc_filename": rel,
                         "warc_record_offset": it.get_record_offset(), "warc_record_length": it.get_record_length()})
    for r in rows:
        r["content_languages"] = cld2.get(r["url"]) or (languages(r["url"]) if languages else None)
    return rows


def write_index(mini: MiniCC, dest: str | Path, languages=None, paths: list[str] | None = None) -> Path:
    """A Parquet index of the mini CC's WARCs shaped like Common Crawl's columnar index (see index_rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = paths or mini.paths
    cld2: dict = {}  # a response and its metadata record may sit in different files of the mini CC
    for rel in paths:
        index_rows(mini.root / rel, rel, cld2=cld2, collect=True)
    rows = [r for rel in paths for r in index_rows(mini.root / rel, rel, languages, cld2)]
    schema = pa.schema([("url", pa.string()), ("fetch_status", pa.int16()), ("content_mime_type", pa.string()),
                        ("content_mime_detected", pa.string()), ("content_languages", pa.string()),
                        ("warc_filename", pa.string()), ("warc_record_offset", pa.int32()),
                        ("warc_record_length", pa.int32())])
    table = pa.Table.from_pylist(sorted(rows, key=lambda r: r["url"]), schema=schema)  # CC sorts by URL
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, dest)
    return dest


def _response_ids(path: Path) -> list[str]:
    with open(path, "rb") as f:
        return [r.rec_headers.get_header("WARC-Record-ID") for r in ArchiveIterator(f) if r.rec_type == "response"]


# ---------------------------------------------------------------------------------------------- serving


@dataclass
class Fault:
    """One injected behaviour for one request to a path.

    kind: "status" (answer `status`, with `retry_after` if set), "reset" (send `after_bytes` of the body then
    reset the TCP connection), "truncate" (send `after_bytes` then close cleanly, short of Content-Length),
    "slow" (sleep `delay_s` before each `chunk` bytes), "ignore_range" (answer 200 with the whole file),
    "corrupt" (serve the body with one byte flipped at `after_bytes`), "redirect" (302 to `location`).
    `repeat`: stays in force for every later request instead of being used once."""

    kind: str
    status: int = 503
    retry_after: str | None = None
    after_bytes: int = 0
    delay_s: float = 0.0
    chunk: int = 4096
    location: str = ""
    repeat: bool = False


class MiniCCServer(ThreadingHTTPServer):
    """Serve `root` on 127.0.0.1 (port 0 = any free port) in a background thread; use as a context manager."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, root: str | Path, port: int = 0, host: str = "127.0.0.1", range_support: bool = True):
        super().__init__((host, port), _Handler)
        self.root = Path(root)
        self.range_support = range_support
        self.faults: dict[str, list[Fault]] = {}
        self.requests: list[dict] = []  # what was asked and answered, for tests to assert on
        self.completed: list[str] = []  # paths whose whole body was sent, in order
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def handle_error(self, request, client_address):
        # a client that hangs up (its timeout, a killed worker) is expected here, not worth a traceback
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def add_fault(self, path: str, *faults: Fault) -> None:
        """Queue faults for `path` (relative, as in the listing); each request uses the next one."""
        with self._lock:
            self.faults.setdefault(path.lstrip("/"), []).extend(faults)

    def next_fault(self, path: str) -> Fault | None:
        with self._lock:
            plan = self.faults.get(path)
            if not plan:
                return None
            return plan[0] if plan[0].repeat else plan.pop(0)

    def log(self, **entry) -> None:
        with self._lock:
            self.requests.append(entry)

    def requests_for(self, path: str) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["path"] == path.lstrip("/")]

    def start(self) -> Self:
        self._thread = threading.Thread(target=self.serve_forever, name="minicc", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _wait_acknowledged(sock: socket.socket, timeout: float = 5.0) -> None:
    """Wait until the peer has acknowledged every byte sent (Linux TIOCOUTQ: bytes not yet acknowledged): a
    reset sent earlier could overtake data still in flight, and the client would not see how much it got."""
    import fcntl
    import termios

    deadline = time.monotonic() + timeout
    with contextlib.suppress(OSError):
        while time.monotonic() < deadline:
            if struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0] == 0:
                return
            time.sleep(0.005)


class _Handler(BaseHTTPRequestHandler):
    server: MiniCCServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: tests read server.requests instead
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _reply(self, status: int, headers: dict, body: bytes = b"") -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self, head: bool) -> None:
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        rng = self.headers.get("Range")
        fault = self.server.next_fault(rel)
        self.server.log(path=rel, range=rng, fault=fault.kind if fault else None, client=self.client_address)
        if fault and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._reply(fault.status, headers, f"injected {fault.status}\n".encode())
            return
        if fault and fault.kind == "redirect":
            self._reply(302, {"Location": fault.location})
            return
        try:
            path = safe_join(self.server.root, rel)
        except UnsafePathError:
            self._reply(400, {}, b"bad path\n")
            return
        if not path.is_file():
            self._reply(404, {}, b"not found\n")
            return
        data = path.read_bytes()
        if fault and fault.kind == "corrupt":
            i = min(fault.after_bytes, len(data) - 1)
            data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
        st = path.stat()
        etag = f'"{st.st_size:x}-{int(st.st_mtime_ns):x}"'
        headers = {"ETag": etag, "Last-Modified": formatdate(st.st_mtime, usegmt=True),
                   "Content-Type": "application/octet-stream"}
        start, end, status = 0, len(data) - 1, 200
        use_range = (rng and self.server.range_support and not (fault and fault.kind == "ignore_range")
                     and self.headers.get("If-Range", etag) in (etag, headers["Last-Modified"]))
        if use_range:
            headers["Accept-Ranges"] = "bytes"
            try:
                a, b = rng.strip().removeprefix("bytes=").split("-")
                start, end = int(a), (int(b) if b else len(data) - 1)
            except ValueError:
                self._reply(400, {}, b"bad range\n")
                return
            if start >= len(data):
                self._reply(416, {"Content-Range": f"bytes */{len(data)}"})
                return
            end = min(end, len(data) - 1)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        elif self.server.range_support:
            headers["Accept-Ranges"] = "bytes"
        body = data[start:end + 1]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if fault and fault.kind in ("reset", "truncate"):
            self.send_header("Connection", "close")
        self.end_headers()
        if head:
            return
        self._write_body(body, fault)

    def _write_body(self, body: bytes, fault: Fault | None) -> None:
        try:
            if fault and fault.kind in ("reset", "truncate"):
                self.wfile.write(body[:fault.after_bytes])
                self.wfile.flush()
                if fault.kind == "reset":  # SO_LINGER 0: close() sends RST instead of FIN
                    _wait_acknowledged(self.connection)  # so that the client reads every byte sent
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    self.connection.shutdown(socket.SHUT_WR)
                self.close_connection = True
                return
            if fault and fault.kind == "slow":
                for i in range(0, len(body), fault.chunk):
                    time.sleep(fault.delay_s)
                    self.wfile.write(body[i:i + fault.chunk])
                    self.wfile.flush()
                return
            self.wfile.write(body)
            self.wfile.flush()
            with self.server._lock:
                self.server.completed.append(unquote(urlsplit(self.path).path).lstrip("/"))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its read timeout): nothing to do


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.demo.minicc", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build a mini Common Crawl tree from the bundled real pages")
    b.add_argument("root")
    b.add_argument("--snapshot", default=DEFAULT_SNAPSHOT)
    b.add_argument("--files", type=int, default=6)
    b.add_argument("--data", help="fixture folder with html/ and warc/ (default: tests/data)")
    s = sub.add_parser("serve", help="serve a tree on 127.0.0.1 until interrupted")
    s.add_argument("root")
    s.add_argument("--port", type=int, default=8000)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        cc = build_minicc(args.root, snapshot=args.snapshot, files=args.files, data_dir=args.data)
        n = sum(len(v) for v in cc.response_ids.values())
        print(f"built {len(cc.paths)} WARC files ({n} responses) for {cc.snapshot} under {cc.root}")
        return 0
    with MiniCCServer(args.root, port=args.port) as server:
        print(f"serving {args.root} at {server.base_url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
