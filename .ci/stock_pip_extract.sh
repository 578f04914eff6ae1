#!/usr/bin/env bash
# The README's second install path with the pip that Python 3.11 ships (no upgrade): a fresh venv, torch pinned
# first, `pip install -e .` (no extras), then one real `crawlproc extract` of a bundled WARC, which must leave
# documents in docs/. Catches a dependency that only an extra, a newer pip or the dev tools bring in.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# short path: Ray's socket paths under RAY_TMPDIR must stay within 107 bytes
work=$(mktemp -d /tmp/crawlproc-ci.XXXXXX)
trap 'rm -rf "$work"' EXIT

"$PYTHON" -m venv "$work/venv"
py="$work/venv/bin/python"
echo "stock pip: $("$py" -m pip --version)"
# pip's download cache (~/.cache/pip) is reused: only the first run downloads
"$py" -m pip install -q "torch==2.13.0"
"$py" -m pip install -q -e .
"$py" -c "import trafilatura, crawlproc.extract.html"

env -u RAY_ADDRESS RAY_TMPDIR="$work/ray" "$work/venv/bin/crawlproc" extract \
    tests/data/warc/dolma_sample-0000.warc.gz --out "$work/out" --quiet
"$py" - "$work/out/local/docs" <<'PY'
import sys
from pathlib import Path

import pyarrow.parquet as pq

n = sum(pq.read_table(f).num_rows for f in Path(sys.argv[1]).glob("*.parquet"))
assert n > 0, f"no documents in {sys.argv[1]}"
print(f"stock pip install + crawlproc extract: {n} documents in docs/")
PY
