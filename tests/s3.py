"""A real S3-compatible server for tests (moto's standalone server on 127.0.0.1) and a fault-injecting proxy
in front of it (503 SlowDown, connection resets, truncated GET bodies, slow responses).

The AWS variables are set when the test session starts (tests/conftest.py), before any Ray worker exists,
so that workers and subprocesses find the server with the SDK's own defaults: AWS_ENDPOINT_URL and dummy
credentials (moto accepts any).
"""

from __future__ import annotations

import http.client
import io
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def moto_command(port: int) -> list[str]:
    exe = Path(sys.executable).with_name("moto_server")
    if exe.exists():
        return [str(exe), "-H", "127.0.0.1", "-p", str(port)]
    found = shutil.which("moto_server")
    if found is None:
        raise RuntimeError("moto_server not found: pip install 'moto[server]' (a dev dependency)")
    return [found, "-H", "127.0.0.1", "-p", str(port)]


class MotoServer:
    """moto_server on 127.0.0.1:port, started once and stopped at the end of the session."""

    def __init__(self, port: int):
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> MotoServer:
        if self.proc is not None:
            return self
        self.proc = subprocess.Popen(moto_command(self.port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"moto_server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def bucket(self, name: str) -> str:
        """Create a bucket (idempotent) and return its s3:// URI."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("PUT", f"/{name}")
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        if resp.status not in (200, 409):  # 409: it exists already
            raise RuntimeError(f"cannot create bucket {name!r}: HTTP {resp.status} {body[:200]!r}")
        return f"s3://{name}"


@dataclass
class Rule:
    """Inject `kind` into the next `times` requests whose method and path match."""

    kind: str  # "503" | "reset" | "truncate" | "slow"
    method: str = "GET"
    path_contains: str = ""
    times: int = 1
    delay_s: float = 0.2


@dataclass
class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of `upstream` (host:port) that injects faults by rule."""

    upstream_port: int
    rules: list[Rule] = field(default_factory=list)
    injected: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, method, path)
    requests: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                body = self._body()
                rule = proxy._take(self.command, self.path)
                if rule is not None and rule.kind == "503":
                    msg = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(msg)))
                    self.send_header("Content-Type", "application/xml")
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                if rule is not None and rule.kind == "reset":
                    self._drop(reset=True)
                    return
                if rule is not None and rule.kind == "slow":
                    time.sleep(rule.delay_s)
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "transfer-encoding", "content-length")}
                headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                # a HEAD answer has no body but announces the object's size
                length = resp.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length)
                self.end_headers()
                if rule is not None and rule.kind == "truncate" and len(data) > 1:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self._drop(reset=False)
                    return
                self.wfile.write(data)
                conn.close()

            def _body(self) -> bytes:
                """The request body; the AWS SDK streams uploads with chunked transfer encoding."""
                if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()

            def _drop(self, reset: bool) -> None:
                """End the connection now: a TCP reset, or a plain close after a short body."""
                self.close_connection = True
                if reset:  # linger 0: closing sends RST instead of FIN
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    self.connection.shutdown(socket.SHUT_RDWR)
                for f in (self.rfile, self.wfile):
                    try:
                        f.close()
                    except OSError:
                        pass
                self.connection.close()  # the file objects above held the socket open
                self.wfile = io.BytesIO()  # the server flushes it after the handler returns

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # clients see the faults, not our logs
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _take(self, method: str, path: str) -> Rule | None:
        with self._lock:
            self.requests += 1
            for r in self.rules:
                if r.times > 0 and r.method == method and r.path_contains in path:
                    r.times -= 1
                    self.injected.append((r.kind, method, path))
                    return r
        return None

    def add(self, *rules: Rule) -> None:
        with self._lock:
            self.rules.extend(rules)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def session_env(port: int) -> dict[str, str]:
    """What the test session exports so that every process finds the test server."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }


def export_session_env(port: int) -> None:
    for k, v in session_env(port).items():
        os.environ[k] = v
