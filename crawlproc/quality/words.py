"""The character classes datatrove's filters test (terminal punctuation, symbol words, alphabetic words) and
sentence counting as spaCy's sentencizer counts, over the words of the line's language; and `split_words`, an
English-only regex approximation of spaCy's tokenizer.

The filters no longer take their words from `split_words`: Doc.words comes from crawlproc/quality/splitters.py,
spaCy's own rules chunk by chunk, the same words as datatrove's (on held-out technical text the regex below
differed in 1.2% of tokens, which moved 3% of decisions). What follows describes the regex as it was built:

datatrove tokenizes English with spaCy's rule-based tokenizer (`spacy.blank("en")`) and counts sentences with
spaCy's sentencizer. Loading and running spaCy costs most of the filters' time, so here one compiled regex
does the same job: it splits on whitespace, peels punctuation off word edges, keeps the joins spaCy keeps
("3.5", "1,000", "U.S.", "COVID-19", "o'clock", "example.com") and splits what spaCy splits ("well-known",
"and/or", "it's" -> "it" "'s", "don't" -> "do" "n't", "10km" -> "10" "km", "!!!" -> "!" "!" "!").
It is an approximation: rare cases (emoticons, most of spaCy's exception table, punctuation inside CJK runs)
differ. On the 362 gold and trafilatura texts of the ScrapingHub benchmark it gives 99.9% of spaCy's tokens;
a difference moves a statistic by a word or two, which changes a decision only on a threshold.
"""

from __future__ import annotations

import re
import string
import unicodedata
from bisect import bisect_left
from collections.abc import Iterator
from functools import lru_cache
from heapq import merge
from itertools import accumulate, chain

import regex

# Titles, months, companies and a few states that keep their final period (so "Mr. Smith" is no sentence end).
_ABBREVIATIONS = (
    "Mr Mrs Ms Dr St Jr Sr Prof Gen Gov Sen Rep Rev Adm Mt Messrs Bros Co Corp Inc Ltd vs "
    "Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec "
    "Ala Ariz Ark Calif Colo Conn Del Fla Ga Ill Ind Kan Ky La Md Mass Mich Minn Miss Mo Mont Neb Nev "
    "Okla Ore Pa Tenn Va Wash Wis"
).split()
_DOTTED = r"a\.m|p\.m|e\.g|i\.e|E\.g|I\.e|v\.s|Ph\.D"
_UNITS = r"km|cm|mm|m|kg|mg|g|lb|oz|ft|yd|mph|kmh|GB|MB|KB|TB|gb|kb|am|pm|K|M|G|T|%"


def _mark_ranges() -> str:
    """Combining marks of the Basic Multilingual Plane as a character-class body: re's \\w leaves them out,
    spaCy keeps them inside words (Arabic vowel signs, Indic vowel signs, decomposed accents)."""
    ranges, start, prev = [], None, None
    for cp in range(0x300, 0x10000):
        if unicodedata.category(chr(cp))[0] == "M" and not 0xFE00 <= cp <= 0xFE0F:  # emoji selectors split
            if start is None:
                start = cp
            elif cp != prev + 1:
                ranges.append((start, prev))
                start = cp
            prev = cp
    ranges.append((start, prev))
    return "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges)


_ALNUM = rf"(?:[^\W_]|[{_mark_ranges()}])"  # a letter, digit or combining mark (re's \w minus the underscore)

# Inside a whitespace-separated chunk spaCy splits only at its "infix" contexts; any other punctuation
# between two letters or digits stays in the word ("AT&T", "o'clock", "a(b", "TL;DR", "1,000", "3.5").
_SPLIT_HERE = (
    r"(?:"
    r"(?<=[a-z])\.(?=[A-Z])|\.\.|…"  # "end.Start", "a...b"
    r"|(?<=[^\W\d_]),(?=[^\W\d_])"  # "a,b" (but 1,000 and 1,a stay whole)
    r"|(?<=[^\W_])(?:[-–—~]|--|---|——)(?=[^\W\d_])"  # "well-known", "19-year" (not COVID-19, 2–3, U.S.-led)
    r"|(?<=\d)[-+*^](?=[\d-])"  # "2-3", "1+1"
    r"|(?<=[^\W_])[:<>=/](?=[^\W\d_])"  # "and/or", "a=b" (but 10:30, 1/2 and a=1 stay whole)
    r"|['’](?:[sSdDmM]|re|ve|ll|RE|VE|LL)(?![^\W_])"  # the clitics "'s" "'ll" come off as their own token
    r"|[©®°\u2100-\u214f\u2190-\u21ff\u2300-\u23ff\u2500-\u27bf\u2b00-\u2bff\U0001F000-\U0001FAFF]"  # emoji
    r")"
)
_JOIN = rf"(?:(?!{_SPLIT_HERE})[^\s\w]|_)+"
# At the start of a whitespace-separated chunk: "-5", "+5", ".45", ".NET", "@user" stay whole.
_LEAD = r"(?:(?<!\S)(?:[-+.](?=\d)|\.(?=[^\W\d_]))|(?<![^\W_])@(?=[^\W_]))?"
# C++ and Disney+ keep their plus, "fiber-" (as in "fiber- and copper-based") its hyphen
_WORD = rf"{_LEAD}{_ALNUM}+(?:{_JOIN}{_ALNUM}+)*(?:(?<=[^\W\d_])\++|-+(?!\S))?"
# Contractions written without the apostrophe, which spaCy splits too: "dont" -> "do" "nt".
_NT_STEMS = r"[Dd]o|[Dd]oes|[Dd]id|[Cc]a|[Ww]o|[Ii]s|[Aa]re|[Ww]as|[Ww]ere|[Hh]as|[Hh]ave|[Hh]ad|[Ss]hould|[Ww]ould|[Cc]ould"
_END = r"(?![^\W_])"  # the end of a word

# Every token but URLs. Whitespace-free chunks go in one at a time (split_words), and each alternative scans
# no further than the token it yields (or a run the next tokens consume): tokenizing is linear in the text.
TOKEN_RE = re.compile(
    rf"(?<![^\W_])(?:{'|'.join(_ABBREVIATIONS)}|{_DOTTED}|[a-z])\.{_END}"  # Mr.  e.g.  a.m.
    rf"|\d+(?:[.,:/]\d+)*(?=(?:{_UNITS}){_END})"  # the number of 10km / 5pm / 50%
    rf"|{_ALNUM}+(?=n['’]t{_END})|n['’]t{_END}"  # do n't, ca n't (but "DON'T" stays whole)
    rf"|(?<![^\W_])(?:{_NT_STEMS})(?=nt{_END})|(?<=[a-z])nt{_END}"  # do nt
    rf"|(?<![^\W_])(?:[Cc]an(?=not{_END})|[Gg]on(?=na{_END})|[Gg]ot(?=ta{_END})|[Ii](?=(?:m|ve){_END}))"
    rf"|(?<=[Cc]an)not{_END}|(?<=[Gg]on)na{_END}|(?<=[Gg]ot)ta{_END}|(?<=[Ii])(?:m|ve){_END}"  # can not, I ve
    rf"|['’](?:[sSdDmM]|re|ve|ll|RE|VE|LL){_END}"  # the clitic of it's, we're, I'll
    rf"|{_WORD}(?:(?<=[A-Z])(?<![A-Z]{{2}})\.)?"  # a word; a single capital keeps its period: "J."
    r"|\.{2,}|…|-{2,}|/{2,}|~+"  # runs spaCy keeps whole
    r"|\):|[:;]\)|:\("  # emoticons spaCy merges back, as in "(Group H):"
    r"|\S",  # any other character is a token of its own (punctuation, symbols)
)

# A URL runs to the end of its chunk but for trailing punctuation: without a path it leaves off ".,;:!?)]" and
# quotes ("see www.example.com."), with one only ",;:!?)]" and quotes ("https://goo.gl/x." keeps its period, as
# spaCy's URL rule does). Each body is taken greedily and handed back only past trailing punctuation, so one
# attempt is linear; `_url_tokens` makes only the attempts that can succeed.
_TAIL_HOST = ".,;:!?)]\"'”’"
_TAIL_PATH = ",;:!?)]\"'”’"
_HOST_PREFIXES = ("http://", "https://", "www.")
URL_RE = re.compile(
    r"(?:https?://|www\.)[^\s<>\"/](?:[^\s<>\"/]*(?<![.,;:!?)\]'”’]))?(?=[.,;:!?)\]\"'”’]*$)"
    r"|(?:https?://|www\.|[^\W_][\w-]*(?:\.[\w-]+)*\.[a-z]{2,6}/)[^\s<>\"]*(?<![,;:!?)\]'”’])"
    r"(?=[,;:!?)\]\"'”’]*$)"
)
_HOST_RUN = re.compile(r"[\w.-]+")  # what a bare domain ("example.com" of "example.com/page") is made of
_TLD = re.compile(r"[a-z]{2,6}")


def _tail_start(chunk: str, tail: str) -> int:
    """Where the run of `tail` characters that ends the chunk begins."""
    i = len(chunk)
    while i and chunk[i - 1] in tail:
        i -= 1
    return i


def _prefix_starts(chunk: str, prefix: str, after: int) -> Iterator[int]:
    """Where `prefix` occurs in the chunk, from position `after` on."""
    s = chunk.find(prefix, max(after, 0))
    while s >= 0:
        yield s
        s = chunk.find(prefix, s + 1)


def _domain_starts(chunk: str, after: int, starts: list[int]) -> Iterator[int]:
    """Token starts where a URL of the form "example.com/..." may begin, its path after `after`.

    Such a domain runs to the "/" that ends its run of word characters, dots and hyphens, has no "..", and
    its last label is 2-6 lowercase letters: every start inside one run shares that end, so each run is
    looked at once (the regex alone rescanned the run from every start)."""
    for m in _HOST_RUN.finditer(chunk, after + 1):
        a, b = m.span()
        if b >= len(chunk) or chunk[b] != "/":
            continue
        run = m.group()
        dot = run.rfind(".")
        if dot <= 0 or _TLD.fullmatch(run, dot + 1) is None:
            continue
        double = run.rfind("..")
        first, last = (a + double + 2 if double >= 0 else a), a + dot
        yield from starts[bisect_left(starts, first):bisect_left(starts, last)]


def _url_tokens(chunk: str) -> list[str]:
    """Tokens of a chunk that may hold a URL: TOKEN_RE's, but from the first token start where URL_RE
    matches, that URL and the punctuation after it.

    TOKEN_RE's tokens tile the chunk (its last branch takes any character), so their starts are the running
    sums of their lengths. A URL ends the chunk (but for trailing punctuation), so it can only start after
    the last character its body excludes (last_host, last_path), with a prefix that fits: http://, https://,
    www. or a domain. Only those starts are tried, in order."""
    tokens = TOKEN_RE.findall(chunk)
    starts = list(accumulate(map(len, tokens), initial=0))
    last_host = max(chunk.rfind(c, 0, _tail_start(chunk, _TAIL_HOST)) for c in '<>"/')
    last_path = max(chunk.rfind(c, 0, _tail_start(chunk, _TAIL_PATH)) for c in '<>"')
    after = min(last_host, last_path) - len("https://") + 1
    candidates = merge(*(_prefix_starts(chunk, p, after) for p in _HOST_PREFIXES),
                       _domain_starts(chunk, last_path, starts))
    for s in candidates:
        i = bisect_left(starts, s)
        if i < len(tokens) and starts[i] == s and (url := URL_RE.match(chunk, s)) is not None:
            return [*tokens[:i], url.group(), *TOKEN_RE.findall(chunk, url.end())]
    return tokens


# One "word" costs at most this much: longer whitespace-free chunks (base64, minified code; nothing a reader
# would call a word, and C4 drops any line holding a word over 1,000 characters) are tokenized in pieces of
# this size, so that no single regex call runs long and the per-document CPU budget can stop between pieces.
MAX_CHUNK_CHARS = 10_000


def _tokens(chunk: str) -> list[str]:
    if "/" in chunk or "www." in chunk:
        return _url_tokens(chunk)
    return TOKEN_RE.findall(chunk)


_CACHED_CHUNK_CHARS = 64  # longer chunks (URLs, blobs) are rare and would only fill the cache


@lru_cache(maxsize=1 << 16)
def _cached_chunk_tokens(chunk: str) -> tuple[str, ...]:
    return tuple(_tokens(chunk))


def _chunk_tokens(chunk: str) -> tuple[str, ...] | list[str]:
    if len(chunk) <= _CACHED_CHUNK_CHARS:
        return _cached_chunk_tokens(chunk)
    if len(chunk) <= MAX_CHUNK_CHARS:
        return _tokens(chunk)
    return [t for i in range(0, len(chunk), MAX_CHUNK_CHARS) for t in _tokens(chunk[i:i + MAX_CHUNK_CHARS])]


def split_words(text: str) -> list[str]:
    """The words of `text`, punctuation tokens included, as datatrove's English `split_into_words` gives.

    No token spans whitespace, so each whitespace-separated chunk is tokenized on its own and remembered
    (bounded): running text repeats its chunks ("the", "of", "said,"), and the loops stay in C."""
    chunks = text.split()
    if not chunks:
        return []
    if max(map(len, chunks)) <= _CACHED_CHUNK_CHARS:
        return list(chain.from_iterable(map(_cached_chunk_tokens, chunks)))
    return list(chain.from_iterable(map(_chunk_tokens, chunks)))


# --- the character classes datatrove's filters test ------------------------------------------------------

# Sentence-ending punctuation: Unicode's Sentence_Terminal plus three Khmer signs, as datatrove's
# TERMINAL_PUNCTUATION (spaCy's sentencizer uses a subset of the same set).
_TERMINAL_RE = regex.compile(r"[\p{Sentence_Terminal}\u17d6\u17d9\u17da]")
_terminal_cache: dict[str, bool] = {}


def is_terminal(ch: str) -> bool:
    """Whether one character ends a sentence (cached: texts use few distinct final characters)."""
    hit = _terminal_cache.get(ch)
    if hit is None:
        hit = _terminal_cache[ch] = _TERMINAL_RE.match(ch) is not None
    return hit


# Characters that make a "word" a symbol, not a word, for Gopher's word count and mean word length:
# ASCII punctuation, control characters (tab and newline excepted), the typographic and CJK marks below,
# and every sentence terminal (checked through is_terminal).
_SYMBOLS = frozenset(
    string.punctuation
    + "".join(map(chr, [*range(0, 9), 11, 12, *range(13, 32), *range(127, 160)]))
    + "—–”“„’´«»…►━∶％１〈〉《》「」【】、，；．（）？！：～。"
)


def is_symbol_word(word: str) -> bool:
    """True when every character is punctuation (datatrove's PUNCTUATION_SET), e.g. "," "..." "--"."""
    for ch in word:
        if ch not in _SYMBOLS and not is_terminal(ch):
            return False
    return True


def has_alpha(word: str) -> bool:
    for ch in word:
        if ch.isalpha():
            return True
    return False


# --- sentences, as spaCy's sentencizer counts them in one line -------------------------------------------

_WS_TOKEN = re.compile(r" {2,}|[^\S ]+")  # spaCy makes a token of any whitespace but a single space
_WS_SPLIT = re.compile(r"( {2,}|[^\S ]+)")


def _is_punct_token(tok: str) -> bool:
    # spaCy's is_punct: every character is Unicode punctuation (category P*)
    return all(unicodedata.category(ch)[0] == "P" for ch in tok)


def _english(text: str) -> list[str]:
    from crawlproc.quality.splitters import split_words as split_lang

    return split_lang(text)


def _line_tokens(line: str, split=None) -> list[str]:
    split = split or _english
    if _WS_TOKEN.search(line) is None:
        return split(line)
    # whitespace other than a single space is a (non-punctuation) token for the sentencizer
    return [t for part in _WS_SPLIT.split(line) for t in ([part] if part.isspace() else split(part))]


def _sentence_starts(tokens: list[str]) -> list[int]:
    """Indexes of the tokens that start a sentence after the first: the first non-punctuation token after a
    token that is a single sentence terminal ("." "!" "?" ...), as spaCy's sentencizer splits."""
    starts = []
    seen_terminal = False
    for i, tok in enumerate(tokens):
        if len(tok) == 1 and is_terminal(tok):
            seen_terminal = True
        elif seen_terminal and not _is_punct_token(tok):
            starts.append(i)
            seen_terminal = False
    return starts


def count_sentences(line: str, split=None) -> int:
    """Sentences in one stripped line (see `_sentence_starts`). `split`: the word splitter (text -> tokens) of
    the line's language (crawlproc/quality/splitters.py); English's by default."""
    if _TERMINAL_RE.search(line) is None:  # no sentence terminal at all (common): one sentence, no tokenizing
        return 1
    return 1 + len(_sentence_starts(_line_tokens(line, split)))


def split_sentences(line: str, split=None) -> list[str]:
    """The sentences of one line, as `count_sentences` counts them, each a stripped slice of the line."""
    line = line.strip()
    if not line:
        return []
    if _TERMINAL_RE.search(line) is None:
        return [line]
    tokens = _line_tokens(line, split)
    cuts, pos, at = [], 0, {i for i in _sentence_starts(tokens)}
    for i, tok in enumerate(tokens):
        found = line.find(tok, pos)
        if found < 0:  # a token the splitter rewrote: no exact position, keep the sentence whole
            continue
        if i in at:
            cuts.append(found)
        pos = found + len(tok)
    bounds = [0, *cuts, len(line)]
    return [line[a:b].strip() for a, b in zip(bounds, bounds[1:]) if line[a:b].strip()]
