"""The four quality filters, ours (crawlproc.quality, as crawlproc/extract/registry.py lists them) vs datatrove 0.10.1's, on the same documents in one run.

    python bench/bench_filters.py                  # 2,000 documents from the 181 gold article texts
    python bench/bench_filters.py --docs 10000     # bigger
    python bench/bench_filters.py --source some.json   # {id: {"articleBody" or "text": ...}}, a list of texts,
                                                       # or {"output": {id: {"articleBody": ...}}}
    python bench/bench_filters.py --profile        # plus a cProfile of ours (bench/out/filters-ours.prof)
    python bench/bench_filters.py --only heldout   # only the held-out texts (or --only in-sample)

Two inputs, each reported on its own:
- in-sample: the gold texts below, mutated (the text the word splitter was first checked against);
- held-out: the 2,250 real texts of tests/data/heldout (licence and documentation files of installed packages
  and of Debian, the text of the real WARCs, multilingual pages, sentences in 27 languages), unchanged, never
  tuned to; datatrove's stored decisions on them are what tests/test_heldout_agreement.py checks.

The documents are the real gold texts of tests/data/html/ground-truth.json (or tests/data/quality/texts.json),
each used as is or mutated with a seeded random strength so that every filter has work near its thresholds:
cut short, paragraphs or lines repeated, lines turned into bullets or cut at ellipses, one sentence per line,
short lines, boilerplate lines (javascript, cookie policy, citations), "lorem ipsum", curly brackets, hashes.

What runs: both sides in this process on the same texts, with FineWeb's thresholds. Ours: the four filters
of the default recipe (crawlproc.quality), which split a text into lines, paragraphs and words once (words by
spaCy's own English rules, chunk by chunk and remembered: crawlproc/quality/splitters.py) and compute every
statistic from that. datatrove 0.10.1: GopherRepetitionFilter(), GopherQualityFilter(),
C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter(), all English defaults; they tokenize
words with spaCy on each call, step by step. The same checks and the same words, so the same work asked.
Ours runs first in each pair of turns from a warm process: its table of chunks is per process, as on a worker.

Measured (CPU seconds of this process, so neighbours on a shared machine do not count), the median of --repeat
runs in which ours and datatrove take turns:
- pipeline: each document through Gopher repetition -> Gopher quality -> C4 -> FineWeb, stopping at the first
  removal, as in FineWeb's stage 1;
- each filter alone on every document: its speed and the agreement of its keep/remove decision (and of the
  reason) with datatrove's on the same input text.
Prints documents per CPU-second for both sides, the ratio (ours / datatrove: > 1 means we are faster) and the
agreements. Target (issue 2): >= 3x faster with >= 0.97 agreement per filter. Summary: bench/out/filters.json.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import OUT, cpu_seconds, ratio, write_json  # noqa: E402
from crawlproc.extract import registry  # noqa: E402
from crawlproc.doc import Doc  # noqa: E402
from crawlproc.recipe import Recipe  # noqa: E402

STAGES = [f.name for f in registry.FILTERS]
DEFAULT_SOURCES = [ROOT / "tests/data/html/ground-truth.json", ROOT / "tests/data/quality/texts.json"]


# --- documents ---------------------------------------------------------------------------------------------

def load_texts(path: Path | None) -> list[str]:
    paths = [path] if path else [p for p in DEFAULT_SOURCES if p.is_file()]
    if not paths:
        raise SystemExit("no source texts: pass --source")
    data = json.loads(paths[0].read_text(encoding="utf-8"))
    if isinstance(data, dict) and isinstance(data.get("output"), dict):  # the benchmark's extractor outputs
        data = data["output"]
    items = data if isinstance(data, list) else list(data.values())
    texts = [it if isinstance(it, str) else (it.get("articleBody") or it.get("text") or "") for it in items]
    return [t for t in texts if t.strip()]


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.replace("\n", " ")) if s]


def _cut_words(text, rng):
    words = text.split(" ")
    return " ".join(words[: rng.randint(20, 120)])


def _repeat_paragraphs(text, rng):
    paras = text.split("\n\n")
    k = rng.randint(1, max(1, len(paras) // 2))
    return "\n\n".join(paras + [rng.choice(paras) for _ in range(k)])


def _repeat_lines(text, rng):
    lines = [ln for ln in text.split("\n") if ln.strip()]
    k = rng.randint(1, max(1, len(lines) // 2))
    extra = [rng.choice(lines)[: rng.randint(10, 200)] for _ in range(k)]
    out = lines + extra
    rng.shuffle(out)
    return "\n".join(out)


def _bullets(text, rng):
    p = rng.random()
    return "\n".join(("- " if rng.random() < p else "") + s for s in _sentences(text))


def _ellipses(text, rng):
    p = rng.random() * 0.6
    return "\n".join(s.rstrip(".") + "..." if rng.random() < p else s for s in _sentences(text))


def _sentence_lines(text, rng):
    return "\n".join(_sentences(text))


def _short_lines(text, rng):
    words, lines, width = text.split(), [], rng.randint(15, 60)
    cur = ""
    for w in words:
        if len(cur) + len(w) + 1 > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    return "\n".join(lines + [cur])


_BOILERPLATE = [
    "Please enable JavaScript to view the comments.",
    "This site uses cookies to improve your experience.",
    "Read our privacy policy and terms of use.",
    "Share", "Tweet", "Related articles", "Advertisement",
    "Sign up for our newsletter.",
]


def _boilerplate(text, rng):
    lines = text.split("\n")
    for _ in range(rng.randint(1, 12)):
        lines.insert(rng.randint(0, len(lines)), rng.choice(_BOILERPLATE))
    return "\n".join(s + (" [1]" if rng.random() < 0.2 else "") for s in lines)


def _lorem(text, rng):
    lines = text.split("\n")
    lines.insert(rng.randint(0, len(lines)), "Lorem ipsum dolor sit amet, consectetur adipiscing elit.")
    return "\n".join(lines)


def _curly(text, rng):
    return text.replace(". ", ". {x} ", 1) if rng.random() < 0.5 else text + "\nvar x = {a: 1};"


def _hashes(text, rng):
    words = text.split(" ")
    p = rng.random() * 0.25
    return " ".join("#" + w if rng.random() < p else w for w in words)


def _numbers(text, rng):
    words = text.split(" ")
    p = rng.random() * 0.4
    return " ".join(str(rng.randint(0, 9999)) if rng.random() < p else w for w in words)


MUTATIONS = [None, None, None, _cut_words, _repeat_paragraphs, _repeat_lines, _bullets, _ellipses,
             _sentence_lines, _short_lines, _boilerplate, _lorem, _curly, _hashes, _numbers]


def make_docs(texts: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        text = texts[i % len(texts)]
        mutate = rng.choice(MUTATIONS)
        docs.append(mutate(text, rng) if mutate else text)
    return docs


# --- the two sides -----------------------------------------------------------------------------------------

def ours_filters():
    recipe = Recipe()
    return [(f.name, (lambda flt: (lambda doc: _ours(flt, doc)))(f(recipe.filters[f.name]))) for f in registry.FILTERS]


def _ours(flt, doc):
    """One filter as the extract stage runs it: on a Doc, whose words and lines the next filter reuses."""
    doc = doc if isinstance(doc, Doc) else Doc(text=doc)
    reason = flt.run(doc)
    return reason, doc


def peer_filters():
    try:
        from datatrove.data import Document
        from datatrove.pipeline.filters import (
            C4QualityFilter,
            FineWebQualityFilter,
            GopherQualityFilter,
            GopherRepetitionFilter,
        )
        from datatrove.utils.text import split_into_words
    except ImportError as e:
        raise SystemExit(f"datatrove is needed for the peer side ({e}); pip install -e '.[bench]' spacy") from None
    split_into_words("Warm up the spaCy tokenizer.")  # its load is a fixed cost, not per document
    filters = [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False),
               FineWebQualityFilter()]

    def wrap(f):
        def run(text):
            doc = Document(text=text, id="0")
            res = f.filter(doc)
            keep, reason = (res if isinstance(res, tuple) else (res, None))
            return (None if keep else (reason or "removed")), doc.text
        return run

    return [(name, wrap(f)) for name, f in zip(STAGES, filters)]


def run_pipeline(filters, docs) -> tuple[list[tuple[str | None, str | None]], float]:
    """Each document through the filters in order; returns (stage, reason) per document and CPU seconds."""
    out = []
    c0 = cpu_seconds()
    for text in docs:
        verdict = (None, None)
        for name, f in filters:
            reason, text = f(text)
            if reason is not None:
                verdict = (name, reason)
                break
        out.append(verdict)
    return out, cpu_seconds() - c0


def run_alone(f, docs) -> tuple[list[str | None], float]:
    c0 = cpu_seconds()
    reasons = [f(text)[0] for text in docs]
    return reasons, cpu_seconds() - c0


def taking_turns(repeat: int, ours_run, peer_run) -> tuple[tuple, tuple]:
    """Run ours and the peer alternately `repeat` times; each side's last result with its median CPU seconds."""
    runs: tuple[list, list] = ([], [])
    for _ in range(max(1, repeat)):
        for side, run in enumerate((ours_run, peer_run)):
            runs[side].append(run())
    return tuple((r[-1][0], statistics.median(x[1] for x in r)) for r in runs)


def heldout_texts() -> list[str]:
    import gzip

    texts = json.loads(gzip.decompress((ROOT / "tests/data/heldout/texts.json.gz").read_bytes()))
    return [t["text"] for _, t in sorted(texts.items())]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--source", type=Path, default=None)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--show", type=int, default=3, help="disagreements to print per filter")
    ap.add_argument("--repeat", type=int, default=3, help="runs per side, taking turns; the median is shown")
    ap.add_argument("--only", choices=["in-sample", "heldout"], default=None)
    args = ap.parse_args(argv)

    ours, peer = ours_filters(), peer_filters()
    summaries = {}
    if args.only != "heldout":
        docs = make_docs(load_texts(args.source), args.docs, args.seed)
        print("== in-sample: the ScrapingHub gold texts, mutated (generated from real text)")
        summaries["in_sample"] = compare(ours, peer, docs, args)
    if args.only != "in-sample":
        print("\n== held-out: tests/data/heldout, 2,250 real texts as they are (never tuned to)")
        summaries["heldout"] = compare(ours, peer, heldout_texts(), args)
    write_json(OUT / "filters.json", summaries)
    print(f"\nsummary: {OUT / 'filters.json'}")
    if args.profile:
        import cProfile

        prof = OUT / "filters-ours.prof"
        cProfile.runctx("run_pipeline(ours, docs)", globals(), {"ours": ours, "docs": docs}, str(prof))
        print(f"profile of ours: {prof}")
    return 0


def compare(ours, peer, docs, args) -> dict:
    n = len(docs)
    print(f"{n} documents, {sum(map(len, docs)) / n:,.0f} characters on average")

    summary: dict = {"docs": n, "seed": args.seed, "filters": {}, "chars_per_doc": sum(map(len, docs)) / n}
    t0 = time.perf_counter()
    (ours_pipe, ours_s), (peer_pipe, peer_s) = taking_turns(
        args.repeat, lambda: run_pipeline(ours, docs), lambda: run_pipeline(peer, docs))
    kept_o = {i for i, v in enumerate(ours_pipe) if v[0] is None}
    kept_p = {i for i, v in enumerate(peer_pipe) if v[0] is None}
    jaccard = len(kept_o & kept_p) / max(1, len(kept_o | kept_p))
    same = sum(a == b for a, b in zip(ours_pipe, peer_pipe)) / n
    summary["pipeline"] = {"ours_docs_per_s": n / ours_s, "peer_docs_per_s": n / peer_s,
                           "ratio": ratio(n / ours_s, n / peer_s), "kept_ours": len(kept_o),
                           "kept_peer": len(kept_p), "kept_jaccard": jaccard, "same_stage_and_reason": same}

    print(f"\ndocuments per CPU-second, median of {args.repeat}; ratio = ours / datatrove (> 1: ours faster)")
    print(f"{'':18} {'ours':>12} {'datatrove':>10} {'ratio':>7} {'agree':>7} {'reason':>7} "
          f"{'kept o/p':>11}")
    p = summary["pipeline"]
    print(f"{'pipeline (4)':18} {p['ours_docs_per_s']:12,.0f} {p['peer_docs_per_s']:10,.0f} {p['ratio']:7.2f} "
          f"{jaccard:7.3f} {same:7.3f} {len(kept_o):5}/{len(kept_p):<5}   (agree = Jaccard of kept sets)")
    disagreements = {}
    for (name, fo), (_, fp) in zip(ours, peer):
        (ro, so), (rp, sp) = taking_turns(
            args.repeat, lambda fo=fo: run_alone(fo, docs), lambda fp=fp: run_alone(fp, docs))
        agree = sum((a is None) == (b is None) for a, b in zip(ro, rp)) / n
        reason = sum(a == b for a, b in zip(ro, rp)) / n
        summary["filters"][name] = {"ours_docs_per_s": n / so, "peer_docs_per_s": n / sp,
                                    "ratio": ratio(n / so, n / sp), "decision_agreement": agree,
                                    "reason_agreement": reason, "removed_ours": sum(a is not None for a in ro),
                                    "removed_peer": sum(b is not None for b in rp)}
        f = summary["filters"][name]
        print(f"{name:18} {n / so:12,.0f} {n / sp:10,.0f} {f['ratio']:7.2f} {agree:7.3f} {reason:7.3f} "
              f"{n - f['removed_ours']:5}/{n - f['removed_peer']:<5}")
        disagreements[name] = [(i, a, b) for i, (a, b) in enumerate(zip(ro, rp)) if (a is None) != (b is None)]
    summary["wall_s"] = time.perf_counter() - t0
    for name, rows in disagreements.items():
        for i, a, b in rows[: args.show]:
            print(f"  {name} doc {i}: ours {a or 'keep'} / datatrove {b or 'keep'}: {docs[i][:90]!r}")
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
