"""What the extract stage counts for one WARC file: `FileStats`, one typed shape.

It is stored once, in the file's commit record: the `_done` marker of a finished file, or the `_failed`
record of a file that broke part-way (whose documents before the fault were written). The stage's summary,
`crawlproc status` and the report read it from there with `snapshot_stats`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from crawlproc.store.layout import Snapshot


@dataclass
class FileStats:
    file: str = ""  # the input as given (path, URI or listed path)
    stem: str = ""
    dump: str = ""
    content_fingerprint: str = ""
    records: int = 0  # WARC records read
    responses: int = 0  # HTML responses among them
    decompressed_bytes: int = 0
    resynced: int = 0  # gzip bombs skipped at their member, reading going on at the next record
    kept: int = 0
    removed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # records not made into documents, by reason
    steps: dict[str, dict[str, int]] = field(default_factory=dict)  # step -> {"in": n, "removed": n}, in order
    removed_reasons: dict[str, int] = field(default_factory=dict)  # "<step>:<reason>" -> documents
    languages: dict[str, int] = field(default_factory=dict)
    # per language (ISO 639-3 + script): {"kept", "removed", "kept_words" (the language's own words,
    # crawlproc/quality/splitters.py), "kept_chars", "reasons": {"<step>:<reason>" or "language": n}}
    by_language: dict[str, dict] = field(default_factory=dict)
    words_fallback: dict[str, str] = field(default_factory=dict)  # languages split by the fallback splitter: why
    seconds: dict[str, float] = field(default_factory=dict)  # read, decode, each step, write, total
    error: str | None = None  # why the file stopped early
    complete: bool = True
    host: str = ""
    pid: int = 0
    download: dict | None = None  # bytes, attempts, resumed, seconds of a listed file's download
    index: dict | None = None  # fetch.mode = "index": the file's index rows, what was selected and fetched

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d) -> FileStats:
        """The stats of a stored record; a record written before the steps were called steps ("stages") reads
        the same. A value of the wrong type is a ValueError naming the key."""
        if not isinstance(d, dict):
            raise ValueError(f"file stats must be an object, got {type(d).__name__}")
        d = dict(d)
        if "steps" not in d and "stages" in d:
            d["steps"] = d.pop("stages")
        known = {f.name: f for f in dataclasses.fields(cls)}
        out = cls()
        for name, value in d.items():
            f = known.get(name)
            if f is None or value is None:
                continue
            default = getattr(out, name)
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            elif isinstance(default, dict) or name in ("download", "index"):
                ok = isinstance(value, dict)
            else:
                ok = isinstance(value, str)
            if not ok:
                raise ValueError(f"file stats key {name!r}: unexpected value {value!r:.80}")
            setattr(out, name, value)
        return out

    @staticmethod
    def total(items) -> FileStats:
        """The sum of many files' counters (steps keep their pipeline order)."""
        out = FileStats()
        skipped, reasons, languages, seconds = Counter(), Counter(), Counter(), Counter()
        for s in items:
            out.records += s.records
            out.responses += s.responses
            out.decompressed_bytes += s.decompressed_bytes
            out.resynced += s.resynced
            out.kept += s.kept
            out.removed += s.removed
            skipped.update(s.skipped)
            reasons.update(s.removed_reasons)
            languages.update(s.languages)
            seconds.update(s.seconds)
            for step, c in s.steps.items():
                acc = out.steps.setdefault(step, {"in": 0, "removed": 0})
                for k, v in c.items():
                    acc[k] = acc.get(k, 0) + int(v)
            for lang, c in s.by_language.items():
                acc = out.by_language.setdefault(lang, {"kept": 0, "removed": 0, "kept_words": 0, "kept_chars": 0,
                                                        "reasons": {}})
                for k in ("kept", "removed", "kept_words", "kept_chars"):
                    acc[k] += int(c.get(k) or 0)
                for k, v in (c.get("reasons") or {}).items():
                    acc["reasons"][k] = acc["reasons"].get(k, 0) + int(v)
            out.words_fallback.update(s.words_fallback)
        out.skipped, out.removed_reasons, out.languages = dict(skipped), dict(reasons), dict(languages)
        out.by_language = {k: v | {"reasons": dict(sorted(v["reasons"].items(), key=lambda kv: -kv[1]))}
                           for k, v in sorted(out.by_language.items(), key=lambda kv: -(kv[1]["kept"] + kv[1]["removed"]))}
        out.seconds = {k: round(v, 3) for k, v in seconds.items()}
        return out


def snapshot_stats(snap: Snapshot, failed: bool = True,
                   records_out: dict | None = None) -> tuple[dict[str, FileStats], list[str]]:
    """({stem: FileStats}, problems) of a snapshot's files: the done ones from their markers and, with
    `failed`, the partial counts of files that broke part-way. A malformed record is a problem, not a crash.
    `records_out` (a dict) receives each done file's whole marker record (when it finished, where)."""
    out: dict[str, FileStats] = {}
    problems: list[str] = []
    records = []
    for stem, fp in snap.markers.done().items():
        rec = snap.markers.read(stem, fp)
        if not isinstance(rec, dict):
            problems.append(f"{snap.markers.done_uri(stem, fp)}: unreadable done marker of {stem}; not counted")
            continue
        records.append((stem, rec))
        if records_out is not None:
            records_out[stem] = rec
    if failed:
        records += [(stem, rec) for stem, rec in snap.markers.failed().items()]
    for stem, rec in records:
        stats = rec.get("stats") if isinstance(rec, dict) else None
        if not stats:
            continue
        try:
            out[stem] = FileStats.from_dict(stats)
        except ValueError as e:
            problems.append(f"{snap.uri} {stem}: malformed stats ({e}); not counted")
    return out, problems
