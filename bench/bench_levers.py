"""trafilatura as it ships vs crawlproc's accelerated call, lever by lever, on real pages: CPU time and whether
the text is the same.

    python bench/bench_levers.py                         # every real page in tests/data, 3 rounds
    python bench/bench_levers.py --pages-dir DIR ...     # also every *.html / *.html.gz under DIR
    python bench/bench_levers.py --rounds 5 --levers all,selections,all+one_pass
    python bench/bench_levers.py --justext               # jusText's step alone: stock vs the paragraph levers

What runs, on the same pages, each configuration in a fresh interpreter, rounds interleaved (the order
alternates): `trafilatura.extract(html, url=url, favor_precision=True, include_comments=False,
include_tables=True, deduplicate=False, output_format="txt")` -- FineWeb's call, datatrove's Trafilatura step --
as it ships ("stock"), and through `crawlproc.extract.accelerate.Accelerator` with one lever, or all of them.
Timed: the CPU seconds of the extraction loop only (parsing included, reading the pages not), after one
untimed pass over the first pages. Reported: ms per page per configuration (median over rounds), the ratio
stock / configuration (> 1: faster), and for each configuration the pages whose text differs from stock's
(it must be 0) and the mean and minimum per-page token Jaccard. Pages: the ScrapingHub articles
(tests/data/html), the multilingual pages (tests/data/html_multilingual) and the HTML responses of the real
WARC files (tests/data/warc), all real; `--pages-dir` adds more.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pickle
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import OUT, ROOT, run_isolated, write_json

DATA = ROOT / "tests" / "data"
CALL = {"favor_precision": True, "include_comments": False, "include_tables": True, "output_format": "txt"}


def real_pages(extra_dirs: list[Path]) -> list[tuple[str, str | None, str]]:
    """(name, url, html) of every real page: tests/data's pages and WARC responses, then the extra folders."""
    from crawlproc.warc.charset import UndecodableError, decode_html
    from crawlproc.warc.reader import ReadCounts, iter_html_records

    pages = []

    def add_file(name: str, path: Path) -> None:
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        try:
            pages.append((name, None, decode_html(data, None)[0]))
        except UndecodableError:
            pass

    for folder in (DATA / "html" / "html", DATA / "html_multilingual"):
        for p in sorted(folder.glob("*.html.gz")):
            add_file(f"{folder.name}/{p.name}", p)
    for p in sorted((DATA / "warc").glob("*.warc.gz")):
        if p.name.endswith((".wet.gz", ".wat.gz")):
            continue
        for rec in iter_html_records(p, ReadCounts()):
            try:
                pages.append((f"warc/{p.name}@{rec.offset}", rec.url, decode_html(rec.payload, rec.content_type)[0]))
            except UndecodableError:
                pass
    for d in extra_dirs:
        for p in sorted(d.rglob("*")):
            if p.is_file() and p.name.endswith((".html", ".htm", ".html.gz", ".htm.gz")):
                add_file(f"{d.name}/{p.relative_to(d)}", p)
    return pages


def worker(config: str, pages_file: Path, result: Path) -> None:
    pages = pickle.loads(pages_file.read_bytes())
    import trafilatura
    from trafilatura import external

    external.JT_STOPLIST = external.jt_stoplist_init()  # both sides: built once, outside the timing
    if config == "stock":
        def run(html, url):
            return trafilatura.extract(html, url=url, deduplicate=False, **CALL)
    else:
        from crawlproc.extract.accelerate import LEVERS, Accelerator

        levers = tuple(dict.fromkeys(lv for part in config.split("+")
                                     for lv in (LEVERS if part == "all" else (part,))))
        acc = Accelerator(levers=levers, **CALL)
        if acc.levers != levers:
            raise SystemExit(f"levers {levers} are not all available: {acc.levers}")

        def run(html, url):
            return acc.extract(html, url, deduplicate=False)
    for _name, url, html in pages[:10]:
        run(html, url)
    out = []
    t0 = time.process_time()
    for _name, url, html in pages:
        out.append(run(html, url) or "")
    cpu = time.process_time() - t0
    result.write_text(json.dumps({"cpu_s": cpu, "texts": out}))


def justext_step(pages, rounds: int) -> int:
    """trafilatura's jusText step (`external.try_justext`, what its rescue runs) on the tree trafilatura hands it
    (basic_cleaning of the cleaned tree) of every real page, with jusText's ParagraphMaker as it ships and with
    the lean ones of the paragraph levers: CPU ms per page, rounds interleaved, and whether every page's
    result (the text of each kept paragraph) is the same."""
    import copy

    from justext.core import ParagraphMaker
    from lxml import etree
    from trafilatura import external, utils
    from trafilatura.baseline import basic_cleaning
    from trafilatura.htmlprocessing import tree_cleaning
    from trafilatura.settings import Extractor as Options

    from crawlproc.extract.accelerate import HashedStopList, _lean_paragraph_maker

    opts = Options(precision=True, comments=False)
    trees = [basic_cleaning(tree_cleaning(copy.copy(t), opts))
             for t in (utils.load_html(html) for _n, _u, html in pages) if t is not None]
    external.JT_STOPLIST = HashedStopList(external.jt_stoplist_init())  # both sides: hashed once, untimed
    makers = {"stock": ParagraphMaker,
              "paragraph_events": _lean_paragraph_maker(ParagraphMaker, events=True, objects=False),
              "lean_paragraphs": _lean_paragraph_maker(ParagraphMaker, events=False, objects=True),
              "both": _lean_paragraph_maker(ParagraphMaker, events=True, objects=True)}
    times: dict[str, list[float]] = {k: [] for k in makers}
    results: dict[str, list[bytes]] = {}
    try:
        for _ in range(rounds):
            for name, maker in makers.items():
                external.ParagraphMaker = maker
                t0 = time.process_time()
                out = [external.try_justext(t, None, None) for t in trees]
                times[name].append(time.process_time() - t0)
                results.setdefault(name, [etree.tostring(b, encoding="utf-8") for b in out])
    finally:
        external.ParagraphMaker = ParagraphMaker
    stock_ms = 1000 * statistics.median(times["stock"]) / len(trees)
    print(f"jusText step on {len(trees)} real pages' trees, CPU ms per page (median of {rounds} rounds)")
    for name in makers:
        ms = 1000 * statistics.median(times[name]) / len(trees)
        same = sum(a == b for a, b in zip(results[name], results["stock"]))
        print(f"  {name:18}{ms:8.2f}   stock/this {stock_ms / ms:6.2f}   same result {same}/{len(trees)}")
    return 0


def token_jaccard(a: str, b: str) -> float:
    sa, sb = set(a.split()), set(b.split())
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages-dir", type=Path, action="append", default=[],
                    help="a folder of further real pages (*.html, *.html.gz; recursive)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--levers", default="all,selections,element_lookup,raw_tree_copy,options",
                    help="configurations beside stock, comma-separated: a lever name, all (the default levers), or "
                    "levers joined by + (all+one_pass)")
    ap.add_argument("--justext", action="store_true", help="time jusText's step alone (stock vs the paragraph levers)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--pages", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("result", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.pages, args.result)
        return 0

    pages = real_pages(args.pages_dir)
    if args.justext:
        return justext_step(pages, args.rounds)
    OUT.mkdir(parents=True, exist_ok=True)
    pages_file = OUT / "levers-pages.pkl"
    pages_file.write_bytes(pickle.dumps(pages))
    configs = ["stock", *args.levers.split(",")]
    print(f"{len(pages)} real pages ({sum(len(h) for _, _, h in pages) / len(pages) / 1000:.0f} K characters "
          f"on average); configurations: {', '.join(configs)}; {args.rounds} rounds", flush=True)
    times: dict[str, list[float]] = {c: [] for c in configs}
    texts: dict[str, list[str]] = {}
    loads = [round(os.getloadavg()[0], 2)]
    for k in range(args.rounds):
        for c in (configs if k % 2 == 0 else configs[::-1]):
            res = run_isolated([__file__, "--worker", c, "--pages", str(pages_file), str(OUT / "levers-result.json")],
                               OUT / "logs" / f"levers-{c}.log")
            times[c].append(res["cpu_s"])
            texts.setdefault(c, res["texts"])
            print(f"  round {k + 1} {c}: {1000 * res['cpu_s'] / len(pages):.2f} ms/page", flush=True)
        loads.append(round(os.getloadavg()[0], 2))
    stock_ms = 1000 * statistics.median(times["stock"]) / len(pages)
    rows = {}
    print(f"\n{'configuration':18}{'ms/page':>10}{'stock/this':>12}{'pages differing':>17}{'mean Jaccard':>14}"
          f"{'min Jaccard':>13}")
    for c in configs:
        ms = 1000 * statistics.median(times[c]) / len(pages)
        diff = [i for i, (a, b) in enumerate(zip(texts[c], texts["stock"])) if a != b]
        jac = [token_jaccard(a, b) for a, b in zip(texts[c], texts["stock"])]
        rows[c] = {"ms_per_page": round(ms, 3), "ratio": round(stock_ms / ms, 3), "differing": len(diff),
                   "differing_pages": [pages[i][0] for i in diff][:20], "mean_jaccard": round(statistics.mean(jac), 5),
                   "min_jaccard": round(min(jac), 5), "rounds_cpu_s": [round(t, 3) for t in times[c]]}
        print(f"{c:18}{ms:>10.2f}{stock_ms / ms:>12.3f}{len(diff):>17}{rows[c]['mean_jaccard']:>14.5f}"
              f"{rows[c]['min_jaccard']:>13.5f}")
    print(f"load average (1 min) before and after each round: {loads}")
    write_json(OUT / "levers.json", {"pages": len(pages), "rounds": args.rounds, "load_average": loads,
                                     "configurations": rows})
    print(f"summary: {OUT / 'levers.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
