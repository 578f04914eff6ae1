"""Exact and MinHash near-duplicate removal, then PII, as plain functions over files (no Ray here:
pipelines.stages.dedup runs each function as one task per file, group of files or partition, in waves).

  signatures  per docs file       MinHash band keys and content hashes      (signatures.py, minhash.py)
  shuffle     per group of files  (key, node) rows bucketed by key          (shuffle.py)
  edges       per key partition   documents sharing a key -> star edges     (edges.py)
  components  per node partition  Large-Star / Small-Star rounds            (stars.py; components.py in one task)
              per file group      star forest -> clusters/<stem>.parquet    (clusters.py)
  finalize    per docs file       duplicates/ and final/ with PII replaced  (finalize.py)

Documents are integer nodes (nodes.py); every cluster keeps its smallest node, and the documents of older
snapshots (scope "all", matched through their band index: index.py) are negative nodes, so the older crawl
keeps a cluster's survivor. PII replacement is pii.py. Producers hand rows to consumers through bucketed files
(buckets.py); all schemas are in schemas.py. No wave holds all documents: each task holds its file, or its
share of the keys or of the edges.
"""

from crawlproc.dedup.errors import DedupError

__all__ = ["DedupError"]
