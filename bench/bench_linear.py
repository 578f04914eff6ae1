"""Per-document CPU time against text length on adversarial text (one long whitespace-free chunk, repeated
units): every step after extraction (language ID and the quality filters) at 1x and 4x the length, with the
word caches cleared before each measurement. Linear is ~4x; a quadratic step shows ~16x. A bench, not a test:
a clock's ratio is no unit test (tests/test_splitters.py checks the bound that keeps the split linear).

    python bench/bench_linear.py [--size 1000000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crawlproc.doc import Doc  # noqa: E402
from crawlproc.extract import registry  # noqa: E402
from crawlproc.extract.steps import LanguageStep  # noqa: E402
from crawlproc.quality import splitters  # noqa: E402
from crawlproc.recipe import Recipe  # noqa: E402

UNITS = ["the-river-and-", "a-a.b/", "www.a/", "a-", "1,", "don't", "word word word.\n", "[1]", "a..b"]


def cpu_all_steps(steps, text: str) -> float:
    splitters.clear_caches()
    doc = Doc(text=text)
    t0 = time.process_time()
    for step in steps:
        step.run(doc)
    return time.process_time() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1_000_000, help="characters of the 1x text")
    args = ap.parse_args()
    recipe = Recipe()
    steps = [LanguageStep(recipe)] + [f(recipe.filters[f.name]) for f in registry.FILTERS]
    cpu_all_steps(steps, "warm up the models and splitters. " * 100)
    print(f"{'unit':<20} {'1x (s)':>8} {'4x (s)':>8} {'ratio':>6}  (linear ~4, quadratic ~16)")
    worst = 0.0
    for unit in UNITS:
        small = (unit * (args.size // len(unit) + 1))[: args.size]
        big = small * 4
        a, b = cpu_all_steps(steps, small), cpu_all_steps(steps, big)
        ratio = b / max(a, 1e-4)
        worst = max(worst, ratio)
        print(f"{unit!r:<20} {a:8.3f} {b:8.3f} {ratio:6.1f}")
    print(f"WORST RATIO {worst:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
