"""`make bench`: every benchmark at its default (laptop-sized) settings, one after the other.

Each bench runs crawlproc and its peer on the same input in the same run and prints the ratio; this script
only runs them and lists which failed. Bigger runs: call a bench directly with its flags (see bench/README.md).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHES = [
    ("extract stage vs datatrove FineWeb stage 1", ["bench_extract.py"]),
    ("quality filters vs datatrove", ["bench_filters.py"]),
    ("URL filter / language ID / extraction vs datatrove", ["bench_components.py"]),
    ("download vs curl and requests", ["bench_download.py"]),
    ("gzip bombs vs warcio", ["bench_gzip_bomb.py", "--sizes", "64M,256M,1G"]),
    ("MinHash signatures vs rensa, datasketch and datatrove", ["bench_minhash.py"]),
    ("whole dedup (100k documents; --docs 1000000 for the million)", ["bench_dedup_million.py"]),
    ("BPE training and encoding vs HF tokenizers and tiktoken", ["bench_tokenizer.py"]),
    ("trainer vs a plain PyTorch loop", ["bench_trainer.py"]),
    ("object storage vs local disk; pyarrow.fs vs s3fs", ["bench_storage.py"]),
    ("shard loader from S3 vs local disk", ["bench_loader_storage.py"]),
    ("mix: external shuffle vs an in-memory one", ["bench_mix.py"]),
    ("the driver's memory for a 100k-file listing", ["bench_driver.py"]),
    ("fastText classifier vs datatrove; the transformers scorer", ["bench_classify.py"]),
    ("decontamination vs datatrove's n-gram decontamination", ["bench_decontam.py"]),
    ("per-document CPU time against text length on adversarial text", ["bench_linear.py"]),
    ("benchmark scoring vs lm-eval-harness: agreement and speed", ["bench_eval.py"]),
    ("refilter vs extracting again", ["bench_refilter.py"]),
    ("trafilatura's exact-text levers, one by one", ["bench_levers.py"]),
    ("ablation of the recipe's filters and the architectures on the mini crawl (long: 18 trainings)",
     ["ablate_filters.py", "--archs"]),
]


def main() -> int:
    failed = []
    for title, argv in BENCHES:
        print(f"\n=== {title}: python bench/{' '.join(argv)}", flush=True)
        t = time.monotonic()
        rc = subprocess.call([sys.executable, str(HERE / argv[0]), *argv[1:]], cwd=HERE.parent)
        print(f"=== exit {rc} after {time.monotonic() - t:.0f}s", flush=True)
        if rc:
            failed.append(argv[0])
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
