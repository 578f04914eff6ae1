"""The recipe: every knob of the pipeline, as plain dataclasses with the FineWeb constants as defaults.

A recipe file is TOML with one table per section (see pipelines/recipes/fineweb.toml); it may begin with
`extends = "<recipe>"` and list only what it changes. The quality filters'
sections come from the step registry (crawlproc/extract/registry.py): each filter module defines its own. `load_recipe`
rejects an unknown section or key, a value of the wrong type, a number that is not finite or out of range,
and a credential, *before any work starts*, with an error that names the key and the reason.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import tomllib
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from crawlproc.extract import registry
from crawlproc.classify import ClassifierConfig, ClassifyConfig, parse_classifiers
from crawlproc.decontam.config import DecontaminateConfig
from crawlproc.config import (
    RecipeError,
    Section,
    above,
    at_least,
    build_section,
    fraction,
    one_of,
    require,
)
from crawlproc.quality import langcodes
from crawlproc.store.layout import SAFE_NAME, LayoutError, check_name
from crawlproc.store.sizes import MIN_SHARD_TOKENS

__all__ = ["RecipeError", "Recipe", "load_recipe", "read_recipe_data", "recipe_from_dict", "recorded_recipe"]


@dataclass
class InputConfig(Section):
    max_payload_bytes: int = 5_000_000  # larger HTTP payloads are skipped (counted), never parsed
    html_only: bool = True
    # a gzip record needing more than this inflated to skip ends its file (0: 64 payload caps, 64 MiB..1 GiB)
    max_skip_bytes: int = 0

    def check(self):
        above(self, 0, "max_payload_bytes")
        at_least(self, 0, "max_skip_bytes")


@dataclass
class UrlFilterConfig(Section):
    enabled: bool = True
    use_ut1_lists: bool = True  # the UT1 "adult" domain and URL lists, as FineWeb
    soft_banned_threshold: int = 2
    extra_domains: list[str] = field(default_factory=list)
    extra_urls: list[str] = field(default_factory=list)

    def check(self):
        at_least(self, 1, "soft_banned_threshold")
        for name in ("extra_domains", "extra_urls"):
            for v in getattr(self, name):
                require(bool(v.strip()) and not any(c.isspace() for c in v), name, f"bad entry {v!r}")


@dataclass
class ExtractConfig(Section):
    engine: str = "trafilatura"  # or "resiliparse": ~10x faster, a little less precise
    # trafilatura's own code with its slow machinery swapped out during our calls: the same text (checked on
    # every real page; crawlproc/extract/accelerate.py); false: trafilatura.extract untouched
    accelerate: bool = True
    favor_precision: bool = True
    include_tables: bool = True  # trafilatura's default, so FineWeb's
    deduplicate: bool = True
    timeout_s: float = 1.0  # CPU seconds per document, all steps together: one page cannot stall a file
    min_chars: int = 1
    plugins: list[str] = field(default_factory=list)  # modules whose FILTERS run after the built-in filters

    def check(self):
        one_of(self, "engine", ("trafilatura", "resiliparse"))
        above(self, 0, "timeout_s")
        at_least(self, 0, "min_chars")
        require(len(set(self.plugins)) == len(self.plugins), "plugins", "lists a module twice")


def _lid176_labels() -> frozenset[str]:
    text = resources.files("crawlproc").joinpath("data/langid/lid176_labels.txt").read_text(encoding="utf-8")
    return frozenset(text.split())


LID176_LABELS = _lid176_labels()


@functools.lru_cache(maxsize=64)
def _by_form(codes: tuple[str, ...]) -> tuple[frozenset, frozenset]:
    """(the language-scripts named with their script, the ISO 639-3 codes named without one)."""
    exact = frozenset(c for c in codes if langcodes.LANG_SCRIPT.fullmatch(c))
    return exact, frozenset(langcodes.code3(c) for c in codes if c not in exact)


def check_languages(codes: list, key: str) -> None:
    """Every entry of a list of languages (language.keep, tokenize.languages) is a code crawlproc knows."""
    require(isinstance(codes, list), key, f"must be a list of language codes, got {codes!r}")
    for code in codes:
        require(isinstance(code, str) and langcodes.known(code), key,
                f"{code!r} is not a language code crawlproc knows (codes such as 'en', 'deu' or 'srp_Latn'; see "
                "crawlproc/data/languages/codes.tsv)")


def language_matches(codes: tuple[str, ...], lang: str | None) -> bool:
    """The language rule, in one place: whether `lang` (a document's label, any form) is one of `codes` (any
    form; a code with a script matches that script only, one without matches every script of the language).
    No codes: every language matches."""
    if not codes:
        return True
    if not lang:
        return False
    ls = langcodes.normalize(lang)
    exact, by_code = _by_form(codes)
    return ls in exact or ls.partition("_")[0] in by_code


def canonical_languages(codes: list[str]) -> list[str]:
    """One spelling per selection, sorted: a code with a script as it is, one without as its ISO 639-3 code
    (["de", "srp_Latn"] -> ["deu", "srp_Latn"]); it matches exactly what `codes` matches."""
    exact, by_code = _by_form(tuple(codes))
    return sorted(exact | by_code)


@functools.lru_cache(maxsize=64)
def _cuts_by_form(items: tuple) -> tuple[dict, dict]:
    exact, _ = _by_form(tuple(c for c, _ in items))
    return ({c: v for c, v in items if c in exact}, {langcodes.code3(c): v for c, v in items if c not in exact})


@dataclass
class LanguageConfig(Section):
    enabled: bool = True
    # a fastText language-ID model file ("": lid.176, bundled); GlotLID (FineWeb-2's) works when you supply it
    model: str = ""
    # languages kept, in any form: "en", "deu", "srp_Latn" (a code without a script keeps every script).
    # Empty: keep every language (label only; per-language cuts in min_scores still apply)
    keep: list[str] = field(default_factory=lambda: ["en"])
    min_score: float = 0.65
    min_scores: dict = field(default_factory=dict)  # per-language cuts, e.g. {de = 0.8, zho_Hani = 0.5}
    fineweb2_min_scores: bool = False  # FineWeb-2's per-language cuts (GlotLID scores) where min_scores is silent
    # the quality filters' settings per language: "fineweb2" (FineWeb-2's thresholds and stop words for every
    # language but English; crawlproc/quality/langsettings.py) or "recipe" (the filter sections for every language)
    thresholds: str = "fineweb2"
    # skip extraction of a page whose cheap main text is confidently in a language not kept (crawlproc/extract/precheck.py)
    precheck: bool = False  # FineWeb extracts every page; pipelines/recipes/fineweb-fast.toml turns this on
    precheck_min_score: float = 0.8  # the pre-check's top language score needed (never below min_score)

    def check(self):
        fraction(self, "min_score", "precheck_min_score")
        one_of(self, "thresholds", ("fineweb2", "recipe"))
        check_languages(self.keep, "keep")
        require(isinstance(self.min_scores, dict), "min_scores", "must be a table {language = score}")
        for code, v in self.min_scores.items():
            require(langcodes.known(code), f"min_scores.{code}", "not a language code crawlproc knows")
            require(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1,
                    f"min_scores.{code}", f"must be a fraction in [0, 1], got {v!r}")
        if self.model and "://" not in self.model:
            require(Path(self.model).expanduser().is_file(), "model",
                    f"{self.model!r} is not a file (a fastText language-ID model, e.g. GlotLID's model.bin)")

    # The language rule (language_matches; the language step, the pre-check and `crawlproc explain` use it).
    def wants(self, lang: str | None) -> bool:
        """Whether documents in `lang` ("deu_Latn", or any code) are kept (an empty `keep` keeps all)."""
        return language_matches(tuple(self.keep), lang)

    def min_score_for(self, lang: str | None) -> float | None:
        """The cut a document in `lang` must be strictly above: min_scores (the language-script's, then the
        language's), FineWeb-2's when fineweb2_min_scores, else min_score; None: no cut (keep = [] and no
        per-language cut)."""
        ls = langcodes.normalize(lang) if lang else langcodes.UNDETERMINED
        by_exact, by_code = _cuts_by_form(tuple(sorted(self.min_scores.items())))
        if ls in by_exact:
            return float(by_exact[ls])
        if ls.partition("_")[0] in by_code:
            return float(by_code[ls.partition("_")[0]])
        if self.fineweb2_min_scores:
            from crawlproc.quality.langsettings import fineweb2_min_score

            cut = fineweb2_min_score(ls)
            if cut is not None:
                return cut
        return self.min_score if self.keep else None

    def score_ok(self, score: float | None, lang: str | None = None) -> bool:
        """Whether the top language's score is strictly above its cut (datatrove's rule)."""
        cut = self.min_score_for(lang)
        return cut is None or (score is not None and score > cut)

    def keeps(self, lang: str | None, score: float | None) -> bool:
        return self.wants(lang) and self.score_ok(score, lang)


MAX_HASHES = 1024  # MinHash signature length: 112 in FineWeb; beyond this, memory grows for nothing


@dataclass
class MinHashConfig(Section):
    ngram: int = 5  # word n-grams (shingles)
    num_bands: int = 14
    rows_per_band: int = 8  # 14 x 8 = 112 hashes
    hash_bits: int = 64
    seed: int = 1
    # "classic": FineWeb's, the minimum of every one of the 112 permutations; "one_permutation": one
    # permutation split into 112 bins, each empty bin filled from another (about 100x fewer hash evaluations;
    # another estimate of the same Jaccard: dedup's output changes, bench/bench_minhash.py gives the agreement)
    sketch: str = "classic"

    def check(self):
        require(1 <= self.ngram <= 100, "ngram", f"must be in 1..100, got {self.ngram}")
        at_least(self, 1, "num_bands", "rows_per_band")
        require(self.num_bands * self.rows_per_band <= MAX_HASHES, "num_bands",
                f"num_bands * rows_per_band = {self.num_bands * self.rows_per_band} hashes; at most {MAX_HASHES}")
        one_of(self, "hash_bits", (32, 64))
        require(0 <= self.seed < 2**63, "seed", f"must be in [0, 2**63), got {self.seed}")
        one_of(self, "sketch", ("classic", "one_permutation"))

    def identity(self) -> dict:
        """The settings that make the signatures, as fingerprints record them. The classic sketch leaves
        `sketch` out: signatures and plans made before the key existed stay valid."""
        d = dataclasses.asdict(self)
        if d["sketch"] == "classic":
            del d["sketch"]
        return d


@dataclass
class DedupConfig(Section):
    enabled: bool = True
    exact: bool = True  # content-hash dedup first
    scope: str = "snapshot"  # or "all": also against the band indexes of the older snapshots under --out
    # which snapshot is older, for scope "all" (the older crawl keeps a cluster's survivor): the names listed
    # here, oldest first, before all others; the others by name (CC-MAIN-YYYY-WW sorts by crawl date)
    order: list[str] = field(default_factory=list)
    num_partitions: int = 16  # the shuffle's partitions: one Ray task each finds the candidate pairs
    signature_batch: int = 500  # documents per vectorized signature batch (small batches stay in cache)
    # "distributed": Large-Star/Small-Star rounds over partitions; "single": one task holds every edge;
    # "auto": single up to SINGLE_TASK_EDGES distinct edges (a few waves of fixed cost saved), else distributed
    components: str = "auto"
    max_component_rounds: int = 100  # rounds past this are an error (real dedup graphs take a few)
    shuffle_files_per_task: int = 8  # signature files per shuffle task (more: fewer, larger shuffle files)
    # per language, as FineWeb-2: documents of two languages are never duplicates of each other, and the word
    # n-grams of Chinese, Japanese, Korean and Thai are made of their segmenters' words (crawlproc/dedup/signatures.py)
    by_language: bool = True
    # "column": each document's `id` column; "content": ids made from the file, row and text hash, for a folder
    # of documents without ids (`crawlproc dedup --input-dir ... --ids-from-content`)
    ids: str = "column"

    def check(self):
        one_of(self, "scope", ("snapshot", "all"))
        one_of(self, "ids", ("column", "content"))
        for name in self.order:
            require(isinstance(name, str) and SAFE_NAME.match(name) is not None, "order",
                    f"{name!r} is not a snapshot name")
        require(len(set(self.order)) == len(self.order), "order", "a snapshot is listed twice")
        require(1 <= self.num_partitions <= 100_000, "num_partitions", f"must be in 1..100000, got {self.num_partitions}")
        at_least(self, 1, "signature_batch", "max_component_rounds", "shuffle_files_per_task")
        one_of(self, "components", ("auto", "distributed", "single"))


@dataclass
class PiiConfig(Section):
    enabled: bool = True
    email_replacement: str = "email@example.com"
    ip_replacement: str = "0.0.0.0"


@dataclass
class DownloadConfig(Section):
    base_url: str = "https://data.commoncrawl.org"
    allowed_hosts: list[str] = field(default_factory=list)  # hosts a listing may point to beside base_url's
    concurrency: int = 16  # downloads in flight across the whole cluster (one cap, not per machine)
    retries: int = 6
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    timeout_s: float = 60.0  # per read: a stalled connection fails after this long
    deadline_s: float | None = None  # per attempt (None: 10 read timeouts): a drip cannot hold a download forever
    cache_dir: str = ""  # keep downloaded WARCs here for reuse; "" = delete after processing
    s3: str = "store"  # s3:// base URLs: "store" = read through the object store; "https" = s3://commoncrawl via its HTTPS endpoint

    def check(self):
        require(self.base_url.startswith(("http://", "https://", "s3://", "file://")), "base_url",
                f"must be an http(s)://, s3:// or file:// URL, got {self.base_url!r}")
        require(1 <= self.concurrency <= 1024, "concurrency", f"must be in 1..1024, got {self.concurrency}")
        one_of(self, "s3", ("store", "https"))
        at_least(self, 0, "retries", "backoff_s")
        require(self.max_backoff_s >= self.backoff_s, "max_backoff_s",
                f"must be >= backoff_s ({self.backoff_s}), got {self.max_backoff_s}")
        above(self, 0, "timeout_s")
        require(self.deadline_s is None or self.deadline_s > 0, "deadline_s", f"must be > 0, got {self.deadline_s!r}")


@dataclass
class FetchConfig(Section):
    """What `crawlproc run` reads of each listed WARC (crawlproc/crawl/ccindex.py, crawlproc/crawl/ranged.py)."""

    # "warc": every record of every file; "index": only the records Common Crawl's columnar index says this
    # recipe can keep (HTML, status 200, a kept language, the URL filter), read with ranged requests; "wet":
    # CC's own extracted text (WET files) into the same language ID, quality filters and dedup
    mode: str = "warc"
    index: str = ""  # the index Parquet (file, folder, glob or URI); "" = the snapshot's cc-index-table.paths.gz
    language_positions: int = 3  # CLD2's listed languages looked at (1 = main only; measured: bench/README.md)
    language_margin: list[str] = field(default_factory=list)  # more ISO 639-3 codes to select
    select_unknown_language: bool = True  # select records CLD2 named no language for
    max_gap_bytes: int = 4096  # records closer than this share one read (the gap is fetched and dropped)
    max_range_bytes: int = 16 << 20  # at most this much per read
    buckets: int = 0  # index selection shuffle: files per bucket ~ 100 (0 = listed files / 100, at least 1)

    def check(self):
        one_of(self, "mode", ("warc", "index", "wet"))
        require(1 <= self.language_positions <= 3, "language_positions",
                f"must be 1..3 (CLD2 lists up to 3), got {self.language_positions}")
        for code in self.language_margin:
            require(isinstance(code, str) and len(code) == 3 and code.isalpha() and code.islower(),
                    "language_margin", f"{code!r} is not an ISO 639-3 code (three lower-case letters)")
        at_least(self, 0, "max_gap_bytes", "buckets")
        above(self, 0, "max_range_bytes")


@dataclass
class StorageConfig(Section):
    """Object storage (s3://): where and how to connect. Credentials never go here: they come from the
    environment or the profile named below."""

    endpoint_url: str = ""  # "" = AWS_ENDPOINT_URL, else the SDK's default
    region: str = ""
    profile: str = ""  # a profile of ~/.aws/credentials and ~/.aws/config
    anonymous_buckets: list[str] = field(default_factory=lambda: ["commoncrawl"])  # read without credentials
    retries: int = 10
    connect_timeout_s: float = 10.0
    request_timeout_s: float = 60.0

    def check(self):
        require(self.endpoint_url == "" or self.endpoint_url.startswith(("http://", "https://")), "endpoint_url",
                f"must be an http(s):// URL or empty, got {self.endpoint_url!r}")
        for b in self.anonymous_buckets:
            require(3 <= len(b) <= 63 and b == b.strip().lower() and "/" not in b, "anonymous_buckets",
                    f"{b!r} is not a bucket name")
        at_least(self, 0, "retries")
        above(self, 0, "connect_timeout_s", "request_timeout_s")


@dataclass
class TokenizeConfig(Section):
    name: str = "bpe"
    vocab_size: int = 32_000
    sample_bytes: int = 200_000_000  # train the tokenizer on at most this much text
    shard_tokens: int = 100_000_000
    val_fraction: float = 0.005
    max_doc_chars: int = 10_000_000  # longer documents are skipped and counted ("too_long")
    # "auto": "classified" when the recipe has classifiers, else "final"; "final": after dedup and PII; "docs":
    # the filtered documents (recipes without dedup); "classified": what the classifiers kept. With
    # [decontaminate] on, "final" and "docs" are read decontaminated (Recipe.tokenize_source)
    source: str = "auto"
    # the languages of this token set, in any form: "de", "deu", "srp_Latn" (a code without a script takes every
    # script), by the documents' `language` column; the other documents are left for other token sets (counted
    # as skipped "other_language"). Empty: every language. One token set per language, then `crawlproc mix`
    languages: list[str] = field(default_factory=list)

    def check(self):
        check_languages(self.languages, "languages")
        try:
            check_name(self.name, "tokenize.name")  # the layout's rule for a folder name under --out
        except LayoutError as e:
            raise RecipeError("name", str(e)) from None
        require(257 <= self.vocab_size <= 1 << 20, "vocab_size",
                f"must be in 257..{1 << 20} (above the byte alphabet), got {self.vocab_size}")
        above(self, 0, "sample_bytes", "max_doc_chars")
        at_least(self, MIN_SHARD_TOKENS, "shard_tokens")  # smaller: a file per document or two, a flood of files
        fraction(self, "val_fraction")
        require(self.val_fraction < 1, "val_fraction", f"must be < 1 (0 = no val split), got {self.val_fraction}: "
                "1 puts every document in val and leaves the train split empty")
        one_of(self, "source", ("auto", "final", "docs", "classified"))

    def selection(self) -> list[str]:
        """`languages` in one spelling (canonical_languages): what the token set's fingerprint and manifest hold."""
        return canonical_languages(self.languages)

    def wants(self, lang: str | None) -> bool:
        """Whether a document in `lang` belongs to this token set (language.keep's rule)."""
        return language_matches(tuple(self.languages), lang)


RAY_MIN_OBJECT_STORE_MB = 75  # Ray refuses a smaller object store


@dataclass
class RayConfig(Section):
    num_cpus_per_task: float = 1.0
    max_retries: int = 3  # a worker killed mid-task is retried
    object_store_memory_mb: int = 512  # local Ray only; small machines need it set explicitly

    def check(self):
        above(self, 0, "num_cpus_per_task")
        at_least(self, 0, "max_retries")
        at_least(self, RAY_MIN_OBJECT_STORE_MB, "object_store_memory_mb")


MAX_SIGNATURE_BATCH_BYTES = 256 << 20  # one batch's signature matrix (documents x hashes x 8 bytes)


def _default_filters() -> dict[str, Section]:
    return {f.name: f.Config() for f in registry.FILTERS}


@dataclass
class Recipe:
    input: InputConfig = field(default_factory=InputConfig)
    url_filter: UrlFilterConfig = field(default_factory=UrlFilterConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    # The quality filters' sections, keyed and ordered by crawlproc/extract/registry.py (plugins' included); each is also
    # an attribute: recipe.gopher_quality is recipe.filters["gopher_quality"].
    filters: dict[str, Section] = field(default_factory=_default_filters)
    minhash: MinHashConfig = field(default_factory=MinHashConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    pii: PiiConfig = field(default_factory=PiiConfig)
    decontaminate: DecontaminateConfig = field(default_factory=DecontaminateConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    # [classifiers.<name>] tables (crawlproc/classify), in recipe order: the order removals are attributed in
    classifiers: dict[str, ClassifierConfig] = field(default_factory=dict)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    # The trainer's settings (trainer.config.TrainConfig but its paths): crawlproc does not know the trainer,
    # so pipelines/recipes/__init__.py validates this table wherever a recipe is loaded for a run.
    train: dict = field(default_factory=dict)

    def __post_init__(self):
        classes = registry.filters(self.extract.plugins)
        clash = [f.name for f in classes if f.name in _FIXED_SECTIONS]
        require(not clash, "extract.plugins", f"a filter may not take the name of a recipe section: {clash}")
        given = dict(self.filters)
        self.filters = {}
        for f in classes:
            cfg = given.pop(f.name, None)
            if cfg is None:
                cfg = f.Config()
            require(isinstance(cfg, f.Config), f.name, f"must be a {f.Config.__name__}, got {type(cfg).__name__}")
            self.filters[f.name] = cfg
        require(not given, ", ".join(given), "not a filter of this recipe (see crawlproc/extract/registry.py, extract.plugins)")
        require(isinstance(self.train, dict), "train", "must be a table")
        # what one section cannot see on its own
        require(self.tokenize.source != "docs" or not self.dedup.enabled, "tokenize.source",
                '"docs" skips dedup and PII: only for recipes with dedup.enabled = false')
        require(self.tokenize.source != "classified" or bool(self.classifiers), "tokenize.source",
                '"classified" needs a [classifiers.<name>] table')
        require(not self.classifiers or self.classify.source == "docs" or self.dedup.enabled, "classify.source",
                '"final" needs dedup: set classify.source = "docs" in a recipe with dedup.enabled = false')
        hashes = self.minhash.num_bands * self.minhash.rows_per_band
        batch_bytes = self.dedup.signature_batch * hashes * 8
        require(batch_bytes <= MAX_SIGNATURE_BATCH_BYTES, "dedup.signature_batch",
                f"{self.dedup.signature_batch} documents x {hashes} hashes x 8 bytes = {batch_bytes >> 20} MiB "
                f"per batch; at most {MAX_SIGNATURE_BATCH_BYTES >> 20} MiB")

    def __getattr__(self, name: str):
        # only reached for names that are not fields: a quality filter's section
        filters = self.__dict__.get("filters")
        if filters is not None and name in filters:
            return filters[name]
        raise AttributeError(f"{type(self).__name__!r} has no section {name!r}")

    def sections(self) -> dict[str, object]:
        """Every section by name, in recipe order (the filters where the pipeline runs them)."""
        out: dict[str, object] = {}
        for f in dataclasses.fields(self):
            if f.name == "filters":
                out.update(self.filters)
            else:
                out[f.name] = getattr(self, f.name)
        return out

    def tokenize_source(self) -> str:
        """The folder the tokenize stage reads: "classified" (the recipe has classifiers), else
        "decontaminated" when decontamination is on, else tokenize.source ("final" or "docs")."""
        source = self.tokenize.source
        if source == "auto":
            source = "classified" if self.classifiers else "final"
        if source in ("final", "docs") and self.decontaminate.enabled:
            return "decontaminated"
        return source

    def decontaminate_source(self) -> str:
        """What decontamination reads: docs/ where the recipe's documents skip dedup (tokenize.source or,
        with classifiers, classify.source = "docs"), else final/."""
        if self.tokenize.source == "docs" or (self.classifiers and self.classify.source == "docs"):
            return "docs"
        return "final"

    def classify_input(self) -> str:
        """The folder the classify stage reads: "decontaminated" when decontamination is on, else
        classify.source."""
        return "decontaminated" if self.decontaminate.enabled else self.classify.source

    def to_dict(self) -> dict:
        return {name: ({k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in s.items()}
                       if isinstance(s, dict) else dataclasses.asdict(s)) for name, s in self.sections().items()}


# The sections every recipe has, by name: their dataclass ("train" stays a plain table, see Recipe.train;
# "classifiers" is a table of tables, one per classifier, each built by its kind).
_FIXED_SECTIONS = {name: hint for name, hint in typing.get_type_hints(Recipe).items() if name != "filters"}


def recipe_from_dict(data: dict) -> Recipe:
    """Build a Recipe from TOML-shaped data ({section: {key: value}}), validating every value."""
    if not isinstance(data, dict):
        raise RecipeError("<file>", "a recipe is a set of tables")
    built: dict = {}
    extract = build_section(ExtractConfig, data.get("extract", {}), "extract")  # plugins add sections
    filter_types = {f.name: f.Config for f in registry.filters(extract.plugins)}
    filters = {}
    for name, values in data.items():
        if name == "extract":
            built[name] = extract
        elif name == "train":
            if not isinstance(values, dict):
                raise RecipeError("train", f"must be a table, got {type(values).__name__}")
            built[name] = json.loads(json.dumps(values))  # a private copy of plain TOML values
        elif name == "classifiers":
            built[name] = parse_classifiers(values)
        elif name in _FIXED_SECTIONS:
            built[name] = build_section(_FIXED_SECTIONS[name], values, name)
        elif name in filter_types:
            filters[name] = build_section(filter_types[name], values, name)
        else:
            known = [*_FIXED_SECTIONS, *filter_types]
            raise RecipeError(name, f"unknown section (known: {', '.join(known)})")
    return Recipe(**built, filters=filters)


def recorded_recipe(path: str | Path) -> Recipe | None:
    """The recipe a run recorded (<out>/<snapshot>/recipe.json), or None when there is none."""
    p = Path(path)
    if not p.is_file():
        return None
    return recipe_from_dict(json.loads(p.read_text(encoding="utf-8")))


MAX_EXTENDS_DEPTH = 8  # a chain of recipes extending one another longer than this is an error


def _merge(base: dict, child: dict) -> dict:
    """`child` over `base`: tables merge key by key (recursively), any other value replaces the base's."""
    out = dict(base)
    for key, value in child.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _find_base(name: str, here: Path, search: list[Path]) -> Path:
    """The recipe file `extends = name` means: a path (relative to the extending file's folder), or a recipe
    name looked up as <name>.toml in that folder, then in `search` (the bundled recipes)."""
    candidates = [here / name] if name.endswith(".toml") or "/" in name else []
    candidates += [folder / f"{name}.toml" for folder in [here, *search]]
    for c in candidates:
        if c.is_file():
            return c
    places = ", ".join(str(c) for c in candidates)
    raise RecipeError("extends", f"no recipe {name!r} (looked for {places})")


def read_recipe_data(path: str | Path, search: list[Path] | None = None, _chain: tuple = ()) -> dict:
    """A recipe file's tables with `extends = "<recipe>"` resolved: the base recipe's tables, then this file's
    keys over them (a table merges key by key; a list or value replaces). The base may extend another."""
    p = Path(path)
    if not p.is_file():
        raise RecipeError("<file>", f"recipe file {str(p)!r} does not exist")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise RecipeError("<file>", f"{p} is not valid TOML: {e}") from None
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    if not isinstance(base_name, str) or not base_name.strip():
        raise RecipeError("extends", f"must be the name or path of a recipe, got {base_name!r}")
    chain = (*_chain, p.resolve())
    base = _find_base(base_name.strip(), p.parent, list(search or [])).resolve()
    if base in chain:
        raise RecipeError("extends", f"recipes extend each other in a cycle: {' -> '.join(str(c) for c in (*chain, base))}")
    if len(chain) >= MAX_EXTENDS_DEPTH:
        raise RecipeError("extends", f"more than {MAX_EXTENDS_DEPTH} recipes extend one another")
    return _merge(read_recipe_data(base, search, chain), data)


def load_recipe(path: str | Path | None = None, overrides: dict | None = None,
                search: list[Path] | None = None) -> Recipe:
    """Load and validate a TOML recipe; None gives the default (FineWeb) recipe. A recipe may start with
    `extends = "<name or path>"` (see read_recipe_data); `search` lists folders where a name is looked up."""
    data: dict = read_recipe_data(path, search) if path is not None else {}
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    return recipe_from_dict(data)
