"""Fingerprints: what identifies an input, a recipe and a plan, so that done work is recognised by what it
is made of, never by its path or its row count.

- `digest(obj)`: 16 hex digits of xxh3-128 over the canonical JSON of a value (a recipe section, a plan).
- `file_fingerprint(storage, uri)`: a file by its content: its size plus xxh3-128 over samples of its bytes
  (the first, middle and last MiB). A copy of a file has the copy's fingerprint wherever it lies; an edited,
  truncated, appended or replaced file has another one. Hashing whole multi-GB WARCs on the driver for every
  rerun would cost minutes; a WARC's first MiB alone holds its warcinfo and first records' unique ids.
- `changed_keys(old, new)`: the `section.key` names that differ between two recipe dicts.
"""

from __future__ import annotations

import json

import xxhash

SAMPLE = 1 << 20


def digest(obj) -> str:
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return xxhash.xxh3_128_hexdigest(data)[:16]


def bytes_fingerprint(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)[:16]


def file_fingerprint(storage, uri: str) -> str:
    """Content fingerprint of one file (local or remote): size and sampled bytes (see the module doc)."""
    h = xxhash.xxh3_128()
    with storage.open_input(uri) as f:
        size = f.size()
        h.update(str(size).encode())
        if size <= 3 * SAMPLE:
            h.update(f.read())
        else:
            for at in (0, size // 2 - SAMPLE // 2, size - SAMPLE):
                f.seek(at)
                h.update(f.read(SAMPLE))
    return h.hexdigest()[:16]


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the values that differ (added, removed or changed) between two nested dicts."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(changed_keys(a, b, name + "."))
        elif a != b:
            out.append(name)
    return out
