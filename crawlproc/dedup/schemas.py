"""The Parquet schemas of the dedup steps' files (signatures, shuffle, edges, stars, clusters, duplicates)."""

from __future__ import annotations

import pyarrow as pa


def signature_schema(num_bands: int) -> pa.Schema:
    """signatures/<stem>.parquet: one row per document, in the docs file's order. Band keys are null-free; a
    document without words has has_words = False and is matched by its content hash only."""
    return pa.schema(
        [
            ("id", pa.string()),
            ("content_hash", pa.uint64()),
            ("has_words", pa.bool_()),
            ("bands", pa.list_(pa.uint64(), num_bands)),
        ]
    )


# shuffle: one row per (document, key); kind tells a content hash (exact) from a band key (near)
SHUFFLE_SCHEMA = pa.schema([("key", pa.uint64()), ("node", pa.int64()), ("kind", pa.int8())])
# candidate edges, always src < dst; kind exact when the two documents have the same content hash
EDGE_SCHEMA = pa.schema([("src", pa.int64()), ("dst", pa.int64()), ("kind", pa.int8())])
# the band index that later snapshots match against (scope "all")
INDEX_SCHEMA = pa.schema([("key", pa.uint64()), ("node", pa.int64())])
# the star forest that components end with: every clustered node but the root points at its root
STAR_SCHEMA = pa.schema([("src", pa.int64()), ("dst", pa.int64())])
# the components' working files: a node, and a node with a label (its smallest known neighbour, its root)
NODE_SCHEMA = pa.schema([("node", pa.int64())])
LABEL_SCHEMA = pa.schema([("node", pa.int64()), ("label", pa.int64())])
# dedup/clusters/<stem>.parquet: the file's dropped documents, sorted by node
CLUSTER_SCHEMA = pa.schema(
    [("node", pa.int64()), ("cluster_id", pa.int64()), ("kind", pa.int8()), ("kept_id", pa.string())]
)
# dedup/duplicates/<stem>.parquet: what a user reads
DUP_SCHEMA = pa.schema(
    [("id", pa.string()), ("cluster_id", pa.int64()), ("kept_id", pa.string()), ("kind", pa.string())]
)
