"""Process one WARC file through the extract stage: the unit of work, of retry and of resume.

read HTML responses -> URL filter -> extract -> language ID -> Gopher repetition -> Gopher quality -> C4
-> FineWeb quality; writes docs/, removed/ (with the stage and reason) and stats/ for the file. The stage
runner writes the file's `_done` marker after this returns. A bad record is a counted removal, a bad file
keeps the records before the fault.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from pathlib import Path

from crawlproc.charset import UndecodableError, decode_html
from crawlproc.extract import Extractor, ExtractTimeout
from crawlproc.langid import LanguageIdentifier
from crawlproc.precheck import LanguagePrecheck
from crawlproc.precheck import enabled as precheck_enabled
from crawlproc.precheck import settings as precheck_settings
from crawlproc.quality import QUALITY_STAGES
from crawlproc.recipe import Recipe
from crawlproc.schema import REMOVED_SCHEMA, docs_table
from crawlproc.failure import PartialFailure
from crawlproc.fingerprint import digest, file_fingerprint
from crawlproc.layout import Layout, warc_stem
from crawlproc.urlfilter import UrlFilter
from crawlproc.warc import ReadCounts, WarcReadError, iter_html_records

STAGES = ["url_filter", "extract", "language"] + [name for name, _ in QUALITY_STAGES]


class ExtractPipeline:
    """The per-document steps, built once per recipe and reused across files (models and lists stay loaded)."""

    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self.url_filter = UrlFilter(recipe.url_filter) if recipe.url_filter.enabled else None
        self.extractor = Extractor(recipe.extract)
        self.langid = LanguageIdentifier() if recipe.language.enabled else None
        self.precheck = LanguagePrecheck(recipe.language, self.langid) if precheck_enabled(recipe.language) else None
        self.quality = [(name, fn, getattr(recipe, name)) for name, fn in QUALITY_STAGES]

    def run(self, url: str, html: str, stage_in: Counter, seconds: Counter) -> tuple[dict, str | None, str | None]:
        """Return (fields, removed_by, reason); removed_by is None for a kept document."""
        fields: dict = {"text": "", "language": None, "language_score": None}
        t = time.perf_counter()
        if self.url_filter is not None:
            stage_in["url_filter"] += 1
            reason = self.url_filter.check(url)
            seconds["url_filter"] += time.perf_counter() - t
            if reason:
                return fields, "url_filter", reason

        stage_in["extract"] += 1
        if self.precheck is not None:  # removed by language before extraction: counted at the language stage
            t = time.perf_counter()
            verdict = self.precheck.rules_out(html)
            seconds["precheck"] += time.perf_counter() - t
            if verdict is not None:
                self.extractor.count_paragraphs(verdict.paragraphs)
                stage_in["language"] += 1
                fields["language"], fields["language_score"] = verdict.language, verdict.score
                return fields, "language", verdict.reason
        t = time.perf_counter()
        try:
            text = self.extractor.extract(html, url)
        except ExtractTimeout:
            return fields, "extract", "timeout"
        except Exception as e:  # a parser bug on one page must not fail the file
            return fields, "extract", f"error:{type(e).__name__}"
        finally:
            seconds["extract"] += time.perf_counter() - t
        text = text.strip()
        fields["text"] = text
        if len(text) < self.recipe.extract.min_chars:
            return fields, "extract", "empty"

        lang_cfg = self.recipe.language
        if self.langid is not None:
            stage_in["language"] += 1
            t = time.perf_counter()
            lang, score = self.langid.predict(text)
            seconds["language"] += time.perf_counter() - t
            fields["language"], fields["language_score"] = lang, round(float(score), 4)
            if lang_cfg.keep and (lang not in lang_cfg.keep or score <= lang_cfg.min_score):
                return fields, "language", f"{lang}:{score:.2f}"

        for name, fn, cfg in self.quality:
            if not cfg.enabled:
                continue
            stage_in[name] += 1
            t = time.perf_counter()
            verdict = fn(text, cfg)
            seconds[name] += time.perf_counter() - t
            if verdict.reason is not None:
                fields["text"] = text
                return fields, name, verdict.reason
            text = verdict.text
        fields["text"] = text
        return fields, None, None


_PIPELINES: dict[int, tuple[Recipe, ExtractPipeline]] = {}


def pipeline_for(recipe: Recipe) -> ExtractPipeline:
    """One pipeline per recipe per process: a Ray worker reuses the loaded models across tasks."""
    # the pre-check keys are read with getattr until the recipe declares them, so repr(recipe) omits them
    key = hash((repr(recipe), precheck_settings(recipe.language)))
    if key not in _PIPELINES:
        _PIPELINES[key] = (recipe, ExtractPipeline(recipe))
    return _PIPELINES[key][1]


NOT_EXTRACT_SECTIONS = ("minhash", "dedup", "pii", "download", "tokenize", "ray", "storage", "train")


def extract_view(recipe_dict: dict) -> dict:
    """The recipe sections that decide the extract stage's output: changing a dedup, tokenize or Ray setting
    does not invalidate extracted files."""
    return {k: v for k, v in recipe_dict.items() if k not in NOT_EXTRACT_SECTIONS}


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
) -> dict:
    """Run the extract stage on one local WARC file; write docs/, removed/ and stats/<stem>.json under the
    snapshot `dump` of `out` (a local folder, an object-store URI or a Layout); return the stats.

    A read error (a truncated or corrupt file) keeps the records before the fault, writes them, and sets
    stats["error"]; with raise_on_error it then raises PartialFailure (carrying the stats) from the read
    error, which is how the stage runner records the file as failed. Markers are the runner's business.
    """
    started = time.perf_counter()
    source = Path(source)
    stem = stem or warc_stem(str(source))
    file_path = file_path or str(source)
    snap = (out if isinstance(out, Layout) else Layout(str(out))).snapshot(dump)
    pipe = pipeline_for(recipe)
    pipe.extractor.reset()  # trafilatura's dedup cache: per file, so reruns and retries give the same output
    content_fp = file_fingerprint(snap.storage, str(source))
    counts = ReadCounts()
    stage_in: Counter = Counter()
    stage_removed: Counter = Counter()
    reasons: Counter = Counter()
    languages: Counter = Counter()
    seconds: Counter = Counter()
    kept: list[dict] = []
    removed: list[dict] = []
    error: Exception | None = None

    try:
        records = iter_html_records(
            source, counts, recipe.input.max_payload_bytes, html_only=recipe.input.html_only,
            max_skip_bytes=getattr(recipe.input, "max_skip_bytes", 0) or None,
        )
        t_read = time.perf_counter()
        for rec in records:
            seconds["read"] += time.perf_counter() - t_read
            base = {
                "id": record_id(rec.id, content_fp, rec.offset), "dump": dump, "url": rec.url, "date": rec.date,
                "file_path": file_path, "warc_offset": rec.offset,
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
            fields, removed_by, reason = pipe.run(rec.url, html, stage_in, seconds)
            row = base | fields
            if fields.get("language"):
                languages[fields["language"]] += 1
            if removed_by is None:
                row["token_count"] = len(row["text"].split())
                kept.append(row)
            else:
                row["removed_by"], row["removed_reason"] = removed_by, reason
                removed.append(row)
                stage_removed[removed_by] += 1
                reasons[f"{removed_by}:{reason.rsplit(':', 1)[0] if removed_by == 'language' else reason}"] += 1
            t_read = time.perf_counter()
    except WarcReadError as e:
        error = e
    except OSError as e:
        error = WarcReadError(f"cannot read {source}: {e}")
        error.__cause__ = e

    t = time.perf_counter()
    snap.storage.write_table(snap.path("docs", stem), docs_table(kept))
    snap.storage.write_table(snap.path("removed", stem), docs_table(removed, REMOVED_SCHEMA))
    seconds["write"] += time.perf_counter() - t
    seconds["total"] = time.perf_counter() - started

    stats = {
        "file": file_path,
        "stem": stem,
        "dump": dump,
        "content_fingerprint": content_fp,
        "records": counts.records,
        "responses": counts.responses,
        "decompressed_bytes": counts.decompressed_bytes,
        "skipped": dict(counts.skipped),
        "stages": {s: {"in": stage_in[s], "removed": stage_removed[s]} for s in STAGES},
        "removed_reasons": dict(reasons),
        "languages": dict(languages),
        "kept": len(kept),
        "removed": len(removed),
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "error": str(error) if error is not None else None,
        "complete": error is None,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    snap.storage.write_json(snap.path("stats", stem), stats)
    if error is not None and raise_on_error:
        raise PartialFailure(str(error), stats) from error
    return stats


def record_id(warc_record_id: str | None, content_fp: str, offset: int) -> str:
    """The document id: the WARC-Record-ID; for a record without one, an id made of the file's content
    fingerprint and the record's offset (unique in a snapshot, the same on every rerun)."""
    if warc_record_id and not warc_record_id.startswith("<offset:"):
        return warc_record_id
    return f"<urn:crawlproc:{content_fp}:{offset}>"
