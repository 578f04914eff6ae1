"""Drive Debian's headless Chromium from tests, with no extra dependency.

Chromium speaks the DevTools protocol over a pipe when started with `--remote-debugging-pipe`: it reads
NUL-terminated JSON commands on fd 3 and writes NUL-terminated JSON replies and events on fd 4. That is all a
test needs to load a page, collect its console errors, uncaught exceptions and network requests, evaluate an
expression in it, and save a screenshot, without a websocket client.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium() -> tuple[str | None, str]:
    """Return (path, "") for a Chromium binary, installing Debian's package when missing; (None, reason) if
    that is impossible (not root, no apt-get, no network to the mirror)."""
    path = find_chromium()
    if path:
        return path, ""
    if not shutil.which("apt-get"):
        return None, "chromium is not installed and apt-get is not available to install it"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return None, "chromium is not installed and installing it with apt-get needs root"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log = []
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"`{' '.join(cmd)}` failed: {e}"
        log.append(proc.stdout[-500:] + proc.stderr[-500:])
        if proc.returncode != 0:
            return None, f"`{' '.join(cmd)}` exited {proc.returncode}: {log[-1].strip()[-300:]}"
    path = find_chromium()
    return (path, "") if path else (None, "apt-get installed chromium but no chromium binary is on PATH")


class BrowserError(RuntimeError):
    pass


@dataclass
class PageResult:
    """What loading one page produced."""

    console_errors: list[str] = field(default_factory=list)  # console.error/assert and Log entries at error level
    exceptions: list[str] = field(default_factory=list)  # uncaught JavaScript exceptions
    requests: list[str] = field(default_factory=list)  # every URL the page asked for, the page itself included
    value: object = None  # the result of `evaluate`, if one was given
    screenshot: Path | None = None

    @property
    def errors(self) -> list[str]:
        return self.console_errors + self.exceptions


class Chromium:
    """One headless Chromium process driven over the DevTools pipe. Use as a context manager."""

    def __init__(self, binary: str | None = None, timeout: float = 60.0):
        self.binary = binary or find_chromium()
        if not self.binary:
            raise BrowserError("no chromium binary found")
        self.timeout = timeout
        self._next_id = 0
        self._buf = b""
        self._events: list[dict] = []
        self._proc: subprocess.Popen | None = None
        self._profile: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> Self:
        self._profile = tempfile.TemporaryDirectory(prefix="crawlproc-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire_fds():  # runs in the child before exec: the protocol's fixed fds 3 (in) and 4 (out)
            # Move both ends out of the way first: a pipe end may itself be fd 3 or 4, and dup2 onto the
            # same number would keep its close-on-exec flag.
            r, w = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [self.binary, *FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            preexec_fn=wire_fds,  # noqa: PLW1509 -- fds 3 and 4 are fixed by the protocol; tests are single-threaded
            close_fds=False,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._proc is None:
            return
        try:
            if self._proc.poll() is None:
                self._send("Browser.close", timeout=10)
        except (BrowserError, OSError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        self._stderr.close()
        self._proc = None
        if self._profile is not None:
            self._profile.cleanup()

    # --- the protocol -------------------------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("timed out waiting for chromium")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise BrowserError(f"chromium closed the pipe: {self._stderr_tail()}")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-800:].decode(errors="replace")

    def _send(self, method: str, params: dict | None = None, session: str | None = None,
              timeout: float | None = None) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def _wait_event(self, method: str, session: str, timeout: float | None = None) -> dict:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for ev in self._events:
                if ev["method"] == method and ev.get("sessionId") == session:
                    return ev
            ev = self._read_message(deadline)
            if "method" in ev:
                self._events.append(ev)

    # --- what tests call ----------------------------------------------------------------------------------
    def load(self, url: str, *, evaluate: str | None = None, screenshot: str | Path | None = None,
             width: int = 1200, settle_s: float = 0.3) -> PageResult:
        """Open `url` in a new tab, wait for its load event, and report what happened.

        `evaluate` is a JavaScript expression whose (JSON-able) value is returned in `PageResult.value`;
        `screenshot` is a PNG path for a full-page screenshot."""
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self._send(f"{domain}.enable", session=session)
        self._send("Emulation.setDeviceMetricsOverride",
                   {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
        self._events.clear()
        nav = self._send("Page.navigate", {"url": url}, session=session)
        if nav.get("errorText"):
            raise BrowserError(f"navigation to {url} failed: {nav['errorText']}")
        self._wait_event("Page.loadEventFired", session)
        # Late console messages (timers, deferred scripts) arrive shortly after load: drain them too.
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline:
            try:
                ev = self._read_message(deadline)
            except BrowserError:
                break
            if "method" in ev:
                self._events.append(ev)
        result = PageResult()
        if evaluate is not None:
            out = self._send("Runtime.evaluate", {"expression": evaluate, "returnByValue": True,
                                                  "awaitPromise": True}, session=session)
            if "exceptionDetails" in out:
                raise BrowserError(f"evaluate threw: {out['exceptionDetails']}")
            result.value = out["result"].get("value")
        if screenshot is not None:
            size = self._send("Page.getLayoutMetrics", session=session)["cssContentSize"]
            height = max(1, min(int(size["height"]) + 1, 16000))
            self._send("Emulation.setDeviceMetricsOverride",
                       {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                       session=session)
            shot = self._send("Page.captureScreenshot", {"format": "png"}, session=session)
            result.screenshot = Path(screenshot)
            result.screenshot.write_bytes(base64.b64decode(shot["data"]))
        for ev in self._events:
            if ev.get("sessionId") != session:
                continue
            p = ev.get("params", {})
            if ev["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                result.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                                      for a in p.get("args", [])))
            elif ev["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                entry = p["entry"]
                result.console_errors.append(f"{entry.get('text')} ({entry.get('url', '')})")
            elif ev["method"] == "Runtime.exceptionThrown":
                details = p.get("exceptionDetails", {})
                desc = details.get("exception", {}).get("description") or details.get("text")
                result.exceptions.append(str(desc))
            elif ev["method"] == "Network.requestWillBeSent":
                result.requests.append(p["request"]["url"])
        self._send("Target.closeTarget", {"targetId": target})
        return result
