"""The BPE tokenizer: exact round trips, ids identical to `tokenizers` and `transformers` on the saved file,
training, file formats, bad input (surrogates, NUL, huge and empty text) and the token display."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tokenizer import EOT, BPETokenizer, load_tokenizer, save_tokenizer, train_bpe
from tokenizer.bytelevel import byte_to_char, bytes_to_symbols, symbols_to_bytes
from tokenizer.formats import from_hf_dict, recover_merges
from tokenizer.show import render_ansi, render_html, token_spans
from tokenizer.train import train_merges_python

VOCAB = 700
CORPUS_FILE = Path(__file__).parent / "data" / "tokenizer" / "corpus.jsonl"
_DOCS = [json.loads(line)["text"] for line in CORPUS_FILE.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return list(_DOCS)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    tok = train_bpe(corpus, VOCAB)
    directory = tmp_path_factory.mktemp("tok")
    info = save_tokenizer(tok, directory)
    return tok, directory, info


@pytest.fixture(scope="module")
def hf(trained):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(trained[1] / "tokenizer.json"))


@pytest.fixture(scope="module")
def tf(trained):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(trained[1] / "tokenizer.json"))


def test_trained_vocabulary_has_requested_size_and_eot_last(trained):
    tok, _, info = trained
    assert tok.vocab_size == VOCAB
    assert tok.eot_id == VOCAB - 1
    assert len(tok.mergeable_ranks) == VOCAB - 1
    assert sorted(tok.mergeable_ranks.values()) == list(range(VOCAB - 1))
    assert info["eot_id"] == VOCAB - 1 and info["eot_token"] == EOT and info["vocab_size"] == VOCAB
    assert tok.dtype.name == "uint16"


def test_round_trip_is_exact_on_every_fixture_document(corpus, trained):
    tok = trained[0]
    for text in corpus:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert len(ids) < len(text.encode("utf-8"))  # merges were learned and used


def test_ids_agree_with_tokenizers_and_transformers_on_fixtures(corpus, trained, hf, tf):
    tok = trained[0]
    for text in corpus:
        ours = tok.encode(text)
        assert hf.encode(text).ids == ours
        assert tf.encode(text) == ours
        assert hf.decode(ours) == text


def test_fast_encoder_equals_the_readable_reference(corpus, trained):
    tok = trained[0]
    for text in corpus[:40]:
        assert tok.encode(text) == tok.encode_reference(text)


_WORDS = st.sampled_from(
    ["the", " the", "The", " and", "ing", " über", " 東京", "  ", "\n", "\n\n", " 2024", "'s", "'LL", "...",
     " données", "\t", " \n ", "😀", "\u200d", "ß", " Привет", "١٢٣", "\r\n", "-", "--", "\x00"]
)  # fmt: skip
_TEXTS = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=200),
    st.lists(_WORDS, max_size=40).map("".join),
    st.lists(st.one_of(_WORDS, st.text(max_size=5)), max_size=30).map("".join),
    # slices of real documents (cut anywhere), glued to random text: exercises the learned merges
    st.tuples(st.sampled_from(_DOCS), st.integers(0, 5000), st.integers(1, 400), st.text(max_size=8)).map(
        lambda t: t[0][t[1] : t[1] + t[2]] + t[3]
    ),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_TEXTS)
def test_round_trip_and_agreement_on_generated_text(trained, hf, tf, text):
    assume(EOT not in text)  # HF always matches added tokens; ours treats them as text unless allowed
    tok = trained[0]
    ours = tok.encode(text)
    assert tok.decode(ours) == text
    assert hf.encode(text).ids == ours
    assert tf.encode(text) == ours


def test_special_token_is_text_unless_allowed(trained, hf):
    tok = trained[0]
    text = f"end{EOT}start"
    plain = tok.encode(text)
    assert tok.eot_id not in plain and tok.decode(plain) == text
    allowed = tok.encode(text, allowed_special="all")
    assert tok.eot_id in allowed and tok.decode(allowed) == text
    assert hf.encode(text).ids == allowed


def test_lone_surrogates_are_replaced_and_counted(trained):
    tok = BPETokenizer(trained[0].mergeable_ranks, special_tokens=trained[0].special_tokens)
    ids = tok.encode("a\ud800b \udfff")
    assert tok.decode(ids) == "a\ufffdb \ufffd"
    assert tok.stats["surrogates_replaced"] == 1
    # a surrogate pair written as two code points is the character it stands for
    assert tok.decode(tok.encode("x\ud83d\ude00")) == "x😀"


def test_nul_empty_and_huge_inputs(trained):
    tok = BPETokenizer(trained[0].mergeable_ranks, special_tokens=trained[0].special_tokens)
    assert tok.encode("") == []
    nul = "a\x00b\x00\x00c"
    assert tok.decode(tok.encode(nul)) == nul
    # tiktoken's backtracking regex gives up on a million spaces: the fallback gives the same ids
    huge = "start" + " " * 1_000_000 + "end"
    ids = tok.encode(huge)
    assert tok.decode(ids) == huge
    assert tok.stats["regex_fallback"] == 1
    moderate = "start" + " " * 5000 + "end"
    assert tok._encode_split_in_python(moderate, set()) == tok.encode(moderate)


def test_encode_many_gives_each_text_its_own_ids(corpus, trained):
    """One tiktoken call for many texts (joined by a special token) must give every text exactly the ids it
    gets alone, also when a text holds the separator's string, is empty, ends in whitespace (the regex's
    lookahead at a text's end), or has lone surrogates (then text by text, repairs counted)."""
    tok = BPETokenizer(trained[0].mergeable_ranks, special_tokens=trained[0].special_tokens)
    texts = corpus[:40] + ["", "ends in spaces   ", "   ", "\n\n", "x", "ünïcödé 😀 中文"]
    values, offsets = tok.encode_many(texts)
    assert offsets[0] == 0 and offsets[-1] == len(values) and len(offsets) == len(texts) + 1
    assert [values[a:b].tolist() for a, b in zip(offsets, offsets[1:])] == [tok.encode(t) for t in texts]
    assert tok.encode_joined(tok.separator.join(texts), len(texts)) is not None  # the one-call path ran
    for odd in ([f"a {EOT} b", "c"], ["a\ud800b", "c"], ["  " + " " * 1_000_000 + "end", "c"]):
        assert tok.encode_joined(tok.separator.join(odd), len(odd)) is None  # they need the one-by-one path
        values, offsets = tok.encode_many(odd)
        assert [values[a:b].tolist() for a, b in zip(offsets, offsets[1:])] == [tok.encode(t) for t in odd]
    assert tok.stats["surrogates_replaced"] == 2 and tok.stats["regex_fallback"] == 2  # encode_many + oracle
    no_specials = BPETokenizer(trained[0].mergeable_ranks, special_tokens={})
    assert no_specials.separator is None
    values, offsets = no_specials.encode_many(texts[:5])
    assert values.tolist() == [i for t in texts[:5] for i in tok.encode(t)]


def test_training_survives_bad_text_and_tiny_corpora():
    tok = train_bpe(["ab\ud800ab", "", None, "abab\x00"], 300)  # type: ignore[list-item]
    assert tok.stats["surrogates_replaced"] == 1 and tok.stats["empty"] == 2
    assert tok.vocab_size < 300  # too little text for 43 merges: fewer, no failure
    assert tok.decode(tok.encode("abab")) == "abab"
    with pytest.raises(ValueError, match="below 256"):
        train_bpe(["x"], 200)


def test_python_trainer_learns_the_same_merges_as_rustbpe(corpus):
    texts = corpus[:12]
    assert (
        train_merges_python(texts, 120) == train_bpe(texts, 256 + 120 + 1, engine="rustbpe").mergeable_ranks
    )


def test_saved_files_load_back_identically(trained):
    tok, directory, info = trained
    assert load_tokenizer(directory) == tok
    assert load_tokenizer(directory / "tokenizer.json") == tok
    assert load_tokenizer(directory / "tokenizer.tiktoken") == tok
    assert info["sha256"] == hashlib.sha256((directory / "tokenizer.json").read_bytes()).hexdigest()
    first = (directory / "tokenizer.tiktoken").read_text().splitlines()[:2]
    assert first == [
        base64.b64encode(bytes([0])).decode() + " 0",
        base64.b64encode(bytes([1])).decode() + " 1",
    ]
    data = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))
    assert data["normalizer"] is None
    assert data["added_tokens"][0]["content"] == EOT and data["added_tokens"][0]["special"]
    assert len(data["model"]["merges"]) == len(tok.mergeable_ranks) - 256


def test_transformers_auto_tokenizer_loads_the_folder(trained):
    from transformers import AutoTokenizer

    tok, directory, _ = trained
    auto = AutoTokenizer.from_pretrained(str(directory))
    assert auto.eos_token == EOT and auto.eos_token_id == tok.eot_id
    assert auto.encode("Hello world, again.") == tok.encode("Hello world, again.")


def test_every_merge_is_recovered_in_rank_order(trained):
    ranks = trained[0].mergeable_ranks
    merges = recover_merges(ranks)
    assert [ranks[a + b] for a, b in merges] == list(range(256, len(ranks)))


def test_bad_tokenizer_files_give_clear_errors(tmp_path, trained):
    with pytest.raises(ValueError, match="expected a byte-level 'BPE'"):
        from_hf_dict({"model": {"type": "WordPiece"}})
    data = json.loads((trained[1] / "tokenizer.json").read_text(encoding="utf-8"))
    data["model"]["merges"] = list(reversed(data["model"]["merges"]))
    with pytest.raises(ValueError, match="rank order"):
        from_hf_dict(data)
    bad = tmp_path / "bad.tiktoken"
    bad.write_text("not-base64!! 0\n")
    with pytest.raises(ValueError, match="bad.tiktoken:1"):
        load_tokenizer(bad)
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "missing")


def test_byte_level_alphabet_matches_huggingface():
    from tokenizers.pre_tokenizers import ByteLevel

    table = byte_to_char()
    assert len(set(table.values())) == 256
    assert set(table.values()) == set(ByteLevel.alphabet())
    every_byte = bytes(range(256))
    assert symbols_to_bytes(bytes_to_symbols(every_byte)) == every_byte
    assert bytes_to_symbols(b" ") == "Ġ"


def test_show_groups_partial_characters_and_marks_ids(trained):
    tok = trained[0]
    text = "Tokyo 東京 😀 is big\n"
    spans = token_spans(tok, text)
    assert "".join(s for s, _ in spans) == text
    assert [i for _, ids in spans for i in ids] == tok.encode(text)
    assert all("\ufffd" not in s for s, _ in spans)  # multi-byte characters are never cut
    page = render_html(tok, text)
    assert page.startswith("<!DOCTYPE html>") and page.count("<span ") == len(spans)
    assert f'title="{" ".join(map(str, spans[0][1]))}"' in page
    ansi = render_ansi(tok, text)
    assert "\x1b[30;48;5;" in ansi and f"{len(tok.encode(text))} tokens" in ansi
