"""The recipe: every knob of the pipeline, as plain dataclasses with the FineWeb constants as defaults.

A recipe file is TOML with one table per section (see pipelines/recipes/fineweb.toml). `load_recipe` rejects
an unknown section or key, a value of the wrong type, or a value out of range *before any work starts*, with an
error that names the key and the reason.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path


class RecipeError(ValueError):
    """A recipe that cannot be run: names the offending key (e.g. `gopher_quality.min_doc_words`)."""

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"recipe key {key!r}: {reason}")


def _check(cond: bool, key: str, reason: str) -> None:
    if not cond:
        raise RecipeError(key, reason)


def _fraction(obj, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        _check(v is None or 0.0 <= v <= 1.0, n, f"must be a fraction in [0, 1], got {v!r}")


@dataclass
class InputConfig:
    max_payload_bytes: int = 5_000_000  # larger HTTP payloads are skipped (counted), never parsed
    html_only: bool = True

    def __post_init__(self):
        _check(self.max_payload_bytes > 0, "max_payload_bytes", "must be > 0")


@dataclass
class UrlFilterConfig:
    enabled: bool = True
    use_ut1_lists: bool = True  # the UT1 "adult" domain and URL lists, as FineWeb
    soft_banned_threshold: int = 2
    extra_domains: list[str] = field(default_factory=list)
    extra_urls: list[str] = field(default_factory=list)

    def __post_init__(self):
        _check(self.soft_banned_threshold >= 1, "soft_banned_threshold", "must be >= 1")


@dataclass
class ExtractConfig:
    engine: str = "trafilatura"  # or "resiliparse": ~10x faster, a little less precise
    favor_precision: bool = True
    include_tables: bool = True  # trafilatura's default, so FineWeb's
    deduplicate: bool = True
    timeout_s: float = 1.0  # per document: one pathological page cannot stall a file
    min_chars: int = 1

    def __post_init__(self):
        _check(self.engine in ("trafilatura", "resiliparse"), "engine", "must be 'trafilatura' or 'resiliparse'")
        _check(self.timeout_s > 0, "timeout_s", "must be > 0 seconds")


@dataclass
class LanguageConfig:
    enabled: bool = True
    keep: list[str] = field(default_factory=lambda: ["en"])  # empty list: keep every language, label only
    min_score: float = 0.65

    def __post_init__(self):
        _fraction(self, "min_score")
        for code in self.keep:
            _check(isinstance(code, str) and 2 <= len(code) <= 8, "keep", f"bad language code {code!r}")


@dataclass
class GopherRepetitionConfig:
    enabled: bool = True
    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: list[list[float]] = field(default_factory=lambda: [[2, 0.20], [3, 0.18], [4, 0.16]])
    dup_n_grams: list[list[float]] = field(
        default_factory=lambda: [[5, 0.15], [6, 0.14], [7, 0.13], [8, 0.12], [9, 0.11], [10, 0.10]]
    )

    def __post_init__(self):
        _fraction(self, "dup_line_frac", "dup_para_frac", "dup_line_char_frac", "dup_para_char_frac")
        for name in ("top_n_grams", "dup_n_grams"):
            for pair in getattr(self, name):
                _check(
                    isinstance(pair, (list, tuple)) and len(pair) == 2 and int(pair[0]) == pair[0] >= 1
                    and 0 <= pair[1] <= 1,
                    name, f"each entry must be [n >= 1, fraction in [0, 1]], got {pair!r}",
                )


@dataclass
class GopherQualityConfig:
    enabled: bool = True
    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    max_non_alpha_words_ratio: float | None = 0.8  # i.e. >= 80% of words contain a letter
    min_stop_words: int | None = 2

    def __post_init__(self):
        _fraction(self, "max_bullet_lines_ratio", "max_ellipsis_lines_ratio", "max_non_alpha_words_ratio")
        if self.min_doc_words is not None and self.max_doc_words is not None:
            _check(self.min_doc_words <= self.max_doc_words, "min_doc_words", "must be <= max_doc_words")


@dataclass
class C4Config:
    enabled: bool = True
    remove_citations: bool = True
    filter_no_terminal_punct: bool = False  # FineWeb turns C4's terminal-punctuation line filter off
    min_num_sentences: int = 5  # -1 disables
    min_words_per_line: int = 3  # -1 disables
    max_word_length: int = 1000  # -1 disables
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


@dataclass
class FineWebQualityConfig:
    enabled: bool = True
    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3

    def __post_init__(self):
        _fraction(self, "line_punct_thr", "short_line_thr", "char_duplicates_ratio")
        _check(self.short_line_length >= 0, "short_line_length", "must be >= 0")


@dataclass
class MinHashConfig:
    ngram: int = 5  # word n-grams (shingles)
    num_bands: int = 14
    rows_per_band: int = 8  # 14 x 8 = 112 hashes
    hash_bits: int = 64
    seed: int = 1

    def __post_init__(self):
        _check(self.ngram >= 1, "ngram", "must be >= 1")
        _check(self.num_bands >= 1, "num_bands", "must be >= 1")
        _check(self.rows_per_band >= 1, "rows_per_band", "must be >= 1")
        _check(self.hash_bits in (32, 64), "hash_bits", "must be 32 or 64")


@dataclass
class DedupConfig:
    enabled: bool = True
    exact: bool = True  # content-hash dedup first
    scope: str = "snapshot"  # or "all": also against the persisted band index of earlier snapshots
    num_partitions: int = 16  # the shuffle's partitions: one Ray task each finds the candidate pairs
    signature_batch: int = 500  # documents per vectorized signature batch (small batches stay in cache)

    def __post_init__(self):
        _check(self.scope in ("snapshot", "all"), "scope", "must be 'snapshot' or 'all'")
        _check(self.num_partitions >= 1, "num_partitions", "must be >= 1")
        _check(self.signature_batch >= 1, "signature_batch", "must be >= 1")


@dataclass
class PiiConfig:
    enabled: bool = True
    email_replacement: str = "email@example.com"
    ip_replacement: str = "0.0.0.0"


@dataclass
class DownloadConfig:
    base_url: str = "https://data.commoncrawl.org"
    allowed_hosts: list[str] = field(default_factory=list)  # hosts a listing may point to beside base_url's
    concurrency: int = 4
    retries: int = 6
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    timeout_s: float = 60.0
    cache_dir: str = ""  # keep downloaded WARCs here for reuse; "" = delete after processing
    s3: str = "https"  # s3:// base URLs: "https" = Common Crawl's HTTPS endpoint, "pyarrow" = pyarrow.fs S3

    def __post_init__(self):
        _check(self.concurrency >= 1, "concurrency", "must be >= 1")
        _check(self.s3 in ("https", "pyarrow"), "s3", "must be 'https' or 'pyarrow'")
        _check(self.retries >= 0, "retries", "must be >= 0")
        _check(self.backoff_s >= 0, "backoff_s", "must be >= 0")
        _check(self.timeout_s > 0, "timeout_s", "must be > 0")


@dataclass
class TokenizeConfig:
    name: str = "bpe"
    vocab_size: int = 32_000
    sample_bytes: int = 200_000_000  # train the tokenizer on at most this much text
    shard_tokens: int = 100_000_000
    val_fraction: float = 0.005
    max_doc_chars: int = 10_000_000  # longer documents are skipped and counted ("too_long")

    def __post_init__(self):
        _check(self.vocab_size >= 256 + 1, "vocab_size", "must be > 256 (the byte alphabet)")
        _check(self.shard_tokens > 0, "shard_tokens", "must be > 0")
        _check(self.max_doc_chars > 0, "max_doc_chars", "must be > 0")
        _fraction(self, "val_fraction")


@dataclass
class RayConfig:
    num_cpus_per_task: float = 1.0
    max_retries: int = 3  # a worker killed mid-task is retried
    object_store_memory_mb: int = 512  # local Ray only; small machines need it set explicitly


@dataclass
class Recipe:
    input: InputConfig = field(default_factory=InputConfig)
    url_filter: UrlFilterConfig = field(default_factory=UrlFilterConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    gopher_repetition: GopherRepetitionConfig = field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = field(default_factory=GopherQualityConfig)
    c4: C4Config = field(default_factory=C4Config)
    fineweb_quality: FineWebQualityConfig = field(default_factory=FineWebQualityConfig)
    minhash: MinHashConfig = field(default_factory=MinHashConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    pii: PiiConfig = field(default_factory=PiiConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _type_ok(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # TOML writes 1 for 1.0: accept ints where floats are expected
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        (inner,) = typing.get_args(hint) or (typing.Any,)
        return isinstance(value, list) and all(inner is typing.Any or _type_ok(v, inner) for v in value)
    return True


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def build_section(cls, values: dict, section: str):
    """Build one section dataclass from a TOML table, naming `section.key` in every error."""
    if not isinstance(values, dict):
        raise RecipeError(section, f"must be a table, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in known:
            raise RecipeError(f"{section}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
        if not _type_ok(value, hints[key]):
            raise RecipeError(
                f"{section}.{key}", f"expected {_type_name(hints[key])}, got {type(value).__name__} {value!r}"
            )
    try:
        return cls(**values)
    except RecipeError as e:
        raise RecipeError(f"{section}.{e.key}", e.reason) from None


def recipe_from_dict(data: dict) -> Recipe:
    sections = {f.name: f for f in dataclasses.fields(Recipe)}
    hints = typing.get_type_hints(Recipe)
    built = {}
    for name, values in data.items():
        if name not in sections:
            raise RecipeError(name, f"unknown section (known: {', '.join(sections)})")
        built[name] = build_section(hints[name], values, name)
    return Recipe(**built)


def recorded_recipe(path: str | Path) -> Recipe | None:
    """The recipe a run recorded (<out>/<snapshot>/recipe.json), or None when there is none."""
    p = Path(path)
    if not p.is_file():
        return None
    return recipe_from_dict(json.loads(p.read_text(encoding="utf-8")))


def load_recipe(path: str | Path | None = None, overrides: dict | None = None) -> Recipe:
    """Load and validate a TOML recipe; None gives the default (FineWeb) recipe."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise RecipeError("<file>", f"recipe file {str(p)!r} does not exist")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise RecipeError("<file>", f"{p} is not valid TOML: {e}") from None
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    return recipe_from_dict(data)
