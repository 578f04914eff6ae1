"""One input file decontaminated: a plain function the stage runs in a Ray task (no Ray here).

    decontaminated/<stem>.parquet          the documents kept (in "cut" mode, with the matching spans cut)
    decontaminated_removed/<stem>.parquet  the documents removed, with removed_by = "decontaminate",
                                           removed_reason = the benchmark, decontam_item (the item id),
                                           decontam_ngram (the shared n-gram, normalized words) and
                                           decontam_ngrams (how many distinct indexed n-grams it shares)
    decontam/cuts/<stem>.parquet           "cut" mode: the documents kept after a cut, with the same fields and
                                           the number of characters cut

A document is contaminated when it shares at least `min_matches` distinct indexed n-grams; one that shares
fewer is kept as it is and counted (`below_min_matches`). Every input row ends up in exactly one of the
kept and removed files: the counts are checked before anything is written.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from crawlproc.decontam import text
from crawlproc.decontam.index import Index
from crawlproc.decontam.match import Contamination, find
from crawlproc.store.layout import Snapshot

STAGE = "decontaminate"
TOP_DOMAINS = 20  # per benchmark and file; the stage sums them
DECONTAM_FIELDS = [
    pa.field("removed_by", pa.string(), nullable=False),
    pa.field("removed_reason", pa.string()),
    pa.field("decontam_item", pa.string()),
    pa.field("decontam_ngram", pa.string()),
    pa.field("decontam_ngrams", pa.int64()),
]
_LINE_TAIL = re.compile(r"[^\w\n]*")


def settings_of(cfg) -> dict:
    """The settings of a DecontaminateConfig that decide what one file's outputs are (beside the index)."""
    out = {"mode": cfg.mode, "min_matches": cfg.min_matches}
    if cfg.mode == "cut":
        out["min_words_after_cut"] = cfg.min_words_after_cut
    return out


def domain(url: str | None) -> str:
    try:
        return (urlsplit(url or "").hostname or "").removeprefix("www.") or "?"
    except ValueError:
        return "?"


def cut_spans(text_: str, spans: list[tuple[int, int]]) -> str:
    """`text_` without the spans (byte offsets of its UTF-8, merged and sorted); each cut also takes the
    punctuation and spaces after it on its line, so that no stray "." or "?" is left where a sentence was."""
    body = text_.encode("utf-8", "surrogatepass")
    out, at = [], 0
    for s, e in spans:
        s, e = (len(body[:x].decode("utf-8", "surrogatepass")) for x in (s, e))
        out.append(text_[at:max(s, at)])
        at = max(at, _LINE_TAIL.match(text_, e).end())
    out.append(text_[at:])
    return "".join(out)


def decontaminate_file(uri: str, stem: str, snap: Snapshot, index: Index, settings: dict) -> dict:
    storage = snap.storage
    table = storage.read_table(uri)
    n = table.num_rows
    matched = find(index, table.column("text")) if n else []
    found = [c for c in matched if c.contaminated(settings["min_matches"])]
    below = len(matched) - len(found)  # shared some indexed n-grams, fewer than min_matches: kept, counted
    cut_mode = settings["mode"] == "cut"
    removed_rows, cut = [], {}
    if cut_mode and found:
        texts = table.column("text")
        for c in found:
            body = texts[c.row].as_py()
            new = cut_spans(body, c.spans)
            if len(text.words(new)) >= settings["min_words_after_cut"]:
                cut[c.row] = (c, new, len(body) - len(new))
            else:
                removed_rows.append(c)
    else:
        removed_rows = found
    removed_set = {c.row for c in removed_rows}
    keep_mask = pa.array([i not in removed_set for i in range(n)], pa.bool_())
    kept = table.filter(keep_mask)
    if cut:
        kept = _with_cuts(table, kept, removed_set, cut)
    removed = _removed_table(table, removed_rows, index)
    if kept.num_rows + removed.num_rows != n:  # never lose a document silently
        raise RuntimeError(f"decontaminate {stem}: kept {kept.num_rows} + removed {removed.num_rows} != {n}")
    storage.write_table(snap.path("decontaminated", stem), kept)
    storage.write_table(snap.path("decontaminated_removed", stem), removed)
    if cut_mode:
        storage.write_table(snap.decontam_cuts(stem), _cuts_table(table, cut, index))
    else:
        storage.delete(snap.decontam_cuts(stem))
    return _stats(table, n, removed_rows, cut, below, index)


def _with_cuts(table: pa.Table, kept: pa.Table, removed: set[int], cut: dict) -> pa.Table:
    """`kept` with the cut documents' text (and word count) replaced."""
    rows = [i for i in range(table.num_rows) if i not in removed]
    at = {row: k for k, row in enumerate(rows)}
    texts = kept.column("text").to_pylist()
    for row, (_, new, _) in cut.items():
        texts[at[row]] = new
    kept = kept.set_column(kept.schema.get_field_index("text"), kept.schema.field("text"),
                           pa.array(texts, kept.schema.field("text").type))
    if "token_count" in kept.column_names:
        counts = kept.column("token_count").to_pylist()
        for row, (_, new, _) in cut.items():
            counts[at[row]] = len(new.split())
        i = kept.schema.get_field_index("token_count")
        kept = kept.set_column(i, kept.schema.field(i), pa.array(counts, kept.schema.field(i).type))
    return kept


def _removed_table(table: pa.Table, rows: list[Contamination], index: Index) -> pa.Table:
    rows = sorted(rows, key=lambda c: c.row)
    base = table.drop_columns([f.name for f in DECONTAM_FIELDS if f.name in table.column_names])
    out = base.take(pa.array([c.row for c in rows], pa.int64()))
    values = {
        "removed_by": [STAGE] * len(rows),
        "removed_reason": [c.benchmark(index) for c in rows],
        "decontam_item": [c.item_id(index) for c in rows],
        "decontam_ngram": [c.ngram for c in rows],
        "decontam_ngrams": [c.ngrams for c in rows],
    }
    for f in DECONTAM_FIELDS:
        out = out.append_column(f, pa.array(values[f.name], f.type))
    return out


def _cuts_table(table: pa.Table, cut: dict, index: Index) -> pa.Table:
    rows = sorted(cut)
    picked = table.select([c for c in ("id", "url") if c in table.column_names]).take(pa.array(rows, pa.int64()))
    items = [cut[r][0] for r in rows]
    cols = [("benchmark", pa.string(), [c.benchmark(index) for c in items]),
            ("decontam_item", pa.string(), [c.item_id(index) for c in items]),
            ("decontam_ngram", pa.string(), [c.ngram for c in items]),
            ("decontam_ngrams", pa.int64(), [c.ngrams for c in items]),
            ("spans", pa.int64(), [len(c.spans) for c in items]),
            ("chars_cut", pa.int64(), [cut[r][2] for r in rows])]
    for name, kind, values in cols:
        picked = picked.append_column(pa.field(name, kind), pa.array(values, kind))
    return picked


def _stats(table: pa.Table, n: int, removed: list[Contamination], cut: dict, below: int, index: Index) -> dict:
    urls = table.column("url") if "url" in table.column_names else None
    per: dict[str, dict] = defaultdict(lambda: {"documents": 0, "removed": 0, "cut": 0, "items": set(),
                                                "domains": Counter()})
    contaminated = [(c, "removed") for c in removed] + [(c, "cut") for c, _, _ in cut.values()]
    for c, action in contaminated:
        b = per[c.benchmark(index)]
        b["documents"] += 1
        b[action] += 1
        b["domains"][domain(urls[c.row].as_py() if urls is not None else None)] += 1
        for t, i in c.items:
            per[index.benchmarks[t].name]["items"].add(i)
    benchmarks = {name: {"documents": b["documents"], "removed": b["removed"], "cut": b["cut"],
                         "items": sorted(b["items"]), "domains": dict(b["domains"].most_common(TOP_DOMAINS))}
                  for name, b in sorted(per.items())}
    chars = int(pc.sum(pc.utf8_length(table.column("text"))).as_py() or 0) if n else 0
    return {"documents": n, "kept": n - len(removed), "removed": len(removed), "cut": len(cut),
            "chars_cut": sum(v[2] for v in cut.values()), "below_min_matches": below, "chars": chars,
            "benchmarks": benchmarks}
