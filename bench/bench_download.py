"""The WARC downloader (crawlproc.crawl.download.download_file) vs curl, on a mini Common Crawl served on 127.0.0.1.

Two scenarios on the same files in the same run:
- clean: every file once, --rounds times interleaved, the best of each; CPU (this process, the server's
  threads included, and curl's) and wall time of ours (streaming + gzip
  verification of every member) vs `curl -sf` (no verification) and vs a plain `requests` stream (no retries,
  no verification). It first splits ours: the transfer (ours with verify=False), the verification, and, of
  that, what inflating every member costs by itself (zlib over the same bytes, from memory: any verifier pays
  it); our own code's share is the rest. Prints the ratios.
- faults: every file gets one injected fault (503, 429 + Retry-After, connection reset mid-body, truncated body,
  one flipped byte); counts the files that end byte-identical to the original: ours vs
  `curl --retry 5 --retry-all-errors -C -` (curl's own retry and resume).

    python bench/bench_download.py [--files 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import hashlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crawlproc.crawl.download import DownloadError, download_file  # noqa: E402
from crawlproc.recipe import DownloadConfig  # noqa: E402
from pipelines.demo.minicc import Fault, MiniCCServer, build_minicc  # noqa: E402

CFG = DownloadConfig(retries=5, backoff_s=0.05, max_backoff_s=1.0, timeout_s=30)


def _ours(url: str, dest: Path) -> bool:
    try:
        download_file(url, dest, CFG)
        return True
    except DownloadError:
        return False


def _ours_unverified(url: str, dest: Path) -> bool:
    try:
        download_file(url, dest, CFG, verify=False)
        return True
    except DownloadError:
        return False


def _curl(url: str, dest: Path, retry: bool = False) -> bool:
    cmd = ["curl", "-sf", "-o", str(dest), url]
    if retry:
        cmd[1:1] = ["--retry", "5", "--retry-all-errors", "--retry-delay", "0", "-C", "-"]
    return subprocess.run(cmd, check=False, capture_output=True).returncode == 0


def _requests(url: str, dest: Path) -> bool:
    with requests.get(url, stream=True, timeout=30) as r, open(dest, "wb") as f:
        if r.status_code != 200:
            return False
        shutil.copyfileobj(r.raw, f)
    return True


def _cpu() -> float:
    """CPU seconds of this process (the server's threads included) and of its finished children (curl)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _round(fn, urls: list[str], work: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one download of every URL."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t, c = time.perf_counter(), _cpu()
    for i, u in enumerate(urls):
        fn(u, work / f"{i}.warc.gz")
    return time.perf_counter() - t, _cpu() - c


def _inflate_all(blobs: list[bytes]) -> None:
    """Inflate every gzip member of the files (what verifying them costs by itself)."""
    for data in blobs:
        while data:
            d = zlib.decompressobj(wbits=31)
            while not d.eof:
                d.decompress(data, 1 << 20)
                data = d.unconsumed_tail or d.unused_data if not d.eof else d.unused_data
            data = d.unused_data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=6, help="WARC files in the mini crawl (default 6, ~7 MB)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per downloader; the best is kept")
    args = ap.parse_args()
    if not shutil.which("curl"):
        print("curl is not installed: the peer is missing", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench-download-"))
    try:
        cc = build_minicc(tmp / "cc", files=args.files)
        originals = {p: hashlib.sha256((cc.root / p).read_bytes()).hexdigest() for p in cc.paths}
        mb = sum((cc.root / p).stat().st_size for p in cc.paths) / 1e6
        with MiniCCServer(cc.root) as srv:
            urls = [f"{srv.base_url}/{p}" for p in cc.paths]
            runs: dict[str, list] = {}
            for _ in range(args.rounds):  # interleaved: the neighbours' load hits every side alike
                for name, fn in (("ours", _ours), ("ours-noverify", _ours_unverified), ("curl", _curl),
                                 ("requests", _requests)):
                    runs.setdefault(name, []).append(_round(fn, urls, tmp / name))
            blobs = [(cc.root / p).read_bytes() for p in cc.paths]
            for _ in range(args.rounds):
                c = _cpu()
                _inflate_all(blobs)
                runs.setdefault("inflate", []).append((_cpu() - c, _cpu() - c))
            best = {name: min(w for w, _ in r) for name, r in runs.items()}
            cpu = {name: min(c for _, c in r) for name, r in runs.items()}
            print(f"clean: {len(urls)} files, {mb:.1f} MB, best of {args.rounds} rounds; load average "
                  f"{os.getloadavg()[0]:.1f}")
            verify_cpu = max(0.0, cpu["ours"] - cpu["ours-noverify"])
            print(f"  where ours goes (CPU of this process): the transfer {cpu['ours-noverify'] / cpu['ours']:.0%} "
                  f"(ours with verify=False; a plain requests stream: {cpu['requests'] / cpu['ours']:.0%}), the gzip "
                  f"verification {verify_cpu / cpu['ours']:.0%}; inflating every member with zlib alone costs "
                  f"{cpu['inflate'] / cpu['ours']:.0%} of ours: our own code beyond the transfer and the inflate is "
                  f"{max(0.0, cpu['ours'] - cpu['ours-noverify'] - cpu['inflate']) / cpu['ours']:.0%}")
            for name in ("ours", "ours-noverify", "curl", "requests"):
                print(f"  {name:13s} CPU {cpu[name]:6.3f} s   wall {best[name]:6.3f} s  {mb / best[name]:7.1f} MB/s")
            print(f"  inflate alone CPU {cpu['inflate']:6.3f} s (zlib over the same bytes, every member)")
            print(f"  RATIO ours/curl per CPU-s (>1 = we are faster): {cpu['curl'] / cpu['ours']:.2f}; wall "
                  f"{best['curl'] / best['ours']:.2f}")
            print(f"  RATIO ours/requests per CPU-s (ours also verifies every gzip member): "
                  f"{cpu['requests'] / cpu['ours']:.2f}; without verification {cpu['requests'] / cpu['ours-noverify']:.2f}"
                  f" (wall {best['requests'] / best['ours']:.2f} and {best['requests'] / best['ours-noverify']:.2f})")

            faults = [Fault("status", status=503), Fault("status", status=429, retry_after="0"),
                      Fault("reset", after_bytes=100_000), Fault("truncate", after_bytes=150_000),
                      Fault("corrupt", after_bytes=50_000)]
            correct = {}
            for name, fn in (("ours", _ours), ("curl --retry -C -", lambda u, d: _curl(u, d, retry=True))):
                work = tmp / f"faults-{len(correct)}"
                work.mkdir()
                for i, p in enumerate(cc.paths):
                    srv.add_fault(p, faults[i % len(faults)])
                ok = 0
                for i, p in enumerate(cc.paths):
                    dest = work / f"{i}.warc.gz"
                    fn(f"{srv.base_url}/{p}", dest)
                    ok += dest.is_file() and hashlib.sha256(dest.read_bytes()).hexdigest() == originals[p]
                correct[name] = ok
                with srv._lock:
                    srv.faults.clear()
            kinds = ", ".join(f.kind if f.kind != "status" else str(f.status) for f in faults)
            print(f"faults ({kinds}; one per file): files byte-identical at the end")
            for name, ok in correct.items():
                print(f"  {name:18s} {ok}/{len(cc.paths)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
