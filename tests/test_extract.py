"""Extraction quality on 181 real article pages with gold text, the per-document time limit (main thread,
other threads, inside a Ray task), and charset decoding."""

from __future__ import annotations

import gzip
import json
import os
import signal
import threading
from collections import Counter

import pytest

from crawlproc.warc.charset import UndecodableError, decode_html
from crawlproc.extract.html import Extractor, ExtractTimeout
from crawlproc.recipe import ExtractConfig

NORMAL_PAGE = (
    "<html><head><title>A page</title></head><body><nav>Home | About | Contact</nav><article>"
    + "".join(
        f"<p>This is paragraph number {i} of an ordinary article, written in plain English sentences.</p>"
        for i in range(8)
    )
    + "</article><footer>Copyright 2024</footer></body></html>"
)


def pathological_page(n: int = 50_000) -> str:
    """~4 MB of generated markup: trafilatura needs seconds for it, far beyond a tiny time limit."""
    body = "".join(f"<div><p>Paragraph {i} with some words in it, and more words here.</p></div>" for i in range(n))
    return f"<html><body>{body}</body></html>"


def token_prf(pred: str, gold: str) -> tuple[float, float, float]:
    """Bag-of-tokens precision, recall and F1 over whitespace-separated tokens."""
    p, g = Counter(pred.split()), Counter(gold.split())
    if not p or not g:
        return (1.0, 1.0, 1.0) if p == g else (0.0, 0.0, 0.0)
    overlap = sum((p & g).values())
    if not overlap:
        return 0.0, 0.0, 0.0
    precision, recall = overlap / sum(p.values()), overlap / sum(g.values())
    return precision, recall, 2 * precision * recall / (precision + recall)


@pytest.fixture(scope="module")
def pages(data_dir):
    gt = json.loads((data_dir / "html" / "ground-truth.json").read_text(encoding="utf-8"))
    out = []
    for key, entry in sorted(gt.items()):
        payload = gzip.decompress((data_dir / "html" / "html" / f"{key}.html.gz").read_bytes())
        html, _ = decode_html(payload, "text/html")
        out.append((html, entry.get("url"), entry["articleBody"]))
    return out


def _mean_scores(extractor, pages):
    scores = [token_prf(extractor.extract(html, url), gold) for html, url, gold in pages]
    return [sum(s[i] for s in scores) / len(scores) for i in range(3)]


def test_trafilatura_f1_on_all_scrapinghub_pages(pages):
    assert len(pages) == 181
    precision, recall, f1 = _mean_scores(Extractor(ExtractConfig(timeout_s=30)), pages)
    assert f1 >= 0.90, (precision, recall, f1)
    assert precision >= 0.90


def test_resiliparse_fast_mode_quality(pages):
    precision, recall, f1 = _mean_scores(Extractor(ExtractConfig(engine="resiliparse", timeout_s=30)), pages)
    assert f1 >= 0.85, (precision, recall, f1)


def test_no_text_gives_empty_string():
    ex = Extractor(ExtractConfig())
    assert ex.extract("") == ""
    assert ex.extract("   ") == ""
    assert ex.extract("<html><body><script>var x = 1;</script></body></html>") == ""
    assert Extractor(ExtractConfig(engine="resiliparse")).extract("<html></html>") == ""


def test_min_chars():
    text = Extractor(ExtractConfig()).extract(NORMAL_PAGE)
    assert "paragraph number 3" in text and "Copyright" not in text
    assert Extractor(ExtractConfig(min_chars=len(text) + 1)).extract(NORMAL_PAGE) == ""


def test_tables_only_on_request():
    rows = "".join(f"<tr><td>Cellvalue{i}</td><td>{i * 7}</td></tr>" for i in range(6))
    html = NORMAL_PAGE.replace("</article>", f"<table>{rows}</table></article>")
    assert "Cellvalue3" not in Extractor(ExtractConfig(include_tables=False)).extract(html)
    assert "Cellvalue3" in Extractor(ExtractConfig(include_tables=True)).extract(html)


def test_timeout_on_main_thread_then_next_extraction_works():
    ex = Extractor(ExtractConfig(timeout_s=0.05))
    handler_before = signal.getsignal(signal.SIGVTALRM)
    with pytest.raises(ExtractTimeout):
        ex.extract(pathological_page())
    # nothing leaks: handler restored, timer off, the extractor still produces the same text as a fresh one
    assert signal.getsignal(signal.SIGVTALRM) is handler_before
    assert signal.getitimer(signal.ITIMER_VIRTUAL) == (0.0, 0.0)
    assert ex.extract(NORMAL_PAGE) == Extractor(ExtractConfig()).extract(NORMAL_PAGE) != ""


def test_an_outer_timer_survives_extraction():
    fired = []
    previous = signal.signal(signal.SIGVTALRM, lambda *_: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_VIRTUAL, 50.0)
        Extractor(ExtractConfig(timeout_s=5)).extract(NORMAL_PAGE)
        left, _ = signal.getitimer(signal.ITIMER_VIRTUAL)
        assert 0 < left <= 50.1  # CPU-time timers tick in jiffies
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)
    assert not fired


def test_timeout_off_the_main_thread():
    ex = Extractor(ExtractConfig(timeout_s=0.05))
    result = {}

    def work():
        try:
            ex.extract(pathological_page())
            result["first"] = "finished"
        except ExtractTimeout:
            result["first"] = "timeout"
        result["second"] = ex.extract(NORMAL_PAGE)
        # no stray exception arrives later in this thread
        for _ in range(200_000):
            pass
        result["done"] = True

    t = threading.Thread(target=work)
    t.start()
    t.join(60)
    assert result.get("first") == "timeout"
    assert "paragraph number 3" in result.get("second", "")
    assert result.get("done")


def test_timeout_inside_a_ray_task(ray_local):
    def extract_in_task(timeout_s: float, slow_html: str, normal_html: str):
        # defined here and importing inside, so Ray ships it by value (tests/ is not importable on workers)
        import os
        import threading

        from crawlproc.extract.html import Extractor, ExtractTimeout
        from crawlproc.recipe import ExtractConfig

        ex = Extractor(ExtractConfig(timeout_s=timeout_s))
        try:
            ex.extract(slow_html)
            first = "finished"
        except ExtractTimeout:
            first = "timeout"
        on_main = threading.current_thread() is threading.main_thread()
        return first, ex.extract(normal_html), on_main, os.getpid()

    task = ray_local.remote(extract_in_task)
    first, second, on_main, pid = ray_local.get(task.remote(0.05, pathological_page(), NORMAL_PAGE))
    assert first == "timeout"
    assert "paragraph number 3" in second
    assert pid != os.getpid()
    assert on_main  # Ray runs normal tasks on the worker's main thread: the SIGALRM path


# ---- charset decoding ----------------------------------------------------------------------------------

FRENCH = "<html><head><title>Café</title></head><body><p>Crème brûlée à la française, naïve façade.</p></body></html>"
JAPANESE = (
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS"></head>'
    "<body><p>日本語のテキストです。東京は日本の首都です。</p></body></html>"
)
RUSSIAN = (
    "<html><body><p>Москва — столица России, город федерального значения, административный центр "
    "Центрального федерального округа и центр Московской области, в состав которой не входит.</p>"
    "<p>Это крупнейший по численности населения город России и её субъект.</p></body></html>"
)


def test_header_charset_latin1():
    text, enc = decode_html(FRENCH.encode("latin-1"), "text/html; charset=ISO-8859-1")
    assert text == FRENCH
    assert enc == "cp1252"  # WHATWG: latin-1 labels mean windows-1252


def test_header_wins_over_meta():
    page = FRENCH.replace("<head>", '<head><meta charset="koi8-r">')
    text, enc = decode_html(page.encode("cp1252"), 'text/html; charset="windows-1252"')
    assert text == page and enc == "cp1252"


def test_meta_charset_shift_jis():
    text, enc = decode_html(JAPANESE.encode("shift_jis"), "text/html")
    assert text == JAPANESE and enc == "cp932"
    short = '<meta charset="shift_jis"><p>日本語のテキストです。</p>'
    assert decode_html(short.encode("shift_jis"), None)[0] == short


def test_undeclared_cp1251_is_detected():
    text, enc = decode_html(RUSSIAN.encode("cp1251"), "text/html")
    assert text == RUSSIAN and enc == "cp1251"


def test_utf8_beats_a_wrong_legacy_declaration():
    assert decode_html(FRENCH.encode("utf-8"), "text/html; charset=iso-8859-1") == (FRENCH, "utf-8")


def test_bom_and_empty():
    assert decode_html(FRENCH.encode("utf-16"), "text/html; charset=iso-8859-1") == (FRENCH, "utf-16")
    assert decode_html(b"", None) == ("", "utf-8")


def test_binary_garbage_is_rejected():
    garbage = bytes((i * 7919 + 13) % 256 for i in range(20_000))
    with pytest.raises(UndecodableError):
        decode_html(garbage, "text/html")
    with pytest.raises(UndecodableError):
        decode_html(b"\x00" * 500 + b"<html>hi</html>", "text/html; charset=utf-8")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    with pytest.raises(UndecodableError):
        decode_html(png, None)


STOCK = """
import json, sys, trafilatura
pages = json.load(sys.stdin)
out = [trafilatura.extract(h, url=u, favor_precision=True, include_comments=False, include_tables=True,
                           deduplicate=False, output_format="txt") or "" for h, u in pages]
json.dump(out, sys.stdout)
"""


def test_same_text_as_stock_trafilatura(pages):
    """Our speed-ups around trafilatura (crawlproc/extract/accelerate.py, the stop list built once) change no
    output: compare with trafilatura in a fresh interpreter, as datatrove calls it (every real page, lever by
    lever: tests/test_accelerate.py)."""
    import subprocess
    import sys

    sample = [(html, url) for html, url, _ in pages[::6]]
    proc = subprocess.run([sys.executable, "-c", STOCK], input=json.dumps(sample), capture_output=True,
                          text=True, check=True, timeout=300)
    stock = json.loads(proc.stdout)
    ours = Extractor(ExtractConfig(deduplicate=False, timeout_s=60))
    assert [ours.extract(html, url) for html, url in sample] == [t.strip() for t in stock]


# --- the private parts of trafilatura that Extractor relies on (tested with trafilatura 2.3.1; pin
# trafilatura>=2.3,<2.4): each test fails when the part it names changes (the accelerator's: test_accelerate.py)

def test_private_stop_list_is_built_once(monkeypatch):
    """external.JT_STOPLIST is the lazily built stop-word list that try_justext reads (None until built) and
    jt_stoplist_init builds it; Extractor builds it up front, outside any time limit, and extraction then
    never rebuilds it."""
    import inspect

    from trafilatura import external

    assert "JT_STOPLIST or jt_stoplist_init()" in inspect.getsource(external.try_justext)
    Extractor(ExtractConfig())
    assert len(external.JT_STOPLIST) > 1000 and "the" in external.JT_STOPLIST
    monkeypatch.setattr(external, "jt_stoplist_init", lambda: pytest.fail("the stop list was rebuilt"))
    Extractor(ExtractConfig()).extract(NORMAL_PAGE)


def test_private_dedup_cache_is_ours_and_resettable():
    """deduplication.LRUCache and settings.LRU_SIZE build the cache that extract(deduplicate=<cache>) fills
    (a cache object there needs trafilatura >= 2.3): paragraphs seen too often disappear, and a reset
    Extractor gives the full text again."""
    from trafilatura.deduplication import LRUCache
    from trafilatura.settings import LRU_SIZE

    assert isinstance(LRU_SIZE, int) and LRU_SIZE > 0
    ex = Extractor(ExtractConfig(deduplicate=True))
    assert isinstance(ex._dedup, LRUCache)
    full = ex.extract(NORMAL_PAGE)
    texts = [ex.extract(NORMAL_PAGE) for _ in range(4)]
    assert full and len(texts[-1]) < len(full)  # our cache saw the paragraphs and dropped them
    assert Extractor(ExtractConfig(deduplicate=True)).extract(NORMAL_PAGE) == full  # not a global cache
    ex.reset()
    assert ex.extract(NORMAL_PAGE) == full
