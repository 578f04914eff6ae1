"""Per-document cost of crawlproc's URL filter, language ID and extractor vs datatrove 0.10.1's peers.

Both sides run in this process, alternating pass by pass, on the same inputs: the 181 ScrapingHub article pages
in tests/data/html (or --html-dir), their URLs plus the WARC fixtures' URLs, and the extracted texts. What runs:

- url filter: ours `UrlFilter(UrlFilterConfig())` (UT1 adult domains + URLs, FineWeb's banned/soft-banned word
  lists) vs datatrove `URLFilter()` (the same lists from its wheel); with --skip-url-lists both use the word
  lists only. "load lists" is the one-off cost of building each side's filter (wall).
- extract: ours `Extractor(ExtractConfig(timeout_s=30))` -- trafilatura favouring precision, tables kept,
  trafilatura's deduplication on -- vs datatrove `Trafilatura(favour_precision=True, include_tables=True,
  deduplicate=True, timeout=30)`: the same trafilatura call with the same options. "in-process" calls the
  extraction directly on both sides; "with time limit" adds each side's per-document limit (ours: a CPU-time
  timer in the process; datatrove: a sandbox child process fed over a pipe), in wall time since the peer's
  work happens in another process. "resiliparse vs peer" is our fast engine against the peer's trafilatura
  (different work: a speed reference only, not a like-for-like figure).
- language id: ours `LanguageIdentifier` predict + keep (en > 0.65) vs datatrove `LanguageFilter(["en"], 0.65)`
  .filter, both with the same local lid.176.ftz, on the extracted texts.

Prints ms per document for each side (CPU time of this process unless marked wall), the RATIO ours/peer as a
speed ratio (peer ms / ours ms: above 1.0 we are faster) and whether both sides agree on every decision.

    python bench/bench_components.py                 # a couple of minutes on 2 busy cores
    python bench/bench_components.py --repeat 5      # steadier figures
    python bench/bench_components.py --skip-url-lists  # do not load datatrove's 4.5M-domain Python set (~1 GB)

Needs the `bench` extra (datatrove[io]==0.10.1). datatrove's LanguageFilter is pointed at the local
lid.176.ftz and its tldextract at its bundled suffix snapshot: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crawlproc.warc.charset import decode_html  # noqa: E402
from crawlproc.extract.html import Extractor  # noqa: E402
from crawlproc.extract.language import LanguageIdentifier, model_path  # noqa: E402
from crawlproc.recipe import ExtractConfig, LanguageConfig, UrlFilterConfig  # noqa: E402
from crawlproc.extract.urlfilter import BLOCKLIST_DIR, UrlFilter  # noqa: E402


def load_pages(html_dir: Path) -> list[tuple[str, str]]:
    gt = json.loads((html_dir / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for key, entry in sorted(gt.items()):
        payload = gzip.decompress((html_dir / "html" / f"{key}.html.gz").read_bytes())
        pages.append((decode_html(payload, "text/html")[0], entry.get("url") or f"https://example.com/{key}"))
    return pages


def warc_urls(warc_dir: Path) -> list[str]:
    from warcio.archiveiterator import ArchiveIterator

    urls = []
    for path in sorted(warc_dir.glob("*.warc.gz")):
        with open(path, "rb") as f:
            for rec in ArchiveIterator(f):
                if rec.rec_type == "response":
                    urls.append((rec.rec_headers.get_header("WARC-Target-URI") or "").strip("<>"))
    return [u for u in urls if u]


def _pass_ms(fn, items, before=None, clock=time.process_time) -> float:
    """ms per item of one pass. CPU time of this process by default: on a shared, busy machine wall time
    mostly measures the neighbours (the sandbox comparison, which involves a child process, uses wall time)."""
    if before is not None:
        before()
    t = clock()
    for item in items:
        fn(item)
    return (clock() - t) / len(items) * 1e3


def compare(ours, peer, repeat: int) -> tuple[float, float]:
    """ours/peer: (fn, items[, before_each_pass]). Passes alternate ours, peer, ours, ... so that a change of
    machine load hits both sides alike; returns the median ms per item of each."""
    times: tuple[list, list] = ([], [])
    for _ in range(repeat):
        for side, spec in enumerate((ours, peer)):
            times[side].append(_pass_ms(*spec))
    return statistics.median(times[0]), statistics.median(times[1])


def row(name: str, ours: float, peer: float, note: str = "") -> None:
    """ours and peer in ms per item; the ratio is a speed ratio, ours / peer = peer ms / ours ms (> 1: faster)."""
    print(f"{name:<34} ours {ours:9.4f} ms  peer {peer:9.4f} ms  ratio ours/peer {peer / ours:6.3f}  {note}")


def bench_url_filter(urls, repeat, skip_lists):
    from datatrove.data import Document
    from datatrove.pipeline.filters.url_filter import URLFilter
    from tldextract import TLDExtract

    use_lists = not skip_lists
    t = time.perf_counter()
    ours = UrlFilter(UrlFilterConfig(use_ut1_lists=use_lists))
    ours_load = time.perf_counter() - t
    t = time.perf_counter()
    if use_lists:
        peer = URLFilter()
    else:  # datatrove then reads no word lists at all: hand it the same ones we use
        lists = {k: (BLOCKLIST_DIR / f"{k}.txt").read_text().splitlines()
                 for k in ("banned_words", "banned_subwords", "soft_banned_words")}
        peer = URLFilter(use_integrated_lists=False, **lists)
    peer.tldextractor = TLDExtract(suffix_list_urls=(), cache_dir=None)  # bundled snapshot, no network
    if use_lists:
        peer.download_data()
    peer_load = time.perf_counter() - t
    docs = [Document(text="", id=str(i), metadata={"url": u}) for i, u in enumerate(urls)]

    def peer_check(doc):
        return peer.filter(doc)

    ms_ours, ms_peer = compare((ours.check, urls), (peer_check, docs), repeat)
    agree = sum((ours.check(d.metadata["url"]) is None) == (peer_check(d) is True) for d in docs)
    row("url filter (per URL)", ms_ours, ms_peer, f"same keep/remove on {agree}/{len(docs)} URLs")
    row("url filter (load lists, ms)", ours_load * 1e3, peer_load * 1e3,
        "wall; ours: memory-mapped cache (first build on a machine ~1-2 s)")


def bench_extract(pages, repeat):
    from datatrove.data import Document
    from datatrove.pipeline.extractors import Trafilatura

    ours = Extractor(ExtractConfig(timeout_s=30, favor_precision=True, include_tables=True, deduplicate=True))
    fast = Extractor(ExtractConfig(engine="resiliparse", timeout_s=30))
    peer = Trafilatura(favour_precision=True, timeout=30, deduplicate=True, include_tables=True)
    htmls = [(h, u) for h, u in pages]

    # trafilatura's deduplication remembers paragraphs across documents: every pass starts with empty caches
    def reset_ours():
        ours.reset()
        fast.reset()

    def reset_peer():
        from trafilatura.deduplication import LRU_TEST

        LRU_TEST.clear()

    def peer_extract(page):
        return peer.extract(page[0])

    ms_ours, ms_peer = compare((lambda p: ours.extract(*p), htmls, reset_ours), (peer_extract, htmls, reset_peer),
                               repeat)
    row("extract trafilatura (in-process)", ms_ours, ms_peer, "peer: Trafilatura.extract, no sandbox")
    ms_fast, ms_peer2 = compare((lambda p: fast.extract(*p), htmls, reset_ours), (peer_extract, htmls, reset_peer),
                                repeat)
    row("extract resiliparse vs peer", ms_fast, ms_peer2, "different work: our fast engine vs peer trafilatura")

    # datatrove's real path: a sandbox process per step, documents sent over a pipe (its time limit)
    docs = [Document(text=h, id=str(i), metadata={"url": u}) for i, (h, u) in enumerate(htmls)]

    def peer_run():
        reset_peer()  # the sandbox is forked from here: it inherits the cleared cache
        t = time.perf_counter()
        list(peer.run([Document(text=d.text, id=d.id, metadata=dict(d.metadata)) for d in docs]))
        return (time.perf_counter() - t) / len(docs) * 1e3

    ours_ms, peer_ms = [], []
    for _ in range(repeat):
        ours_ms.append(_pass_ms(lambda p: ours.extract(*p), htmls, reset_ours, clock=time.perf_counter))
        peer_ms.append(peer_run())
    row("extract with time limit (wall)", statistics.median(ours_ms), statistics.median(peer_ms),
        "peer: Trafilatura.run (sandbox process)")
    return [ours.extract(h, u) for h, u in htmls]


def bench_langid(texts, repeat):
    from datatrove.data import Document
    from datatrove.pipeline.filters import LanguageFilter
    from fasttext.FastText import _FastText

    ours = LanguageIdentifier(LanguageConfig())
    import datatrove.pipeline.base as dt_base

    # its dependency check wants the `fasttext-numpy2-wheel` distribution; the installed `fasttext-numpy2`
    # provides the same `fasttext` module, so skip the check while constructing the filter
    check = dt_base.check_required_dependencies
    dt_base.check_required_dependencies = lambda *args, **kwargs: None
    try:
        peer = LanguageFilter(languages=["en"], language_threshold=0.65)
    finally:
        dt_base.check_required_dependencies = check
    peer.model._model = _FastText(model_path=str(model_path()))  # the same local .ftz, never downloaded
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]

    def ours_keep(text):
        return ours.keep(*ours.predict(text))

    ms_ours, ms_peer = compare((ours_keep, texts), (peer.filter, docs), repeat)
    agree = sum(ours_keep(d.text) == bool(peer.filter(d)) for d in docs)
    row("language id + keep (per doc)", ms_ours, ms_peer, f"same decision on {agree}/{len(docs)} docs")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--html-dir", type=Path, default=ROOT / "tests" / "data" / "html")
    ap.add_argument("--warc-dir", type=Path, default=ROOT / "tests" / "data" / "warc")
    ap.add_argument("--repeat", type=int, default=3, help="passes per measurement (the median is shown)")
    ap.add_argument("--url-copies", type=int, default=20, help="times the URL set is repeated per pass")
    ap.add_argument("--only", choices=["url", "extract", "langid"], help="run one component only")
    ap.add_argument("--skip-url-lists", action="store_true", help="benchmark the word rules only")
    args = ap.parse_args(argv)

    pages = load_pages(args.html_dir)
    urls = [u for _, u in pages] + (warc_urls(args.warc_dir) if args.warc_dir.is_dir() else [])
    print(f"{len(pages)} pages, {len(urls)} distinct URLs; datatrove 0.10.1 as the peer; median of {args.repeat}")
    if args.only in (None, "url"):
        bench_url_filter(urls * args.url_copies, args.repeat, args.skip_url_lists)
    if args.only in (None, "extract"):
        texts = bench_extract(pages, args.repeat)
    if args.only in (None, "langid"):
        if args.only:
            texts = [t for t in (Extractor(ExtractConfig(timeout_s=30)).extract(h, u) for h, u in pages)]
        bench_langid([t for t in texts if t] * 5, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
