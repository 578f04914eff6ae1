"""crawlproc.dedup.kernels: the compiled normalization, shingles and permutation minima give exactly what the
numpy reference code gives, on real pages in many scripts and on generated text aimed at the edge cases
(numbers split by marks, separators, characters outside the BMP, documents shorter than a shingle)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawlproc.dedup import kernels
from crawlproc.dedup import normalize as norm
from crawlproc.dedup.minhash import MinHasher, batch_shingles, shingles_numpy
from crawlproc.recipe import MinHashConfig

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not importable here")

ROOT = Path(__file__).resolve().parent.parent

# characters that exercise every branch: digits of several scripts (ASCII, Arabic-Indic, full-width,
# mathematical bold: outside the BMP), separators of numbers, combining marks, letters that lose accents or
# change case, a final sigma, symbols and emoji, NUL, spaces
_ALPHABET = list("aZé0123456789.,;- \t\n\x00") + ["\u0301", "\u0661", "\uff15", "\U0001d7ce", "\U0001d400",
                                                    "😀", "ς", "Σ", "İ", "ǅ", "ẞ", "中", "ё", "\u200b", "ﬁ"]
texts_strategy = st.lists(st.text(alphabet=st.sampled_from(_ALPHABET), max_size=60), min_size=1, max_size=12)


@pytest.fixture(scope="module")
def real_texts(data_dir):
    with gzip.open(data_dir / "dedup" / "articles.jsonl.gz", "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    pages = sorted((data_dir / "html_multilingual").iterdir())
    texts += [gzip.decompress(p.read_bytes()).decode("utf-8", "replace") for p in pages if p.suffix == ".gz"]
    assert len(texts) > 200
    return texts


def _both_normalizations(texts):
    column = norm.utf8_column(texts)
    return norm._normalized_compiled(column), norm.normalized_bytes_numpy(column)


@settings(max_examples=300, deadline=None)
@given(texts_strategy)
def test_normalization_is_the_numpy_one_on_generated_text(texts):
    compiled, reference = _both_normalizations(texts)
    assert compiled.tobytes() == reference.tobytes()


def test_normalization_is_the_numpy_one_on_real_pages(real_texts):
    for i in range(0, len(real_texts), 50):
        compiled, reference = _both_normalizations(real_texts[i: i + 50])
        assert compiled.tobytes() == reference.tobytes()


def test_numbers_collapse_across_marks_and_scripts_like_the_reference():
    cases = ["1\u03012 and 3.\u03014", "0.,0", "00.0.0", "5.", ".5", "a.0", "1,2,3,", "\u0661\u0662.3",
             "\U0001d7cf.\U0001d7d0 x", "😀1.1😀", "1..2", "x\x001.2"]
    for text in cases:
        compiled, reference = _both_normalizations([text])
        assert compiled.tobytes() == reference.tobytes(), text


@settings(max_examples=200, deadline=None)
@given(texts_strategy, st.sampled_from([1, 2, 5, 13]))
def test_shingles_are_the_numpy_ones(texts, ngram):
    sh = batch_shingles(texts, ngram)
    ref = shingles_numpy(norm.normalized_bytes_numpy(texts), len(texts), ngram)
    assert np.array_equal(sh.counts, ref.counts)
    assert np.array_equal(sh.hashes, ref.hashes)
    assert np.array_equal(sh.starts[sh.counts > 0], ref.starts[ref.counts > 0])


@pytest.mark.parametrize("config", [MinHashConfig(), MinHashConfig(hash_bits=32, seed=7),
                                    MinHashConfig(ngram=100, num_bands=3, rows_per_band=2),
                                    MinHashConfig(sketch="one_permutation"),
                                    MinHashConfig(sketch="one_permutation", hash_bits=32, num_bands=3, rows_per_band=2)])
def test_signatures_are_the_numpy_ones(real_texts, config, monkeypatch):
    hasher = MinHasher(config)
    texts = real_texts[:120] + ["", "one", "two words"]
    sh = batch_shingles(texts, config.ngram)
    compiled = hasher.signatures_from_shingles(sh)
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    assert np.array_equal(compiled, hasher.signatures_from_shingles(sh))
    keys, has_words = hasher.band_keys_for_texts(texts)
    assert has_words.tolist()[-3:] == [False, True, True]
    assert keys.shape == (len(texts), config.num_bands)


def test_without_numba_the_numpy_code_gives_the_same_band_keys(real_texts, tmp_path):
    """CRAWLPROC_NUMBA=0 (and a numba that cannot be imported) runs the numpy code: same keys."""
    texts = real_texts[:60]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    code = ("import json, sys, numpy as np; from crawlproc.dedup import kernels; "
            "from crawlproc.dedup.minhash import MinHasher; assert not kernels.AVAILABLE; "
            "texts = json.load(open(sys.argv[1])); "
            "np.save(sys.argv[2], MinHasher().band_keys_for_texts(texts)[0])")
    env = {**os.environ, "CRAWLPROC_NUMBA": "0"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "texts.json"), str(tmp_path / "keys.npy")],
                   cwd=ROOT, env=env, check=True, timeout=120)
    assert np.array_equal(np.load(tmp_path / "keys.npy"), MinHasher().band_keys_for_texts(texts)[0])


def test_a_driver_compiles_the_kernels_once_for_the_workers_of_its_machine(tmp_path):
    """compile_kernels_in_background (the dedup stage runs it while Ray starts) leaves the compiled kernels in
    numba's disk cache: a new process on the machine (a Ray worker) loads them and compiles nothing."""
    code = ("import sys; from crawlproc.dedup import kernels; from crawlproc.dedup.minhash import MinHasher, "
            "compile_kernels_in_background; t = compile_kernels_in_background(); t.join(); "
            "MinHasher().band_keys_for_texts(['a worker hashes one text of enough words']); "
            "print(sum(f.stats.cache_misses.total() for f in (kernels.normalize, kernels.shingles, kernels.min_hashes)))")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}

    def misses() -> int:
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=300,
                              capture_output=True, text=True)
        return int(done.stdout.split()[-1])

    assert misses() == 3  # an empty cache: the driver compiles each kernel once
    assert misses() == 0  # the next process (a worker) only loads them
