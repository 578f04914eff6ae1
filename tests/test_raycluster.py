"""The test clusters' own helper (tests/raycluster.py): a stopped node is gone, sockets included, when
`Head.stop` returns; tests that assert a killed head's port is closed rely on it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from raycluster import Head, accepts, free_port

# A stand-in node: a group leader and a child that listens on `port`, with a large block of touched memory. A
# killed process frees its memory before it closes its files, so that child's port keeps accepting for a while
# after the kill (what a CI run met with a real head's GCS server).
_CHILD = """
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
block = bytearray(1536 << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
open(sys.argv[2], "w").close()
time.sleep(600)
"""
_LEADER = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]])
time.sleep(600)
"""


def test_stop_returns_once_the_nodes_processes_have_closed_their_sockets(tmp_path):
    port, ready, marker = free_port(), tmp_path / "ready", str(tmp_path / "node-tmp")
    node = Head.__new__(Head)  # the stop half of a Head, around the stand-in
    node.env, node.log = {"RAY_TMPDIR": marker}, (tmp_path / "node.log").open("w")
    node.proc = subprocess.Popen([sys.executable, "-c", _LEADER, _CHILD, str(port), str(ready), marker],
                                 start_new_session=True, stdout=node.log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not (ready.exists() and accepts(port)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists() and accepts(port), (tmp_path / "node.log").read_text()
    node.stop(signal.SIGKILL)
    assert not accepts(port)
