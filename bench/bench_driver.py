"""The driver stays small (issue 16): its peak memory while it handles a listing of 100,000 WARC files, resumes
a snapshot with half of them done, and keeps a stage of many units in flight.

Phases, each measured in the driver process (peak RSS from /proc/self/status VmHWM, reset between phases
with /proc/self/clear_refs where the kernel allows it, else reported as the running peak):
  listing   parse and validate a 100k-line warc.paths.gz (crawlproc.crawl.listing.build_listing)
  resume    plan the 100k files against a snapshot whose `_done/` holds 50k markers (one LIST)
  stage     run --units no-op units through pipelines.engine.runner.run_stage on a local Ray (the window of tasks,
            markers, progress); the units' outputs are one small marker each
No peer runs here: the figure is our own driver's memory per file, to set against the cluster's (NeMo Curator
and datatrove keep one driver-side object per file or task as well).

    python bench/bench_driver.py [--files 100000] [--units 5000]
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import OUT, write_json  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def noop(i: int) -> dict:
    return {"done": 1, "i": i}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--files", type=int, default=100_000)
    p.add_argument("--units", type=int, default=5000)
    args = p.parse_args(argv)

    from crawlproc.store.fingerprint import digest
    from crawlproc.store.inputs import Candidate, plan_inputs
    from crawlproc.store.layout import Layout
    from crawlproc.crawl.listing import build_listing, parse_listing_bytes

    report = {"files": args.files, "units": args.units, "start_rss_mb": round(rss_mb(), 1)}
    snap = "CC-MAIN-2024-10"
    lines = [f"crawl-data/{snap}/segments/17070{i // 1000:05d}.{i % 100:02d}/warc/"
             f"CC-MAIN-20240217{i:06d}-20240217{i:06d}-{i:05d}.warc.gz" for i in range(args.files)]
    data = gzip.compress("\n".join(lines).encode())
    del lines

    exact = reset_peak()
    base = rss_mb()
    t0 = time.perf_counter()
    listing = build_listing(snap, parse_listing_bytes(data), "https://data.commoncrawl.org")
    report["listing"] = {"seconds": round(time.perf_counter() - t0, 2), "files": len(listing.files),
                         "peak_over_start_mb": round(peak_mb() - base, 1)}

    with tempfile.TemporaryDirectory(prefix="bench-driver-") as tmp:
        layout = Layout(tmp)
        s = layout.snapshot(snap)
        recipe_fp = "0123abcd"
        half = listing.files[: len(listing.files) // 2]
        done_dir = Path(s.markers.done_dir)
        done_dir.mkdir(parents=True)
        for f in half:  # markers as the runner writes them (empty bodies: only the names are read)
            (done_dir / f"{f.stem}.{recipe_fp}{digest({'listed': f.path})[:8]}.json").write_text("{}")
        candidates = [Candidate(source=f.path, name=f.stem, input_fp=digest({"listed": f.path})[:8])
                      for f in listing.files]
        reset_peak()
        base = rss_mb()
        t0 = time.perf_counter()
        plan = plan_inputs(s, candidates, recipe_fp, {}, force=False)
        report["resume"] = {"seconds": round(time.perf_counter() - t0, 2), "done": len(plan.done),
                            "todo": len(plan.todo), "peak_over_start_mb": round(peak_mb() - base, 1)}
        del candidates, plan

        import ray
        import ray.cloudpickle

        from pipelines.engine.runner import Unit, run_stage

        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 object_store_memory=256 << 20)
        units = [Unit(key=f"u{i:06d}", args=(i,), fingerprint="f" * 16) for i in range(args.units)]
        reset_peak()
        base = rss_mb()
        t0 = time.perf_counter()
        result = run_stage("noop", units, noop, markers=layout.snapshot("STAGE").markers, progress=False,
                           num_cpus=0.5)
        seconds = time.perf_counter() - t0
        report["stage"] = {"seconds": round(seconds, 1), "units_per_s": round(result.done / seconds, 1),
                           "done": result.done, "peak_over_start_mb": round(peak_mb() - base, 1)}
        ray.shutdown()
    report["peak_reset_per_phase"] = exact
    report["final_rss_mb"] = round(rss_mb(), 1)
    write_json(OUT / "driver.json", report)
    for phase in ("listing", "resume", "stage"):
        r = report[phase]
        n = r.get("files") or r.get("done", 0) + r.get("todo", 0) or r.get("done")
        print(f"{phase:8s} {r['seconds']:7.2f} s   driver peak +{r['peak_over_start_mb']:7.1f} MB   "
              f"({1024 * r['peak_over_start_mb'] / max(n, 1):.2f} KB per file or unit)")
    print(f"driver RSS at start {report['start_rss_mb']} MB, at the end {report['final_rss_mb']} MB"
          + ("" if exact else " (peaks are running peaks: this kernel cannot reset them)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
