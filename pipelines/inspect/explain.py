"""`crawlproc explain`: why one document was kept or removed, by which stage, with its measured values.

Finds a document by WARC-Record-ID or URL across every snapshot's docs/, removed/, final/ and
dedup/duplicates/ (and the token shards), then says what happened to it. For a quality-filter removal it
recomputes that filter's statistics on the stored text (the text the filter saw) and lists each value against
the threshold of the filter's own check table, marking the ones that failed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from crawlproc.extract import registry
from crawlproc.doc import Doc
from crawlproc.store.layout import Layout
from crawlproc.quality import langcodes
from crawlproc.quality.filter import COMPARISONS, PerLanguage
from crawlproc.recipe import Recipe, load_recipe, recipe_from_dict
from crawlproc.store.storage import Storage, basename
from pipelines.inspect.classify_explain import KINDS as CLASSIFY_KINDS, explain_scores, score_lines
from pipelines.inspect.decontam_explain import KINDS as DECONTAM_KINDS, decontam_lines, explain_decontam

# removed first: its text is what the removing stage saw
KINDS = ("removed", "docs", "final", *DECONTAM_KINDS, *CLASSIFY_KINDS)
_UUID = re.compile(r"^(urn:uuid:)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)

# What reading a damaged or foreign Parquet file raises: it is reported and skipped.
PARQUET_ERRORS = (pa.ArrowException, OSError, ValueError)


def query_keys(query: str) -> tuple[set[str], set[str]]:
    """(ids, urls) to look for: a bare uuid also matches `<urn:uuid:...>`; a URL matches the url column,
    also with or without its trailing slash and with http/https swapped (as users retype URLs)."""
    q = query.strip()
    ids, urls = {q}, set()
    bare = q.strip("<>")
    if _UUID.match(bare):
        full = bare if bare.lower().startswith("urn:uuid:") else f"urn:uuid:{bare}"
        ids |= {f"<{full}>", full}
    if "://" in q or q.startswith("www.") or not (q.startswith("<") or _UUID.match(bare)):
        for u in {q, q.rstrip("/"), q.rstrip("/") + "/"} if "?" not in q and "#" not in q else {q}:
            urls.add(u)
            if u.startswith("https://"):
                urls.add("http://" + u.removeprefix("https://"))
            elif u.startswith("http://"):
                urls.add("https://" + u.removeprefix("http://"))
    return ids, urls


def _match(storage: Storage, uri: str, ids: set[str], urls: set[str], problems: list[str]) -> list[dict]:
    """Rows of one docs/removed/final file whose id or url matches, with every column."""
    try:
        keys = storage.read_table(uri, columns=["id", "url"])
    except PARQUET_ERRORS as e:  # a truncated or foreign file: skip it, say so
        problems.append(f"{uri}: unreadable Parquet ({e})")
        return []
    # Record ids are UUIDs: match them case-insensitively (WARC writers differ, users retype them).
    mask = pc.is_in(pc.utf8_lower(keys.column("id")), value_set=_array({i.lower() for i in ids}))
    if urls:
        mask = pc.or_(mask, pc.is_in(keys.column("url"), value_set=_array(urls)))
    hits = pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()
    if not hits:
        return []
    return storage.read_table(uri).take(hits).to_pylist()


def _equal_ids(column, doc_id: str) -> list[int]:
    """Row numbers where `column` holds `doc_id`, ignoring case like `_match`."""
    return pc.indices_nonzero(pc.fill_null(pc.equal(pc.utf8_lower(column), doc_id.lower()), False)).to_pylist()


def _array(values: set[str]) -> pa.Array:
    return pa.array(sorted(values), type=pa.string())


def _relative(layout: Layout, uri: str) -> str:
    return uri[len(layout.root):].lstrip("/")


def find_document(out: str | Path | Layout, query: str) -> tuple[list[dict], list[str]]:
    """Every stored row matching `query` as (hits, problems); a hit is {"snapshot", "kind", "file", "row"}.
    `out` is a folder, an object-store URI or a Layout."""
    layout = out if isinstance(out, Layout) else Layout(str(out))
    ids, urls = query_keys(query)
    hits, problems = [], []
    for name in layout.snapshots():
        snap = layout.snapshot(name)
        for kind in KINDS:
            for uri in snap.files(kind):
                for row in _match(layout.storage, uri, ids, urls, problems):
                    hits.append({"snapshot": name, "kind": kind, "file": _relative(layout, uri), "row": row})
    return hits, problems


def _duplicates(layout: Layout, doc_id: str, snapshot: str, problems: list[str]) -> dict | None:
    """The dedup record of `doc_id`: dropped (its cluster and survivor) or the survivor of a cluster."""
    survivor_of: dict | None = None
    storage = layout.storage
    for e in storage.list(layout.snapshot(snapshot).dedup.path("duplicates"), suffix=".parquet"):
        try:
            t = storage.read_table(e.uri, columns=["id", "cluster_id", "kept_id", "kind"])
        except PARQUET_ERRORS as err:
            problems.append(f"{e.uri}: unreadable Parquet ({err})")
            continue
        own = _equal_ids(t.column("id"), doc_id)
        if own:
            row = t.take(own[:1]).to_pylist()[0]
            return {"status": "dropped", "kind": row["kind"], "cluster_id": row["cluster_id"],
                    "kept_id": row["kept_id"], "file": _relative(layout, e.uri)}
        as_kept = _equal_ids(t.column("kept_id"), doc_id)
        if as_kept:
            rows = t.take(as_kept).to_pylist()
            survivor_of = survivor_of or {"status": "survivor", "cluster_id": rows[0]["cluster_id"],
                                          "dropped": 0, "kinds": {}}
            survivor_of["dropped"] += len(rows)
            for r in rows:
                survivor_of["kinds"][r["kind"]] = survivor_of["kinds"].get(r["kind"], 0) + 1
    return survivor_of


def _token_shards(layout: Layout, doc_id: str, problems: list[str]) -> list[dict]:
    found = []
    storage = layout.storage
    for e in storage.list(layout.tokens_root, recursive=True, suffix=".parquet"):
        rel = _relative(layout, e.uri).split("/")  # tokens/<set>/<shard>
        if len(rel) != 3:
            continue
        try:
            ids = storage.read_table(e.uri, columns=["id"]).column("id")
        except PARQUET_ERRORS as err:
            problems.append(f"{e.uri}: unreadable Parquet ({err})")
            continue
        idx = _equal_ids(ids, doc_id)
        if idx:
            toks = storage.read_table(e.uri, columns=["tokens"]).column("tokens").take(idx).to_pylist()
            found.append({"set": rel[1], "file": e.name, "split": e.name.split("-")[0],
                          "tokens": sum(len(t or []) for t in toks)})
    return found


def _fails(value: float, comparison: str, threshold: float) -> bool | None:
    """Whether `value comparison threshold` holds, i.e. the statistic removes the document; None if the
    value was not measured (the filter stopped at an earlier check) or the comparison is unknown."""
    op = COMPARISONS.get(str(comparison).strip())
    if op is None or value is None or threshold is None:
        return None
    try:
        return bool(op(float(value), float(threshold)))
    except (TypeError, ValueError):
        return None


def quality_checks(row: dict, recipe: Recipe, only: str | None = None) -> list[dict]:
    """Recompute the recipe's quality filters on a stored document `row` (its text, url, language and score,
    as the filters saw them), in pipeline order passing C4's edited text on, or only the filter `only` (a
    removed document's stored text is exactly what its removing filter saw), with the settings of the
    document's language (crawlproc/quality/langsettings.py) and its word splitter.

    Each check lists every measured value with the filter's own threshold table (Filter.thresholds) and
    whether it passed; `failed` marks the statistics that remove the document; `language` and `settings` say
    whose thresholds judged it ("fineweb2:deu_Latn", "fineweb", ... + "+recipe" for a [<filter>.lang] table)."""
    checks = []
    text = row.get("text") or ""
    language = row.get("language")
    ls = langcodes.normalize(language) if language else langcodes.ENGLISH
    mode = recipe.language.thresholds if recipe.language.enabled else "recipe"
    for f in registry.filters(recipe.extract.plugins):
        if only is not None and f.name != only:
            continue
        flt, source = PerLanguage(f, recipe.filters[f.name], mode).variant(ls)
        if not flt.cfg.enabled:
            checks.append({"stage": f.name, "enabled": False, "reason": None, "values": [], "language": ls,
                           "settings": source})
            continue
        try:
            doc = Doc(url=row.get("url") or "", text=text)
            doc.language, doc.language_score = ls, row.get("language_score")
            verdict = flt(doc)
        except Exception as e:  # noqa: BLE001  (a broken filter is reported, the rest of the story still told)
            checks.append({"stage": f.name, "error": f"the filter failed on this text: {type(e).__name__}: {e}"})
            break
        thresholds = flt.thresholds()
        values = []
        for key in list(verdict.values) + [k for k in thresholds if k not in verdict.values]:
            value = verdict.values.get(key)
            comparison, threshold = thresholds.get(key, (None, None))
            failed = _fails(value, comparison, threshold) if key in thresholds else None
            values.append({"name": key, "value": value, "comparison": comparison, "threshold": threshold,
                           "passed": None if failed is None else not failed, "failed": failed is True})
        if verdict.reason is not None and not any(v["failed"] for v in values):
            # A reason outside the table (a Rule, e.g. "empty") names no statistic: mark one it names.
            for v in values:
                if v["name"] == verdict.reason or v["name"] in verdict.reason:
                    v["failed"] = True
        checks.append({"stage": f.name, "enabled": True, "reason": verdict.reason, "values": values,
                       "language": ls, "settings": source})
        text = verdict.text
    return checks


def _doc_summary(row: dict) -> dict:
    text = row.get("text") or ""
    return {
        "chars": len(text), "words": len(text.split()), "language": row.get("language"),
        "language_score": row.get("language_score"), "date": row.get("date"), "file_path": row.get("file_path"),
        "warc_offset": row.get("warc_offset"), "text_start": text[:300],
    }


def explain_document(out: str | Path, query: str, recipe: Recipe | None = None) -> dict:
    """Explain every document matching `query` (an id or a URL): {"query", "matches": [...], "problems"}.
    `out` is a folder or an object-store URI.

    Without `recipe`, each document is judged by the recipe its own file was extracted with (the file's
    `_done` marker names it; <snapshot>/recipes/<fp>.json holds it), else the snapshot's latest recipe, else
    the default (FineWeb) recipe."""
    layout = Layout(str(out))
    hits, problems = find_document(layout, query)
    by_id: dict[tuple[str, str], list[dict]] = {}
    for h in hits:
        by_id.setdefault((h["snapshot"], h["row"]["id"]), []).append(h)
    ids, _ = query_keys(query)
    if not hits:  # perhaps only the dedup record remains (docs/ cleaned up): look there by id
        for name in layout.snapshots():
            for doc_id in ids:
                dd = _duplicates(layout, doc_id, name, problems)
                if dd:
                    by_id[(name, doc_id)] = []
    matches = [_explain_one(layout, snapshot, doc_id, found, recipe or file_recipe(layout, snapshot, found),
                            problems)
               for (snapshot, doc_id), found in by_id.items()]
    return {"query": query, "out": layout.root, "matches": matches, "problems": problems}


def file_recipe(layout: Layout, snapshot: str, found: list[dict]) -> Recipe:
    """The recipe the document's file was extracted with: its marker's fingerprint names it."""
    snap = layout.snapshot(snapshot)
    stem = next((basename(h["file"])[: -len(".parquet")] for h in found), None)
    fp = snap.markers.done().get(stem) if stem else None
    data = layout.storage.read_json(snap.recipe_for(fp[:8])) if fp else None
    if data is None:
        data = layout.storage.read_json(snap.recipe_uri)
    return recipe_from_dict(data) if data else load_recipe(None)


def _explain_one(layout: Layout, snapshot: str, doc_id: str, found: list[dict], recipe: Recipe,
                 problems: list[str]) -> dict:
    kinds = {h["kind"]: h for h in found}
    primary = kinds.get("removed") or kinds.get("docs") or kinds.get("final")
    row = primary["row"] if primary else {}
    result = {
        "id": doc_id, "url": row.get("url"), "snapshot": snapshot,
        "found_in": [{"kind": h["kind"], "file": h["file"]} for h in found],
        "document": _doc_summary(row) if row else None,
        "verdict": "unknown", "stage": None, "reason": None, "summary": "",
        "checks": [], "checks_note": None, "dedup": None, "tokens": [],
    }
    dedup_ran = layout.storage.exists(layout.snapshot(snapshot).dedup.summary_uri)
    if "removed" in kinds:
        stage, reason = row.get("removed_by"), row.get("removed_reason")
        result.update(verdict="removed", stage=stage, reason=reason,
                      summary=f"removed by {stage} ({reason})")
        if stage == "language":
            cfg = recipe.language
            result["language_check"] = {
                "language": row.get("language"), "score": row.get("language_score"), "keep": list(cfg.keep),
                "min_score": cfg.min_score_for(row.get("language")),
                "language_ok": cfg.wants(row.get("language")),
                "score_ok": cfg.score_ok(row.get("language_score"), row.get("language")),
            }
            if (reason or "").startswith("precheck:"):  # decided on the page's cheap main text, not extracted
                result["language_check"]["precheck_min_score"] = max(cfg.precheck_min_score, cfg.min_score)
        if reason == "timeout":
            result["checks_note"] = (f"it ran past the per-document CPU budget (extract.timeout_s = "
                                     f"{recipe.extract.timeout_s} s) in {stage}; not recomputed")
        elif stage in recipe.filters:
            result["checks"] = quality_checks(row, recipe, only=stage)
            redo = next((c for c in result["checks"] if c["stage"] == stage and "values" in c), None)
            if redo is not None:
                result["recomputed_reason"] = redo["reason"]
                result["recomputed_agrees"] = redo["reason"] == reason
    else:
        dd = _duplicates(layout, doc_id, snapshot, problems)
        result["dedup"] = dd
        if dd and dd["status"] == "dropped":
            kept_hits, _ = find_document(layout, dd["kept_id"]) if dd.get("kept_id") else ([], [])
            dd["kept_url"] = next((h["row"].get("url") for h in kept_hits), None)
            result.update(verdict="duplicate", stage="dedup", reason=f"{dd['kind']} duplicate",
                          summary=f"passed every filter, then dropped by dedup ({dd['kind']} duplicate) in "
                          f"cluster {dd['cluster_id']}; the survivor is {dd['kept_id']}")
        elif "final" in kinds:
            extra = (f"; it is the survivor of cluster {dd['cluster_id']} ({dd['dropped']} duplicate(s) dropped)"
                     if dd else "")
            result.update(verdict="kept", summary=f"passed every filter and dedup; in final/{extra}")
        elif "docs" in kinds:
            if dedup_ran and dd:
                note = f"kept as the survivor of dedup cluster {dd['cluster_id']}"
            elif dedup_ran:
                note = "dedup found no duplicate of it (final/ for its file is not written yet)"
            else:
                note = "dedup has not run on this snapshot yet"
            result.update(verdict="kept", summary=f"passed every filter (in docs/); {note}")
        if result["verdict"] == "kept":  # its values all pass: show them against the thresholds
            result["checks"] = quality_checks((kinds.get("docs") or kinds["final"])["row"], recipe)
            if result["checks"]:
                result["checks_note"] = ("recomputed on the stored text, which C4 may already have edited; "
                                         "every value should pass")
        result["tokens"] = _token_shards(layout, doc_id, problems)
    explain_decontam(result, kinds, layout.snapshot(snapshot))
    explain_scores(result, kinds, layout.snapshot(snapshot))
    return result


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def format_explanation(result: dict) -> str:
    """Plain-text rendering of `explain_document`'s result for the terminal."""
    lines = []
    if not result["matches"]:
        lines.append(f"no document matches {result['query']!r} under {result['out']}")
    for m in result["matches"]:
        lines.append(f"document {m['id']}")
        lines.append(f"  url:      {m['url'] or '-'}")
        lines.append(f"  snapshot: {m['snapshot']}")
        for f in m["found_in"]:
            lines.append(f"  found in: {f['file']} ({f['kind']})")
        if m["document"]:
            d = m["document"]
            lines.append(f"  text:     {d['chars']:,} chars, {d['words']:,} words, language {d['language'] or '-'}"
                         f" ({_fmt(d['language_score'])})")
        lines.append(f"  verdict:  {m['verdict'].upper()}: {m['summary']}")
        if m.get("language_check"):
            lc = m["language_check"]
            lines.append(f"    language {lc['language']} {'in' if lc['language_ok'] else 'NOT in'} {lc['keep']}; "
                         f"score {_fmt(lc['score'])} {'>' if lc['score_ok'] else 'NOT >'} {lc['min_score']}")
            if "precheck_min_score" in lc:
                lines.append(f"    decided by the language pre-check before extraction (main text, score >= "
                             f"{lc['precheck_min_score']}): not extracted")
        dd = m.get("dedup")
        if dd and dd["status"] == "dropped":
            lines.append(f"    cluster {dd['cluster_id']}, kind {dd['kind']}, surviving id {dd['kept_id']}"
                         + (f" ({dd['kept_url']})" if dd.get("kept_url") else ""))
        for t in m.get("tokens") or []:
            lines.append(f"  tokens:   {t['tokens']:,} in tokens/{t['set']}/{t['file']} ({t['split']})")
        if m["checks_note"]:
            lines.append(f"  note:     {m['checks_note']}")
        for c in m["checks"]:
            whose = f"  ({c['language']} thresholds: {c['settings']})" if c.get("settings") else ""
            if not c.get("enabled", True):
                lines.append(f"  [{c['stage']}] disabled for this document's language{whose}")
                continue
            if "values" not in c:
                lines.append(f"  [{c['stage']}] {c.get('error')}")
                continue
            outcome = f"REMOVE ({c['reason']})" if c["reason"] else "pass"
            lines.append(f"  [{c['stage']}] {outcome}{whose}")
            for v in c["values"]:
                mark = "FAIL x" if v["failed"] else ("ok" if v["passed"] else "")
                thr = f"removes if {v['comparison']} {_fmt(v['threshold'])}" if v["comparison"] is not None else ""
                lines.append(f"    {mark:>6}  {v['name']:<32} {_fmt(v['value']):>12}  {thr}")
        lines += decontam_lines(m)
        lines += score_lines(m)
        if "recomputed_agrees" in m:
            lines.append("  recomputed verdict " + ("agrees with" if m["recomputed_agrees"] else "DIFFERS from")
                         + f" the stored one ({m.get('recomputed_reason')} vs {m['reason']})")
        lines.append("")
    for p in result["problems"]:
        lines.append(f"warning: {p}")
    return "\n".join(lines).rstrip() + "\n"
