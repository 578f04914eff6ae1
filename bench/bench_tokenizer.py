"""Tokenizer benchmark: ours against bare tiktoken and Hugging Face tokenizers on the same corpus, same run.

What runs on each side (ours is a layer over two Rust libraries, and says so):
  encoding   ours = the tokenize stage's unit of work, `encode_part`, end to end: read a docs Parquet file
             (id, text), skip and count bad documents, split train/val by id hash, encode with **tiktoken's
             Rust encoder on our ranks** (tiktoken.Encoding built from our vocabulary; the texts joined by a
             special token into about 1 MB per call, `BPETokenizer.encode_joined`), cut and write the token
             shards (zstd Parquet, list<uint16>). Peers, on the same texts:
               bare tiktoken   `encode_ordinary(text)` per document, the same Encoding (lists of ints), and
                               `encode_to_numpy(text)` per document (arrays); the texts are fresh str objects
                               each round, as a reader hands them over (CPython caches a str's UTF-8 form on
                               the first encode: re-encoding the same objects would skip that conversion).
                               Nothing read, nothing written: the ratio against it is what our whole stage
                               costs over the encoder itself.
               tiktoken batch  `encode_ordinary_batch` (its thread pool, 8 threads): CPU and wall.
               tokenizers      `encode_batch` loading our tokenizer.json (same ids, checked below).
             The bench first splits ours into its parts (CPU seconds in each: tiktoken's encode calls, Parquet
             read, Parquet write, our own code), so that our code's share is printed first.
  training   ours = `tokenizer.train_bpe`, which runs **rustbpe** (Rust) to learn the merges, vs Hugging Face
             tokenizers' `BpeTrainer`: same text, same vocabulary size, same split regex, byte-level alphabet.
             The ratio compares rustbpe (+ our cleaning and rank export) with BpeTrainer, not our own BPE code.
  compression bytes per token on held-back text: our tokenizer vs the one BpeTrainer learned.
  token files one pass of the corpus's ids written our way (BYTE_STREAM_SPLIT) vs pyarrow's default dictionary:
             CPU per write and bytes, both read back.
It also checks that tokenizers (loading our tokenizer.json) gives our ids on every held-back document.

All times are CPU seconds of this process (user + system, every thread; with --threads 1 that is one core).
Sides take turns within each of --repeat rounds; a RATIO is ours / peer as a speed (> 1: ours is faster), the
median over rounds of that round's ratio (each round's sides ran seconds apart, under the same load); the
load average is printed.

    python bench/bench_tokenizer.py                      # fixtures corpus (~1 MB real text), vocab 8192
    python bench/bench_tokenizer.py --corpus a.parquet --corpus b.jsonl --vocab-size 32000 --repeat 15

Corpus files: .parquet (a `text` column), .jsonl (objects with "text"), .json (ground-truth.json style
{id: {"articleBody": ...}}) or plain text (one document per blank-line-separated block).
"""

from __future__ import annotations

import argparse
import functools
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


def paired_rounds(repeat: int, fns: dict, before=None) -> dict:
    """CPU times of each function over `repeat` rounds, the functions taking turns within each round
    (`before()` runs untimed before each call): {name: [seconds per round]}, {name: last result}."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    results = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            if before:
                before()
            t0 = time.process_time()
            results[name] = fn()
            times[name].append(time.process_time() - t0)
    return times, results


def paired_ratio(peer: list[float], ours: list[float]) -> float:
    """Median over rounds of peer time / our time (> 1: ours is faster)."""
    return statistics.median(p / o for p, o in zip(peer, ours))


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
        column = pa.array(docs, pa.string())
        storage, docs_uri = Storage(), str(tmp / "docs.parquet")
        storage.write_table(docs_uri, pa.table({"id": ids, "text": docs}))
        settings = {"val_fraction": 0.005, "max_doc_chars": 10**9, "shard_tokens": 100_000_000}
        shards = TokenSetDir(str(tmp / "shards"), storage)
        fresh: dict = {}

        def new_texts():  # the peers' input: new str objects each round, as a Parquet reader gives them
            fresh["texts"] = column.to_pylist()

        def ours_end_to_end():  # the tokenize stage's unit of work: read the docs file, encode, write shards
            return encode_part(docs_uri, "bench", ours, settings, shards)["tokens"]

        def tiktoken_encode():
            return sum(len(tk.encode_ordinary(t)) for t in fresh["texts"])

        def tiktoken_numpy():
            return sum(len(tk.encode_to_numpy(t)) for t in fresh["texts"])

        def tiktoken_batch():
            return sum(len(x) for x in tk.encode_ordinary_batch(fresh["texts"]))

        def hf_encode():
            return sum(len(e.ids) for e in hf_ours.encode_batch(fresh["texts"], add_special_tokens=False))

        # our code's share: the same unit of work with its parts timed (tiktoken's calls, Parquet read and
        # write); the rest is our own Python and Arrow code
        parts = {"tiktoken": 0.0, "read": 0.0, "write": 0.0}

        def timed(name, fn):
            @functools.wraps(fn)
            def wrapper(*a, **k):
                t0 = time.process_time()
                try:
                    return fn(*a, **k)
                finally:
                    parts[name] += time.process_time() - t0
            return wrapper

        ours.encoding.encode_to_numpy = timed("tiktoken", ours.encoding.encode_to_numpy)
        Storage.read_table, Storage.write_table = (timed("read", Storage.read_table),
                                                    timed("write", Storage.write_table))
        new_texts()
        tiktoken_encode(), ours_end_to_end()  # warm up
        share_rounds = []
        for _ in range(args.repeat):
            parts.update(dict.fromkeys(parts, 0.0))
            t0 = time.process_time()
            ours_end_to_end()
            share_rounds.append({"total": time.process_time() - t0, **parts})
        del ours.encoding.encode_to_numpy
        Storage.read_table, Storage.write_table = Storage.read_table.__wrapped__, Storage.write_table.__wrapped__
        share = {k: statistics.median(r[k] / r["total"] for r in share_rounds) for k in ("tiktoken", "read", "write")}
        load0 = os.getloadavg()[0]
        times, counts = paired_rounds(args.repeat, {"tk": tiktoken_encode, "tknp": tiktoken_numpy, "us": ours_end_to_end,
                                                    "hf": hf_encode}, before=new_texts)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        n_batch = tiktoken_batch()
        batch_wall, batch_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        load1 = os.getloadavg()[0]
        assert counts["us"] == counts["tk"] == counts["tknp"] == counts["hf"] == n_batch, counts
        med = {k: statistics.median(v) for k, v in times.items()}
        ours_share = 1 - share["tiktoken"] - share["read"] - share["write"]
        print(f"\nencoding {mb:.2f} MB of real text ({len(docs)} documents, {mb * 1e6 / len(docs):,.0f} bytes on "
              f"average, {args.encode_passes} passes over the corpus), our vocabulary; load average "
              f"{load0:.1f} -> {load1:.1f}")
        print(f"  where ours goes (median of {args.repeat} runs of encode_part): tiktoken's encoding "
              f"{share['tiktoken']:.1%}, Parquet write {share['write']:.1%}, Parquet read {share['read']:.1%}, "
              f"our own code {ours_share:.1%}")
        print(f"  ours end to end (read, encode, write)  {mb / med['us']:7.2f} MB/CPU-s   {counts['us']:,} tokens")
        print(f"  bare tiktoken encode_ordinary         {mb / med['tk']:7.2f} MB/CPU-s   (nothing read or written)")
        print(f"  bare tiktoken encode_to_numpy         {mb / med['tknp']:7.2f} MB/CPU-s")
        print(f"  tiktoken encode_ordinary_batch        {mb / batch_cpu:7.2f} MB/CPU-s, {mb / batch_wall:.2f} MB/s wall "
              f"(8 threads on {os.cpu_count()} cores; one run)")
        print(f"  tokenizers encode_batch               {mb / med['hf']:7.2f} MB/CPU-s")
        print(f"  RATIO ours end to end / bare tiktoken encode_ordinary = {paired_ratio(times['tk'], times['us']):.3f}"
              f"   (target >= 0.95)")
        print(f"  RATIO ours end to end / bare tiktoken encode_to_numpy = {paired_ratio(times['tknp'], times['us']):.3f}")
        print(f"  RATIO ours end to end / tokenizers encode_batch       = {paired_ratio(times['hf'], times['us']):.3f}")

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
        token_files(ours, texts, args.repeat)
    return 0


def token_files(tok, texts: list[str], repeat: int) -> None:
    """One pass of the corpus's ids (no text repeated) written as a token file our way (tokenizer/shards.py
    parquet_options) and with pyarrow's default dictionary, both zstd with our row groups: CPU per write (best
    of `repeat` x 3) and size, each read back and compared."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tokenizer.shards import ROW_GROUP_DOCS, parquet_options, tokens_table

    arrays = [np.asarray(tok.encode(t), dtype=tok.dtype) for t in texts]
    table = tokens_table([f"doc-{i}" for i in range(len(texts))], arrays, tok.dtype)
    sides = {"ours (BYTE_STREAM_SPLIT)": parquet_options(table.column_names), "pyarrow's default dictionary": {}}
    result = {}
    for name, options in sides.items():
        best = float("inf")
        for _ in range(3 * repeat):
            sink = pa.BufferOutputStream()
            t0 = time.process_time()
            pq.write_table(table, sink, compression="zstd", row_group_size=ROW_GROUP_DOCS, **options)
            best = min(best, time.process_time() - t0)
        data = sink.getvalue()
        assert pq.read_table(pa.BufferReader(data)).equals(table), name
        result[name] = (best, data.size)
    print(f"\ntoken files (one pass of the corpus: {sum(map(len, arrays)):,} ids, {tok.dtype}; zstd; best of "
          f"{3 * repeat}; both read back equal)")
    for name, (seconds, size) in result.items():
        print(f"  {name:30} write {1000 * seconds:6.2f} ms CPU   {size / 1e6:.3f} MB")
    (ours_s, ours_b), (peer_s, peer_b) = result.values()
    print(f"  RATIO write speed ours / default = {peer_s / ours_s:.2f}; size ours / default = {ours_b / peer_b:.3f}")


if __name__ == "__main__":
    sys.exit(main())
