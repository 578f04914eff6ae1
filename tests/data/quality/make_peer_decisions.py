"""Write peer_decisions.json: datatrove 0.10.1's own decisions on texts.json (run once; needs datatrove + spaCy).

    pip install 'datatrove[io]==0.10.1' spacy && python tests/data/quality/make_peer_decisions.py

For every text: each of datatrove's four filters alone on the text ("alone": {filter: reason or null}), and the
four in FineWeb's order, stopping at the first removal ("pipeline": {"stage", "reason"}, both null when kept,
"text": the text after C4 when kept). Filters as in datatrove's examples/fineweb.py: GopherRepetitionFilter(),
GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter(), all English.
The test suite reads the JSON only: it does not need datatrove.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)

HERE = Path(__file__).parent
STAGES = ["gopher_repetition", "gopher_quality", "c4", "fineweb_quality"]


def decide(f, text: str) -> tuple[str | None, str]:
    doc = Document(text=text, id="0")
    res = f.filter(doc)
    keep, reason = res if isinstance(res, tuple) else (res, None)
    return (None if keep else reason or "removed"), doc.text


def peer_filters() -> dict:
    """datatrove's four filters as its examples/fineweb.py sets them, by our stage names (also used by
    tests/data/heldout/make_peer_decisions.py)."""
    return dict(zip(STAGES, [GopherRepetitionFilter(), GopherQualityFilter(),
                             C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter()]))


def main() -> None:
    filters = peer_filters()
    texts = json.loads((HERE / "texts.json").read_text(encoding="utf-8"))
    out = {"peer": f"datatrove {version('datatrove')}, spacy {version('spacy')}", "documents": {}}
    for key, item in texts.items():
        alone = {name: decide(f, item["text"])[0] for name, f in filters.items()}
        text, stage, reason = item["text"], None, None
        for name, f in filters.items():
            reason, text = decide(f, text)
            if reason is not None:
                stage = name
                break
        out["documents"][key] = {"alone": alone, "pipeline": {"stage": stage, "reason": reason,
                                                               "text": text if stage is None else None}}
    (HERE / "peer_decisions.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n",
                                              encoding="utf-8")


if __name__ == "__main__":
    main()
