"""Re-apply changed filter settings to one extracted file, without reading its WARC again (`crawlproc refilter`).

A file's extract outputs hold everything the quality filters need: every document that reached the filters
is either kept (docs/) or removed by a filter (removed/, removed_by = the filter), with its URL, language and
score; the text the filters started from is the stored text, or, when a filter edited it (C4 drops lines),
the copy in extracted/. So the filters of a new recipe can run again on exactly the input they had, and give
what extracting the WARC again with that recipe gives. Documents removed before the filters (URL filter,
extraction, language ID and its pre-check) keep their removal: those steps' settings cannot change in a
refilter (`refilter_view`).

The switch of one file is exactly-once like any unit: the new docs/, removed/ and extracted/ are written to a
staging folder of the new fingerprint, then a ready record (with the new FileStats); only then is the old
`_done` marker removed, the staged files moved into place and the new marker written. A crash before the
ready record leaves the old file as it was (a rerun starts it over); after it, the rerun finishes the switch
from the staged files (`finish_switch`).
"""

from __future__ import annotations

import time
from collections import Counter

from crawlproc.doc import Doc
from crawlproc.quality import splitters
from crawlproc.extract import registry
from crawlproc.extract.file import count_language, words_in
from crawlproc.extract.stats import FileStats
from crawlproc.extract.steps import pipeline_for
from crawlproc.recipe import Recipe
from crawlproc.schema import REMOVED_SCHEMA, conform, docs_table, extracted_table
from crawlproc.store.layout import Layout, Snapshot
from crawlproc.store.storage import join

KINDS = ("docs", "removed", "extracted")


class RefilterError(RuntimeError):
    """A file or a snapshot that cannot be refiltered; the message says why and what to run instead."""


def filter_sections(recipe_dict: dict) -> set[str]:
    """The recipe sections that belong to quality filters (built-in and the recipe's plugins')."""
    plugins = (recipe_dict.get("extract") or {}).get("plugins") or []
    return {f.name for f in registry.filters(plugins)}


def refilter_view(recipe_dict: dict, others: set[str] = frozenset()) -> dict:
    """What a refilter must find unchanged: the extract settings but the filters' sections (and the list of
    plugin filters). `others`: filter sections of the other recipe compared, dropped as well."""
    from crawlproc.extract.file import extract_view

    view = extract_view(recipe_dict)
    drop = filter_sections(recipe_dict) | set(others)
    out = {k: v for k, v in view.items() if k not in drop}
    if "extract" in out:
        out["extract"] = {k: v for k, v in out["extract"].items() if k != "plugins"}
    return out


def staged(snap: Snapshot, fp: str, kind: str, stem: str) -> str:
    return snap.refilter.path("staging", fp, kind, f"{stem}.parquet")


def ready_uri(snap: Snapshot, fp: str, stem: str) -> str:
    """The ready record of a switch to `fp`, under the recipe part of it (ready/<recipe8>/<stem>.json)."""
    return snap.refilter.path("ready", fp[:8], f"{stem}.json")


def refilter_file(stem: str, old_fp: str, new_fp: str, layout: Layout, recipe: Recipe, dump: str) -> dict:
    """Refilter one done file from its `old_fp` outputs to `new_fp`; returns its new FileStats (as a dict)."""
    started = time.perf_counter()
    snap = layout.snapshot(dump)
    st = snap.storage
    marker = snap.markers.read(stem, old_fp)
    if not isinstance(marker, dict) or not marker.get("stats"):
        raise RefilterError(f"{stem}: its done marker {old_fp} is gone or has no counts: run the extract again")
    old = FileStats.from_dict(marker["stats"])
    if not st.exists(snap.path("extracted", stem)):
        raise RefilterError(f"{stem} was extracted before crawlproc kept the extracted text (extracted/): it "
                            "cannot be refiltered; extract it again once with --force")
    docs = conform(st.read_table(snap.path("docs", stem)))
    removed = conform(st.read_table(snap.path("removed", stem)), REMOVED_SCHEMA)
    originals = dict(zip(*(st.read_table(snap.path("extracted", stem)).column(c).to_pylist() for c in ("id", "text"))))
    first_steps = set(registry.FIRST_STEPS)

    pipe = pipeline_for(recipe, filters_only=True)
    pipe.reset()
    seconds: Counter = Counter()
    counts = pipe.counts(seconds)
    kept_rows, removed_rows, extracted_rows = [], [], []
    by_language: dict[str, dict] = {}
    candidates = docs.to_pylist() + [r for r in removed.to_pylist() if r["removed_by"] not in first_steps]
    unchanged = [r for r in removed.to_pylist() if r["removed_by"] in first_steps]
    for row in sorted(candidates, key=lambda r: (r["warc_offset"] is None, r["warc_offset"] or 0)):
        text = originals.get(row["id"], row["text"])
        doc = Doc(row["url"] or "", "", text)
        doc.language, doc.language_score = row["language"], row["language_score"]
        doc.extracted = text
        verdict = pipe.run(doc, counts)
        out = {k: v for k, v in row.items() if k not in ("removed_by", "removed_reason")} | {"text": doc.text}
        if doc.text != text:
            extracted_rows.append({"id": row["id"], "text": text})
        if verdict is None:
            out["token_count"] = words_in(doc)
            kept_rows.append(out)
        else:
            out["removed_by"], out["removed_reason"] = verdict
            out["token_count"] = None  # as the extract writes removed documents: counted only when kept
            removed_rows.append(out)
    removed_rows = sorted(unchanged + removed_rows, key=lambda r: (r["warc_offset"] is None, r["warc_offset"] or 0))
    for row in sorted(kept_rows + removed_rows, key=lambda r: (r["warc_offset"] is None, r["warc_offset"] or 0)):
        removal = (row["removed_by"], row["removed_reason"]) if "removed_by" in row else None
        count_language(by_language, row["language"], removal, row.get("token_count"), len(row["text"]))

    new = _new_stats(old, counts, seconds, len(kept_rows), len(removed_rows), recipe)
    new.by_language = by_language
    new.words_fallback = {k: v for k, v in splitters.fallbacks().items() if k in by_language}
    new.seconds["refilter"] = round(time.perf_counter() - started, 4)
    st.write_table(staged(snap, new_fp, "docs", stem), docs_table(kept_rows))
    st.write_table(staged(snap, new_fp, "removed", stem), docs_table(removed_rows, REMOVED_SCHEMA))
    st.write_table(staged(snap, new_fp, "extracted", stem), extracted_table(extracted_rows))
    record = {"stem": stem, "from": old_fp, "to": new_fp, "stats": new.to_dict(), "source": marker.get("source", "")}
    st.write_json(ready_uri(snap, new_fp, stem), record)  # the point of no return: the switch is finished from here
    finish_switch(snap, stem, new_fp, record)
    return new.to_dict()


def finish_switch(snap: Snapshot, stem: str, new_fp: str, record: dict) -> None:
    """Old marker out, staged files in, new marker: idempotent, so a rerun after a crash completes it."""
    st = snap.storage
    if record.get("from") and snap.markers.done().get(stem) == record["from"]:
        snap.markers.unmark(stem, record["from"])
    for kind in KINDS:
        src = staged(snap, new_fp, kind, stem)
        if st.exists(src):
            st.move(src, snap.path(kind, stem))
    snap.markers.mark_done(stem, new_fp, {"stage": "refilter", "source": record.get("source", ""),
                                          "refiltered_from": record.get("from"), "stats": record["stats"]})
    st.delete(ready_uri(snap, new_fp, stem))


def _new_stats(old: FileStats, counts, seconds: Counter, kept: int, removed: int, recipe: Recipe) -> FileStats:
    """The file's counts with the filters' part taken from this refilter: the steps before the filters, the
    reading and the languages stay as extraction counted them."""
    first = set(registry.FIRST_STEPS)
    steps = {name: c for name, c in old.steps.items() if name in first}
    steps.update({name: c for name, c in counts.by_step().items() if name not in first})
    reasons = {k: v for k, v in old.removed_reasons.items() if k.split(":", 1)[0] in first}
    reasons.update(counts.reasons)
    spent = {k: v for k, v in old.seconds.items() if k in first or k in ("read", "decode", "write", "total")}
    spent.update({k: round(v, 4) for k, v in seconds.items()})
    new = FileStats.from_dict(old.to_dict())
    new.steps, new.removed_reasons, new.seconds = steps, dict(reasons), spent
    new.kept, new.removed = kept, removed
    return new


def pending_switches(snap: Snapshot, recipe8: str) -> list[tuple[str, dict]]:
    """(stem, ready record) of the switches to the recipe `recipe8` that a crash left half-done (their file
    has no marker)."""
    st = snap.storage
    done = snap.markers.done()
    out = []
    for e in st.list(join(snap.refilter.path("ready"), recipe8), suffix=".json"):
        stem = e.name[: -len(".json")]
        rec = st.read_json(e.uri)
        if isinstance(rec, dict) and stem not in done:
            out.append((stem, rec))
    return out
