"""The word split (crawlproc/quality/words.py) takes time linear in the text, whatever the text, and gives the
tokens of the regex it replaced.

The regex it replaced tokenized a chunk with one alternation whose domain-URL branch
(`[^\\W_][\\w-]*(?:\\.[\\w-]+)*\\.[a-z]{2,6}/`) rescanned the rest of the chunk from every token start: a 200 KB
hyphen-joined slug took two minutes in Gopher repetition, 1 MB of "a-a-a-..." about an hour.
"""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from crawlproc.quality import words
from crawlproc.doc import Doc
from crawlproc.quality.words import count_sentences, split_sentences, split_words

# The tokenizer before the linear rewrite, verbatim: its URL branches lead the alternation, the rest is
# TOKEN_RE as it still is. The reference for what the rewrite must return (slow only on long chunks).
REFERENCE_RE = re.compile(
    r"(?:https?://|www\.)[^\s<>\"/]+?(?=[.,;:!?)\]\"'”’]*(?:\s|$))"
    r"|(?:https?://|www\.|[^\W_][\w-]*(?:\.[\w-]+)*\.[a-z]{2,6}/)[^\s<>\"]*?(?=[,;:!?)\]\"'”’]*(?:\s|$))"
    r"|" + words.TOKEN_RE.pattern
)

# Chunks built to defeat a backtracking regex: each unit, repeated, makes one long whitespace-free chunk.
ADVERSARIAL_UNITS = [
    "a-", "the-river-and-", "a.", "a_", "a!", "!\u0301", "1,", "1:", "www.a/", "a.com/", "http://a/",
    "x.com/a,", "www.a.", "www.a\".", "a..b", "don't", "a/b/",
]


def _unit_text(unit: str, n: int, end: str = "<") -> str:
    return (unit * (n // len(unit) + 1))[:n] + end  # a final "<" makes every URL attempt fail


URLISH = st.lists(st.sampled_from(list("aZ1.-_/:<>\"',;!?)]w&é\u0301 ") + [
    "www.", "http://", "https://", ".com", ".org/", "..", "n't", "km", "…", "nt", "'s", "U.S."]), max_size=14).map("".join)


@settings(max_examples=3000, deadline=None)
@given(URLISH)
@example("see www.example.com.")
@example("https://goo.gl/x.")
@example('www.example.com".')
@example("a..example.com/x")
@example("--example.com/x")
@example("1,5km.com/x")
@example("www.")
def test_same_tokens_as_the_reference_regex(text):
    assert split_words(text) == [t for chunk in text.split() for t in REFERENCE_RE.findall(chunk)]


def test_same_tokens_as_the_reference_regex_on_real_text(data_dir):
    import json

    texts = [v["text"] for v in json.loads((data_dir / "quality" / "texts.json").read_text("utf-8")).values()]
    texts += [v["articleBody"] for v in json.loads((data_dir / "html" / "ground-truth.json").read_text("utf-8")).values()]
    for text in texts:
        assert split_words(text) == [t for chunk in text.split() for t in REFERENCE_RE.findall(chunk)]


def test_a_chunk_over_the_cap_is_tokenized_in_pieces():
    blob = "ab" * words.MAX_CHUNK_CHARS  # twice the cap, one "word"
    assert split_words(blob) == ["ab" * (words.MAX_CHUNK_CHARS // 2)] * 2
    assert split_words("x " + blob[:words.MAX_CHUNK_CHARS]) == ["x", blob[:words.MAX_CHUNK_CHARS]]


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(list("ab .!?\u2026\"')\t,;:\u3002X1")), max_size=80))
def test_sentences_are_what_c4_counts(line):
    """Doc.sentences (issue 26): the split a plugin gets is the one C4's count makes, slices of the line."""
    pieces = split_sentences(line)
    assert len(pieces) == (count_sentences(line.strip()) if line.strip() else 0)
    assert all(p and p == p.strip() and p in line for p in pieces)


def test_doc_sentences_on_real_text(data_dir):
    import json

    articles = json.loads((data_dir / "trainer" / "articles.json").read_text())
    text = next(iter(articles.values()))["articleBody"]
    doc = Doc(text=text)
    assert len(doc.sentences) == sum(count_sentences(ln.strip()) for ln in doc.lines if ln.strip()) > 5
    assert "".join(doc.sentences).replace(" ", "") == "".join(ln.strip() for ln in doc.lines).replace(" ", "")
