"""The words decontamination compares (crawlproc/decontam/text.py) and the compiled passes that compute them
(crawlproc/decontam/kernels.py): the same words, keys and matches as the plain-Python reference, on real
pages in many languages and on generated text."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crawlproc.decontam import kernels, match, text
from crawlproc.decontam.index import build_index, window_keys, word_hashes
from crawlproc.dedup.arrowtext import offsets_and_bytes
from crawlproc.evalsuite import load_task

needs_numba = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba not available: only the reference runs")


@pytest.fixture(scope="module")
def pages(data_dir) -> list[str]:
    """Real texts: the 181 ScrapingHub gold articles and the multilingual sentences of the tokenizer corpus."""
    gold = json.loads((data_dir / "html" / "ground-truth.json").read_text(encoding="utf-8"))
    texts = [v["articleBody"] for v in gold.values()]
    lines = (data_dir / "tokenizer" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    return texts + [json.loads(line)["text"] for line in lines]


@pytest.mark.parametrize("raw, words", [
    ("Question: Which is it?\nAnswer: soft", ["question", "which", "is", "it", "answer", "soft"]),
    ("A kitten's FUR -- soft!", ["a", "kitten", "s", "fur", "soft"]),  # case and punctuation go
    ("1,000.5 km, 3.x and COVID-19", ["0", "km", "0", "x", "and", "covid", "0"]),  # a number is one 0
    ("covid19 v1.2", ["covid0", "v0"]),
    ("Café naïve façade", ["cafe", "naive", "facade"]),  # diacritics dropped
    ("cafe\u0301 co\u00adop", ["cafe", "coop"]),  # a combining mark and a soft hyphen split nothing
    ("ＦＵＬＬ ｗｉｄｔｈ", ["full", "width"]),
    ("ΣΊΣΥΦΟΣ σίσυφος", ["σισυφοσ", "σισυφοσ"]),
    ("中文字 日本語テキスト", ["中", "文", "字", "日", "本", "語", "テ", "キ", "ス", "ト"]),  # one word per character
    ("ภาษาไทย", ["ภ", "า", "ษ", "า", "ไ", "ท", "ย"]),
    ("Straße", ["straße"]),
    ("  \n\t ", []),
])
def test_normalized_words(raw, words):
    assert text.words(raw) == words


def test_spans_point_at_the_original_text():
    raw = "He said: \u201cCafé 1,000!\u201d"
    assert [(w, raw[s:e]) for w, s, e in text.iter_words(raw)] == [("he", "He"), ("said", "said"),
                                                                    ("cafe", "Café"), ("0", "1,000")]


def _compiled_words(texts: list[str]):
    column = pa.array(texts, pa.large_string())
    offsets, data = offsets_and_bytes(column)
    room = len(data) + 1
    hashes, starts, ends = np.empty(room, np.uint64), np.empty(room, np.int64), np.empty(room, np.int64)
    counts = np.zeros(len(texts), np.int64)
    kernels.words(data, offsets, text.table(), hashes, starts, ends, counts)
    out, at = [], 0
    for t, c in enumerate(counts):
        base = offsets[t]
        out.append([(int(hashes[k]), int(starts[k] - base), int(ends[k] - base)) for k in range(at, at + c)])
        at += c
    return out


def _reference_words(t: str):
    b = lambda i: len(t[:i].encode("utf-8"))  # noqa: E731  (character offset -> UTF-8 byte offset)
    return [(text.word_hash(w), b(s), b(e)) for w, s, e in text.iter_words(t)]


@needs_numba
def test_compiled_words_equal_the_reference_on_real_pages(pages):
    compiled = _compiled_words(pages)
    for page, got in zip(pages, compiled):
        assert got == _reference_words(page)
    assert sum(len(x) for x in compiled) > 100_000  # the comparison covered many words


@needs_numba
@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60), min_size=1, max_size=8))
@example(["12.,34 5.6.7 x.1 .5 1..2 ,"])
@example(["a\u0301\u0301b 1\u0301,2 \U00020000\U0001F600x"])
def test_compiled_words_equal_the_reference_on_any_text(texts):
    assert _compiled_words(texts) == [_reference_words(t) for t in texts]


@needs_numba
def test_compiled_window_keys_equal_the_reference(pages):
    for h in word_hashes(pages[:20]):
        ref = [int(x) for x in h]
        for n in (1, 5, 13):
            assert window_keys(h, n).tolist() == [text.window_key(ref[i:i + n]) for i in range(len(ref) - n + 1)]


@needs_numba
def test_compiled_matching_equals_the_reference(pages, data_dir):
    """Hits and covered items, span for span, on real pages with real items planted in them."""
    tasks = [load_task(data_dir / "evalsuite" / f"{name}.jsonl") for name in ("arc_easy", "hellaswag", "piqa")]
    index = build_index(tasks)
    docs = list(pages[:30])
    for k, task in enumerate(tasks):
        for j in range(3):
            item = task.items[j * 7]
            words = (item.context + item.answer).split()
            words[len(words) // 2] = "replaced"  # an edited copy: the coverage rule's case
            row = 3 * k + j
            docs[row] = docs[row][:300] + "\n" + " ".join(words) + "\n" + docs[row][300:]
    offsets, data = offsets_and_bytes(match.utf8_column(docs))
    compiled = match._hits_compiled(index, offsets, data)
    reference = match._hits_reference(index, offsets, data)
    as_rows = lambda arrays: sorted(zip(*(a.tolist() for a in arrays)))  # noqa: E731
    assert as_rows(compiled[0]) == as_rows(reference[0]) and as_rows(compiled[1]) == as_rows(reference[1])
    assert len(compiled[0][0]) > 0 and len(compiled[1][0]) > 0  # both rules found something to compare
