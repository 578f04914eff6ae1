"""MinHash signatures: normalization, shingles, batch consistency, estimator accuracy, band keys."""

from __future__ import annotations

import gzip
import json
import random
import unicodedata

import numpy as np
import pytest

from crawlproc.dedup.minhash import MinHasher, batch_shingles, estimate_jaccard, normalize_text, shingle_set
from crawlproc.recipe import MinHashConfig, RecipeError


@pytest.fixture(scope="module")
def articles(data_dir):
    with gzip.open(data_dir / "dedup" / "articles.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def test_normalize_lowercases_drops_punctuation_numbers_and_diacritics():
    assert normalize_text("Hello, World!  It's  3.14 o'clock") == "hello world it s 0 o clock"
    assert normalize_text("Crème Brûlée – “naïve” café") == "creme brulee naive cafe"
    assert normalize_text("snake_case and 1,000 items") == "snake case and 0 items"
    assert normalize_text("") == ""


def test_every_unicode_decimal_digit_becomes_zero():
    """Issue 11, item 8: full-width, Arabic-Indic, Devanagari... digits are numbers too."""
    digits = [chr(cp) for cp in range(0x110000) if unicodedata.category(chr(cp)) == "Nd"]
    assert len(digits) > 600
    batch = [f"price {d}{d}.{d} tag{d}" for d in digits]
    assert all(normalize_text(t) == "price 0 tag0" for t in batch)
    assert normalize_text("１２３ ٤٥٦ ७८९ and 2,024") == "0 0 0 and 0"
    # a number written with other digits makes the same shingles
    ascii_text = "the census of 2021 counted 1,234,567 people in 12 districts and 3 cities"
    arabic = ascii_text.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert shingle_set(arabic) == shingle_set(ascii_text)


def test_marks_are_dropped_not_word_breaks():
    composed = "Crème brûlée at the café in İstanbul"
    assert normalize_text(unicodedata.normalize("NFD", composed)) == normalize_text(composed) == "creme brulee at the cafe in istanbul"
    assert normalize_text("ΣΟΦΟΣ σοφός") == "σοφοσ σοφοσ"  # final sigma is sigma
    assert len(normalize_text("हिन्दी में लिखा").split()) == 3  # vowel signs do not split words


def test_shingle_counts_short_and_empty_documents():
    sh = batch_shingles(["a b c d e f g", "", "x y", "one two three four five"], ngram=5)
    assert sh.counts.tolist() == [3, 0, 1, 1]  # 7 words -> 3 windows; short doc -> one shingle
    assert len(sh.hashes) == 5
    assert len(set(sh.hashes.tolist())) == 5


def test_shingles_never_cross_documents_and_separator_in_text_is_harmless():
    texts = ["alpha beta gamma delta epsilon zeta", "eta theta iota kappa lambda", "x\x00y z"]
    joint = batch_shingles(texts, 3)
    for i, t in enumerate(texts):
        alone = batch_shingles([t], 3).hashes
        got = joint.hashes[joint.starts[i]: joint.starts[i] + joint.counts[i]]
        assert got.tolist() == alone.tolist()


def test_batch_signatures_equal_single_signatures_and_are_deterministic(articles):
    texts = articles[:12] + ["", "tiny doc"] + articles[12:15]
    a = MinHasher()
    sig, has_words = a.signatures(texts)
    assert has_words.tolist() == [True] * 12 + [False, True] + [True] * 3
    for i in (0, 5, 13, 16):
        one, _ = MinHasher().signatures([texts[i]])
        assert (one[0] == sig[i]).all()
    other_seed, _ = MinHasher(MinHashConfig(seed=7)).signatures(texts[:1])
    assert (other_seed[0] != sig[0]).mean() > 0.9


def test_signature_of_a_long_document_equals_the_plain_minimum():
    # More shingles than one permutation block, mixed with small documents in the same batch.
    rng = random.Random(3)
    words = ["".join(rng.choices("abcdefghij", k=6)) for _ in range(20000)]
    texts = ["short text here", " ".join(words), "another short one with words enough"]
    h = MinHasher()
    sig, _ = h.signatures(texts)
    sh = batch_shingles([texts[1]], 5).hashes
    with np.errstate(over="ignore"):
        expected = (sh[:, None] * h.a[None, :] + h.b[None, :]).min(axis=0)
    assert (sig[1] == expected).all()


@pytest.mark.parametrize("sketch", ["classic", "one_permutation"])
def test_estimate_tracks_true_jaccard_on_edited_articles(articles, sketch):
    rng = random.Random(11)
    h = MinHasher(MinHashConfig(sketch=sketch))
    errors = []
    for text in articles[:40]:
        words = text.split(" ")
        for _ in range(rng.randint(1, 60)):
            words[rng.randrange(len(words))] = "edited"
        edited = " ".join(words)
        a, b = shingle_set(text), shingle_set(edited)
        true_j = len(a & b) / len(a | b)
        sig, _ = h.signatures([text, edited])
        errors.append(estimate_jaccard(sig[0], sig[1]) - true_j)
    errors = np.array(errors)
    assert abs(errors.mean()) < 0.03  # unbiased
    assert np.abs(errors).max() < 0.2  # 112 hashes: standard error <= 0.05


def test_band_keys_equal_for_copies_disjoint_for_unrelated(articles):
    h = MinHasher()
    keys, has_words = h.band_keys_for_texts([articles[0], articles[0], articles[1], ""])
    assert keys.shape == (4, 14)
    assert (keys[0] == keys[1]).all()
    assert not set(keys[0].tolist()) & set(keys[2].tolist())
    assert len(set(keys[0].tolist())) == 14  # bands are salted: never equal across bands
    assert not has_words[3]


def _one_permutation_by_definition(h: MinHasher, text: str) -> list[int]:
    """The one-permutation sketch from its definition, in Python integers: v = a*x + b mod 2**64, bin =
    the top 32 bits scaled to k, each bin's minimum; an empty bin takes the first filled bin its probe row
    names, else the next filled bin after it."""
    k, a, b = h.num_hashes, int(h.a[0]), int(h.b[0])
    bins: dict[int, int] = {}
    for x in shingle_set(text):
        v = (a * x + b) % 2**64
        i = ((v >> 32) * k) >> 32
        bins[i] = min(bins.get(i, v), v)
    out = []
    for i in range(k):
        if i in bins:
            out.append(bins[i])
            continue
        src = next((int(p) for p in h.probes[:, i] if int(p) in bins), None)
        if src is None:
            src = next((i + s) % k for s in range(1, k) if (i + s) % k in bins)
        out.append(bins[src])
    return out


def test_one_permutation_signatures_are_the_sketch_by_its_definition(articles):
    h = MinHasher(MinHashConfig(sketch="one_permutation", seed=5))
    texts = [articles[0], articles[7], "only three words", "one two three four five six"]
    sig, _ = h.signatures(texts)
    for i, t in enumerate(texts):
        assert sig[i].tolist() == _one_permutation_by_definition(h, t), i
    # a document of one shingle has one filled bin: every other bin borrows it
    assert len(set(sig[2].tolist())) == 1


def test_the_classic_sketch_keeps_the_fingerprint_it_had_before_sketch_existed():
    from crawlproc.dedup.signatures import signature_fingerprint
    # the settings as fingerprints recorded them before the key: runs made then are not redone
    assert MinHashConfig().identity() == {"ngram": 5, "num_bands": 14, "rows_per_band": 8, "hash_bits": 64, "seed": 1}
    assert MinHashConfig(sketch="one_permutation").identity()["sketch"] == "one_permutation"
    assert signature_fingerprint(MinHashConfig()) != signature_fingerprint(MinHashConfig(sketch="one_permutation"))


def test_32_bit_signatures_fit_in_32_bits(articles):
    sig, _ = MinHasher(MinHashConfig(hash_bits=32)).signatures(articles[:3])
    assert sig.max() < 2**32


def test_config_validation():
    with pytest.raises(RecipeError):
        MinHashConfig(num_bands=0)
    with pytest.raises(RecipeError):
        MinHashConfig(hash_bits=16)
    with pytest.raises(RecipeError, match="sketch"):
        MinHashConfig(sketch="bucketed")


def test_signature_table_format(articles):
    from crawlproc.dedup.signatures import FINGERPRINT_KEY, signature_fingerprint, signature_table

    texts = [articles[0], articles[0], "", None, articles[1]]
    table = signature_table(["a", "b", "c", "d", "e"], texts, MinHashConfig(), batch=2)
    assert table.column_names == ["id", "content_hash", "has_words", "bands"]
    assert table.column("has_words").to_pylist() == [True, True, False, False, True]
    bands = table.column("bands").to_pylist()
    assert bands[0] == bands[1] and len(bands[0]) == 14 and set(bands[0]).isdisjoint(bands[4])
    hashes = table.column("content_hash").to_pylist()
    assert hashes[0] == hashes[1] and hashes[2] == hashes[3] != hashes[0]
    assert table.schema.metadata[FINGERPRINT_KEY].decode() == signature_fingerprint(MinHashConfig())
    assert signature_fingerprint(MinHashConfig(seed=2)) != signature_fingerprint(MinHashConfig())


def test_odd_text_never_breaks_a_batch():
    texts = ["lone surrogate \ud800 in text here", "tabs\tand\r\nnewlines\u00a0nbsp\u3000ideographic", "🙂 emoji only"]
    sh = batch_shingles(texts, 2)
    assert sh.counts.tolist() == [4, 4, 1]
    assert normalize_text(texts[1]) == "tabs and newlines nbsp ideographic"
