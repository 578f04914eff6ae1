"""Write peer_decisions.json: datatrove 0.10.1's own decisions on the held-out texts (texts.json.gz).

    python bench/collect_heldout.py                           # the texts (already stored)
    python tests/data/heldout/make_peer_decisions.py          # needs datatrove 0.10.1 + spaCy: the peer

For every text, datatrove's four FineWeb filters as in its examples/fineweb.py (GopherRepetitionFilter(),
GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter(), English):
each alone on the text ("alone": {filter: reason or null}), and the four chained in FineWeb's order, stopping
at the first removal ("pipeline": [stage, reason], or null when kept). These are the peer's decisions: the
test suite (tests/test_heldout_agreement.py) compares crawlproc's to them and never imports datatrove.
"""

from __future__ import annotations

import gzip
import json
import sys
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "quality"))
from make_peer_decisions import decide, peer_filters  # noqa: E402 -- the in-sample set's peer, the same filters


def main() -> None:
    filters = peer_filters()
    texts = json.loads(gzip.decompress((HERE / "texts.json.gz").read_bytes()))
    out = {"peer": f"datatrove {version('datatrove')}, spacy {version('spacy')}", "documents": {}}
    for key, item in sorted(texts.items()):
        alone = {name: decide(f, item["text"])[0] for name, f in filters.items()}
        text, pipeline = item["text"], None
        for name, f in filters.items():
            reason, text = decide(f, text)
            if reason is not None:
                pipeline = [name, reason]
                break
        out["documents"][key] = {"alone": alone, "pipeline": pipeline}
    (HERE / "peer_decisions.json").write_text(json.dumps(out, indent=0, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
