"""MinHash signatures per second per core: ours (crawlproc.minhash) vs datatrove 0.10.1's
MinhashDedupSignature on the same documents in one run.

    python bench/bench_minhash.py                 # 1,500 documents from the real article texts
    python bench/bench_minhash.py --docs 10000    # bigger

Documents: the gold article texts of tests/data/dedup/articles.jsonl.gz, each used as is or with a seeded
number of word edits (so that the batch is not 120 repeated strings). Both sides compute the same thing
with the FineWeb parameters: normalized text -> word 5-grams -> 64-bit shingle hashes -> 112 permutations
(14 bands x 8 rows) -> signature. datatrove: `get_shingles` + `get_signature` per document (its step's
inner loop, without its file writing and sorting); ours: `MinHasher.band_keys_for_texts` over batches (the
signature plus the band keys, which datatrove leaves to its next step). One process each, CPU seconds, so
the ratio is per core. datatrove 0.10.1 calls `xxhash.xxh64_intdigest(str)`, which xxhash >= 3.5 refuses;
the bench gives its hash function the UTF-8 bytes instead (the same hash, no other change).
Target (issue 4): >= 3x datatrove. Summary: bench/out/minhash.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import OUT, measured  # noqa: E402

from crawlproc.minhash import MinHasher  # noqa: E402


def load_docs(n: int, seed: int) -> list[str]:
    with gzip.open(ROOT / "tests" / "data" / "dedup" / "articles.jsonl.gz", "rt", encoding="utf-8") as f:
        base = [json.loads(line)["text"] for line in f]
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        words = base[i % len(base)].split(" ")
        for _ in range(rng.randint(0, 20)):
            words[rng.randrange(len(words))] = rng.choice(["alpha", "beta", "gamma"])
        docs.append(" ".join(words))
    return docs


def run_ours(docs: list[str], batch: int) -> dict:
    hasher = MinHasher()
    hasher.band_keys_for_texts(docs[:10])  # warm-up: power tables
    res: dict = {}
    with measured(res):
        for i in range(0, len(docs), batch):
            hasher.band_keys_for_texts(docs[i: i + batch])
    return res


def run_datatrove(docs: list[str]) -> dict:
    import xxhash
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    step = MinhashDedupSignature(output_folder=str(OUT / "dt-minhash"), config=MinhashConfig())
    step._hash_func = lambda s: xxhash.xxh64_intdigest(s.encode("utf-8"))
    step.get_signature(step.get_shingles(docs[0]))  # warm-up: tokenizer load
    res: dict = {}
    with measured(res):
        for text in docs:
            shingles = step.get_shingles(text)
            if shingles.size:
                step.get_signature(shingles)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=500, help="our signature batch (dedup.signature_batch)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    docs = load_docs(args.docs, args.seed)
    words = sum(len(d.split()) for d in docs)
    ours = run_ours(docs, args.batch)
    peer = run_datatrove(docs)
    ours_rate, peer_rate = len(docs) / ours["cpu_s"], len(docs) / peer["cpu_s"]
    summary = {
        "docs": len(docs), "mean_words": words / len(docs),
        "ours": {**ours, "docs_per_cpu_s": ours_rate}, "datatrove": {**peer, "docs_per_cpu_s": peer_rate},
        "ratio": ours_rate / peer_rate,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "minhash.json").write_text(json.dumps(summary, indent=1))
    print(f"documents: {len(docs)} ({words / len(docs):.0f} words on average), 14 bands x 8 rows, word 5-grams")
    print(f"ours (crawlproc.minhash):            {ours_rate:9.0f} signatures/s per core ({ours['cpu_s']:.2f} CPU s)")
    print(f"datatrove MinhashDedupSignature:     {peer_rate:9.0f} signatures/s per core ({peer['cpu_s']:.2f} CPU s)")
    print(f"ratio ours / datatrove: {ours_rate / peer_rate:.1f}x (target >= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
