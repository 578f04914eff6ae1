"""Which recipe settings change the trained models? `crawlproc ablate` on a mini Common Crawl built from the
real pages of tests/data (pipelines/demo/minicc.py: 6 WARC files, the 181 ScrapingHub article pages plus the
real WARC captures), with three recipes as arms (bench/ablate/filters.toml): FineWeb (every filter, dedup, decontamination),
extraction only, FineWeb without dedup. 3 seeds each, the tiny
preset at 614,400 tokens per unit, the six bundled benchmarks (every item) and bits per byte on
the first 10 documents of both reference sets. `--archs` then compares the trainer's architectures (gpt2, llama, qwen3) on the FineWeb
arm's tokens at equal tokens (bench/ablate/archs.toml).

    python bench/ablate_filters.py [--archs] [--out bench/out/ablate]

No peer runs here: this is a measurement of the data, not of speed. It resumes (the ablation's units are
exactly-once), so a second run only prints the tables.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def ablate(spec: Path, out: Path) -> dict:
    cmd = [sys.executable, "-m", "pipelines.cli", "ablate", "--out", str(out), "--spec", str(spec), "--quiet"]
    print("$ crawlproc ablate --out", out.relative_to(ROOT) if out.is_relative_to(ROOT) else out, "--spec",
          spec.relative_to(ROOT), flush=True)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"ablate failed with exit code {proc.returncode}")
    name = "filters" if spec.name == "filters.toml" else "archs"
    table = json.loads((out / "ablate" / name / "table.json").read_text())
    print(f"({time.monotonic() - started:.0f} s wall)")
    return table


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(HERE / "out" / "ablate"))
    p.add_argument("--archs", action="store_true", help="also the architecture ablation (bench/ablate/archs.toml)")
    args = p.parse_args()
    out = Path(args.out).resolve()
    crawl = out / "minicc"
    if not (crawl / "crawl-data").is_dir():
        from pipelines.demo.minicc import build_minicc

        build_minicc(crawl, snapshot="CC-MAIN-2024-10", files=6)
    if out != (HERE / "out" / "ablate").resolve():
        raise SystemExit("the specs in bench/ablate/ name bench/out/ablate: keep the default --out")
    from trainer.ablate import table_markdown

    filters = ablate(HERE / "ablate" / "filters.toml", out / "out")
    print(table_markdown(filters))
    for arm, t in filters["tokens"].items():
        print(f"{arm}: {t['train_tokens']:,} train tokens in {t['train_documents']} documents "
              f"({filters['tokens_per_unit'] / t['train_tokens']:.2f} epochs at {filters['tokens_per_unit']:,} tokens)")
    if args.archs:
        archs = ablate(HERE / "ablate" / "archs.toml", out / "out")
        print(table_markdown(archs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
