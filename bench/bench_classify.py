"""The classifiers: our fastText step against datatrove's FastTextClassifierFilter, and the transformers step.

    python bench/bench_classify.py                          # 10,000 documents, 64 for transformers
    python bench/bench_classify.py --docs 50000 --transformers-docs 64
    python bench/bench_classify.py --skip-transformers      # the fastText comparison only
    python bench/bench_classify.py --batch-sweep 1,4,16,64  # the transformers scorer at other batch sizes too

Documents: the real pages of tests/data/html (articles, and their link lists and navigation/footer text, as
tests/classify_data.py builds them), repeated with a seeded window of paragraphs and dropped sentences so
that no two are equal. The model: a fastText classifier trained on them by our trainer (default parameters,
model.bin), the same file for both sides. Neither side downloads anything.

fastText, each side in a fresh interpreter, timed in two phases on the same documents (held in memory):
- load: ours `FastTextClassifier(...).prepare()` (reads the model, hashes its content, checks the label);
  the peer's `FastTextClassifierFilter(model, keep_labels=("hq", t), newline_replacement=" ").model` (its
  local-asset cache copy was made by an untimed warm-up run).
- predict + threshold: ours `classifier.score(texts)` (one call into fastText per 4,096 documents) then
  `Rule.keeps(scores)`; the peer `filter(doc)` per document (one predict(k=-1) call each, labels saved in
  the metadata as by default, the keep decision).
Throughput is documents per CPU-second of each phase; the ratio is ours / peer (> 1: ours faster). Also
printed: whether both sides keep the same documents, and the largest score difference.

transformers: a BERT-base-sized regression model (12 layers, hidden 768, window 512, ~86M parameters
without the embeddings) with random weights and a WordPiece tokenizer trained on the fixture texts, built
locally (bench/out/classify/bert-base-random, reused). `TransformersScorer` in this process, one torch thread:
documents per CPU-second (= per core) with the batch size it chooses, against the same batches unsorted
(what length sorting saves in padding); with a GPU, documents per second on it and the batch size chosen
(the largest power of two whose full-window batch fits). No peer: datatrove has no transformers scorer.
JSON summary: bench/out/classify.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import OUT, ROOT, measured, ratio, run_isolated, write_json  # noqa: E402
from crawlproc.classify.fasttext import PREDICT_BATCH  # noqa: E402

WORK = OUT / "classify"
THRESHOLD = 0.5


def corpus(n: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """(documents, positives, negatives): n documents made from the fixture pages."""
    from classify_data import pages

    ps = pages(ROOT / "tests" / "data")
    pos = [p.article for p in ps]
    neg = [t for p in ps for t in p.negatives]
    rng = random.Random(seed)
    base = pos + neg
    docs = []
    for i in range(n):
        parts = base[i % len(base)].split("\n")
        start = rng.randrange(max(1, len(parts) // 4))
        window = parts[start:start + max(1, int(len(parts) * rng.uniform(0.6, 1.0)))]
        docs.append("\n".join(line for line in window if rng.random() > 0.1) or parts[0])
    return docs, pos, neg


def prepare(n: int) -> tuple[Path, Path]:
    from crawlproc.classify.train import train_classifier

    WORK.mkdir(parents=True, exist_ok=True)
    docs, pos, neg = corpus(n)
    docs_path = WORK / f"docs-{n}.json"
    docs_path.write_text(json.dumps(docs))
    model = WORK / "fasttext" / "model.bin"
    if not model.is_file():
        train_classifier(pos, neg, [], str(model.parent), log=lambda m: print(m, file=sys.stderr))
    return docs_path, model


# --------------------------------------------------------------- workers (each in a fresh interpreter)


def run_ours(docs_path: Path, model: Path) -> dict:
    from crawlproc.classify.apply import KeepRule
    from crawlproc.classify.fasttext import FastTextClassifier, FastTextConfig

    texts = json.loads(docs_path.read_text())
    load, predict = {}, {}
    with measured(load):
        c = FastTextClassifier("quality", FastTextConfig(model=str(model), label="hq", threshold=THRESHOLD))
        c.prepare()
        c.model()
    with measured(predict):
        scores = c.score(texts)
        keep = KeepRule("quality", c.column, True, THRESHOLD).keeps(scores)
    # our code's share: the same fastText model called bare, in our batches and one document at a time
    from crawlproc.classify.fasttext import PREDICT_BATCH, fasttext_line

    lines = [fasttext_line(t) for t in texts if t and not t.isspace()]
    model, bare_batch, bare_single = c.model(), {}, {}
    with measured(bare_batch):
        for start in range(0, len(lines), PREDICT_BATCH):
            model.predict(lines[start:start + PREDICT_BATCH], k=-1, on_unicode_error="replace")
    with measured(bare_single):
        for line in lines:
            model.predict(line, k=-1, on_unicode_error="replace")
    return {"load": load, "predict": predict, "bare_batch": bare_batch, "bare_single": bare_single,
            "keep": keep.tolist(), "scores": scores.tolist()}


def _peer_filter(model: Path):
    import datatrove.pipeline.base as dt_base
    from datatrove.pipeline.filters import FastTextClassifierFilter

    check = dt_base.check_required_dependencies  # it wants `fasttext-numpy2-wheel`; ours installs the same module
    dt_base.check_required_dependencies = lambda *a, **k: None
    try:
        return FastTextClassifierFilter(str(model), keep_labels=("hq", THRESHOLD), newline_replacement=" ")
    finally:
        dt_base.check_required_dependencies = check


def run_peer(docs_path: Path, model: Path) -> dict:
    from datatrove.data import Document

    texts = json.loads(docs_path.read_text())
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    load, predict = {}, {}
    with measured(load):
        f = _peer_filter(model)
        f.model  # noqa: B018 -- loads it
    with measured(predict):
        keep = [bool(f.filter(d)) for d in docs]
    scores = [d.metadata.get("__label__hq") for d in docs]
    return {"load": load, "predict": predict, "keep": keep, "scores": scores}


# --------------------------------------------------------------- transformers


def bert_base(texts: list[str]) -> Path:
    folder = WORK / "bert-base-random"
    if (folder / "config.json").is_file():
        return folder
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=30_000, special_tokens=special))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[(t, tok.token_to_id(t)) for t in ("[CLS]", "[SEP]")])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=tok.get_vocab_size(), num_labels=1,
                                                     problem_type="regression"))
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def bench_transformers(n: int, sweep: list[int] = ()) -> dict:
    import numpy as np
    import torch

    from crawlproc.classify.hf import TransformersClassifier, TransformersConfig

    docs, pos, neg = corpus(n, seed=1)
    folder = bert_base(pos + neg)
    c = TransformersClassifier("edu", TransformersConfig(model=str(folder), threshold=3.0))
    c.prepare()
    out = {"model": str(folder), "documents": n}
    scorer = c.scorer("cpu")
    torch.set_num_threads(1)
    scorer.score(docs[:2])  # warm-up
    sorted_run, unsorted_run = {}, {}
    with measured(sorted_run):
        scores = scorer.score(docs)
    with measured(unsorted_run):  # the same batches in document order: each pads to its longest document
        cap = scorer.max_length * 100
        unsorted = []
        for s in range(0, n, scorer.batch_size):
            enc = scorer.tokenizer([t[:cap] for t in docs[s:s + scorer.batch_size]], truncation=True,
                                   max_length=scorer.max_length, padding=True, return_tensors="pt")
            unsorted.extend(scorer._forward(enc))
    out["cpu"] = {"batch_size": scorer.batch_size, "threads": 1,
                  "docs_per_cpu_s": n / sorted_run["cpu_s"], "docs_per_s": n / sorted_run["wall_s"],
                  "unsorted_docs_per_cpu_s": n / unsorted_run["cpu_s"],
                  "sorted_vs_unsorted": ratio(n / sorted_run["cpu_s"], n / unsorted_run["cpu_s"]),
                  "max_abs_diff_sorted_unsorted": float(np.max(np.abs(np.array(scores) - np.array(unsorted))))}
    for bs in sweep:  # docs per CPU-second at other batch sizes (length-sorted)
        c.cfg.batch_size = bs
        other, run = c.scorer("cpu"), {}
        other.score(docs[:2])
        with measured(run):
            other.score(docs)
        out["cpu"].setdefault("sweep", {})[bs] = n / run["cpu_s"]
    c.cfg.batch_size = 0
    if torch.cuda.is_available():
        gpu = c.scorer("cuda")
        gpu.score(docs[:gpu.batch_size])
        torch.cuda.synchronize()
        t = time.perf_counter()
        gpu.score(docs * max(1, 4096 // n))
        torch.cuda.synchronize()
        total = n * max(1, 4096 // n)
        out["gpu"] = {"device": torch.cuda.get_device_name(0), "batch_size": gpu.batch_size,
                      "docs_per_s": total / (time.perf_counter() - t)}
    return out


# --------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=10_000, help="documents for the fastText comparison")
    ap.add_argument("--transformers-docs", type=int, default=64, help="documents for the transformers figures")
    ap.add_argument("--skip-transformers", action="store_true")
    ap.add_argument("--batch-sweep", default="", metavar="1,4,16,64",
                    help="also measure the transformers scorer at these batch sizes (CPU)")
    ap.add_argument("--worker", choices=["ours", "datatrove"], help=argparse.SUPPRESS)
    ap.add_argument("--docs-path", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("result", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        fn = run_ours if args.worker == "ours" else run_peer
        write_json(args.result, fn(args.docs_path, args.model))
        return 0

    docs_path, model = prepare(args.docs)
    env = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    script = str(Path(__file__).resolve())

    def side(name: str) -> dict:
        return run_isolated([script, "--worker", name, "--docs-path", str(docs_path), "--model", str(model),
                             str(WORK / f"{name}.json")], WORK / f"{name}.log", env)

    side("datatrove")  # untimed: datatrove copies the model into its asset cache the first time
    ours, peer = side("ours"), side("datatrove")
    n = args.docs
    same = sum(a == b for a, b in zip(ours["keep"], peer["keep"]))
    diff = max(abs(a - b) for a, b in zip(ours["scores"], peer["scores"]) if a is not None and b is not None)
    summary = {"documents": n, "kept_ours": sum(ours["keep"]), "kept_peer": sum(peer["keep"]),
               "same_decision": same, "max_score_diff": diff}
    for phase in ("load", "predict"):
        o, p = ours[phase], peer[phase]
        summary[phase] = {"ours_cpu_s": o["cpu_s"], "peer_cpu_s": p["cpu_s"], "ours_wall_s": o["wall_s"],
                          "peer_wall_s": p["wall_s"], "ratio_per_cpu_s": ratio(1 / o["cpu_s"], 1 / p["cpu_s"])}
    o_tot = ours["load"]["cpu_s"] + ours["predict"]["cpu_s"]
    p_tot = peer["load"]["cpu_s"] + peer["predict"]["cpu_s"]
    summary["predict"]["ours_docs_per_cpu_s"] = n / ours["predict"]["cpu_s"]
    summary["predict"]["peer_docs_per_cpu_s"] = n / peer["predict"]["cpu_s"]
    summary["incl_load_ratio_per_cpu_s"] = ratio(n / o_tot, n / p_tot)
    bb, bs, op = ours["bare_batch"]["cpu_s"], ours["bare_single"]["cpu_s"], ours["predict"]["cpu_s"]
    summary["share"] = {"fasttext_batch_cpu_s": bb, "fasttext_single_cpu_s": bs,
                        "fasttext_share_of_ours": round(bb / op, 3), "batching_gain": ratio(1 / bb, 1 / bs)}
    print(f"fastText classifier, {n:,} documents, model {model} ({model.stat().st_size / 1e6:.0f} MB):")
    print(f"  where ours goes: fastText's own predict (bare, our batches of {PREDICT_BATCH:,}) {bb / op:.0%} of ours' predict + "
          f"threshold CPU; our own code (empty-text check, newline replacement, label lookup, threshold) "
          f"{max(0.0, 1 - bb / op):.0%}")
    print(f"  batching: the bare model, batches of {PREDICT_BATCH:,} vs one call per document: {ratio(1 / bb, 1 / bs):.2f}x per "
          f"CPU-s (datatrove calls it once per document)")
    print(f"  predict + threshold: ours {summary['predict']['ours_docs_per_cpu_s']:,.0f} docs/CPU-s, datatrove "
          f"{summary['predict']['peer_docs_per_cpu_s']:,.0f} docs/CPU-s: ratio {summary['predict']['ratio_per_cpu_s']}")
    print(f"  load: ours {ours['load']['cpu_s']:.2f} CPU-s, datatrove {peer['load']['cpu_s']:.2f} CPU-s; "
          f"including the load: ratio {summary['incl_load_ratio_per_cpu_s']}")
    print(f"  same keep decision on {same:,}/{n:,} documents (kept: ours {summary['kept_ours']:,}, datatrove "
          f"{summary['kept_peer']:,}); largest score difference {diff:.2g}")
    result = {"fasttext": summary}
    if not args.skip_transformers:
        t = bench_transformers(args.transformers_docs, [int(b) for b in args.batch_sweep.split(",") if b])
        cpu = t["cpu"]
        print(f"transformers (BERT-base size, random weights, window 512), {t['documents']} documents, CPU, one "
              f"thread: {cpu['docs_per_cpu_s']:.2f} docs/CPU-s (per core) at batch size {cpu['batch_size']}; "
              f"length-sorted vs unsorted batches: ratio {cpu['sorted_vs_unsorted']}")
        for bs, v in cpu.get("sweep", {}).items():
            print(f"  batch size {bs}: {v:.2f} docs/CPU-s")
        if "gpu" in t:
            print(f"  GPU {t['gpu']['device']}: {t['gpu']['docs_per_s']:,.0f} docs/s at batch size "
                  f"{t['gpu']['batch_size']} (chosen)")
        else:
            print("  no GPU here: the GPU figures (docs/s per GPU, batch size chosen) need a machine with one")
        result["transformers"] = t
    write_json(OUT / "classify.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
