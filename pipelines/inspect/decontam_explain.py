"""What `crawlproc explain` says about decontamination: for a document it removed (or cut), the benchmark, the
item (its id, and its text read back from the benchmark file the snapshot was cleaned against, when that file
still has the recorded sha256) and the shared n-gram; for a kept document, what it was checked against."""

from __future__ import annotations

import hashlib

import pyarrow as pa

from crawlproc.evalsuite import EvalSuiteError, load_task
from crawlproc.store.layout import Snapshot

KINDS = ("decontaminated_removed", "decontaminated")  # the folders explain searches besides its own
ITEM_CHARS = 400


def _item_text(snap: Snapshot, benchmark: dict | None, item_id: str, cache: dict) -> tuple[str | None, str | None]:
    """(the item's context + gold answer, or None; why not)."""
    if not benchmark:
        return None, "the benchmark is not in the snapshot's decontamination summary"
    path = benchmark.get("file")
    if path not in cache:
        try:
            data = snap.storage.read_bytes(path)
            task = load_task(path, read=lambda p: data if p == path else snap.storage.read_bytes(p))
            cache[path] = (hashlib.sha256(data).hexdigest(), task)
        except (OSError, EvalSuiteError, UnicodeDecodeError) as e:
            cache[path] = (None, f"{path} cannot be read ({e})")
    digest, task = cache[path]
    if digest is None:
        return None, task
    if digest != benchmark.get("sha256"):
        return None, f"{path} changed since the snapshot was cleaned against it (sha256 differs)"
    item = next((it for it in task.items if it.id == item_id), None)
    if item is None:
        return None, f"{path} has no item {item_id!r}"
    return item.context + item.answer, None


def _cuts(snap: Snapshot, stem: str | None, doc_id: str) -> dict | None:
    if not stem or not snap.storage.exists(snap.decontam_cuts(stem)):
        return None
    try:
        table = snap.storage.read_table(snap.decontam_cuts(stem))
    except (pa.ArrowException, OSError, ValueError):
        return None
    rows = [r for r in table.to_pylist() if r.get("id") == doc_id]
    return rows[0] if rows else None


def explain_decontam(result: dict, found: dict[str, dict], snap: Snapshot) -> None:
    """Add `result["decontaminate"]` when the snapshot was decontaminated; when the stage removed the
    document, that becomes the verdict. `found`: kind -> hit, as explain found them."""
    summary = snap.storage.read_json(snap.decontam.summary_uri)
    if not isinstance(summary, dict) or not any(k in found for k in (*KINDS, "final", "docs")):
        return
    benchmarks = {b.get("name"): {**b, "file": b.get("path")} for b in (summary.get("index") or {}).get("benchmarks", [])}
    info = {"against": [{"name": n, "file": b.get("file"), "sha256": b.get("sha256")} for n, b in benchmarks.items()],
            "n": (summary.get("settings") or {}).get("n"), "status": None}
    cache: dict = {}
    removed = found.get("decontaminated_removed")
    stem = None
    hit = removed or found.get("decontaminated")
    if hit is not None:
        stem = hit["file"].rsplit("/", 1)[-1].removesuffix(".parquet")
    cut = _cuts(snap, stem, result["id"]) if removed is None else None
    record = removed["row"] if removed is not None else cut
    if record is not None:
        bench = record.get("removed_reason") if removed is not None else record.get("benchmark")
        item_id = record.get("decontam_item")
        text, why = _item_text(snap, benchmarks.get(bench), item_id, cache)
        info.update(status="removed" if removed is not None else "cut", benchmark=bench, item=item_id,
                    ngram=record.get("decontam_ngram"), ngrams=record.get("decontam_ngrams"), item_text=text,
                    item_text_note=why, chars_cut=record.get("chars_cut"))
        n = info["n"] or "n"
        if removed is not None:
            result.update(verdict="removed", stage="decontaminate", reason=bench,
                          summary=f"passed every filter and dedup, then removed by decontaminate: it shares "
                                  f"{record.get('decontam_ngrams')} {n}-gram(s) with {bench} item {item_id}")
        else:
            result["summary"] += (f"; decontaminate cut {record.get('chars_cut')} characters ({record.get('spans')} "
                                  f"span(s)) sharing {n}-grams with {bench} item {item_id}")
    elif "decontaminated" in found:
        info["status"] = "clean"
        if result.get("verdict") == "kept":
            result["summary"] += "; holds no benchmark item (in decontaminated/)"
    result["decontaminate"] = info


def decontam_lines(match: dict) -> list[str]:
    """The terminal lines for `match["decontaminate"]`."""
    d = match.get("decontaminate")
    if not d:
        return []
    names = ", ".join(f"{b['name']} (sha256 {str(b['sha256'])[:12]})" for b in d["against"]) or "no benchmark file"
    if d["status"] in ("removed", "cut"):
        lines = [f"  [decontaminate] {'REMOVE' if d['status'] == 'removed' else 'CUT'}: {d['ngrams']} distinct "
                 f"{d['n']}-gram(s) shared with {d['benchmark']} item {d['item']}",
                 f"    n-gram:  {d['ngram']}"]
        if d.get("item_text"):
            text = " ".join(d["item_text"].split())
            lines.append(f"    item:    {text[:ITEM_CHARS]}{'...' if len(text) > ITEM_CHARS else ''}")
        elif d.get("item_text_note"):
            lines.append(f"    item:    (not shown: {d['item_text_note']})")
    elif d["status"] == "clean":
        lines = [f"  [decontaminate]     ok  no {d['n']}-gram of the benchmarks"]
    else:
        lines = [f"  [decontaminate] not decontaminated yet (the snapshot's other documents were, against {names})"]
        return lines
    lines.append(f"    cleaned against: {names}")
    return lines
