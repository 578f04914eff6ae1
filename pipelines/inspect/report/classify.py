"""The report's classifier section: per snapshot, each classifier's rule, counts and score histogram, the bins
at or above the threshold drawn in the "kept" colour. Reads <snapshot>/classify/summary.json only (local or
on an object store, through the snapshot's storage)."""

from __future__ import annotations

import json
from html import escape

from crawlproc.store.layout import Snapshot
from pipelines.inspect.report.charts import PALETTE, column_chart, fmt_num

KEPT, REMOVED = PALETTE[2], PALETTE[7]


def collect_classify(snap: Snapshot, problems: list[str]) -> dict | None:
    path = snap.classify.summary_uri
    if not snap.storage.exists(path):
        return None
    try:
        data = json.loads(snap.storage.read_bytes(path))
        classifiers = {c["name"]: {
            "kind": c["kind"], "model": c["model"], "rule": c["rule"], "scored": int(c["scored"]),
            "passed": int(c["passed"]), "removed": int(c["removed"]), "no_text": int(c.get("no_text", 0)),
            "bin": float(c["histogram"]["bin"]),
            "histogram": {int(k): int(v) for k, v in c["histogram"]["counts"].items()},
            "pool": c.get("pool"),
        } for c in data["classifiers"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        problems.append(f"{path}: unreadable classify summary ({e})")
        return None
    return {"documents": int(data.get("documents", 0)), "kept": int(data.get("kept", 0)),
            "removed": int(data.get("removed", 0)), "source": data.get("source"), "classifiers": classifiers,
            "complete": snap.storage.exists(snap.classify.done_uri)}


def rule_text(rule: dict) -> str:
    """`score >= 0.5`, `top 10% (score >= 0.31)`, `score only`."""
    if not rule.get("active"):
        return "score only"
    thr = "nothing scored" if rule.get("threshold") is None else f"score >= {rule['threshold']:.4g}"
    if rule.get("keep_fraction") is not None:
        return f"top {rule['keep_fraction'] * 100:.3g}% ({thr})"
    return thr


def _histogram(name: str, snap_name: str, c: dict) -> str:
    width, counts = c["bin"], c["histogram"]
    if not counts:
        return '<p class="meta">No scores.</p>'
    lo, hi = min(counts), max(counts)
    if width == 0.05:  # probabilities: the whole [0, 1]
        lo, hi = 0, 19
    thr = c["rule"].get("threshold") if c["rule"].get("active") else None
    bars, colors = [], []
    for i in range(lo, hi + 1):
        bars.append((f"{fmt_num(round(i * width, 6))}", counts.get(i, 0)))
        # a bin is drawn as kept when its whole range passes (the threshold's own bin is mixed)
        colors.append(KEPT if thr is None or i * width >= thr else REMOVED)
    return column_chart(f"classify:{snap_name}:{name}", bars, label=f"Scores of {name}, {snap_name}",
                        x_title=f"{name}_score (bins of {fmt_num(width)}; green: at or above the threshold)",
                        y_title="documents", colors=colors)


def render_classify(snap: dict) -> str:
    c = snap.get("classify")
    if c is None:
        return ('<h3>Classifiers</h3><div class="not-run" data-section="classify:' + escape(snap["name"])
                + '" data-status="not-run"><b>Classifiers: not run.</b> Add a <code>[classifiers.&lt;name&gt;]'
                "</code> table to the recipe (fastText or transformers) to score and filter the documents.</div>")
    rows = []
    for name, k in c["classifiers"].items():
        pool = k.get("pool") or {}
        where = f", {pool.get('actors')} actor(s) on {pool.get('device')}, batch {pool.get('batch_size')}" if pool else ""
        rows.append(f"<tr><td>{escape(name)}</td><td>{escape(k['kind'])}{escape(where)}</td>"
                    f"<td>{escape(rule_text(k['rule']))}</td><td class=\"n\">{k['scored']:,}</td>"
                    f"<td class=\"n\">{k['passed']:,}</td><td class=\"n\">{k['removed']:,}</td>"
                    f"<td class=\"n\">{k['no_text']:,}</td></tr>")
    parts = [f'<h3>Classifiers</h3><div data-section="classify:{escape(snap["name"])}">',
             f"<p>{c['documents']:,} documents from {escape(str(c['source']))}/: {c['kept']:,} kept in classified/, "
             f"{c['removed']:,} removed (each by the first classifier it fails, in recipe order).</p>",
             "<table><tr><th>classifier</th><th>kind</th><th>rule</th><th>scored</th><th>passed</th>"
             "<th>removed by it</th><th>no text</th></tr>" + "".join(rows) + "</table>"]
    if not c["complete"]:
        parts.append('<p class="meta">classify/_done.json is missing: this run may not have finished.</p>')
    for name, k in c["classifiers"].items():
        parts.append(f"<h4>{escape(name)}: {escape(rule_text(k['rule']))}</h4>" + _histogram(name, snap["name"], k))
    return "".join(parts) + "</div>"
