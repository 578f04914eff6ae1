"""Word splitting per language and script, as FineWeb-2 (datatrove 0.10.1) splits words, with the same word
boundaries at a fraction of the cost.

Which splitter a language gets is data (crawlproc/data/languages/splitters.tsv, derived from datatrove's
`assets/tokenizer_assignment.csv`): spaCy's rule-based tokenizer of the language (or of a proxy language), or a
dedicated segmenter where spaCy's is not enough: jieba (Chinese), SudachiPy (Japanese), Kiwi (Korean), PyThaiNLP
(Thai), the Indic NLP Library's tokenizer (Indic scripts, Urdu). None of them downloads anything at run time.

How each is made fast without changing a boundary:

- spaCy: its tokenizer splits a text at whitespace and tokenizes each whitespace-free chunk on its own (its own
  cache is keyed the same way), so a chunk's tokens never depend on its neighbours. Here each chunk is looked up in
  a per-process table; the chunks a text adds are tokenized by spaCy in one call (joined by single spaces, split
  back with the token offsets) and remembered. A chunk made only of letters that is not one of the language's
  special cases ("cannot", "Wed") is one token without asking spaCy. spaCy's rules that span a space ("EE. UU."
  in Spanish) cannot be seen chunk by chunk: a text that holds one is tokenized whole, as spaCy does.
- Chinese: what spaCy's Chinese tokenizer with the jieba segmenter returns is jieba.cut's output (precise mode,
  HMM on); it is called directly, without spaCy's Doc around it.
- Japanese: datatrove's tokenizer is SudachiPy (split mode A, its default dictionary) wrapped in spaCy, which also
  computes tags, lemmas and readings for every token; here only the surfaces are asked for, on the same
  40,000-byte pieces.
- Korean, Thai, Indic: the segmenter datatrove calls, with its arguments.

A language with no entry, or whose package is not installed, falls back to spaCy's multi-language tokenizer
("xx", datatrove's WhitespaceTokenizer) and the run says so: `fallbacks()` lists each (language, reason) once and
the extract stage counts documents split by a fallback (stats `words_fallback:<lang>`).
"""

from __future__ import annotations

import csv
import logging
import re
import threading
from functools import lru_cache
from importlib import resources
from itertools import chain

log = logging.getLogger(__name__)

FALLBACK = ("spacy", "xx")
CACHE_CHUNKS = 1 << 18  # remembered chunks per language (then the table starts afresh): ~30 MB at most
MAX_CHUNK_CHARS = 10_000  # a longer whitespace-free run (base64, minified code) is split in pieces this long


def _strip(tokens) -> list[str]:
    """datatrove's strip_strings: tokens stripped of whitespace, empty ones left out."""
    return [s for s in (t.strip() for t in tokens) if s]


class SpacySplitter:
    """spaCy's rule-based tokenizer for one language (`spacy.blank(code)`), chunk by chunk, remembered."""

    kind = "spacy"

    def __init__(self, code: str):
        import spacy

        self.code = code
        self.nlp = spacy.blank(code)
        # lexical attributes (shape, like_num, ...) are computed for every new token; the boundaries do not use them
        self.nlp.vocab.lex_attr_getters = {}
        self.tokenizer = self.nlp.tokenizer
        rules = getattr(self.tokenizer, "rules", None) or {}
        self.specials = frozenset(rules)
        self.spaced = tuple(k for k in rules if not k.isspace() and any(c.isspace() for c in k))
        self.chunk_wise = hasattr(self.tokenizer, "prefix_search")  # a rule-based Tokenizer, not a segmenter
        self.cache: dict[str, tuple[str, ...]] = {}
        self.lock = threading.Lock()

    def whole(self, text: str) -> list[str]:
        """spaCy on the whole text, as datatrove calls it."""
        with self.nlp.memory_zone():
            return _strip(t.text for t in self.tokenizer(text))

    def split(self, text: str) -> list[str]:
        if not self.chunk_wise or (self.spaced and any(k in text for k in self.spaced)):
            return self.whole(text)
        chunks = text.split()
        cache = self.cache
        missing = [c for c in dict.fromkeys(chunks) if c not in cache]
        if missing:
            self._learn(missing)
            cache = self.cache
        return list(chain.from_iterable(map(cache.__getitem__, chunks)))

    def _learn(self, chunks: list[str]) -> None:
        with self.lock:
            if len(self.cache) + len(chunks) > CACHE_CHUNKS:
                self.cache = {}
            cache, specials = self.cache, self.specials
            ask = []
            for c in chunks:
                if c.isalpha() and c not in specials:
                    cache[c] = (c,)
                elif len(c) > MAX_CHUNK_CHARS:
                    pieces = [c[i:i + MAX_CHUNK_CHARS] for i in range(0, len(c), MAX_CHUNK_CHARS)]
                    cache[c] = tuple(t for p in pieces for t in self.whole(p))
                else:
                    ask.append(c)
            if ask:
                cache.update(zip(ask, self._tokenize_chunks(ask)))

    def _tokenize_chunks(self, chunks: list[str]) -> list[tuple[str, ...]]:
        """The tokens of each chunk, from one spaCy call on the chunks joined by single spaces."""
        from spacy.attrs import IDX, SPACY

        joined = " ".join(chunks)
        with self.nlp.memory_zone():
            rows = self.tokenizer(joined).to_array([IDX, SPACY]).tolist()
        out: list[tuple[str, ...]] = []
        current: list[str] = []
        ends = [start for start, _ in rows[1:]] + [len(joined)]
        for (start, space), end in zip(rows, ends):
            current.append(joined[start:end - space])
            if space:
                out.append(tuple(current))
                current = []
        out.append(tuple(current))
        if len(out) != len(chunks):  # cannot happen for a rule-based tokenizer; never guess
            return [tuple(self.whole(c)) for c in chunks]
        return out


class JiebaSplitter:
    """Chinese as spaCy's tokenizer with the jieba segmenter splits it: jieba.cut(text), precise mode, HMM on.

    jieba.cut cuts the text into blocks (runs of Han characters, letters, digits and a few signs; the rest) and
    segments each block on its own. A block of Han characters only goes to rjieba (jieba-rs: the same dictionary,
    DAG and HMM, ~20x faster) when it is installed; a block with letters or digits in it, whose handling the two
    implementations do not share, goes to jieba itself. tests/test_splitters.py checks the words are jieba's."""

    kind = "jieba"
    _BLOCK = re.compile("([\u4E00-\u9FD5a-zA-Z0-9+#&\\._%\\-]+)")  # jieba's re_han_default
    _HAN_ONLY = re.compile("[\u4E00-\u9FD5]+")

    def __init__(self, code: str = "zh"):
        import jieba

        jieba.setLogLevel(logging.WARNING)
        self.tokenizer = jieba.Tokenizer()
        self.tokenizer.initialize()
        try:
            import rjieba

            self._fast = rjieba.cut
        except ImportError:
            self._fast = None

    def split(self, text: str) -> list[str]:
        if self._fast is None:
            return _strip(self.tokenizer.cut(text, cut_all=False, HMM=True))
        out: list[str] = []
        han_only, fast, slow = self._HAN_ONLY.fullmatch, self._fast, self.tokenizer.cut
        for block in self._BLOCK.split(text):
            if block:
                out.extend(fast(block, True) if han_only(block) else slow(block, cut_all=False, HMM=True))
        return _strip(out)


JA_MAX_BYTES = 40_000  # Sudachi refuses long inputs: datatrove cuts the text in pieces of at most this many bytes


def chunk_on_bytes(text: str, max_bytes: int = JA_MAX_BYTES) -> list[str]:
    """Cut `text` in consecutive pieces of at most `max_bytes` UTF-8 bytes at the same places as datatrove's
    chunk_text_on_bytes (the longest prefix that fits, grown and shrunk in its step sizes)."""
    def nbytes(s: str) -> int:
        return len(s.encode("utf-8"))

    total = nbytes(text)
    if total <= max_bytes:
        return [text] if text else []
    factor = len(text) / total
    step = int(max(min(max_bytes * 0.1, 10), 1))
    guess = int(max(max_bytes * factor - 10, 1))
    pieces, rest = [], text
    while rest:
        part = rest[:guess]
        if nbytes(part) > max_bytes:
            guess = max(guess - min(max_bytes * 0.001, 10), 1)
            continue
        cut = guess
        while nbytes(part) < max_bytes and part != rest:
            cut = min(len(rest), cut + step)
            part = rest[:cut]
        if nbytes(part) > max_bytes:
            cut -= step
        pieces.append(rest[:int(cut)])
        rest = rest[int(cut):]
    return pieces


class SudachiSplitter:
    """Japanese as datatrove splits it (SudachiPy, default dictionary, split mode A), surfaces only."""

    kind = "sudachi"

    def __init__(self, code: str = "ja"):
        from sudachipy import Dictionary, SplitMode

        dictionary = Dictionary()
        if hasattr(dictionary, "tokenizer"):  # sudachipy >= 0.6.8 (create() is deprecated); the same analysis
            self.tokenizer = dictionary.tokenizer(mode=SplitMode.A)
        else:
            self.tokenizer = dictionary.create(SplitMode.A)

    def split(self, text: str) -> list[str]:
        out: list[str] = []
        for piece in chunk_on_bytes(text):
            out.extend(_strip(m.surface() for m in self.tokenizer.tokenize(piece)))
        return out


class KiwiSplitter:
    """Korean as datatrove splits it: Kiwi's morphemes, as the text's own characters. datatrove asks for Kiwi's
    "sbg" model, which kiwipiepy_model no longer ships (0.24 has "cong"): then Kiwi's default model is used."""

    kind = "kiwi"
    _LONG_NUMBER = re.compile("[0-9,]{20,}")  # datatrove removes these first (Kiwi trips on very long numbers)

    def __init__(self, code: str = "ko"):
        import kiwipiepy
        from kiwipiepy import Kiwi

        version = tuple(int(x) for x in kiwipiepy.__version__.split(".")[:2] if x.isdigit())
        try:  # kiwipiepy_model stopped shipping "sbg" in 0.22
            self.tokenizer = Kiwi(model_type="sbg") if version < (0, 22) else Kiwi()
        except OSError:  # the sbg model files are not installed
            self.tokenizer = Kiwi()

    def split(self, text: str) -> list[str]:
        text = self._LONG_NUMBER.sub("", text)
        return _strip(text[t.start:t.end] for t in self.tokenizer.tokenize(text))


class ThaiSplitter:
    """Thai as datatrove splits it: PyThaiNLP's newmm-safe dictionary segmenter."""

    kind = "pythainlp"

    def __init__(self, code: str = "th"):
        from pythainlp.tokenize import word_tokenize

        self._tokenize = word_tokenize

    def split(self, text: str) -> list[str]:
        return _strip(self._tokenize(text, keep_whitespace=False, engine="newmm-safe"))


class IndicSplitter:
    """Indic scripts and Urdu as datatrove splits them: the Indic NLP Library's trivial_tokenize."""

    kind = "indicnlp"

    def __init__(self, code: str):
        from indicnlp.tokenize.indic_tokenize import trivial_tokenize

        self.code = code
        self._tokenize = trivial_tokenize

    def split(self, text: str) -> list[str]:
        return _strip(self._tokenize(text, self.code))


KINDS = {
    "spacy": SpacySplitter, "jieba": JiebaSplitter, "sudachi": SudachiSplitter, "kiwi": KiwiSplitter,
    "pythainlp": ThaiSplitter, "indicnlp": IndicSplitter,
}


@lru_cache(maxsize=1)
def assignments() -> dict[str, tuple[str, str]]:
    """{"deu_Latn": ("spacy", "de"), "deu": ..., ...}: the splitter for each language-script and each language
    alone (its default script). From crawlproc/data/languages/splitters.tsv."""
    path = resources.files("crawlproc").joinpath("data/languages/splitters.tsv")
    out: dict[str, tuple[str, str]] = {}
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            out[row["lang_script"]] = (row["splitter"], row["arg"])
    return out


_lock = threading.Lock()
_splitters: dict[tuple[str, str], object] = {}
_fallbacks: dict[str, str] = {}


def _build(kind: str, arg: str):
    key = (kind, arg)
    with _lock:
        if key not in _splitters:
            _splitters[key] = KINDS[kind](arg)
        return _splitters[key]


def _resolve(lang_script: str | None) -> tuple[str, str | None]:
    if not lang_script or lang_script == "und":
        lang_script = "eng_Latn"
    return lang_script, assignments().get(lang_script, (None, None))[0]


def ready(lang_script: str | None) -> bool:
    """Whether this language's splitter is built in this process (asking for it costs nothing more)."""
    ls, _ = _resolve(lang_script)
    if ls in _fallbacks:
        return FALLBACK in _splitters
    return assignments().get(ls, (None, None)) in _splitters


def splitter_for(lang_script: str | None):
    """The word splitter of a language ("deu_Latn"; None or "und": English, FineWeb's default), built once per
    process. A language without an assignment, or whose package is missing, gets the fallback (recorded)."""
    lang_script, _ = _resolve(lang_script)
    kind, arg = assignments().get(lang_script, (None, None))
    if kind is None:
        return _fallback(lang_script, "no splitter assigned")
    if kind not in KINDS:
        return _fallback(lang_script, f"splitter {kind!r} is not available here")
    try:
        return _build(kind, arg)
    except ImportError as e:
        return _fallback(lang_script, f"{kind} is not installed ({e.name}): pip install 'crawlproc[languages]'")


def _fallback(lang_script: str, why: str):
    if lang_script not in _fallbacks:
        _fallbacks[lang_script] = why
        log.warning("words of %s: %s; using spaCy's multi-language tokenizer (xx)", lang_script, why)
    return _build(*FALLBACK)


def is_fallback(lang_script: str | None) -> bool:
    """Whether documents of this language are split by the fallback (after splitter_for was asked)."""
    return bool(lang_script) and lang_script in _fallbacks


def fallbacks() -> dict[str, str]:
    """{language: why} for every language that fell back in this process."""
    return dict(_fallbacks)


def split_words(text: str, lang_script: str | None = None) -> list[str]:
    """The words of `text` (punctuation tokens included) as datatrove's split_into_words for that language."""
    return splitter_for(lang_script).split(text)


def clear_caches() -> None:
    """Forget the remembered chunks of every splitter built in this process (benches measure a cold split)."""
    with _lock:
        for s in _splitters.values():
            if hasattr(s, "cache"):
                s.cache = {}
