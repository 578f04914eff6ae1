"""Tokenizer benchmark: ours against Hugging Face tokenizers and tiktoken on the same corpus, same run.

What runs on each side (ours is a thin layer over two Rust libraries, and says so):
  training   ours = `tokenizer.train_bpe`, which runs **rustbpe** (Rust) to learn the merges, vs Hugging Face
             tokenizers' `BpeTrainer`: same text, same vocabulary size, same split regex, byte-level alphabet.
             The ratio compares rustbpe (+ our cleaning and rank export) with BpeTrainer, not our own BPE code.
  encoding   ours = the tokenize stage's `encode_part` end to end (read a docs Parquet file, encode each text
             with **tiktoken's Rust encoder on our ranks** -- tiktoken.Encoding built from our vocabulary --,
             write the token shards); vs bare tiktoken `encode_ordinary` on the same ranks (so this ratio is our overhead
             around the same encoder, at most ~1.0) and tokenizers' `encode_batch` loading our tokenizer.json.
  compression bytes per token on held-back text: our tokenizer vs the one BpeTrainer learned.
It also checks that tokenizers (loading our tokenizer.json) gives our ids on every held-back document.

All times are CPU seconds of this process (user + system, every thread; with --threads 1 that is one core),
the median of --repeat interleaved runs. RATIOS are ours / peer as speed (> 1: ours is faster).

    python bench/bench_tokenizer.py                      # fixtures corpus (~1 MB), vocab 8192, 1 thread
    python bench/bench_tokenizer.py --corpus a.parquet --corpus b.jsonl --vocab-size 32000 --repeat 5

Corpus files: .parquet (a `text` column), .jsonl (objects with "text"), .json (ground-truth.json style
{id: {"articleBody": ...}}) or plain text (one document per blank-line-separated block).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = [ROOT / "tests/data/html/ground-truth.json", ROOT / "tests/data/tokenizer/corpus.jsonl"]


def read_corpus(paths: list[Path]) -> list[str]:
    import json

    import pyarrow.parquet as pq

    texts: list[str] = []
    for path in paths:
        if not path.is_file():
            print(f"  (skipping missing corpus file {path})")
            continue
        if path.suffix == ".parquet":
            texts += [t for t in pq.read_table(path, columns=["text"]).column("text").to_pylist() if t]
        elif path.suffix == ".jsonl":
            texts += [
                json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line
            ]
        elif path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            texts += [v["articleBody"] if isinstance(v, dict) else str(v) for v in data.values()]
        else:
            texts += [b for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    return [t for t in texts if t and t.strip()]


def interleaved_median(repeat: int, fns: dict) -> dict:
    """Median CPU time of each function over `repeat` rounds, the functions taking turns within each round, so
    that load from other processes on a shared machine hits all of them alike. CPU time (this process, all its
    threads), not wall: the neighbours' share of the machine does not count."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    results = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.process_time()
            results[name] = fn()
            times[name].append(time.process_time() - t0)
    return {name: (statistics.median(times[name]), results[name]) for name in fns}


def hf_trainer_tokenizer(pattern: str, vocab_size: int, specials: list[str]):
    """tokenizers' BPE with the same split regex and byte-level alphabet as ours."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(pattern), behavior="isolated"), pre_tokenizers.ByteLevel(use_regex=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return tok, trainer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", action="append", type=Path, help="corpus file (repeatable)")
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions; the median is kept")
    ap.add_argument("--held-back", type=float, default=0.1, help="fraction of documents kept out of training")
    ap.add_argument("--threads", type=int, default=1, help="threads for rustbpe / tokenizers (1 = per core)")
    ap.add_argument(
        "--encode-passes", type=int, default=3, help="encode the corpus this many times per timing"
    )
    args = ap.parse_args(argv)

    # Both Rust libraries use rayon: pin their thread pools before they are imported.
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if args.threads > 1 else "false"
    sys.path.insert(0, str(ROOT))
    import tiktoken

    import pyarrow as pa

    from crawlproc.store.storage import Storage
    from crawlproc.store.layout import TokenSetDir
    from tokenizer.encode import encode_part
    from tokenizer import EOT, load_tokenizer, save_tokenizer, train_bpe

    texts = read_corpus(args.corpus or DEFAULT_CORPUS)
    if len(texts) < 10:
        print("corpus too small (need at least 10 documents)")
        return 2
    every = max(2, round(1 / args.held_back))  # every k-th document is held back: same mix as training
    held = texts[::every]
    train = [t for i, t in enumerate(texts) if i % every]
    train_mb = sum(len(t.encode()) for t in train) / 1e6
    print(
        f"corpus: {len(train)} training documents ({train_mb:.2f} MB), {len(held)} held back; "
        f"vocabulary {args.vocab_size}; {args.threads} thread(s); CPU time, median of {args.repeat}"
    )

    # --- training ----------------------------------------------------------------------------------------
    def train_ours():
        return train_bpe(train, args.vocab_size)

    def train_hf():
        tok, trainer = hf_trainer_tokenizer(ours.pattern, args.vocab_size, [EOT])
        tok.train_from_iterator(train, trainer=trainer)
        return tok

    ours = train_bpe(train[:5], 300)  # warm up imports; gives the pattern to the HF trainer
    timed = interleaved_median(args.repeat, {"ours": train_ours, "hf": train_hf})
    (t_ours, ours), (t_hf, hf_trained) = timed["ours"], timed["hf"]
    print("\ntraining (same text, same vocabulary size, same split regex), CPU seconds")
    print(f"  ours = train_bpe on rustbpe   {t_ours:8.3f} s   vocab {ours.vocab_size}")
    print(f"  tokenizers BpeTrainer         {t_hf:8.3f} s   vocab {hf_trained.get_vocab_size()}")
    print(f"  RATIO ours (rustbpe) / BpeTrainer speed = {t_hf / t_ours:.2f}")

    # --- encoding on OUR vocabulary ----------------------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_tokenizer(ours, tmp / "tok")
        ours = load_tokenizer(tmp / "tok")
        from tokenizers import Tokenizer

        hf_ours = Tokenizer.from_file(str(tmp / "tok" / "tokenizer.json"))
        tk = tiktoken.Encoding("bench", pat_str=ours.pattern, mergeable_ranks=ours.mergeable_ranks,
                               special_tokens=ours.special_tokens)  # fmt: skip
        docs = texts * args.encode_passes
        ids = [f"<urn:uuid:{i:08d}>" for i in range(len(docs))]
        mb = sum(len(t.encode()) for t in docs) / 1e6
        storage, docs_uri = Storage(), str(tmp / "docs.parquet")
        storage.write_table(docs_uri, pa.table({"id": ids, "text": docs}))
        settings = {"val_fraction": 0.005, "max_doc_chars": 10**9, "shard_tokens": 100_000_000}

        def ours_end_to_end():  # the tokenize stage's unit of work: read the docs file, encode, write shards
            return encode_part(docs_uri, "bench", ours, settings, TokenSetDir(str(tmp / "shards"), storage))["tokens"]

        def tiktoken_encode():
            return sum(len(tk.encode_ordinary(t)) for t in docs)

        def hf_encode():
            return sum(len(e.ids) for e in hf_ours.encode_batch(docs, add_special_tokens=False))

        tiktoken_encode()  # warm up
        timed = interleaved_median(args.repeat, {"tk": tiktoken_encode, "us": ours_end_to_end, "hf": hf_encode})
        (t_tk, n_tk), (t_us, n_us), (t_hfe, n_hfe) = timed["tk"], timed["us"], timed["hf"]
        assert n_us == n_tk == n_hfe, (n_us, n_tk, n_hfe)
        print(f"\nencoding {mb:.2f} MB ({args.encode_passes} passes), our vocabulary, MB per CPU-second")
        print(f"  ours end to end (tiktoken + Parquet)  {mb / t_us:7.2f} MB/CPU-s   {n_us:,} tokens")
        print(f"  tiktoken encode_ordinary, our ranks   {mb / t_tk:7.2f} MB/CPU-s")
        print(f"  tokenizers encode_batch               {mb / t_hfe:7.2f} MB/CPU-s")
        print(f"  RATIO ours / bare tiktoken (same encoder: our overhead) = {t_tk / t_us:.2f}   (target >= 0.9)")
        print(f"  RATIO ours (tiktoken encoder) / tokenizers             = {t_hfe / t_us:.2f}")

        # --- agreement and compression on held-back text -----------------------------------------------
        mismatched = sum(ours.encode(t) != hf_ours.encode(t, add_special_tokens=False).ids for t in held)
        held_bytes = sum(len(t.encode()) for t in held)
        ours_tokens = sum(len(ours.encode(t)) for t in held)
        hf_tokens = sum(len(hf_trained.encode(t, add_special_tokens=False).ids) for t in held)
        print(f"\nheld-back text ({len(held)} documents, {held_bytes / 1e3:.0f} KB)")
        print(
            f"  ids identical, ours vs tokenizers on our tokenizer.json: {len(held) - mismatched}/{len(held)}"
        )
        print(
            f"  bytes per token: ours {held_bytes / ours_tokens:.3f}   (tiktoken, same ranks: "
            f"{held_bytes / sum(len(tk.encode_ordinary(t)) for t in held):.3f})"
        )
        print(f"  bytes per token: tokenizers BpeTrainer {held_bytes / hf_tokens:.3f}")
        print(f"  RATIO ours/tokenizers bytes per token = {hf_tokens / ours_tokens:.3f} (higher is better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
