"""The old import path of MinHash: it lives in crawlproc.dedup.minhash, its file format in
crawlproc.dedup.signatures."""

from crawlproc.dedup.minhash import MinHasher, batch_shingles, estimate_jaccard, normalize, shingle_set  # noqa: F401
from crawlproc.dedup.signatures import (  # noqa: F401
    FINGERPRINT_KEY,
    signature_fingerprint,
    signature_table,
)
