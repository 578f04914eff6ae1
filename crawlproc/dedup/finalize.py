"""Step 5, per docs file: dedup/duplicates/<stem>.parquet (what was dropped, and what was kept in its place)
and final/<stem>.parquet (the survivors in the document schema, with PII replaced)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crawlproc.dedup import files
from crawlproc.dedup.buckets import read_all
from crawlproc.dedup.nodes import KIND_NAMES, split_nodes
from crawlproc.dedup.schemas import CLUSTER_SCHEMA, DUP_SCHEMA
from crawlproc.dedup.signatures import with_ids
from crawlproc.dedup.pii import PiiAnonymizer, candidate_rows
from crawlproc.recipe import PiiConfig
from crawlproc.schema import DOC_SCHEMA, conform

STATS_KEY = b"crawlproc.dedup"


def finalize_file(docs_path: str, cluster_path: str | None, dup_path: str, final_path: str,
                  pii: PiiConfig, ids: str = "column") -> dict:
    """Write this file's dropped ids (from its clusters part; none without one) and its survivors; skipped
    when both exist (final is written last)."""
    if files.exists(final_path) and files.exists(dup_path):
        return json.loads((files.parquet_file(final_path).schema_arrow.metadata or {}).get(STATS_KEY, b"{}"))
    dups = read_all([cluster_path], CLUSTER_SCHEMA) if cluster_path else CLUSTER_SCHEMA.empty_table()
    _, dropped = split_nodes(dups.column("node").to_numpy())
    docs = conform(with_ids(files.read_table(docs_path), files.basename(docs_path)[: -len(".parquet")], ids))
    kind_names = pa.array([KIND_NAMES[k] for k in dups.column("kind").to_pylist()], pa.string())
    files.write_table(
        dup_path,
        pa.table({"id": docs.column("id").take(pa.array(dropped)), "cluster_id": dups.column("cluster_id"),
                  "kept_id": dups.column("kept_id"), "kind": kind_names}, schema=DUP_SCHEMA),
    )
    keep = np.ones(docs.num_rows, dtype=bool)
    keep[dropped] = False
    kept = docs.filter(pa.array(keep))
    anonymize = PiiAnonymizer(pii)
    if pii.enabled:  # only the few texts that may hold an address go through Python
        text = kept.column("text").combine_chunks()
        candidates = candidate_rows(text)
        old = text.take(pa.array(candidates)).to_pylist()
        new = [anonymize(t) for t in old]
        changed = np.zeros(len(text), dtype=bool)
        changed[candidates[[a != b for a, b in zip(old, new)]]] = True
        if changed.any():
            text = pc.replace_with_mask(text, pa.array(changed), pa.array([b for a, b in zip(old, new) if a != b],
                                                                         pa.large_string()))
            kept = kept.set_column(0, DOC_SCHEMA.field("text"), text)
    stats = {"documents": docs.num_rows, "kept": kept.num_rows, "dropped": len(dropped),
             "pii_emails": anonymize.counts.emails, "pii_ips": anonymize.counts.ips}
    kept = kept.replace_schema_metadata({STATS_KEY: json.dumps(stats)})
    files.write_table(final_path, kept)
    return stats
