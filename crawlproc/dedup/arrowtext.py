"""The offsets and bytes of an Arrow large_string or large_binary column, read from its buffers without a copy:
what the column-at-once scans (MinHash normalization, PII candidates) work on. No numba here, so that a
module using it does not load the compiled kernels."""

from __future__ import annotations

import numpy as np


def offsets_and_bytes(column) -> tuple[np.ndarray, np.ndarray]:
    """The texts' offsets (from 0) and their UTF-8 bytes."""
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int64)[column.offset: column.offset + len(column) + 1]
    values = column.buffers()[2]
    data = np.frombuffer(values, dtype=np.uint8)[offsets[0]: offsets[-1]] if values is not None else np.empty(0, np.uint8)
    return offsets - offsets[0], data
