"""Floors and ceilings on the sizes a user sets, so that no setting turns into a flood of tasks or files.

A token shard or a shuffle bucket is a file and (for a bucket) a Ray task: one of a handful of tokens costs
the same request, marker and scheduling as one of millions. Below MIN_SHARD_TOKENS / MIN_BUCKET_TOKENS a
setting is refused with a message; a bucket size that would give more than MAX_BUCKETS buckets per split is
raised to the size that gives MAX_BUCKETS (a message says so), and likewise the shards of a mix.
"""

from __future__ import annotations

MIN_SHARD_TOKENS = 512  # tokens per shard at least (tokenize.shard_tokens, mix --shard-tokens)
MIN_BUCKET_TOKENS = 512  # tokens per bucket of a mix's shuffle at least (--bucket-tokens)
MAX_BUCKETS = 4096  # buckets (gather tasks) per split of a mix at most
MAX_SHARDS = 100_000  # output shards per split of a mix at most


def raised(size: int, total: int, most: int) -> int:
    """`size`, or the smallest size that cuts `total` into at most `most` pieces when it would cut more."""
    if total <= 0 or -(-total // max(size, 1)) <= most:
        return size
    return -(-total // most)
