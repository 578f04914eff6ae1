"""The WARC downloader (crawlproc.crawl.download.download_file) vs curl, on a mini Common Crawl served on 127.0.0.1.

Two scenarios on the same files in the same run:
- clean: every file once; wall time of ours (streaming + gzip verification of every member) vs `curl -sf`
  (no verification) and vs a plain `requests` stream (no retries, no verification). Prints the ratios.
- faults: every file gets one injected fault (503, 429 + Retry-After, connection reset mid-body, truncated body,
  one flipped byte); counts the files that end byte-identical to the original: ours vs
  `curl --retry 5 --retry-all-errors -C -` (curl's own retry and resume).

    python bench/bench_download.py [--files 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
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


def _round(fn, urls: list[str], work: Path) -> float:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t = time.perf_counter()
    for i, u in enumerate(urls):
        fn(u, work / f"{i}.warc.gz")
    return time.perf_counter() - t


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
            best = {}
            for name, fn in (("ours", _ours), ("ours-noverify", _ours_unverified), ("curl", _curl),
                             ("requests", _requests)):
                best[name] = min(_round(fn, urls, tmp / name) for _ in range(args.rounds))
            print(f"clean: {len(urls)} files, {mb:.1f} MB, best of {args.rounds} rounds")
            for name, s in best.items():
                print(f"  {name:13s} {s:6.3f} s  {mb / s:7.1f} MB/s")
            print(f"  ratio ours/curl (speed, >1 = we are faster): {best['curl'] / best['ours']:.2f}")
            print(f"  ratio ours/requests (speed; ours also verifies every gzip member): "
                  f"{best['requests'] / best['ours']:.2f}; without verification: "
                  f"{best['requests'] / best['ours-noverify']:.2f}")

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
