"""Real pages with what Common Crawl's index would say of them (CLD2) and what our extract stage decides
(trafilatura + lid.176 + the quality filters): the data behind the index selection's language margin.

Pages: the real web pages of tests/data/html (ScrapingHub's benchmark, 181) and tests/data/html_multilingual
(125), and every HTML response of the real WARCs in tests/data/warc. CLD2 runs as CC runs it: pycld2 on the
page's HTML as UTF-8 (isPlainText=False), with the URL's top-level domain and the HTTP Content-Language as
hints. Where a real CC WARC carries CC's own `languages-cld2` metadata, `emulation_check` compares it with
ours.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from urllib.parse import urlsplit

from bench.common import ROOT

DATA = ROOT / "tests" / "data"

# pycld2's codes that are not ISO 639-1 (as CC's wrapper writes them: Language.java)
_CLD2_SPECIAL = {"iw": "heb", "jw": "jav", "zh-Hant": "zho", "sr-ME": "srp", "tl": "tgl", "ms": "msa",
                 "no": "nor", "xxx": None, "un": None}


def cld2_codes(html: str, url: str, content_language: str | None = None) -> list[str]:
    """The ISO 639-3 codes CC's index would list for this page, most used first (empty: none found)."""
    import langcodes
    import pycld2

    tld = (urlsplit(url).hostname or "").rsplit(".", 1)[-1]
    text = "".join(ch for ch in html if ch.isprintable() or ch in "\n\t")  # pycld2 refuses some controls
    try:
        _reliable, _nbytes, details = pycld2.detect(text.encode("utf-8", "ignore"), isPlainText=False,
                                                    hintTopLevelDomain=tld,
                                                    hintLanguageHTTPHeaders=content_language or "")
    except pycld2.error:
        return []
    out = []
    for _name, code, percent, _score in details:
        if code in _CLD2_SPECIAL:
            iso = _CLD2_SPECIAL[code]
        else:
            try:
                iso = langcodes.Language.get(code).to_alpha3()
            except Exception:  # noqa: BLE001 -- an odd code is simply not listed
                iso = None
        if iso and percent > 0 and iso not in out:
            out.append(iso)
    return out


def real_pages() -> list[dict]:
    """[{source, url, html (str), content_language, cc_languages (CC's own, or None)}]."""
    from crawlproc.warc.charset import UndecodableError, decode_html

    pages = []
    truth = json.loads((DATA / "html" / "ground-truth.json").read_text())
    for p in sorted((DATA / "html" / "html").glob("*.html.gz")):
        key = p.name.split(".")[0]
        url = (truth.get(key) or {}).get("url") or f"http://example.com/{key}"
        html = gzip.decompress(p.read_bytes()).decode("utf-8", "replace")
        pages.append({"source": f"html/{p.name}", "url": url, "html": html, "content_language": None,
                      "cc_languages": None})
    for p in sorted((DATA / "html_multilingual").glob("*.html.gz")):
        html = gzip.decompress(p.read_bytes()).decode("utf-8", "replace")
        pages.append({"source": f"html_multilingual/{p.name}", "url": f"http://example.com/{p.name}",
                      "html": html, "content_language": None, "cc_languages": None})
    from warcio.archiveiterator import ArchiveIterator

    for w in sorted((DATA / "warc").glob("*.warc.gz")):
        if ".wet." in w.name or ".wat." in w.name:
            continue
        cc: dict[str, list[str]] = {}
        responses = []
        with open(w, "rb") as f:
            for r in ArchiveIterator(f):
                uri = (r.rec_headers.get_header("WARC-Target-URI") or "").strip("<>")
                if r.rec_type == "metadata":
                    for line in r.content_stream().read().decode("utf-8", "replace").splitlines():
                        if line.startswith("languages-cld2:"):
                            d = json.loads(line.split(":", 1)[1])
                            cc[uri] = [x["code-iso-639-3"] for x in d.get("languages", [])]
                elif r.rec_type == "response" and r.http_headers is not None:
                    ctype = r.http_headers.get_header("Content-Type") or ""
                    if "html" not in ctype.lower():
                        continue
                    body = r.content_stream().read()
                    try:
                        html, _ = decode_html(body, ctype)
                    except UndecodableError:
                        continue
                    responses.append((uri, html, r.http_headers.get_header("Content-Language")))
        for uri, html, lang in responses:
            pages.append({"source": f"warc/{w.name}", "url": uri, "html": html, "content_language": lang,
                          "cc_languages": cc.get(uri)})
    return pages


def our_decisions(pages: list[dict]) -> list[dict]:
    """Run the FineWeb extract steps on every page with every language labelled (keep = []), so that one
    pass says, per page, its lid.176 label and score and whether the quality filters keep it."""
    from crawlproc.doc import Doc
    from crawlproc.extract.steps import pipeline_for
    from crawlproc.recipe import load_recipe

    recipe = load_recipe(overrides={"language": {"keep": [], "precheck": False}})
    pipe = pipeline_for(recipe)
    pipe.reset()
    steps = pipe.counts(Counter())
    out = []
    for p in pages:
        doc = Doc(p["url"], p["html"])
        removal = pipe.run(doc, steps)
        out.append({"language": doc.language, "score": doc.language_score,
                    "passed": removal is None, "removed_by": removal[0] if removal else None})
    return out
