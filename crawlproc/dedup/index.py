"""A snapshot's band index, for cross-snapshot dedup (`dedup.scope = "all"`): every band key of its documents,
partitioned by key like the shuffle, so that a newer snapshot's edges step reads one partition of it.

    _index/bands/<snapshot>/part-NNNNN.parquet   (key, node): node as in the snapshot's own dedup
    _index/bands/<snapshot>/signatures/           the signatures an index built on its own was made from
    _index/bands/<snapshot>/_done.json            written last: what the index is of (see `index_record`)

A snapshot deduplicated with scope "all" writes its index in its own edges step; an older snapshot that has
none (deduplicated with scope "snapshot", or not at all) gets one built from its documents before a newer
snapshot is matched against it (`index_part` over the shuffle of its signatures).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from crawlproc.dedup import files
from crawlproc.dedup.buckets import read_bucket
from crawlproc.dedup.nodes import KIND_NEAR
from crawlproc.dedup.schemas import INDEX_SCHEMA, SHUFFLE_SCHEMA
from crawlproc.dedup.signatures import signature_fingerprint
from crawlproc.recipe import MinHashConfig
from crawlproc.store.storage import join


def part_path(index_dir: str, part: int) -> str:
    return join(index_dir, f"part-{part:05d}.parquet")


def write_part(index_dir: str, part: int, keys: np.ndarray, nodes: np.ndarray) -> None:
    files.write_table(part_path(index_dir, part), pa.table({"key": keys, "node": nodes}, schema=INDEX_SCHEMA),
                      use_dictionary=False)


def index_part(part: int, shuffle_paths: list[str], index_dir: str) -> dict:
    """One partition of an index built on its own: the band keys (not the content hashes) of the shuffle."""
    if files.exists(part_path(index_dir, part)):
        return {}
    rows = read_bucket(shuffle_paths, part, SHUFFLE_SCHEMA)
    near = rows.column("kind").to_numpy() == KIND_NEAR
    write_part(index_dir, part, rows.column("key").to_numpy()[near], rows.column("node").to_numpy()[near])
    return {"keys": int(near.sum())}


def index_record(snapshot: str, stems: list[str], num_partitions: int, minhash: MinHashConfig,
                 source: dict) -> dict:
    """What an index is of: the snapshot, its files in node order, the partitions, the MinHash settings (an
    index made with others matches nothing: it is rebuilt) and the identity of its documents (`source`: the
    extract markers, or a foreign folder's file sizes and times), so that an index of older content is
    rebuilt, never used."""
    return {"snapshot": snapshot, "stems": list(stems), "num_partitions": int(num_partitions),
            "minhash": signature_fingerprint(minhash), "source": source}
