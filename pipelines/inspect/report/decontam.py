"""The report's decontamination section: per snapshot, contamination per benchmark (documents removed or cut,
the share of the benchmark's items seen in the data, the domains they came from) and the benchmark files the
data was cleaned against, with their sha256. Reads <snapshot>/decontam/summary.json only (local or on an
object store, through the snapshot's storage)."""

from __future__ import annotations

import json
from html import escape

from crawlproc.store.layout import Snapshot


def collect_decontam(snap: Snapshot, problems: list[str]) -> dict | None:
    path = snap.decontam.summary_uri
    if not snap.storage.exists(path):
        return None
    try:
        data = json.loads(snap.storage.read_bytes(path))
        benchmarks = {name: {
            "documents": int(b["documents"]), "removed": int(b["removed"]), "cut": int(b["cut"]),
            "items": int(b["items"]), "items_seen": int(b["items_seen"]), "share_seen": float(b["share_seen"]),
            "top_domains": [(str(d), int(n)) for d, n in b["top_domains"]], "file": str(b["file"]),
            "sha256": str(b["sha256"]),
        } for name, b in data["benchmarks"].items()}
        indexed = {b["name"]: b for b in data["index"]["benchmarks"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        problems.append(f"{path}: unreadable decontamination summary ({e})")
        return None
    for name, b in benchmarks.items():
        info = indexed.get(name) or {}
        b["indexed_items"] = info.get("indexed_items")
        b["prompt_words"] = " ... ".join(w for w in (info.get("prompt_prefix"), info.get("prompt_suffix")) if w)
    return {"documents": int(data.get("documents", 0)), "kept": int(data.get("kept", 0)),
            "removed": int(data.get("removed", 0)), "cut": int(data.get("cut", 0)),
            "below_min_matches": int(data.get("below_min_matches", 0)), "source": data.get("source"),
            "settings": data.get("settings") or {}, "ngrams": (data.get("index") or {}).get("ngrams"),
            "benchmarks": benchmarks, "complete": snap.storage.exists(snap.decontam.done_uri)}


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "-"


def render_decontam(snap: dict) -> str:
    d = snap.get("decontam")
    name = escape(snap["name"])
    if d is None:
        return ('<h3>Decontamination</h3><div class="not-run" data-section="decontam:' + name
                + '" data-status="not-run"><b>Decontamination: not run.</b> <code>crawlproc decontaminate '
                f"--snapshot {name}</code> (or <code>crawlproc run</code> / <code>tokenize</code>) removes the "
                "documents that hold benchmark items.</div>")
    s = d["settings"]
    action = (f"cut (the spans removed; kept if {s.get('min_words_after_cut')} words remain)" if s.get("mode") == "cut"
              else "removed")
    cover = (f", or holding {s.get('coverage')} of an item's own {s.get('coverage_n')}-grams (at least "
             f"{s.get('coverage_min')}; items of at most {2 * (s.get('n') or 0)} words)" if s.get("coverage_n") else "")
    how = (f"{s.get('n')}-grams of normalized words; a document sharing at least {s.get('min_matches')} distinct "
           f"indexed n-gram(s){cover} is {action}")
    parts = [f'<h3>Decontamination</h3><div data-section="decontam:{name}">',
             f"<p>{d['documents']:,} documents from {escape(str(d['source']))}/: {d['removed']:,} removed "
             f"({_pct(d['removed'], d['documents'])})" + (f", {d['cut']:,} cut" if d["cut"] else "")
             + f", {d['kept']:,} kept in decontaminated/. {escape(how)}."
             + (f" {d['below_min_matches']:,} document(s) shared fewer n-grams and were kept." if d["below_min_matches"]
                else "") + "</p>"]
    rows = []
    for bname, b in d["benchmarks"].items():
        domains = ", ".join(f"{escape(dom)} ({n:,})" for dom, n in b["top_domains"][:5]) or "-"
        rows.append(f"<tr><td>{escape(bname)}</td><td class=\"n\">{b['documents']:,}</td>"
                    f"<td class=\"n\">{b['items_seen']:,} / {b['items']:,}</td>"
                    f"<td class=\"n\">{_pct(b['items_seen'], b['items'])}</td><td>{domains}</td></tr>")
    parts.append("<table><tr><th>benchmark</th><th class=\"n\">documents</th><th class=\"n\">items seen</th>"
                 "<th class=\"n\">share of items</th><th>top domains</th></tr>" + "".join(rows) + "</table>")
    files = []
    for b in d["benchmarks"].values():
        note = f"; prompt words not indexed: {escape(b['prompt_words'])}" if b.get("prompt_words") else ""
        indexed = (f", {b['indexed_items']:,} indexed" if b.get("indexed_items") is not None
                   and b["indexed_items"] != b["items"] else "")
        files.append(f"<li><code>{escape(b['file'])}</code>: {b['items']:,} items{indexed}{note}<br>"
                     f"<span class=\"ex\">sha256 {escape(b['sha256'])}</span></li>")
    parts.append(f"<p>Cleaned against {len(files)} benchmark file(s), {d['ngrams'] or 0:,} distinct n-grams:</p>"
                 f'<ul data-section="decontam-files:{name}">' + "".join(files) + "</ul>")
    if not d["complete"]:
        parts.append('<p class="meta">decontam/_done.json is missing: this run may not have finished.</p>')
    return "".join(parts) + "</div>"
