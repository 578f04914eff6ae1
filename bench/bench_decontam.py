"""Decontamination: our n-gram matching (crawlproc/decontam) against datatrove 0.10.1's n-gram
decontamination (`datatrove.pipeline.decont.n_grams`), on the same documents and the same benchmark items.

    python bench/bench_decontam.py                         # 20,000 documents, the bundled evaluation suite
    python bench/bench_decontam.py --docs 50000 --suite DIR  # another folder of task files (JSONL)
    python bench/bench_decontam.py --skip-peer                # ours only (microseconds per document)

Benchmark items: the tasks of the bundled evaluation suite (crawlproc.evalsuite.default_suite(); until it is
bundled, tests/data/evalsuite's 500-item excerpts, which is said in the output), or `--suite DIR`.

Documents (real text, repeated): the 181 gold article texts of tests/data/html and the text trafilatura
extracts from the real multilingual pages of tests/data/html_multilingual (124 give over 200 characters),
each document a seeded window of one of them with some lines dropped, so that no two are equal; 1% of them
get a real benchmark item planted as a paragraph (context + gold answer, prompt words removed). Their
length in characters is printed.

Each side runs in a fresh interpreter, in two timed phases:
- index: ours `load_task` of every file + `build_index`; the peer's hashes built by its own
  `NGramsDecontIndexer.compute_hashes` (n_grams = 13, find_query_ngrams = True, find_overlap_ngrams = True:
  the context's n-grams, the answer's and those that run from one into the other, which is what ours indexes),
  written as its `.index.hashes` files, then `NGramsDecontFilter.load_index_hashes()`. (Its indexer's `run()`
  reads tasks through lighteval only; the per-item code is the same.)
- match: ours `match.find(index, texts)` on the list of str (the conversion to an Arrow column counted; the
  stage gets an Arrow column from Parquet and skips it), the peer `NGramsDecontFilter.filter(doc)` on each
  Document, as its pipeline calls it.
The peer's default hash, xxhash64 of the n-gram's str, fails with the xxhash 4 of this venv ("Strings must be
encoded before hashing"): it is given the same xxhash64 of the str's UTF-8 bytes, what xxhash 3 computed.
Like for like, ours runs with the peer's rule only (13-grams of context + gold answer; min_item_words = 0,
coverage_n = 0, prompt words kept). Our default rule (short items whole, the coverage rule, prompt words left
out) changes the output, so it is reported apart, with its decisions against the peer's.
Figures: documents per CPU-second of the match phase, the ratio ours / peer (> 1: ours faster), CPU
microseconds per document (one core), the decisions' agreement, and our memory while the documents grow
(RSS after each of 8 rounds over the documents, in batches of 5,000 as files of a snapshot are).
JSON summary: bench/out/decontam.json.
"""

from __future__ import annotations

import argparse
import gzip
import os
import json
import random
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import OUT, ROOT, measured, ratio, run_isolated, write_json

WORK = OUT / "decontam"
N = 13


def suite_files(suite: str | None) -> tuple[list[str], str]:
    from crawlproc.evalsuite import FEWSHOT_SUFFIX, default_suite

    if suite:
        files = sorted(str(p) for p in Path(suite).glob("*.jsonl") if not p.name.endswith(FEWSHOT_SUFFIX))
        return files, f"--suite {suite}"
    files = [str(p) for p in default_suite()]
    if files:
        return files, "the bundled evaluation suite"
    fallback = ROOT / "tests" / "data" / "evalsuite"
    return (sorted(str(p) for p in fallback.glob("*.jsonl") if not p.name.endswith(FEWSHOT_SUFFIX)),
            "tests/data/evalsuite (500-item excerpts: the bundled suite is not there yet)")


def real_texts() -> list[str]:
    import trafilatura

    gold = json.loads((ROOT / "tests" / "data" / "html" / "ground-truth.json").read_text(encoding="utf-8"))
    texts = [v["articleBody"] for _, v in sorted(gold.items())]
    for page in sorted((ROOT / "tests" / "data" / "html_multilingual").glob("*.html.gz")):
        text = trafilatura.extract(gzip.decompress(page.read_bytes()).decode("utf-8", "replace"))
        if text and len(text) > 200:
            texts.append(text)
    return texts


def corpus(n: int, files: list[str], seed: int = 0) -> tuple[list[str], list[int]]:
    from crawlproc.evalsuite import load_task

    base = real_texts()
    items = [it for f in files for it in load_task(f).items]
    rng = random.Random(seed)
    docs, planted = [], []
    for i in range(n):
        parts = base[i % len(base)].split("\n")
        start = rng.randrange(max(1, len(parts) // 4))
        window = parts[start:start + max(1, int(len(parts) * rng.uniform(0.6, 1.0)))]
        lines = [line for line in window if rng.random() > 0.1] or parts[:1]
        if rng.random() < 0.01:
            item = rng.choice(items)
            lines.insert(rng.randrange(len(lines) + 1),
                         re.sub(r"^Question: |\nAnswer:$", "", item.context) + item.answer)
            planted.append(i)
        docs.append("\n".join(lines))
    return docs, planted


# --------------------------------------------------------------- workers (each in a fresh interpreter)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_ours(docs_path: Path, files: list[str], like_for_like: bool) -> dict:
    from crawlproc.decontam import match
    from crawlproc.decontam.index import build_index
    from crawlproc.decontam.text import table
    from crawlproc.evalsuite import load_task

    texts = json.loads(docs_path.read_text())
    settings = {"min_item_words": 0, "coverage_n": 0, "strip_prompt_words": False} if like_for_like else {}
    table()  # the character table: built once per process (shipped inside the index to workers)
    match.find(build_index([load_task(files[0])], **settings), texts[:50])  # load the compiled kernels
    index_phase, match_phase = {}, {}
    with measured(index_phase):
        index = build_index([load_task(f) for f in files], **settings)
    with measured(match_phase):
        found = match.find(index, texts)
    hits = sorted(c.row for c in found if c.contaminated(1))
    rss = []
    column = match.utf8_column(texts)
    for _ in range(8):  # the documents over again, in file-sized batches: memory must not grow
        for s in range(0, len(column), 5000):
            match.find(index, column[s:s + 5000])
        rss.append(round(_rss_mb(), 1))
    return {"index": index_phase, "match": match_phase, "contaminated": hits, "ngrams": index.size,
            "index_mb": round(index.nbytes / 1e6, 1), "rss_mb": rss}


def run_peer(docs_path: Path, files: list[str]) -> dict:
    from types import SimpleNamespace

    import numpy as np
    from datatrove.data import Document
    from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    from crawlproc.evalsuite import load_task

    import xxhash

    texts = json.loads(docs_path.read_text())
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    # its default hash (xxhash64 of the n-gram's str) fails with xxhash 4 ("Strings must be encoded before
    # hashing"); the same xxhash64 of the str's UTF-8, which is what xxhash 3 did with a str
    hash_func = lambda s: xxhash.xxh64_intdigest(s.encode("utf-8"))  # noqa: E731
    config = NGramsDecontConfig(n_grams=N, find_query_ngrams=True, find_overlap_ngrams=True)
    tokenizer = load_word_tokenizer("en")
    tokenizer.word_tokenize("warm up")  # spaCy's blank English loads here, outside the timed phases
    index_phase, match_phase = {}, {}
    folder = tempfile.mkdtemp(prefix="dt-decont-")
    with measured(index_phase):
        # its indexer's own per-item code (NGramsDecontIndexer.compute_hashes), called on an object holding
        # what that method reads: run() would fetch the tasks through lighteval
        indexer = SimpleNamespace(tokenizer=tokenizer, config=config, hash_func=hash_func)
        for f in files:
            task = load_task(f)
            hashes = set()
            for it in task.items:
                hashes.update(NGramsDecontIndexer.compute_hashes(indexer, it.answer, it.context))
            np.array(sorted(hashes), dtype=config.hash_config.np_descr).tofile(f"{folder}/{task.name}.index.hashes")
        flt = NGramsDecontFilter(index_folder=folder, config=config)
        flt.hash_func = hash_func
        flt.load_index_hashes()
    with measured(match_phase):
        keep = [flt.filter(d) for d in docs]
    hits = [i for i, k in enumerate(keep) if k is not True]
    return {"index": index_phase, "match": match_phase, "contaminated": hits, "ngrams": len(flt._index_hashes)}


# --------------------------------------------------------------- driver


def agreement(a: list[int], b: list[int], n: int) -> dict:
    sa, sb = set(a), set(b)
    return {"same_decision": round(1 - len(sa ^ sb) / n, 6), "only_ours": len(sa - sb), "only_peer": len(sb - sa),
            "both": len(sa & sb)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--suite", help="a folder of task files (default: the bundled evaluation suite)")
    ap.add_argument("--skip-peer", action="store_true", help="run ours only (no ratio, no agreement)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    files, what = suite_files(args.suite)
    docs_path = WORK / f"docs-{args.docs}.json"
    if args.worker:
        out = (run_peer(docs_path, files) if args.worker == "peer"
               else run_ours(docs_path, files, like_for_like=args.worker == "ours"))
        write_json(Path(args.result), out)
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    docs, planted = corpus(args.docs, files)
    docs_path.write_text(json.dumps(docs))
    lengths = [len(d) for d in docs]
    print(f"{len(docs):,} documents (real text, repeated: windows of 181 articles and "
          f"{len(real_texts()) - 181} multilingual pages), {len(planted)} with a planted item; characters per "
          f"document: mean {statistics.mean(lengths):,.0f}, median {statistics.median(lengths):,.0f}; items: {what}, "
          f"{len(files)} files")
    argv = lambda who: [str(Path(__file__).resolve()), "--docs", str(args.docs), *(["--suite", args.suite]  # noqa: E731
                                                                                   if args.suite else []),
                        "--worker", who, "--result", str(WORK / f"{who}.json")]
    sides = ("ours", "default") if args.skip_peer else ("ours", "peer", "default")
    res = {who: run_isolated(argv(who), WORK / f"{who}.log") for who in sides}
    n = len(docs)
    rate = {who: n / r["match"]["cpu_s"] for who, r in res.items()}
    summary = {
        "documents": n, "planted": len(planted), "chars_mean": statistics.mean(lengths),
        "chars_median": statistics.median(lengths), "items": what, "files": [Path(f).name for f in files],
        "load_average": list(os.getloadavg()),
        "index_ngrams": {who: r["ngrams"] for who, r in res.items()},
        "index_cpu_s": {who: round(r["index"]["cpu_s"], 3) for who, r in res.items()},
        "match_cpu_s": {who: round(r["match"]["cpu_s"], 3) for who, r in res.items()},
        "docs_per_cpu_s": {who: round(v, 1) for who, v in rate.items()},
        "us_per_doc": {who: round(1e6 / v, 2) for who, v in rate.items()},
        "planted_found": {who: len(set(planted) & set(r["contaminated"])) for who, r in res.items()},
        "unplanted_removed": {who: len(set(r["contaminated"]) - set(planted)) for who, r in res.items()},
        "our_rss_mb_per_round": res["default"]["rss_mb"], "our_index_mb": res["default"]["index_mb"],
    }
    if args.skip_peer:
        write_json(OUT / "decontam-ours.json", summary)
        print(json.dumps(summary, indent=1))
        return 0
    summary.update({
        "ratio_like_for_like": ratio(rate["ours"], rate["peer"]),
        "ratio_default_rules": ratio(rate["default"], rate["peer"]),
        "agreement_like_for_like": agreement(res["ours"]["contaminated"], res["peer"]["contaminated"], n),
        "agreement_default_rules": agreement(res["default"]["contaminated"], res["peer"]["contaminated"], n),
    })
    write_json(OUT / "decontam.json", summary)
    print(json.dumps(summary, indent=1))
    print(f"\nmatch, like for like: ours {rate['ours']:,.0f} docs/CPU-s ({1e6 / rate['ours']:.1f} us/doc), datatrove "
          f"{rate['peer']:,.0f} docs/CPU-s ({1e6 / rate['peer']:.0f} us/doc): ratio {summary['ratio_like_for_like']}x; "
          f"same decision on {summary['agreement_like_for_like']['same_decision']:.4%} of documents")
    print(f"our default rules: {rate['default']:,.0f} docs/CPU-s ({1e6 / rate['default']:.1f} us/doc), "
          f"{summary['ratio_default_rules']}x datatrove; planted items found {summary['planted_found']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
