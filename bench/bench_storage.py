"""Object storage vs local disk, and the file-system layer (issue 14). A real S3-compatible server (moto's
standalone server) is started on 127.0.0.1 for the run.

1. The extract stage writing its outputs to a bucket vs to a local folder: `crawlproc.extract.file.process_warc` on
   the same generated WARC, once with `out` a local folder, once with `out` = s3://bench/...: the same reading,
   extraction, filters and Parquet encoding on both sides; only where the bytes go differs (a rename into
   place on disk vs one PUT per file). Each side runs in a fresh interpreter, rounds interleaved; the figure
   is documents per wall second (the upload is network time, not CPU), ratio S3 / local (target >= 0.9).
2. The layer: reading the same objects back through pyarrow.fs (what crawlproc.store.storage uses) vs through
   s3fs (fsspec), whole-object reads of every output file and of a 64 MiB object, MB per wall second, ratio
   pyarrow / s3fs (> 1 = pyarrow faster). Both go to the same server through the same loopback.
The shard loader local vs S3 (tokens/s) is bench/bench_loader_storage.py.

    python bench/bench_storage.py [--records 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from common import OUT, run_isolated, write_json  # noqa: E402


def _child(warc: str, out: str, result: str) -> None:
    from crawlproc.extract.file import process_warc
    from crawlproc.recipe import Recipe

    t0 = time.perf_counter()
    stats = process_warc(warc, out, Recipe(), dump="CC-MAIN-BENCH")
    wall = time.perf_counter() - t0
    Path(result).write_text(json.dumps({"wall_s": wall, "docs": stats["kept"] + stats["removed"]}))


def _read_all(uris: list[str], reader) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = sum(len(reader(u)) for u in uris)
    return time.perf_counter() - t0, n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=1000, help="captures in the generated WARC")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--child", nargs=3, metavar=("WARC", "OUT", "RESULT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0

    from s3 import MotoServer, export_session_env, free_port

    port = free_port()
    export_session_env(port)  # credentials and AWS_ENDPOINT_URL for this process and its children
    server = MotoServer(port).start()
    try:
        bucket = server.bucket("bench")
        warc = OUT / f"storage-{args.records}.warc.gz"
        if not warc.is_file():
            subprocess.run([sys.executable, str(ROOT / "bench" / "make_warc.py"), "--records", str(args.records),
                            "--seed", "0", "--out", str(warc)], check=True)
        local, remote = [], []
        for r in range(args.rounds):
            for side, out, into in (("local", str(OUT / "storage-local" / f"r{r}"), local),
                                    ("s3", f"{bucket}/extract/r{r}", remote)):
                res = OUT / f"storage-{side}.json"
                into.append(run_isolated([__file__, "--child", str(warc), out, str(res)],
                                         OUT / f"storage-{side}.log"))
        docs = local[0]["docs"]
        local_rate = statistics.median(docs / x["wall_s"] for x in local)
        s3_rate = statistics.median(docs / x["wall_s"] for x in remote)

        import s3fs

        from crawlproc.store.layout import Layout
        from crawlproc.store.storage import Storage, join

        st = Storage()
        big = join(bucket, "big.bin")
        st.write_bytes(big, os.urandom(64 << 20))
        uris = Layout(f"{bucket}/extract/r0").snapshot("CC-MAIN-BENCH").files("docs") + \
            Layout(f"{bucket}/extract/r0").snapshot("CC-MAIN-BENCH").files("removed") + [big]
        fs = s3fs.S3FileSystem(endpoint_url=server.endpoint, key="testing", secret="testing")
        pa_rates, fs_rates = [], []
        _read_all(uris[:1], st.read_bytes)  # connections and clients set up before timing, on both sides
        _read_all(uris[:1], lambda u: fs.cat_file(u.removeprefix("s3://")))
        for _ in range(args.rounds):
            wall, n = _read_all(uris, st.read_bytes)
            pa_rates.append(n / wall / 1e6)
            wall, n = _read_all(uris, lambda u: fs.cat_file(u.removeprefix("s3://")))
            fs_rates.append(n / wall / 1e6)
        summary = {
            "documents": docs, "rounds": args.rounds, "load_avg": os.getloadavg()[0],
            "extract_local_docs_per_s": round(local_rate, 2), "extract_s3_docs_per_s": round(s3_rate, 2),
            "extract_s3_over_local": round(s3_rate / local_rate, 3),
            "read_pyarrow_MB_s": round(statistics.median(pa_rates), 1),
            "read_s3fs_MB_s": round(statistics.median(fs_rates), 1),
            "read_pyarrow_over_s3fs": round(statistics.median(pa_rates) / statistics.median(fs_rates), 3),
        }
    finally:
        server.stop()
    write_json(OUT / "storage.json", summary)
    print(f"extract stage, {docs} documents, median of {args.rounds} (wall; load {summary['load_avg']:.1f}):")
    print(f"  local disk  {summary['extract_local_docs_per_s']:8.2f} docs/s")
    print(f"  S3 (moto)   {summary['extract_s3_docs_per_s']:8.2f} docs/s   ratio S3 / local = "
          f"{summary['extract_s3_over_local']}")
    print(f"reading {len(uris)} objects back (wall): pyarrow.fs {summary['read_pyarrow_MB_s']} MB/s, s3fs "
          f"{summary['read_s3fs_MB_s']} MB/s   ratio pyarrow / s3fs = {summary['read_pyarrow_over_s3fs']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
