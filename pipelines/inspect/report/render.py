"""Render the collected numbers (collect.py) as ONE self-contained HTML file: inline CSS, inline SVG charts,
no script to run and nothing fetched from the network, so it opens from disk, in a mail attachment or offline.
"""

from __future__ import annotations

import json
from html import escape

from pipelines.inspect.report.charts import (
    PALETTE, column_chart, fmt_num, gantt_chart, hbar_chart, line_chart, spread_chart,
)
from pipelines.inspect.report.classify import render_classify
from pipelines.inspect.report.decontam import render_decontam
from pipelines.inspect.report.timeline import render_projection, render_timeline

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d232b;
 background:#f6f7f9}
main{max-width:1020px;margin:0 auto;padding:18px 28px 60px;background:#fff;min-height:100vh}
h1{font-size:24px;margin:8px 0 2px}h2{font-size:19px;margin:34px 0 8px;border-bottom:2px solid #e3e6ea;
 padding-bottom:4px}h3{font-size:15px;margin:22px 0 6px}
.meta{color:#5c6670;font-size:12.5px}
nav{font-size:13px;margin:12px 0;padding:8px 12px;background:#f1f3f6;border-radius:6px}
nav a{margin-right:12px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid #e6e8eb;padding:3px 10px 3px 0;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.chart{display:block;max-width:100%;height:auto;margin:4px 0 12px}
.chart .lbl{font-size:12px;fill:#2b333c}.chart .val{font-size:11.5px;fill:#4a545e}
.chart .tick{font-size:10.5px;fill:#69737d}.chart .ttl{font-size:11.5px;fill:#4a545e}
.chart .grid{stroke:#eceef1}.chart .axis{stroke:#9aa3ad}
.not-run{color:#6b7580;background:#f7f7f4;border-left:4px solid #d4d0bf;padding:6px 12px;margin:8px 0}
.problems li{color:#8a3b12}
.ex{font-size:12px;color:#3f4850;word-break:break-all;margin-bottom:4px}
.snippet{font-size:12px;color:#1d232b;word-break:normal;background:#f7f8fa;padding:2px 6px;border-radius:3px}
code{font-size:12px;background:#f1f3f6;padding:0 3px;border-radius:3px}
.sample{white-space:pre-wrap;font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;background:#f7f8fa;
 padding:6px 8px;border-radius:4px;margin:2px 0 8px;max-height:14em;overflow:auto}
.pill{display:inline-block;padding:0 6px;border-radius:8px;background:#e8eef6;font-size:12px}
"""


def _e(v) -> str:
    return escape(str(v))


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _table(header: list[str], rows: list[list], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f'<th class="n">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(header))
    body = []
    for r in rows:
        cells = []
        for i, v in enumerate(r):
            text = f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else _e(v if v is not None else "-")
            cells.append(f'<td class="n">{text}</td>' if i in numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _dedup_kept(d: dict) -> int:
    if isinstance(d.get("kept"), int):
        return d["kept"]
    return int(d.get("documents") or 0) - int(d.get("exact_duplicates") or 0) - int(d.get("near_duplicates") or 0)


def _not_run(section: str, what: str, hint: str) -> str:
    return (f'<div class="not-run" data-section="{_e(section)}" data-status="not-run"><b>{_e(what)}: not run.'
            f"</b> {hint}</div>")


def _funnel(snap: dict) -> str:
    steps = snap["funnel"]
    if not steps:
        return _not_run(f"funnel:{snap['name']}", "Extract stage",
                        "No stats/*.json in this snapshot yet: run <code>crawlproc run</code> or "
                        "<code>crawlproc extract</code>.")
    first = steps[0]["docs"]
    rows = []
    for s in steps:
        note = f"(-{fmt_num(s['removed'])})" if s.get("removed") else ""
        rows.append((s["step"], s["docs"], note))
    chart = hbar_chart(f"funnel:{snap['name']}", rows, label=f"Documents per step, {snap['name']}")
    trows = []
    prev = None
    for s in steps:
        base = prev if prev is not None else s["docs"]
        trows.append([s["step"], s["docs"], s.get("removed", 0) or "", _pct(s.get("removed") or 0, base)
                      if s.get("removed") else "", _pct(s["docs"], first)])
        prev = s["docs"]
    table = _table(["step", "documents", "removed here", "of step input", "of records"], trows, {1, 2, 3, 4})
    tokens = snap.get("tokens")
    tok = ""
    if tokens:
        tok = (f"<p>Tokens from this snapshot: <b>{tokens['tokens']:,}</b> in {tokens['documents']:,} documents"
               f" (token sets: {_e(', '.join(tokens['sets']))})"
               + (f"; plus {tokens['shared_tokens']:,} tokens in shards shared with other snapshots"
                  if tokens.get("shared_tokens") else "") + ".</p>")
    return chart + table + tok


def _files(snap: dict) -> str:
    f = snap["files"]
    parts = [(f"<p>WARC files: <b>{f['stats']}</b> with stats, <b>{f['done']}</b> done, "
              f"<b>{len(f['failed'])}</b> failed, <b>{len(f['incomplete'])}</b> incomplete.</p>")]
    if f["failed"]:
        parts.append(_table(["file", "cause", "error", "at"],
                            [[x.get("file") or x.get("stem"), x.get("type"), x.get("error"), x.get("at")]
                             for x in f["failed"]]))
    if f["incomplete"]:
        parts.append(_table(["file (incomplete)", "error"], [[x["stem"], x["error"]] for x in f["incomplete"]]))
    skipped = {k: v for k, v in snap["skipped"].items() if v}
    if skipped:
        parts.append("<p>Records skipped before the filters: "
                     + ", ".join(f"{_e(k)} <b>{v:,}</b>" for k, v in sorted(skipped.items())) + ".</p>")
    return "".join(parts)


def _reasons(snap: dict, out: str) -> str:
    reasons = snap["removed_reasons"]
    if not reasons:
        return "<p>No document was removed.</p>" if snap["funnel"] else ""
    top = reasons[:20]
    chart = hbar_chart(f"reasons:{snap['name']}", [(r["key"], r["count"], "") for r in top],
                       label=f"Removal reasons, {snap['name']}", color=PALETTE[1])
    total = sum(r["count"] for r in reasons)
    rows = []
    for r in reasons:
        ex = "".join(
            f'<div class="ex">{_e(x["url"] or "(no url)")} <code>{_e(x["id"])}</code>'
            + (f'<div class="snippet">{_e(x["snippet"])}</div>' if x.get("snippet") else
               '<div class="snippet meta">(no text: removed before extraction)</div>') + "</div>"
            for x in r["examples"]
        ) or '<span class="meta">no example in removed/</span>'
        rows.append(f"<tr><td><span class=\"pill\">{_e(r['stage'])}</span></td><td>{_e(r['reason'] or '-')}</td>"
                    f'<td class="n">{r["count"]:,}</td><td class="n">{_pct(r["count"], total)}</td><td>{ex}</td></tr>')
    first_id = next((x["id"] for r in reasons for x in r["examples"]), None)
    hint = (f'<p class="meta">Why exactly? <code>crawlproc explain --out {_e(out)} \'{_e(first_id)}\'</code> shows '
            "a document's measured values against the thresholds.</p>") if first_id else ""
    return (chart + "<table><thead><tr><th>stage</th><th>reason</th><th class=\"n\">documents</th>"
            "<th class=\"n\">share</th><th>examples (url, id, the start of its text)</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>" + hint)


def _by_language(snap: dict) -> str:
    """Per language: documents kept and removed, the kept words, and the top removal reasons."""
    rows = snap.get("by_language") or {}
    if not rows:
        return ""
    body = []
    for lang, c in list(rows.items())[:40]:
        seen = c["kept"] + c["removed"]
        top = ", ".join(f"{escape(k)} {v:,}" for k, v in list(c["reasons"].items())[:4])
        body.append(f"<tr><td>{escape(lang)}</td><td class=\"n\">{seen:,}</td><td class=\"n\">{c['kept']:,}</td>"
                    f"<td class=\"n\">{_pct(c['kept'], seen)}</td><td class=\"n\">{c['kept_words']:,}</td>"
                    f"<td>{top}</td></tr>")
    return ("<table><thead><tr><th>language</th><th class=\"n\">documents</th><th class=\"n\">kept</th>"
            "<th class=\"n\">share</th><th class=\"n\">kept words</th><th>removal reasons</th></tr></thead><tbody>"
            + "".join(body) + "</tbody></table>")


def _languages(snap: dict) -> str:
    langs = snap["languages"]
    if not langs:
        return '<p class="meta">No document reached language identification.</p>' if snap["funnel"] else ""
    items = list(langs.items())
    top, rest = items[:15], sum(v for _, v in items[15:])
    rows = [(k, v, _pct(v, sum(langs.values()))) for k, v in top]
    if rest:
        rows.append((f"other ({len(items) - 15})", rest, _pct(rest, sum(langs.values()))))
    return hbar_chart(f"languages:{snap['name']}", rows, label=f"Languages, {snap['name']}", color=PALETTE[2])


def _bin_label(b: dict) -> str:
    return f"{fmt_num(b['lo'])}-{fmt_num(b['hi'])}" if b["hi"] <= 100_000 else f">{fmt_num(b['lo'])}"


def _lengths(snap: dict) -> str:
    parts = []
    for kind, title in (("docs", "kept by the filters (docs/)"), ("final", "after dedup and PII (final/)")):
        h = snap["lengths"].get(kind)
        if h is None:
            if kind == "final":
                parts.append(_not_run(f"lengths-final:{snap['name']}", "Final documents",
                                      "No final/ yet: run <code>crawlproc dedup</code>."))
            continue
        parts.append(f"<h3>Characters per document, {_e(title)}</h3>")
        if not h["documents"]:
            parts.append('<p class="meta">No documents.</p>')
            continue
        sampled = (f" (read {h['files_read']} of {h['files_total']} files)"
                   if h["files_read"] < h["files_total"] else "")
        parts.append(f"<p>{h['documents']:,} documents{sampled}: median {fmt_num(h['median'])}, "
                     f"p10 {fmt_num(h['p10'])}, p90 {fmt_num(h['p90'])}, mean {fmt_num(h['mean'])}, "
                     f"max {fmt_num(h['max'])} characters.</p>")
        parts.append(column_chart(f"lengths-{kind}:{snap['name']}", [(_bin_label(b), b["count"]) for b in h["bins"]],
                                  label=f"Document length histogram ({kind}), {snap['name']}",
                                  x_title="characters", y_title="documents"))
    return "".join(parts)


def _dedup(snap: dict) -> str:
    d = snap["dedup"]
    if d is None:
        return _not_run(f"dedup:{snap['name']}", "Deduplication",
                        f"Run <code>crawlproc dedup --snapshot {_e(snap['name'])}</code> to remove "
                        "exact and near duplicates.")
    docs = int(d.get("documents") or 0)
    exact, near = int(d.get("exact_duplicates") or 0), int(d.get("near_duplicates") or 0)
    kept = _dedup_kept(d)
    parts = [_table(["documents in", "exact duplicates", "near duplicates", "clusters", "survivors", "seconds"],
                    [[docs, exact, near, d.get("clusters"), kept, d.get("seconds")]], {0, 1, 2, 3, 4, 5})]
    notes = []
    if d.get("matched_earlier"):
        notes.append(f"{int(d['matched_earlier']):,} duplicate(s) of documents in earlier snapshots "
                     f"(scope {_e(d.get('scope', 'all'))})")
    pii = d.get("pii") if isinstance(d.get("pii"), dict) else {}
    if pii:
        notes.append(f"PII replaced in final/: {int(pii.get('emails') or 0):,} e-mail address(es), "
                     f"{int(pii.get('ips') or 0):,} IP address(es)")
    if notes:
        parts.append("<p>" + "; ".join(notes) + ".</p>")
    if not d.get("complete"):
        parts.append('<p class="meta">dedup/_done.json is missing: this dedup run may not have finished.</p>')
    sizes = d.get("cluster_sizes") or {}
    if sizes:
        parts.append("<h3>Duplicate cluster sizes</h3>")
        parts.append(column_chart(f"dedup-clusters:{snap['name']}", [(k, v) for k, v in sizes.items()],
                                  label=f"Clusters per size, {snap['name']}", x_title="documents in cluster",
                                  y_title="clusters", colors=[PALETTE[4]] * len(sizes)))
    else:
        parts.append('<p class="meta">No duplicate clusters.</p>')
    return "".join(parts)


def _seconds(snap: dict) -> str:
    secs = {k: v for k, v in snap["seconds"].items() if k != "total" and v > 0}
    if not secs:
        return ""
    total = snap["seconds"].get("total") or sum(secs.values())
    rows = [(k, round(v, 2), _pct(v, total)) for k, v in sorted(secs.items(), key=lambda kv: -kv[1])]
    return (f"<h3>Where the time went ({fmt_num(total)} s of task time)</h3>"
            + hbar_chart(f"seconds:{snap['name']}", rows, label=f"Seconds per step, {snap['name']}",
                         color=PALETTE[5]))


def _snapshot(snap: dict, out: str) -> str:
    n = snap["name"]
    return (f'<section id="snap-{_e(n)}" data-section="snapshot:{_e(n)}"><h2>Snapshot {_e(n)}</h2>'
            + _files(snap) + "<h3>Filter funnel</h3>" + _funnel(snap)
            + "<h3>Removal reasons</h3>" + _reasons(snap, out)
            + "<h3>Languages</h3>" + _languages(snap) + _by_language(snap)
            + _lengths(snap) + "<h3>Deduplication</h3>" + _dedup(snap) + render_decontam(snap)
            + render_classify(snap) + _seconds(snap)
            + (("<h3>Timeline and throughput</h3>" + render_timeline(n, snap["timeline"], gantt_chart))
               if snap.get("timeline") else "")
            + (("<h3>What the whole snapshot would cost</h3>" + render_projection(n, snap["projection"]))
               if snap.get("projection") else "")
            + "</section>")


def _tokens(data: dict) -> str:
    sets = data["tokens"]
    if not sets:
        return _not_run("tokens", "Tokenization", "Run <code>crawlproc tokenize</code> to train a BPE tokenizer "
                        "and write token shards.")
    parts = []
    for ts in sets:
        tok = ts["tokenizer"]
        tr, va = ts["totals"].get("train") or {}, ts["totals"].get("val") or {}
        parts.append(f"<h3>Token set <code>{_e(ts['name'])}</code></h3>")
        parts.append(_table(
            ["vocabulary", "dtype", "train tokens", "train docs", "val tokens", "val docs", "shards"],
            [[tok.get("vocab_size"), ts["dtype"], tr.get("tokens"), tr.get("documents"), va.get("tokens"),
              va.get("documents"), len(ts["shards"])]], {0, 2, 3, 4, 5, 6}))
        if ts.get("mix"):
            parts.append(_mix(ts["mix"]))
        skipped = {k: v for k, v in ts["skipped"].items() if v}
        if skipped:
            parts.append("<p>Documents skipped: " + ", ".join(f"{_e(k)} <b>{v:,}</b>" for k, v in skipped.items())
                         + ".</p>")
        if ts["shards"]:
            parts.append(_shard_chart(ts))
    return "".join(parts)


MAX_SHARD_BARS = 40


def _shard_chart(ts: dict) -> str:
    """Tokens per shard: one bar per shard labelled t0, t1, ... v0 (train, val; the file names in a table
    below and on hover), or, past MAX_SHARD_BARS shards, how many shards have how many tokens."""
    shards = ts["shards"]
    name = f"tokens:{ts['name']}"
    if len(shards) > MAX_SHARD_BARS:
        sizes = [int(s.get("tokens") or 0) for s in shards]
        top = max(sizes) or 1
        edges = [0] + [top * (k + 1) / 10 for k in range(10)]
        bars = []
        for k in range(10):
            n = sum(1 for v in sizes if edges[k] < v <= edges[k + 1] or (k == 0 and v == 0))
            bars.append((f"{fmt_num(edges[k + 1])}", n))
        return column_chart(name, bars, label=f"Shards by tokens, {ts['name']}", x_title="tokens per shard (up to)",
                            y_title="shards", colors=[PALETTE[0]] * len(bars))
    index = {"train": 0, "val": 0}
    bars, colors, rows = [], [], []
    for s in shards:
        split = s.get("split") or "?"
        short = f"{split[:1]}{index.get(split, 0)}"
        index[split] = index.get(split, 0) + 1
        bars.append((short, int(s.get("tokens") or 0)))
        colors.append(PALETTE[0] if split == "train" else PALETTE[1])
        rows.append([short, s.get("file"), s.get("documents"), s.get("tokens")])
    chart = column_chart(name, bars, label=f"Tokens per shard, {ts['name']}",
                         x_title="shard (t = train, blue; v = val, orange)", y_title="tokens", colors=colors,
                         titles=[r[1] for r in rows])
    return chart + ("<details><summary>shard files</summary>"
                    + _table(["shard", "file", "documents", "tokens"], rows, {2, 3}) + "</details>")


def _mix(mix: dict) -> str:
    budget = mix.get("budget_tokens")
    head = (f"<p>A mix (<code>crawlproc mix</code>, digest <code>{_e(mix.get('digest'))}</code>, seed "
            f"{_e(mix.get('seed'))}" + (f", budget <b>{budget:,}</b> train tokens" if budget else "") + "):</p>")
    rows = [[s["uri"], s["spec"], None if s["weight"] is None else f"{s['weight']:.3f}", s["target_tokens"],
             s["train"].get("tokens"), s["train"].get("documents"), s["available"].get("tokens"),
             s["val"].get("tokens")] for s in mix["sources"]]
    table = _table(["source", "spec", "weight", "target tokens", "train tokens", "train docs", "of train tokens",
                    "val tokens"], rows, {3, 4, 5, 6, 7})
    dups = mix.get("duplicates_dropped")
    note = f"<p>{dups:,} document copies met in two sources were kept once.</p>" if dups else ""
    return head + table + note


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    """{"train": {"lr": 1e-3}} -> [("train.lr", 1e-3)]: a nested config as one readable table."""
    rows = []
    for k, v in d.items():
        if isinstance(v, dict):
            rows.extend(_flatten(v, f"{prefix}{k}."))
        else:
            rows.append((f"{prefix}{k}", v))
    return rows


def _training(data: dict) -> str:
    runs = data["training"]
    if not runs:
        return _not_run("training", "Training", "Run <code>crawlproc train</code> on a token set.")
    parts = []
    for r in runs:
        parts.append(f"<h3>Run <code>{_e(r['run'])}</code></h3>")
        parts.append(_table(
            ["steps", "last train loss", "last val loss", "best val loss", "median tokens/s", "median MFU"],
            [[r["steps"]] + [None if v is None else f"{v:.4g}" for v in
                             (r["last_train_loss"], r["last_val_loss"], r["best_val_loss"])]
             + [None if r["median_tokens_per_s"] is None else fmt_num(r["median_tokens_per_s"]),
                None if r["median_mfu"] is None else f"{100 * r['median_mfu']:.1f}%"]], {0, 1, 2, 3, 4, 5}))
        series = [(name, r[key]) for name, key in (("train loss", "train_loss"), ("val loss", "val_loss")) if r[key]]
        if series:
            parts.append(line_chart(f"loss:{r['run']}", series, label=f"Loss curve, run {r['run']}",
                                    x_title="step", y_title="loss"))
        parts.append(_benchmarks(r))
        if r["samples"]:
            parts.append("<h3>Samples</h3>")
            for s in r["samples"]:
                text = s["text"]
                if len(text) > 1500:
                    text = text[:1500] + " [...]"
                parts.append(f"<div class=\"meta\">step {_e(s['step'])}, prompt: <code>{_e(s['prompt'])}</code></div>"
                             f'<div class="sample">{_e(text)}</div>')
        if r["config"]:
            flat = [[k, json.dumps(v)] for k, v in _flatten(r["config"])][:80]
            parts.append("<details><summary>config.json</summary>" + _table(["key", "value"], flat) + "</details>")
    return "".join(parts)


def _benchmarks(r: dict) -> str:
    """Benchmarks over steps (one chart per task, one for bits per byte) and the last evaluation's table."""
    bench = r.get("benchmarks") or {}
    parts = []
    if bench.get("tasks") or bench.get("bpb"):
        parts.append("<h3>Benchmarks during training</h3>")
    for task, metrics in sorted((bench.get("tasks") or {}).items()):
        series = [(m, pts) for m, pts in sorted(metrics.items()) if m in ("acc", "acc_norm") and pts]
        if series:
            parts.append(line_chart(f"bench:{r['run']}:{task}", series, label=f"{task} over steps, run {r['run']}",
                                    x_title="step", y_title=f"{task} accuracy"))
    if bench.get("bpb"):
        parts.append(line_chart(f"bpb:{r['run']}", sorted(bench["bpb"].items()),
                                label=f"Bits per byte on reference text, run {r['run']}", x_title="step",
                                y_title="bits per byte"))
    ev = r.get("eval")
    if ev and (ev["tasks"] or ev["references"]):
        parts.append(f"<h3>Evaluation (eval.json, step {_e(ev.get('step'))})</h3>")
        rows = [[t["task"], t["n"], *(None if t.get(k) is None else f"{t[k]:.4g}" for k in
                                      ("acc", "acc_norm", "perplexity"))] for t in ev["tasks"]]
        rows += [[x["reference"], x["docs"], None, None, None,
                  None if x.get("bits_per_byte") is None else f"{x['bits_per_byte']:.4f}"] for x in ev["references"]]
        rows = [row + [None] * (6 - len(row)) for row in rows]
        parts.append(_table(["task / reference set", "items / docs", "acc", "acc_norm", "perplexity",
                             "bits per byte"], rows, {1, 2, 3, 4, 5}))
    return "".join(parts)


def _ablations(data: dict) -> str:
    abls = data.get("ablations") or []
    if not abls:
        return _not_run("ablations", "Ablations", "Run <code>crawlproc ablate</code> to compare data variants by "
                        "the models they train.")
    parts = []
    for ab in abls:
        tok = ab.get("tokens_per_unit")
        parts.append(f"<h3>Ablation <code>{_e(ab['name'])}</code></h3><div class=\"meta\">{len(ab['arms'])} arms x "
                     f"{len(ab['seeds'])} seeds, preset {_e(ab.get('preset'))} ({_e(ab.get('arch'))}), "
                     f"{_e(ab.get('max_steps'))} steps = {fmt_num(tok) if tok else '?'} tokens per unit; baseline "
                     f"<code>{_e(ab['baseline'])}</code>. {_e(ab.get('rule', ''))}."
                     + (f" Missing units: {_e(', '.join(ab['missing']))}." if ab.get("missing") else "") + "</div>")
        tokens = ab.get("tokens") or {}
        if tokens:
            parts.append(_table(["arm", "train tokens in the set", "documents", "epochs at this budget"],
                                [[a, t.get("train_tokens"), t.get("train_documents"),
                                  f"{tok / t['train_tokens']:.2f}" if tok and t.get("train_tokens") else None]
                                 for a, t in tokens.items()], {1, 2, 3}))
        for t in ab["metrics"]:
            rows = []
            for arm in ab["arms"]:
                r = t["arms"][arm]
                rows.append([arm, *(None if r.get(k) is None else f"{r[k]:.4f}" for k in ("mean", "std", "min", "max")),
                             r.get("n"), "baseline" if arm == ab["baseline"] else
                             (None if r.get("delta_vs_baseline") is None else f"{r['delta_vs_baseline']:+.4f}"),
                             {True: "yes", False: "no", None: ""}[r.get("exceeds_spread")]])
            sep = t.get("best_exceeds_spread_of_next")
            parts.append(f"<h4>{_e(t['metric'])} <span class=\"meta\">({_e(t['better'])} is better; best "
                         f"{_e(t['best'])}" + ("" if sep is None else f", {'beyond' if sep else 'within'} the spread "
                                               "of the next") + ")</span></h4>")
            parts.append(_table(["arm", "mean", "std over seeds", "min", "max", "seeds", "vs baseline",
                                 "exceeds spread"], rows, {1, 2, 3, 4, 5, 6}))
            parts.append(spread_chart(f"ablate:{ab['name']}:{t['metric']}",
                                      [(arm, t["arms"][arm].get("mean"), t["arms"][arm].get("std"),
                                        t["arms"][arm].get("values") or []) for arm in ab["arms"]],
                                      label=f"{t['metric']} per arm over seeds, ablation {ab['name']}",
                                      y_title=t["metric"]))
    return "".join(parts)


def _overview(data: dict) -> str:
    snaps = data["snapshots"]
    if not snaps:
        return _not_run("overview", "Pipeline", f"No snapshot output found under <code>{_e(data['out'])}</code>: "
                        "run <code>crawlproc run</code> first.")
    rows = []
    for s in snaps:
        t = s["totals"]
        d = s["dedup"]
        after = _dedup_kept(d) if d else "not run"
        rows.append([s["name"], s["files"]["done"], len(s["files"]["failed"]), t["records"], t["responses"],
                     t["kept"], _pct(t["kept"], t["responses"]), after,
                     s["final_documents"] if s["final_documents"] is not None else "not run",
                     (s["tokens"] or {}).get("tokens", "not run")])
    return _table(["snapshot", "files done", "failed", "records", "responses", "kept", "kept/responses",
                   "after dedup", "final", "tokens"], rows, {1, 2, 3, 4, 5, 6, 7, 8, 9})


def render_html(data: dict) -> str:
    """The whole report as one HTML string."""
    nav = ['<a href="#overview">overview</a>']
    nav += [f'<a href="#snap-{_e(s["name"])}">{_e(s["name"])}</a>' for s in data["snapshots"]]
    nav += ['<a href="#tokens">tokens</a>', '<a href="#training">training</a>', '<a href="#ablations">ablations</a>']
    if data["problems"]:
        nav.append('<a href="#problems">problems</a>')
    problems = ""
    if data["problems"]:
        problems = ('<section id="problems" data-section="problems"><h2>Problems found while reading</h2>'
                    '<ul class="problems">' + "".join(f"<li>{_e(p)}</li>" for p in data["problems"])
                    + "</ul></section>")
    # The numbers behind the page, for scripts; "</" is escaped so the JSON cannot close the element.
    payload = json.dumps(data, default=str).replace("</", "<\\/")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>crawlproc report: {_e(data['out'])}</title><style>{CSS}</style></head><body><main>"
        f"<h1>crawlproc run report</h1><div class=\"meta\">Output folder <code>{_e(data['out'])}</code>, "
        f"generated {_e(data['generated_at'])}</div><nav>{''.join(nav)}</nav>"
        f'<section id="overview" data-section="overview"><h2>Overview</h2>{_overview(data)}</section>'
        + "".join(_snapshot(s, data["out"]) for s in data["snapshots"])
        + f'<section id="tokens" data-section="tokens"><h2>Tokens</h2>{_tokens(data)}</section>'
        + f'<section id="training" data-section="training"><h2>Training</h2>{_training(data)}</section>'
        + f'<section id="ablations" data-section="ablations"><h2>Ablations</h2>{_ablations(data)}</section>'
        + problems
        + f'<script type="application/json" id="report-data">{payload}</script>'
        + "</main></body></html>\n"
    )
