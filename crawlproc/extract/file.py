"""Process one WARC file through the extract stage: the unit of work, of retry and of resume.

read HTML responses -> the steps of crawlproc/extract/steps.py (URL filter -> extract -> language ID -> the
quality filters); writes docs/ and removed/ (with the step and reason) for the file and returns its
FileStats (crawlproc/extract/stats.py), which the stage runner stores in the file's `_done` marker after this
returns. A bad record is a counted removal, a bad file
keeps the records before the fault.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from pathlib import Path

from crawlproc.warc.charset import UndecodableError, decode_html
from crawlproc.doc import Doc
from crawlproc.extract.stats import FileStats
from crawlproc.extract.steps import pipeline_for
from crawlproc.quality import splitters
from crawlproc.quality.words import is_symbol_word
from crawlproc.recipe import Recipe
from crawlproc.schema import REMOVED_SCHEMA, docs_table, extracted_table
from crawlproc.store.failure import PartialFailure
from crawlproc.store.fingerprint import digest, file_fingerprint
from crawlproc.store.layout import Layout, warc_stem
from crawlproc.warc.reader import ReadCounts, WarcReadError, iter_html_records
from crawlproc.warc.wet import iter_wet_records

# [fetch] is not here: which records a file contributes is part of that file's input fingerprint
# (pipelines/stages/index.py), so one snapshot may mix files read whole and files read by the index
NOT_EXTRACT_SECTIONS = ("minhash", "dedup", "pii", "classify", "classifiers", "download", "fetch", "tokenize", "ray",
                        "storage", "train")


def extract_view(recipe_dict: dict) -> dict:
    """The recipe sections that decide the extract stage's output: changing a dedup, tokenize or Ray setting
    does not invalidate extracted files. WET input (CC's text instead of the page) is another output: a
    snapshot made from WARCs refuses it unless --force (the other modes keep the fingerprint they had)."""
    view = {k: v for k, v in recipe_dict.items() if k not in NOT_EXTRACT_SECTIONS}
    if (recipe_dict.get("fetch") or {}).get("mode") == "wet":
        view["fetch"] = {"mode": "wet"}
    return view


def extract_fingerprint(recipe: Recipe) -> str:
    """Fingerprint of `extract_view(recipe)` (8 hex digits, as in the `_done` marker names)."""
    return digest(extract_view(recipe.to_dict()))[:8]


def process_warc(
    source: str | Path,
    out: str | Path | Layout,
    recipe: Recipe,
    *,
    dump: str,
    file_path: str | None = None,
    stem: str | None = None,
    raise_on_error: bool = False,
    offsets: dict[int, int] | None = None,
) -> dict:
    """Run the extract stage on one local WARC file; write docs/ and removed/ under the snapshot `dump` of
    `out` (a local folder, an object-store URI or a Layout); return its FileStats as a dict.

    A read error (a truncated or corrupt file) keeps the records before the fault, writes them, and sets
    stats["error"]; with raise_on_error it then raises PartialFailure (carrying the stats) from the read
    error, which is how the stage runner records the file as failed. Markers are the runner's business.
    `offsets` maps a record's offset in `source` to its offset in the file it was cut from (ranged reads).
    """
    started = time.perf_counter()
    source = Path(source)
    stem = stem or warc_stem(str(source))
    file_path = file_path or str(source)
    snap = (out if isinstance(out, Layout) else Layout(str(out))).snapshot(dump)
    pipe = pipeline_for(recipe)
    pipe.reset()
    content_fp = file_fingerprint(snap.storage, str(source))
    counts = ReadCounts()
    languages: Counter = Counter()
    by_language: dict[str, dict] = {}
    seconds: Counter = Counter()
    steps = pipe.counts(seconds)
    kept: list[dict] = []
    removed: list[dict] = []
    extracted: list[dict] = []  # the filters' input text of documents a filter edited (C4 drops lines)
    error: Exception | None = None

    try:
        if recipe.fetch.mode == "wet":
            records = iter_wet_records(source, counts, recipe.input.max_payload_bytes)
        else:
            records = iter_html_records(
                source, counts, recipe.input.max_payload_bytes, html_only=recipe.input.html_only,
                max_skip_bytes=recipe.input.max_skip_bytes or None,
            )
        t_read = time.perf_counter()
        for rec in records:
            seconds["read"] += time.perf_counter() - t_read
            offset = offsets.get(rec.offset, rec.offset) if offsets is not None else rec.offset
            base = {
                "id": record_id(rec.id, content_fp, offset), "dump": dump, "url": rec.url, "date": rec.date,
                "file_path": file_path, "warc_offset": offset,
            }
            t = time.perf_counter()
            try:
                html, _enc = decode_html(rec.payload, rec.content_type)
            except UndecodableError:
                counts.skipped["undecodable"] += 1
                t_read = time.perf_counter()
                continue
            finally:
                seconds["decode"] += time.perf_counter() - t
            doc = Doc(rec.url, html)
            removal = pipe.run(doc, steps)
            row = base | {"text": doc.text, "language": doc.language, "language_score": doc.language_score}
            if doc.extracted is not None and doc.extracted != doc.text:
                extracted.append({"id": base["id"], "text": doc.extracted})
            if doc.language:
                languages[doc.language] += 1
            if removal is None:
                row["token_count"] = words_in(doc)
                kept.append(row)
            else:
                row["removed_by"], row["removed_reason"] = removal
                removed.append(row)
            count_language(by_language, doc.language, removal, row.get("token_count"), len(doc.text))
            t_read = time.perf_counter()
    except WarcReadError as e:
        error = e
    except OSError as e:
        error = WarcReadError(f"cannot read {source}: {e}")
        error.__cause__ = e

    t = time.perf_counter()
    snap.storage.write_table(snap.path("docs", stem), docs_table(kept))
    snap.storage.write_table(snap.path("removed", stem), docs_table(removed, REMOVED_SCHEMA))
    snap.storage.write_table(snap.path("extracted", stem), extracted_table(extracted))
    seconds["write"] += time.perf_counter() - t
    seconds["total"] = time.perf_counter() - started

    stats = FileStats(
        file=file_path, stem=stem, dump=dump, content_fingerprint=content_fp, records=counts.records,
        responses=counts.responses, decompressed_bytes=counts.decompressed_bytes, resynced=counts.resynced,
        kept=len(kept),
        removed=len(removed), skipped=dict(counts.skipped), steps=steps.by_step(),
        removed_reasons=dict(steps.reasons), languages=dict(languages), by_language=by_language,
        words_fallback={k: v for k, v in splitters.fallbacks().items() if k in by_language},
        seconds={k: round(v, 4) for k, v in seconds.items()}, error=str(error) if error is not None else None,
        complete=error is None, host=socket.gethostname(), pid=os.getpid(),
    ).to_dict()
    if error is not None and raise_on_error:
        raise PartialFailure(str(error), stats) from error
    return stats


def _language_counts() -> dict:
    return {"kept": 0, "removed": 0, "kept_words": 0, "kept_chars": 0, "reasons": {}}


def count_language(by_language: dict, language: str | None, removal: tuple[str, str] | None,
                   words: int | None, chars: int) -> None:
    """One document in FileStats.by_language: kept (with its words and characters) or removed (by reason)."""
    mine = by_language.setdefault(language or "und", _language_counts())
    if removal is None:
        mine["kept"] += 1
        mine["kept_words"] += words or 0
        mine["kept_chars"] += chars
    else:
        mine["removed"] += 1
        reason = removal[0] if removal[0] == "language" else f"{removal[0]}:{removal[1]}"
        mine["reasons"][reason] = mine["reasons"].get(reason, 0) + 1


def words_in(doc: Doc) -> int:
    """The document's words in its language (punctuation tokens left out): what `token_count` holds, and what
    stats add up per language (whitespace would count a Chinese paragraph as one word)."""
    return sum(1 for w in doc.words if not is_symbol_word(w))


def record_id(warc_record_id: str | None, content_fp: str, offset: int) -> str:
    """The document id: the WARC-Record-ID; for a record without one, an id made of the file's content
    fingerprint and the record's offset (unique in a snapshot, the same on every rerun)."""
    if warc_record_id and not warc_record_id.startswith("<offset:"):
        return warc_record_id
    return f"<urn:crawlproc:{content_fp}:{offset}>"
