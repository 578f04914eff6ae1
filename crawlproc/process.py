"""Process one WARC file through the extract stage: the unit of work, of retry and of resume.

read HTML responses -> the steps of crawlproc/pipeline.py (URL filter -> extract -> language ID -> the
quality filters); writes docs/, removed/ (with the stage and reason) and stats/ for the file, then the
_done marker last. A bad record is a counted removal, a bad file keeps the records before the fault.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from datetime import datetime, UTC
from pathlib import Path

from crawlproc.charset import UndecodableError, decode_html
from crawlproc.doc import Doc
from crawlproc.pipeline import pipeline_for
from crawlproc.recipe import Recipe
from crawlproc.schema import REMOVED_SCHEMA, docs_table
from crawlproc.storage import Layout, atomic_write_json, atomic_write_table, warc_stem
from crawlproc.warc import ReadCounts, WarcReadError, iter_html_records

def process_warc(
    source: str | Path,
    out: str | Path,
    recipe: Recipe,
    *,
    dump: str,
    file_path: str | None = None,
    stem: str | None = None,
) -> dict:
    """Run the extract stage on one local WARC file; return its stats (see stats/<stem>.json).

    Never raises for bad input: a read error keeps the records before the fault, sets stats["error"] and
    leaves no _done marker, so the caller records the failure and a rerun tries the file again.
    """
    started = time.perf_counter()
    source = Path(source)
    stem = stem or warc_stem(str(source))
    file_path = file_path or str(source)
    layout = Layout(out, dump)
    pipe = pipeline_for(recipe)
    pipe.reset()
    counts = ReadCounts()
    languages: Counter = Counter()
    seconds: Counter = Counter()
    steps = pipe.counts(seconds)
    kept: list[dict] = []
    removed: list[dict] = []
    error = None

    try:
        records = iter_html_records(
            source, counts, recipe.input.max_payload_bytes, html_only=recipe.input.html_only
        )
        t_read = time.perf_counter()
        for rec in records:
            seconds["read"] += time.perf_counter() - t_read
            base = {
                "id": rec.id, "dump": dump, "url": rec.url, "date": rec.date, "file_path": file_path,
                "warc_offset": rec.offset,
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
            if doc.language:
                languages[doc.language] += 1
            if removal is None:
                row["token_count"] = len(row["text"].split())
                kept.append(row)
            else:
                row["removed_by"], row["removed_reason"] = removal
                removed.append(row)
            t_read = time.perf_counter()
    except WarcReadError as e:
        error = str(e)
    except OSError as e:
        error = f"cannot read {source}: {e}"

    t = time.perf_counter()
    atomic_write_table(layout.path("docs", stem), docs_table(kept))
    atomic_write_table(layout.path("removed", stem), docs_table(removed, REMOVED_SCHEMA))
    seconds["write"] += time.perf_counter() - t
    seconds["total"] = time.perf_counter() - started

    stats = {
        "file": file_path,
        "stem": stem,
        "dump": dump,
        "records": counts.records,
        "responses": counts.responses,
        "skipped": dict(counts.skipped),
        "stages": steps.stages(),
        "removed_reasons": dict(steps.reasons),
        "languages": dict(languages),
        "kept": len(kept),
        "removed": len(removed),
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "error": error,
        "complete": error is None,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    atomic_write_json(layout.path("stats", stem), stats)
    if error is None:
        atomic_write_json(
            layout.path("_done", stem),
            {
                "stem": stem, "file": file_path, "kept": len(kept), "removed": len(removed),
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
    return stats
