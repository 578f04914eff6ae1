"""What a mix is asked to be: its sources (each a token set with a weight, "all", or an upsampling factor),
its token budget, seed and sizes, from command-line arguments or a TOML file's [mix] table."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

from crawlproc.store.storage import Storage
from crawlproc.store.sizes import MIN_BUCKET_TOKENS, MIN_SHARD_TOKENS
from tokenizer.mix.decide import MixError, Spec, parse_rehydrate, parse_spec, parse_tokens, split_source

DEFAULT_BUCKET_TOKENS = 25_000_000


@dataclass
class MixSource:
    path: str  # a tokens/<name> folder or URI, or a token set name under <out>/tokens/
    spec: Spec
    # FineWeb-2's rehydration: {duplicate-cluster size: copies} (decide.parse_rehydrate), None: off
    rehydrate: dict[int, int] | None = None


@dataclass
class MixConfig:
    sources: list[MixSource]
    name: str = "mix"
    budget: int | None = None  # train tokens of the mix; needed when a source has a weight
    seed: int = 0
    bucket_tokens: int = DEFAULT_BUCKET_TOKENS  # tokens per bucket of the external shuffle (memory of a gather)
    shard_tokens: int | None = None  # tokens per output shard at most (default: bucket_tokens)

    def __post_init__(self):
        if not self.sources:
            raise MixError("a mix needs at least one --source")
        if self.bucket_tokens < MIN_BUCKET_TOKENS:
            raise MixError(f"bucket tokens {self.bucket_tokens:,} is below the floor of {MIN_BUCKET_TOKENS}: every "
                           "bucket is a task and a file (default 25M; memory of a gather task)")
        if self.shard_tokens is not None and self.shard_tokens < MIN_SHARD_TOKENS:
            raise MixError(f"shard tokens {self.shard_tokens:,} is below the floor of {MIN_SHARD_TOKENS}: every shard "
                           "is a file (default: the bucket size)")
        weighted = [s for s in self.sources if s.spec.kind == "weight"]
        if weighted and self.budget is None:
            raise MixError("weighted sources need a token budget (--tokens 50M, or tokens = ... in [mix])")
        if self.budget is not None and not weighted:
            raise MixError("a token budget needs at least one weighted source (PATH:0.5): 'all' and 'xK' "
                           "sources have a fixed size")


def load_mix_toml(path: str, storage: Storage) -> MixConfig:
    """The [mix] table of a TOML file:

        [mix]
        name = "web-mix"
        tokens = "50M"          # train tokens (needed with weights)
        seed = 0
        [[mix.source]]
        path = "out/tokens/a"   # or a URI, or a token set name under --out
        weight = 0.7            # or: all = true, or: upsample = 2
        rehydrate = "fineweb2"  # optional: repeat each document by its dedup cluster's size (FineWeb-2's weights)
    """
    try:
        data = tomllib.loads(storage.read_bytes(path).decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise MixError(f"{path}: not a readable TOML file ({e})") from None
    table = data.get("mix")
    if not isinstance(table, dict):
        raise MixError(f"{path}: no [mix] table")
    known = {"name", "tokens", "seed", "bucket_tokens", "shard_tokens", "source"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise MixError(f"{path}: unknown key(s) in [mix]: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    sources = []
    for i, s in enumerate(table.get("source") or []):
        where = f"{path}: mix.source[{i}]"
        if not isinstance(s, dict) or not isinstance(s.get("path"), str):
            raise MixError(f"{where}: needs path = \"...\"")
        given = [k for k in ("weight", "all", "upsample") if k in s]
        extra = sorted(set(s) - {"path", "weight", "all", "upsample", "rehydrate"})
        if len(given) != 1 or extra:
            raise MixError(f"{where}: give exactly one of weight = W, all = true, upsample = K"
                           + (f" (unknown: {', '.join(extra)})" if extra else ""))
        key = given[0]
        if key == "all" and s["all"] is not True:
            raise MixError(f"{where}: all must be true")
        spec = parse_spec("all" if key == "all" else (f"x{s[key]}" if key == "upsample" else str(s[key])))
        try:
            rehydrate = parse_rehydrate(s.get("rehydrate"))
        except MixError as e:
            raise MixError(f"{where}: {e}") from None
        sources.append(MixSource(s["path"], spec, rehydrate))
    try:
        return MixConfig(sources=sources, name=str(table.get("name", "mix")),
                         budget=parse_tokens(table["tokens"]) if "tokens" in table else None,
                         seed=int(table.get("seed", 0)),
                         bucket_tokens=parse_tokens(table.get("bucket_tokens", DEFAULT_BUCKET_TOKENS)),
                         shard_tokens=parse_tokens(table["shard_tokens"]) if "shard_tokens" in table else None)
    except MixError as e:
        raise MixError(f"{path}: {e}") from None


def config_from_args(sources: list[str], name: str, tokens: str | None, seed: int, bucket_tokens: str | None,
                     shard_tokens: str | None, rehydrate: str | None = None) -> MixConfig:
    weights = parse_rehydrate(rehydrate)
    parsed = [MixSource(*split_source(s), weights) for s in sources]
    return MixConfig(sources=parsed, name=name, budget=parse_tokens(tokens) if tokens is not None else None,
                     seed=seed, bucket_tokens=parse_tokens(bucket_tokens) if bucket_tokens else DEFAULT_BUCKET_TOKENS,
                     shard_tokens=parse_tokens(shard_tokens) if shard_tokens else None)
