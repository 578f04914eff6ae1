"""Gzip bombs in a WARC: time and peak memory of our reader vs warcio's ArchiveIterator, per bomb size.

Each input is a gzip-per-record WARC: 4 good HTML responses, one gzip member of ~N/1000 bytes that inflates to a
response record and N bytes of NULs, 4 good responses. Two shapes: "honest" (the record's Content-Length covers
the NULs: a huge payload) and "lying" (it says 1 KB; the NULs follow the record inside its member, junk where the
next record should start). The files are written streamed (never held in memory) to bench/out/bombs/ and reused.

Each side runs in a fresh interpreter per file; CPU seconds and peak RSS (ru_maxrss) come from wait4:
- ours: crawlproc.warc.reader.iter_html_records(path, max_payload_bytes=5,000,000). It reads the bomb's payload up to
  the cap and counts it `too_large`; then it skips the rest by inflating it in 256 KB pieces, up to
  skip_limit(5 MB) = 320 MiB. Past that it abandons the bomb's gzip member and resumes at the next member that
  starts a WARC record, found in the compressed bytes (never inflated) and checked by inflating its first
  bytes: the records after the bomb are kept, and time is proportional to the cap plus the compressed size,
  not to the bomb. The lying shape: the junk after the record is counted `malformed:warc_headers` and skipped
  to the next member the same way.
- peer: warcio's own ArchiveIterator over the same file, reading each response's content_stream() up to the
  same 5 MB cap (what a careful warcio user writes). Moving to the next record, warcio reads the bomb to its
  end (16 KB compressed blocks, each inflated without a limit), so it keeps the records after the bomb at the
  cost of inflating all of it; junk between records it reads as one line, however long. It is stopped after
  --peer-timeout seconds and reported as "> N s". Each side runs with a 4 GiB address-space limit.
The ratio is peer CPU / our CPU (> 1 = we are faster), per CPU-second.

    python bench/bench_gzip_bomb.py [--sizes 64M,256M,1G,4G] [--shapes honest,lying] [--peer-timeout 120]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import OUT, ROOT, write_json  # noqa: E402

MAX_PAYLOAD = 5_000_000
MiB = 1 << 20
MEMORY_LIMIT = 4 << 30  # address space of each side's process


def _record(url: str, body: bytes) -> bytes:
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + body
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-"
            f"{zlib.crc32(url.encode()):012d}>\r\nWARC-Date: 2024-02-17T00:00:00Z\r\nWARC-Target-URI: {url}\r\n"
            f"Content-Type: application/http; msgtype=response\r\nContent-Length: {len(http)}\r\n\r\n")
    return head.encode() + http + b"\r\n\r\n"


def make_bomb_warc(path: Path, inflated: int, honest: bool) -> Path:
    """4 good records, a bomb of `inflated` NULs, 4 good records; written streamed, 1 MiB at a time.
    `honest`: the bomb record's Content-Length covers the NULs; else it says 1 KB and the NULs follow the
    record inside its gzip member (junk between records)."""
    if path.is_file():
        return path
    tmp = path.with_name(path.name + ".tmp")
    good = [_record(f"http://good.example/{i}", f"<html><body><p>page {i}</p></body></html>".encode())
            for i in range(8)]
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
    declared = len(http) + (inflated if honest else 1024)
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:bomb-{inflated}>\r\n"
            f"WARC-Target-URI: http://bomb.example/\r\nContent-Type: application/http; msgtype=response\r\n"
            f"Content-Length: {declared}\r\n\r\n").encode() + http
    with open(tmp, "wb") as f:
        for rec in good[:4]:
            f.write(gzip.compress(rec, mtime=0))
        z = zlib.compressobj(9, zlib.DEFLATED, 31)
        f.write(z.compress(head))
        block = b"\x00" * MiB
        left = inflated
        while left > 0:
            f.write(z.compress(block[: min(left, MiB)]))
            left -= MiB
        f.write(z.compress(b"\r\n\r\n") + z.flush())
        for rec in good[4:]:
            f.write(gzip.compress(rec, mtime=0))
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------- the sides


def run_ours(path: str) -> dict:
    from crawlproc.warc.reader import ReadCounts, WarcReadError, iter_html_records

    counts, urls, error = ReadCounts(), [], None
    try:
        for rec in iter_html_records(path, counts, max_payload_bytes=MAX_PAYLOAD):
            urls.append(rec.url)
    except WarcReadError as e:
        error = str(e)
    return {"kept": len(urls), "too_large": counts.skipped["too_large"], "error": error,
            "inflated_mib": round(counts.decompressed_bytes / MiB, 1), "resynced": counts.resynced}


def run_peer(path: str) -> dict:
    from warcio.archiveiterator import ArchiveIterator

    kept = too_large = 0
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f):
            if rec.rec_type != "response":
                continue
            payload = rec.content_stream().read(MAX_PAYLOAD + 1)
            if len(payload) > MAX_PAYLOAD:
                too_large += 1
            else:
                kept += 1
    return {"kept": kept, "too_large": too_large, "error": None}


def child(side: str, path: str) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))  # a side that blows up fails, alone
    result = (run_ours if side == "ours" else run_peer)(path)
    print(json.dumps(result), flush=True)


def measure(side: str, path: Path, timeout: float | None) -> dict:
    """Run one side in a fresh interpreter; CPU, wall and peak RSS of that process alone (wait4)."""
    t0 = time.perf_counter()
    log = open(path.with_name(f"{path.name}.{side}.log"), "wb")  # warcio prints the junk it meets: keep it here
    proc = subprocess.Popen([sys.executable, __file__, "--child", side, str(path)], stdout=subprocess.PIPE,
                            stderr=log, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if timeout is not None and time.perf_counter() - t0 > timeout:
            os.kill(proc.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(proc.pid, 0)
            timed_out = True
            break
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read().decode()
    proc.stdout.close()
    log.close()
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() and not timed_out else {}
    result.update(wall_s=round(time.perf_counter() - t0, 2), cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
                  peak_rss_mib=round(usage.ru_maxrss / 1024, 1), timed_out=timed_out, exit=proc.returncode)
    return result


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": MiB, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def _outcome(r: dict) -> str:
    if r.get("timed_out"):
        return "stopped"
    if r.get("exit"):
        return f"crashed (exit {r['exit']})"
    tail = "; rest refused" if r.get("error") else ""
    inflated = f", {r['inflated_mib']:.0f} MiB inflated" if "inflated_mib" in r else ""
    return f"yielded {r.get('kept')}, too_large {r.get('too_large')}{inflated}{tail}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="64M,256M,1G,4G", help="inflated bomb sizes")
    ap.add_argument("--shapes", default="honest,lying", help="honest: Content-Length covers the bomb; lying: "
                    "it says 1 KB and the bomb follows the record in its gzip member")
    ap.add_argument("--peer-timeout", type=float, default=120.0, help="stop warcio after this many seconds")
    ap.add_argument("--child", nargs=2, metavar=("SIDE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return 0
    bombs = OUT / "bombs"
    bombs.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"{'bomb':>13} {'file':>8} | {'ours CPU s':>10} {'ours RSS':>9} {'ours outcome':<52} | {'warcio CPU s':>12} "
          f"{'warcio RSS':>10} {'warcio outcome':<26} | ratio")
    for shape, text in [(shape, t.strip()) for shape in args.shapes.split(",") for t in args.sizes.split(",")]:
        size = _size(text)
        path = make_bomb_warc(bombs / f"bomb-{shape}-{text}.warc.gz", size, shape == "honest")
        ours = measure("ours", path, None)
        peer = measure("peer", path, args.peer_timeout)
        peer_cpu = f"> {args.peer_timeout:.0f} (wall)" if peer["timed_out"] else f"{peer['cpu_s']:.2f}"
        ratio = (f"> {args.peer_timeout / max(ours['cpu_s'], 0.01):.1f}" if peer["timed_out"]
                 else f"{peer['cpu_s'] / max(ours['cpu_s'], 0.01):.2f}")
        print(f"{shape:>7} {text:>5} {path.stat().st_size / MiB:>6.1f}MB | {ours['cpu_s']:>10.2f} {ours['peak_rss_mib']:>7.0f}MB "
              f"{_outcome(ours):<52} | {peer_cpu:>12} {peer['peak_rss_mib']:>8.0f}MB {_outcome(peer):<26} | {ratio}",
              flush=True)
        rows.append({"shape": shape, "bomb": text, "bomb_bytes": size, "file_bytes": path.stat().st_size, "ours": ours,
                     "warcio": peer, "ratio_cpu": ratio})
    print("yielded = HTML responses handed out (of 8 good ones, + the lying bomb's own 1 KB record); ratio = "
          "warcio CPU / our CPU (> 1: ours is faster); RSS = peak resident memory of the process")
    write_json(OUT / "gzip_bomb.json", {"max_payload_bytes": MAX_PAYLOAD, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
