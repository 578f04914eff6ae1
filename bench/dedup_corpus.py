"""The dedup bench's documents: real text re-mixed, with near-duplicates planted across Jaccard 0.5-1.0, and
the scoring of a dedup run against exact Jaccard.

Background documents come from a word bigram chain trained on the real articles of
tests/data/dedup/articles.jsonl.gz (every word follows a word it followed in a real article; 3% of steps jump
to a random place, so documents do not repeat the articles verbatim). They share common phrases, as web
text does, but are not near-duplicates of each other by design: any pair of them that dedup merges is a
precision loss that the score sees.
A share of the documents (--dup-frac) are planted copies of a recent document, each with a target Jaccard
drawn uniformly from 0.5-1.0: an exact copy (one in five), scattered word substitutions, one rewritten span,
or a real header and footer added; the exact word 5-gram Jaccard of every planted pair is computed when it
is made (crawlproc.dedup.minhash shingles, the same normalization as dedup).
Recall is reported per band of exact Jaccard, next to the LSH theory 1 - (1 - J^8)^14 for 14 bands of 8
rows; precision is the share of dropped documents whose exact Jaccard with the document kept in their
place is >= 0.5, on a random sample of dropped documents, also by band.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crawlproc.dedup.minhash import batch_shingles
from crawlproc.schema import conform

ROOT = Path(__file__).resolve().parent.parent
ARTICLES = ROOT / "tests" / "data" / "dedup" / "articles.jsonl.gz"
BANDS = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]  # recall is reported for [0, 0.5), [0.5, 0.6), ..., [0.9, 1), exactly 1
JUMP = 0.03
POOL = 20_000  # recent originals that copies are made from


def doc_id(n: int) -> str:
    return f"<urn:uuid:{n:012d}>"


def doc_no(ids: list[str]) -> np.ndarray:
    return np.array([int(x[10:-1]) for x in ids], dtype=np.int64)


class Bigrams:
    """A word bigram chain over the real articles' whitespace tokens."""

    def __init__(self, path: Path = ARTICLES):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            articles = [json.loads(line)["text"].split() for line in f]
        vocab = sorted({w for a in articles for w in a})
        index = {w: i for i, w in enumerate(vocab)}
        self.vocab = np.array(vocab, dtype=object)
        self.tokens = np.array([index[w] for a in articles for w in a], dtype=np.int64)
        prev = np.concatenate([[index[w] for w in a[:-1]] for a in articles])
        nxt = np.concatenate([[index[w] for w in a[1:]] for a in articles])
        order = np.argsort(prev, kind="stable")
        self.successors = nxt[order]
        self.count = np.bincount(prev, minlength=len(vocab))
        self.offset = np.concatenate(([0], np.cumsum(self.count)[:-1]))

    def walk(self, rng: np.random.Generator, n: int, steps: int) -> np.ndarray:
        """(n, steps) token ids: n walks, each from a random place."""
        out = np.empty((n, steps), dtype=np.int64)
        cur = self.tokens[rng.integers(len(self.tokens), size=n)]
        for t in range(steps):
            out[:, t] = cur
            c = self.count[cur]
            pick = self.offset[cur] + (rng.random(n) * c).astype(np.int64)
            nxt = self.successors[np.minimum(pick, len(self.successors) - 1)]
            jump = (c == 0) | (rng.random(n) < JUMP)
            cur = np.where(jump, self.tokens[rng.integers(len(self.tokens), size=n)], nxt)
        return out

    def text(self, words: np.ndarray) -> str:
        return " ".join(self.vocab[words])


def make_copy(rng: np.random.Generator, words: np.ndarray, target: float, chain: Bigrams) -> np.ndarray:
    """A near copy of `words` whose 5-gram Jaccard with it is about `target` (1.0: the same words)."""
    n = len(words)
    if target >= 1.0:
        return words
    kind = rng.integers(3)
    if kind == 0:  # scattered substitutions: each kills up to 5 shingles and makes 5 new ones
        k = max(1, round((n - 4) * (1 - target) / (5 * (1 + target))))
        words = words.copy()
        pos = rng.integers(0, n, k)
        words[pos] = chain.tokens[rng.integers(len(chain.tokens), size=k)]
        return words
    if kind == 1:  # one span rewritten
        span = min(n - 1, max(1, round((n + 4) * (1 - target) / (1 + target)) - 4))
        start = int(rng.integers(0, n - span + 1))
        return np.concatenate([words[:start], chain.walk(rng, 1, span)[0], words[start + span:]])
    extra = max(2, round((n - 4) * (1 - target) / target))  # a real header and footer around the text
    at = int(rng.integers(0, len(chain.tokens) - extra))
    header = chain.tokens[at: at + extra // 2]
    footer = chain.tokens[at + extra // 2: at + extra]
    return np.concatenate([header, words, footer])


def _jaccard_pairs(texts_a: list[str], texts_b: list[str]) -> np.ndarray:
    """Exact word 5-gram Jaccard of each pair (a[i], b[i])."""
    sh = batch_shingles(texts_a + texts_b)
    sets = [np.unique(sh.hashes[s: s + c]) for s, c in zip(sh.starts, sh.counts)]
    n = len(texts_a)
    out = np.empty(n)
    for i in range(n):
        a, b = sets[i], sets[n + i]
        inter = len(np.intersect1d(a, b, assume_unique=True))
        union = len(a) + len(b) - inter
        out[i] = inter / union if union else 1.0
    return out


@dataclass
class Planted:
    copy: np.ndarray  # doc number of each planted copy
    base: np.ndarray  # the doc number it was made from
    jaccard: np.ndarray  # their exact word 5-gram Jaccard


def generate(folder: Path, n_docs: int, per_file: int, dup_frac: float, seed: int,
             chain: Bigrams | None = None, mean_words: int = 250) -> Planted:
    """Write n_docs documents as Parquet files of per_file documents (document schema); a document that is
    not a copy has a length drawn uniformly from 0.4x to 1.6x `mean_words` (so that on average)."""
    chain = chain or Bigrams()
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    pool: list[tuple[int, np.ndarray]] = []
    copies, bases, jaccards = [], [], []
    doc = 0
    for file_no in range((n_docs + per_file - 1) // per_file):
        n = min(per_file, n_docs - doc)
        lengths = rng.integers(round(0.4 * mean_words), round(1.6 * mean_words) + 1, n)
        walks = chain.walk(rng, n, int(lengths.max()))
        is_copy = rng.random(n) < dup_frac
        texts, made_from, made = [], [], []
        for i in range(n):
            if is_copy[i] and pool:
                base, words = pool[int(rng.integers(len(pool)))]
                target = 1.0 if rng.random() < 0.2 else float(rng.uniform(0.5, 1.0))
                words = make_copy(rng, words, target, chain)
                made_from.append(base)
                made.append(doc + i)
            else:
                words = walks[i, : lengths[i]]
                pool.append((doc + i, words))
            texts.append(chain.text(words))
        by_no = {d: w for d, w in pool[-(n + POOL):]}
        if made:
            jaccards.append(_jaccard_pairs([texts[m - doc] for m in made],
                                           [texts[b - doc] if b >= doc else chain.text(by_no[b]) for b in made_from]))
            copies.append(np.array(made)), bases.append(np.array(made_from))
        pool = pool[-POOL:]
        table = conform(pa.table({"text": texts, "id": [doc_id(doc + i) for i in range(n)],
                                  "dump": ["BENCH"] * n, "url": [f"https://bench.example/{doc + i}" for i in range(n)]}))
        pq.write_table(table, folder / f"part-{file_no:05d}.parquet", compression="zstd")
        doc += n
    def cat(parts, dtype):
        return np.concatenate(parts) if parts else np.empty(0, dtype)

    return Planted(cat(copies, np.int64), cat(bases, np.int64), cat(jaccards, np.float64))


def survivors(dedup_dir: Path, n_docs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(survivor of every document, dropped doc numbers, their kept doc numbers)."""
    survivor = np.arange(n_docs, dtype=np.int64)
    dropped, kept = [], []
    for f in sorted((dedup_dir / "duplicates").glob("*.parquet")):
        t = pq.read_table(f, columns=["id", "kept_id"])
        generated = pc.and_(pc.starts_with(t.column("id"), "<urn:uuid:"), pc.starts_with(t.column("kept_id"), "<urn:uuid:"))
        t = t.filter(generated)  # the real documents of bench/dedup_real.py are scored apart
        d, k = doc_no(t.column("id").to_pylist()), doc_no(t.column("kept_id").to_pylist())
        survivor[d] = k
        dropped.append(d), kept.append(k)
    return survivor, np.concatenate(dropped) if dropped else np.empty(0, np.int64), \
        np.concatenate(kept) if kept else np.empty(0, np.int64)


def _texts(input_dir: Path, per_file: int, docs: np.ndarray) -> dict[int, str]:
    """The texts of some documents, reading each file once."""
    out = {}
    files = sorted(input_dir.glob("*.parquet"))
    for f in np.unique(docs // per_file):
        rows = np.unique(docs[docs // per_file == f]) % per_file
        col = pq.read_table(files[f], columns=["text"]).column("text").take(pa.array(rows)).to_pylist()
        out.update(zip((rows + f * per_file).tolist(), col))
    return out


def lsh_probability(j: np.ndarray, bands: int = 14, rows: int = 8) -> np.ndarray:
    return 1 - (1 - np.asarray(j) ** rows) ** bands


def score(dedup_dir: Path, input_dir: Path, planted: Planted, n_docs: int, per_file: int, sample: int,
          seed: int) -> dict:
    survivor, dropped, kept = survivors(dedup_dir, n_docs)
    found = survivor[planted.copy] == survivor[planted.base]
    recall = []
    for lo, hi in zip([0.0] + BANDS, BANDS + [1.01]):
        sel = (planted.jaccard >= lo) & (planted.jaccard < hi)
        name = "<0.5" if lo == 0.0 else "1.0 (exact)" if lo == 1.0 else f"{lo:.1f}-{hi:.1f}"
        recall.append({"band": name, "pairs": int(sel.sum()),
                       "recall": round(float(found[sel].mean()), 4) if sel.any() else None,
                       "lsh_theory": round(float(lsh_probability(planted.jaccard[sel]).mean()), 4) if sel.any() else None})
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(dropped), size=min(sample, len(dropped)), replace=False) if len(dropped) else []
    d, k = dropped[pick], kept[pick]
    texts = _texts(input_dir, per_file, np.concatenate([d, k]))
    j = _jaccard_pairs([texts[x] for x in d.tolist()], [texts[x] for x in k.tolist()]) if len(d) else np.empty(0)
    edges = [0.0, 0.3, 0.5, 0.7, 0.9, 1.0]
    precision_bands = [{"jaccard": f"{lo:.1f}-{hi:.1f}", "dropped": int(((j >= lo) & (j < hi)).sum())}
                       for lo, hi in zip(edges[:-1], edges[1:])]
    precision_bands.append({"jaccard": "1.0", "dropped": int((j >= 1.0).sum())})
    return {
        "planted_pairs": len(planted.copy), "recall_by_band": recall,
        "dropped": int(len(dropped)), "precision_sample": int(len(d)),
        "precision_j_0.5": float((j >= 0.5).mean()) if len(j) else 1.0,
        "precision_j_0.7": float((j >= 0.7).mean()) if len(j) else 1.0,
        "precision_by_band": precision_bands,
    }
