"""FineWeb-2's quality filters per language, crawlproc vs datatrove 0.10.1, on the same real text in one run.

    python bench/bench_languages.py                    # 24 languages, ~80 documents each
    python bench/bench_languages.py --langs zh ja ar --docs 200

Input (real text, grouped): for each language, documents made of consecutive real sentences of
tests/data/sentences/<lang>.txt.gz (1,000 web sentences a language, Leipzig corpora via lingua-py): 3 to 80
sentences a document, one a line or several a paragraph; a third of them then changed the way pages go wrong
(lines repeated, a run of lines duplicated, bullets, cut to a few sentences, hashes or ellipses), seeded, so that
every filter has decisions near its thresholds. Plus, where the language has them, the real pages of
tests/data/heldout (trafilatura's text of tests/data/html_multilingual and of the real WARCs), by lid.176 label.

Both sides judge each document in its language (given, not identified: the filters are compared, not the LID):
- datatrove: FineWeb-2's filtering step (huggingface/fineweb-2, fineweb-2-pipeline.py, step 5):
  GopherRepetitionFilter(language, dup_para_frac=0, dup_line_char_frac=0, dup_para_char_frac=0, dup_line_frac,
  top_n_grams, dup_n_grams), FineWebQualityFilter(language, short_line_thr=999, char_duplicates_ratio=0.1,
  line_punct_thr, new_line_ratio), GopherQualityFilter(language, min/max_avg_word_length, stop_words,
  max_non_alpha_words_ratio, min_stop_words=2), with the values of configs/<lang>_<script>.yml, and datatrove's
  word tokenizer for the language (tokenizer_assignment.csv). English has no FineWeb-2 file: FineWeb's four
  filters, as in bench_filters.py. Korean: datatrove asks Kiwi for its "sbg" model, which kiwipiepy_model 0.24 no
  longer ships; both sides use Kiwi's shipped model.
- crawlproc: the default recipe's filters (language.thresholds = "fineweb2"), each document's `language` set.

Prints per language: documents, kept by each side, the kept-set Jaccard (target >= 0.98), documents per
CPU-second of each side (the splitters and models loaded first, on both sides) and the ratio ours / datatrove
(> 1: ours faster; target >= 3). Summary: bench/out/languages.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import OUT, ratio, write_json  # noqa: E402
from crawlproc.doc import Doc  # noqa: E402
from crawlproc.extract import registry  # noqa: E402
from crawlproc.quality import langcodes, langsettings, splitters  # noqa: E402
from crawlproc.quality.filter import PerLanguage  # noqa: E402
from crawlproc.recipe import Recipe  # noqa: E402

DATA = ROOT / "tests" / "data"
LANGS = ["en", "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "uk", "tr", "vi", "id", "zh", "ja", "ko", "ar",
         "fa", "he", "hi", "bn", "ur", "ta", "th"]


# --- documents ---------------------------------------------------------------------------------------------

def _repeat_lines(lines, rng):
    k = rng.randint(1, max(1, len(lines) // 2))
    out = lines + [rng.choice(lines) for _ in range(k)]
    rng.shuffle(out)
    return out


def _duplicate_run(lines, rng):
    i = rng.randrange(len(lines))
    return lines + lines[i:i + rng.randint(2, 8)]


def _bullets(lines, rng):
    p = rng.random()
    return [("- " if rng.random() < p else "") + s for s in lines]


def _cut(lines, rng):
    return lines[: rng.randint(1, 4)]


def _hashes(lines, rng):
    return [" ".join("#" + w if rng.random() < 0.15 else w for w in s.split(" ")) for s in lines]


def _ellipses(lines, rng):
    p = rng.random() * 0.6
    return [s.rstrip("。.!?！？") + "..." if rng.random() < p else s for s in lines]


MUTATIONS = [_repeat_lines, _duplicate_run, _bullets, _cut, _hashes, _ellipses]


def sentence_docs(lang: str, n: int, seed: int) -> list[str]:
    lines = gzip.decompress((DATA / "sentences" / f"{lang}.txt.gz").read_bytes()).decode("utf-8").splitlines()
    rng = random.Random(f"{seed}:{lang}")
    docs = []
    for _ in range(n):
        start, size = rng.randrange(len(lines)), rng.randint(3, 80)
        chosen = [lines[(start + i) % len(lines)] for i in range(size)]
        if rng.random() < 1 / 3:
            chosen = rng.choice(MUTATIONS)(chosen, rng)
        if rng.random() < 0.5:  # paragraphs of a few sentences
            sep = "" if lang in ("zh", "ja", "th") else " "
            groups = [chosen[i:i + rng.randint(2, 5)] for i in range(0, len(chosen), 5)]
            docs.append("\n\n".join(sep.join(g) for g in groups))
        else:
            docs.append("\n".join(chosen))
    return docs


def page_docs() -> dict[str, list[str]]:
    """Real pages of tests/data/heldout by lid.176 label (code as lingua names it)."""
    from crawlproc.extract.language import LanguageIdentifier
    from crawlproc.recipe import LanguageConfig

    texts = json.loads(gzip.decompress((DATA / "heldout" / "texts.json.gz").read_bytes()))
    lid = LanguageIdentifier(LanguageConfig(keep=[]))
    out: dict[str, list[str]] = defaultdict(list)
    for t in texts.values():
        if t["source"] in ("html-multilingual", "warc"):
            code, score = lid.predict(t["text"])
            if score > 0.65:
                out[code].append(t["text"])
    return out


# --- the two sides -----------------------------------------------------------------------------------------

def ours_chain(recipe: Recipe):
    steps = [PerLanguage(f, recipe.filters[f.name], recipe.language.thresholds) for f in registry.FILTERS]

    def run(text: str, ls: str):
        doc = Doc(text=text)
        doc.language = ls
        for step in steps:
            reason = step.run(doc)
            if reason is not None:
                return step.name, reason
        return None

    return run


def peer_chain(ls: str):
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    cfg = langsettings.fineweb2_config(ls)
    if cfg is None:  # English: FineWeb's filters
        filters = [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False),
                   FineWebQualityFilter()]
    else:
        filters = [
            GopherRepetitionFilter(language=ls, dup_para_frac=0, dup_line_char_frac=0, dup_para_char_frac=0,
                                   dup_line_frac=cfg["dup_line_frac"], top_n_grams=cfg["top_n_grams"],
                                   dup_n_grams=cfg["dup_n_grams"]),
            FineWebQualityFilter(language=ls, short_line_thr=999, char_duplicates_ratio=0.1,
                                 line_punct_thr=cfg["line_punct_thr"], new_line_ratio=cfg["new_line_ratio"]),
            GopherQualityFilter(language=ls, max_avg_word_length=cfg["max_avg_word_length"],
                                min_avg_word_length=cfg["min_avg_word_length"], stop_words=cfg["stopwords"],
                                max_non_alpha_words_ratio=cfg["max_non_alpha_words_ratio"], min_stop_words=2),
        ]

    def run(text: str, ls_: str):
        doc = Document(text=text, id="0")
        for f in filters:
            res = f.filter(doc)
            keep, reason = res if isinstance(res, tuple) else (res, None)
            if not keep:
                return f.name, reason
        return None

    return run


def _patch_kiwi():
    """datatrove's KiwiTokenizer asks for the "sbg" model, absent from kiwipiepy_model 0.24: the shipped one."""
    from datatrove.utils.word_tokenizers import KiwiTokenizer

    def tokenizer(self):
        if self._tokenizer is None:
            from kiwipiepy import Kiwi

            self._tokenizer = Kiwi()
        return self._tokenizer

    KiwiTokenizer.tokenizer = property(tokenizer)


def timed(run, docs, ls, repeat):
    times, out = [], None
    for _ in range(repeat):
        c0 = time.process_time()
        out = [run(d, ls) for d in docs]
        times.append(time.process_time() - c0)
    return out, statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--langs", nargs="*", default=LANGS)
    ap.add_argument("--docs", type=int, default=80, help="sentence documents per language")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per side; the median is shown")
    args = ap.parse_args(argv)

    _patch_kiwi()
    pages = page_docs()
    ours = ours_chain(Recipe())
    rows = []
    print(f"{'lang':10} {'splitter':10} {'docs':>5} {'kept o/p':>9} {'jaccard':>8} {'ours/s':>8} {'dt/s':>7} "
          f"{'ratio':>6}")
    for lang in args.langs:
        ls = langcodes.normalize(lang)
        docs = sentence_docs(lang, args.docs, args.seed) + pages.get(lang, [])
        peer = peer_chain(ls)
        for d in docs[:3]:  # load models and dictionaries on both sides before timing
            ours(d, ls)
            peer(d, ls)
        (mine, s_ours), (theirs, s_peer) = timed(ours, docs, ls, args.repeat), timed(peer, docs, ls, args.repeat)
        kept_o = {i for i, v in enumerate(mine) if v is None}
        kept_p = {i for i, v in enumerate(theirs) if v is None}
        jac = len(kept_o & kept_p) / len(kept_o | kept_p) if kept_o | kept_p else 1.0
        n = len(docs)
        row = {"lang": ls, "splitter": splitters.splitter_for(ls).kind, "docs": n, "pages": len(pages.get(lang, [])),
               "kept_ours": len(kept_o), "kept_peer": len(kept_p), "kept_jaccard": jac,
               "ours_docs_per_cpu_s": n / s_ours, "peer_docs_per_cpu_s": n / s_peer,
               "ratio": ratio(n / s_ours, n / s_peer),
               "chars_per_doc": sum(map(len, docs)) / n,
               "disagree": [(i, mine[i], theirs[i], docs[i][:80]) for i in sorted(kept_o ^ kept_p)][:5]}
        rows.append(row)
        print(f"{ls:10} {row['splitter']:10} {n:5} {len(kept_o):4}/{len(kept_p):<4} {jac:8.3f} "
              f"{row['ours_docs_per_cpu_s']:8.0f} {row['peer_docs_per_cpu_s']:7.0f} {row['ratio']:6.2f}")
        for i, a, b, t in row["disagree"][:2]:
            print(f"    doc {i}: ours {a} / datatrove {b}: {t!r}")
    jac = [r["kept_jaccard"] for r in rows]
    rat = [r["ratio"] for r in rows]
    print(f"\n{len(rows)} languages: kept-set Jaccard min {min(jac):.3f}, median {statistics.median(jac):.3f}; "
          f"speed ratio min {min(rat):.2f}, median {statistics.median(rat):.2f}")
    print("fallback splitters:", splitters.fallbacks() or "none")
    write_json(OUT / "languages.json", {"seed": args.seed, "docs": args.docs, "languages": rows})
    print(f"summary: {OUT / 'languages.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
