"""MinHash per CPU-second: ours (crawlproc.dedup.minhash) against rensa, datasketch and datatrove on the same
documents in one run -- first the hashing step alone on the same ready shingles, then the whole way from text
(reported apart) -- and how well each side's estimated Jaccard agrees with the exact one.

    python bench/bench_minhash.py                      # 1,800 documents from the real article texts
    python bench/bench_minhash.py --docs 10000
    python bench/bench_minhash.py --jsonl texts.jsonl  # any texts: one JSON object with "text" per line

1. The hashing step, given ready shingles (112 hashes = FineWeb's 14 bands x 8 rows). Every side gets the same
   shingles: our 64-bit hashes of each document's word 5-grams (crawlproc.dedup.minhash.batch_shingles), in
   the form its fastest input path takes.
     ours        MinHasher.signatures_from_shingles: the minimum over a document's shingles of 112 affine
                 permutations a*x+b mod 2**64 (64-bit values), loops compiled by numba (crawlproc.dedup.kernels).
     ours-1perm  the same with minhash.sketch = "one_permutation": one permutation per shingle into 112 bins,
                 empty bins densified (a recipe choice that changes dedup's output: reported apart, with its
                 agreement below).
     rensa       RMinHash.digest_matrix_from_flat_token_hashes(hashes, row_offsets, 112, seed): its fastest
                 path (one flat uint64 buffer and the row offsets; no Python object per token or document),
                 one thread (RAYON_NUM_THREADS=1). What it computes is not the classic MinHash: rensa's RMinHash
                 is a bucketed sketch (each token goes to one of the 112 coordinates in each of three rounds;
                 a coordinate left empty falls back to affine permutations), so it evaluates about three hashes
                 per token where classic MinHash evaluates 112; 32-bit values.
     datasketch  MinHash(num_perm=112, hashfunc=identity).update_batch(hashes): classic MinHash like ours
                 (permutations mod the Mersenne prime 2**61-1, 32-bit values), in numpy.
   Ratios: ours / peer, > 1 = ours faster.
2. From text (a separate figure, labelled so): normalization, shingles and the hashing step, and for ours the
   14 band keys on top (work the peers do not do).
     ours          MinHasher.band_keys_for_texts over batches of --batch texts.
     rensa+ours    our compiled normalization and shingle hashes, then rensa's flat path: the fastest way to
                   give rensa exactly our words.
     rensa         as its users feed it: our normalization, then the 5-gram strings built in Python (a text of
                   fewer words is one shingle), RMinHash.digest_matrix_from_token_sets.
     datasketch    datasketch.MinHash(num_perm=112) with update_batch over the same shingle strings (encoded).
     datatrove     datatrove 0.10.1's MinhashDedupSignature.get_shingles + get_signature, with its own
                   normalization and word tokenizer (spaCy for English): its step's inner loop without its
                   file writing. It hashes str with xxhash.xxh64_intdigest, which xxhash >= 3.5 refuses: the
                   bench gives its hash function the UTF-8 bytes instead (the same hash, no other change).
   The bench checks that every document has as many distinct shingles on the sides that build strings.
CPU seconds of this one process (the machine is shared: wall time mostly measures the neighbours); each side
runs --repeats times, interleaved, and its fastest run counts. The load average is printed.
Agreement: on near-duplicate pairs made from the texts (a share of words replaced, 0-60%), each side's
estimated Jaccard against the exact Jaccard of the shingle sets (crawlproc.dedup.minhash.shingle_set).
Target (issue 30): ours >= 1.0x rensa on the hashing step. Summary: bench/out/minhash.json.
"""

from __future__ import annotations

import argparse
import gzip
import os
import importlib.metadata
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # rensa's thread pool: one core, like ours
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import OUT, measured, write_json  # noqa: E402

from crawlproc.dedup.minhash import MinHasher, estimate_jaccard, shingle_set  # noqa: E402
from crawlproc.dedup.normalize import SEP, normalized_bytes  # noqa: E402
from crawlproc.recipe import MinHashConfig  # noqa: E402

SEED = 42
NUM_PERM = 112


def load_texts(jsonl: str | None) -> list[str]:
    path = Path(jsonl) if jsonl else ROOT / "tests" / "data" / "dedup" / "articles.jsonl.gz"
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [t for t in (json.loads(line).get("text") for line in f if line.strip()) if t]


def make_docs(base: list[str], n: int, seed: int) -> list[str]:
    """n documents: the texts in turn, each with a seeded number of word edits (not n repeated strings)."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        words = base[i % len(base)].split(" ")
        for _ in range(rng.randint(0, 20)):
            words[rng.randrange(len(words))] = rng.choice(["alpha", "beta", "gamma"])
        docs.append(" ".join(words))
    return docs


def python_shingles(batch: list[str]) -> list[list[str]]:
    """Our normalization, then word 5-grams joined as strings: the peers' input."""
    texts = normalized_bytes(batch).tobytes().decode("utf-8").split(SEP)
    out = []
    for t in texts:
        w = t.split()
        out.append([" ".join(g) for g in zip(w, w[1:], w[2:], w[3:], w[4:])] if len(w) >= 5
                   else [" ".join(w)] if w else [])
    return out


def batches(docs: list[str], size: int):
    return [docs[i: i + size] for i in range(0, len(docs), size)]


# --- 1. the hashing step, on the same ready shingles ------------------------------------------------------


def ready_shingles(docs, size):
    """Our shingle hashes of each batch, with the row offsets rensa takes."""
    from crawlproc.dedup.minhash import batch_shingles

    out = []
    for b in batches(docs, size):
        sh = batch_shingles(b)
        out.append((sh, np.concatenate(([0], np.cumsum(sh.counts))).astype(np.uint64)))
    return out


def hash_ours(ready, sketch="classic"):
    hasher = MinHasher(MinHashConfig(sketch=sketch))
    hasher.signatures_from_shingles(ready[0][0])  # warm-up
    return lambda: [hasher.signatures_from_shingles(sh) for sh, _ in ready]


def hash_rensa(ready):
    from rensa import RMinHash

    return lambda: [RMinHash.digest_matrix_from_flat_token_hashes(sh.hashes, offsets, NUM_PERM, SEED)
                    for sh, offsets in ready]


def hash_datasketch(ready):
    from datasketch import MinHash

    def run():
        for sh, _ in ready:
            for start, count in zip(sh.starts.tolist(), sh.counts.tolist()):
                m = MinHash(num_perm=NUM_PERM, seed=SEED, hashfunc=lambda x: x)
                m.update_batch(sh.hashes[start: start + count])
                m.digest()
    return run


HASH_SIDES = {"ours": hash_ours, "ours-1perm": lambda ready: hash_ours(ready, "one_permutation"), "rensa": hash_rensa,
              "datasketch": hash_datasketch}


# --- 2. from text ------------------------------------------------------------------------------------------


def side_ours(docs, size, sketch="classic"):
    hasher = MinHasher(MinHashConfig(sketch=sketch))
    hasher.band_keys_for_texts(docs[:10])  # warm-up: tables
    return lambda: [hasher.band_keys_for_texts(b) for b in batches(docs, size)]


def side_rensa_ours(docs, size):
    from rensa import RMinHash

    from crawlproc.dedup.minhash import batch_shingles

    def run():
        for b in batches(docs, size):
            sh = batch_shingles(b)
            offsets = np.concatenate(([0], np.cumsum(sh.counts))).astype(np.uint64)
            RMinHash.digest_matrix_from_flat_token_hashes(sh.hashes, offsets, NUM_PERM, SEED)
    return run


def side_rensa(docs, size):
    from rensa import RMinHash

    return lambda: [RMinHash.digest_matrix_from_token_sets(python_shingles(b), NUM_PERM, SEED)
                    for b in batches(docs, size)]


def side_datasketch(docs, size):
    from datasketch import MinHash

    def run():
        for b in batches(docs, size):
            for sh in python_shingles(b):
                m = MinHash(num_perm=NUM_PERM, seed=SEED)
                m.update_batch([s.encode("utf-8") for s in sh])
                m.digest()
    return run


def side_datatrove(docs, size):
    import xxhash
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    step = MinhashDedupSignature(output_folder=str(OUT / "dt-minhash"), config=MinhashConfig())
    step._hash_func = lambda s: xxhash.xxh64_intdigest(s.encode("utf-8"))
    step.get_signature(step.get_shingles(docs[0]))  # warm-up: tokenizer load

    def run():
        for text in docs:
            shingles = step.get_shingles(text)
            if shingles.size:
                step.get_signature(shingles)
    return run


SIDES = {"ours": side_ours, "ours-1perm": lambda docs, size: side_ours(docs, size, "one_permutation"),
         "rensa+ours": side_rensa_ours, "rensa": side_rensa, "datasketch": side_datasketch,
         "datatrove": side_datatrove}


def repeated(run, at_least_s: float = 0.25):
    """(run repeated enough times to take `at_least_s` of CPU, the repeat count): a side that takes a few
    milliseconds is otherwise below the resolution of the process's CPU clock (getrusage's ticks)."""
    run()
    t0 = time.process_time()
    run()
    times = max(1, math.ceil(at_least_s / max(time.process_time() - t0, 1e-6)))
    return (lambda: [run() for _ in range(times)]), times


def fastest(runs: dict, repeats: int) -> dict:
    """{side: the fastest of `repeats` interleaved runs, {cpu_s, wall_s}}."""
    best: dict[str, dict] = {}
    for _ in range(repeats):
        for s, run in runs.items():
            res: dict = {}
            with measured(res):
                run()
            if s not in best or res["cpu_s"] < best[s]["cpu_s"]:
                best[s] = res
    return best


def check_same_shingles(docs: list[str], size: int) -> int:
    """Documents whose distinct shingle count differs between our hashes and the peers' strings (0 expected)."""
    from crawlproc.dedup.minhash import batch_shingles

    bad = 0
    for b in batches(docs, size):
        sh = batch_shingles(b)
        for i, strings in enumerate(python_shingles(b)):
            ours = sh.hashes[sh.starts[i]: sh.starts[i] + sh.counts[i]]
            bad += len(set(ours.tolist())) != len(set(strings))
    return bad


def agreement(base: list[str], pairs: int, seed: int) -> dict:
    """Mean error and mean absolute error of each side's estimated Jaccard on edited pairs."""
    from datasketch import MinHash
    from rensa import RMinHash

    rng = random.Random(seed)
    hasher, one = MinHasher(), MinHasher(MinHashConfig(sketch="one_permutation"))
    errors: dict[str, list[float]] = {"ours": [], "ours-1perm": [], "rensa": [], "datasketch": []}
    exact = []
    for k in range(pairs):
        text = base[k % len(base)]
        words = text.split(" ")
        for _ in range(int(len(words) * rng.uniform(0, 0.6) / 5)):
            words[rng.randrange(len(words))] = f"edit{rng.randrange(10**6)}"
        edited = " ".join(words)
        a, b = shingle_set(text), shingle_set(edited)
        j = len(a & b) / len(a | b)
        exact.append(j)
        sig, _ = hasher.signatures([text, edited])
        errors["ours"].append(estimate_jaccard(sig[0], sig[1]) - j)
        sig, _ = one.signatures([text, edited])
        errors["ours-1perm"].append(estimate_jaccard(sig[0], sig[1]) - j)
        sh = python_shingles([text, edited])
        r = [RMinHash(NUM_PERM, SEED) for _ in sh]
        d = [MinHash(num_perm=NUM_PERM, seed=SEED) for _ in sh]
        for m, s in zip(r, sh):
            m.update(s)
        for m, s in zip(d, sh):
            m.update_batch([x.encode() for x in s])
        errors["rensa"].append(r[0].jaccard(r[1]) - j)
        errors["datasketch"].append(d[0].jaccard(d[1]) - j)
    return {"pairs": pairs, "exact_jaccard_range": [round(min(exact), 3), round(max(exact), 3)],
            **{k: {"mean_error": round(float(np.mean(v)), 4), "mean_abs_error": round(float(np.mean(np.abs(v))), 4),
                   "max_abs_error": round(float(np.max(np.abs(v))), 4)} for k, v in errors.items()}}


def version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=1800)
    ap.add_argument("--jsonl", help="texts to use instead of tests/data/dedup/articles.jsonl.gz")
    ap.add_argument("--batch", type=int, default=500, help="texts per batch (dedup.signature_batch)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=300, help="near-duplicate pairs for the agreement check")
    ap.add_argument("--sides", default="ours,ours-1perm,rensa+ours,rensa,datasketch,datatrove", help="sides of the from-text part")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    base = load_texts(args.jsonl)
    docs = make_docs(base, args.docs, args.seed)
    words = sum(len(d.split()) for d in docs) / len(docs)
    load0 = os.getloadavg()[0]
    ready = ready_shingles(docs, args.batch)
    shingles = sum(len(sh.hashes) for sh, _ in ready)
    hash_runs = {s: repeated(f(ready)) for s, f in HASH_SIDES.items()}
    hashed = fastest({s: run for s, (run, _) in hash_runs.items()}, args.repeats)
    for s, (_, times) in hash_runs.items():  # per pass over the documents
        hashed[s] = {k: v / times for k, v in hashed[s].items()}
    sides = [s for s in args.sides.split(",") if s]
    best = fastest({s: SIDES[s](docs, args.batch) for s in sides}, args.repeats)
    load1 = os.getloadavg()[0]
    rate = {s: len(docs) / best[s]["cpu_s"] for s in sides}
    hash_rate = {s: len(docs) / r["cpu_s"] for s, r in hashed.items()}
    mismatched = check_same_shingles(docs, args.batch) if "rensa" in sides else None
    summary = {
        "docs": len(docs), "mean_words": round(words, 1), "shingles": shingles,
        "source": args.jsonl or "tests/data/dedup/articles.jsonl.gz", "load_average": [load0, load1],
        "versions": {p: version(p) for p in ("numpy", "numba", "rensa", "datasketch", "datatrove")},
        "hashing_step": {"docs_per_cpu_s": {s: round(r, 1) for s, r in hash_rate.items()},
                         "ratio_ours_over": {s: round(hash_rate["ours"] / r, 3) for s, r in hash_rate.items()
                                             if not s.startswith("ours")},
                         "ratio_ours_1perm_over": {s: round(hash_rate["ours-1perm"] / r, 3) for s, r in hash_rate.items()
                                                   if not s.startswith("ours")},
                         "ours_ns_per_shingle_permutation": round(hashed["ours"]["cpu_s"] / shingles / NUM_PERM * 1e9, 3)},
        "from_text": {"docs_per_cpu_s": {s: round(r, 1) for s, r in rate.items()},
                      "ratio_ours_over": {s: round(rate["ours"] / rate[s], 3) for s in sides
                                          if not s.startswith("ours") and "ours" in rate}},
        "shingle_count_mismatches": mismatched,
    }
    print(f"documents: {len(docs)} ({words:.0f} words on average, {shingles / len(docs):.0f} shingles) from "
          f"{summary['source']}, real text with seeded word edits; 112 hashes, word 5-grams; CPU seconds, fastest of "
          f"{args.repeats}; load average {load0:.1f} -> {load1:.1f}")
    print("1. the hashing step alone, on the same ready shingles (our 64-bit shingle hashes):")
    what = {"ours": "classic MinHash, 112 permutations, 64-bit (numba)",
            "ours-1perm": "one_permutation sketch (minhash.sketch), 112 bins, densified, 64-bit (numba)",
            "rensa": "digest_matrix_from_flat_token_hashes: a bucketed sketch, ~3 hashes per shingle, 32-bit",
            "datasketch": "classic MinHash, 112 permutations mod 2**61-1 (numpy)"}
    for s, r in hash_rate.items():
        print(f"  {s:<11} {r:9.0f} documents per CPU-second ({hashed[s]['cpu_s']:.3f} CPU s; {what[s]})")
    for s, r in summary["hashing_step"]["ratio_ours_over"].items():
        print(f"  RATIO ours / {s} (hashing step): {r:.2f}x" + ("  (target >= 1.0x)" if s == "rensa" else ""))
    for s, r in summary["hashing_step"]["ratio_ours_1perm_over"].items():
        print(f"  RATIO ours-1perm / {s} (hashing step; another sketch: its agreement is below): {r:.2f}x")
    print(f"  ours: {summary['hashing_step']['ours_ns_per_shingle_permutation']:.3f} ns per shingle and permutation")
    print("2. from text (normalization + shingles + hashing; ours also makes the 14 band keys):")
    for s in sides:
        print(f"  {s:<11} {rate[s]:9.0f} documents per CPU-second ({best[s]['cpu_s']:.2f} CPU s, "
              f"{version(s.split('+')[0]) if not s.startswith('ours') else 'crawlproc'})")
    for s, r in summary["from_text"]["ratio_ours_over"].items():
        print(f"  RATIO ours / {s} (from text): {r:.2f}x")
    if mismatched is not None:
        print(f"  documents whose distinct shingle count differs, ours vs the peers' strings: {mismatched}")
    if args.pairs:
        summary["agreement"] = agreement(base, args.pairs, args.seed)
        a = summary["agreement"]
        print(f"estimated vs exact Jaccard on {a['pairs']} edited pairs (exact J {a['exact_jaccard_range'][0]}"
              f"..{a['exact_jaccard_range'][1]}):")
        for s in ("ours", "ours-1perm", "rensa", "datasketch"):
            print(f"  {s:<11} mean error {a[s]['mean_error']:+.4f}, mean |error| {a[s]['mean_abs_error']:.4f}, "
                  f"max |error| {a[s]['max_abs_error']:.4f}")
    write_json(OUT / "minhash.json", summary)
    return 0 if mismatched in (0, None) else 1


if __name__ == "__main__":
    sys.exit(main())
