"""The report's time and money: a timeline per stage with its throughput and stragglers, and what a whole
snapshot would cost, extrapolated from the run's own figures with every assumption shown.

Where the figures come from (nothing is measured here, everything was recorded by the stages):
- extract: each file's `_done` marker (`finished_at`, and its FileStats: seconds of processing, the
  download's seconds and bytes, the bytes read, the documents);
- dedup: dedup/summary.json (seconds per wave, CPU seconds per wave) and dedup/_done.json (`finished_at`);
- tokenize: each input's part marker under tokens/<name>/parts/ (`finished_at`, seconds, bytes, documents).
A unit's interval is [finished_at - its seconds, finished_at] (markers keep whole seconds). A stage's wall
time is the union of its units' intervals, so the idle days between two incremental runs do not count.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from html import escape

from crawlproc.store.layout import Layout

STRAGGLER_RATIO = 2.0  # a unit is a straggler when it took this many times the stage's median, or more
MAX_STRAGGLERS = 5
TYPICAL_SNAPSHOT_FILES = 90_000  # a Common Crawl snapshot: 100 segments x ~900 WARC files (when no listing says)


def _epoch(iso) -> float | None:
    try:
        return datetime.fromisoformat(str(iso)).timestamp()
    except (TypeError, ValueError):
        return None


def _num(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def stage_summary(name: str, units: list[dict]) -> dict:
    """Totals, throughput and stragglers of one stage's units ({key, start, end, seconds, bytes, docs, host})."""
    timed = [u for u in units if u["start"] is not None]
    wall = _union([(u["start"], u["end"]) for u in timed])
    task = sum(u["seconds"] for u in units)
    nbytes = sum(u["bytes"] for u in units)
    docs = sum(u["docs"] for u in units)
    median = statistics.median([u["seconds"] for u in units]) if units else 0.0
    slow = sorted((u for u in units if median > 0 and u["seconds"] >= STRAGGLER_RATIO * median),
                  key=lambda u: -u["seconds"])[:MAX_STRAGGLERS]
    return {
        "stage": name, "units": len(units), "wall_s": round(wall, 3), "task_s": round(task, 3),
        "bytes": int(nbytes), "documents": int(docs),
        "mb_per_s": nbytes / 1e6 / wall if wall else None, "docs_per_s": docs / wall if wall else None,
        "mb_per_task_s": nbytes / 1e6 / task if task else None,
        "median_s": round(median, 3),
        "stragglers": [{"key": u["key"], "seconds": round(u["seconds"], 3), "x_median": round(u["seconds"] / median, 1),
                        "host": u.get("host"), "docs": u["docs"]} for u in slow],
        "intervals": [[u["start"], u["end"], u["key"]] for u in timed],
    }


def extract_units(records: dict[str, dict]) -> list[dict]:
    """One unit per done file, from its marker record."""
    units = []
    for stem, rec in records.items():
        stats = rec.get("stats") or {}
        download = stats.get("download") if isinstance(stats.get("download"), dict) else {}
        seconds = _num((stats.get("seconds") or {}).get("total")) + _num(download.get("seconds"))
        end = _epoch(rec.get("finished_at"))
        units.append({"key": stem, "start": end - seconds if end is not None else None, "end": end,
                      "seconds": seconds, "bytes": _num(stats.get("decompressed_bytes")),
                      "download_bytes": _num(download.get("bytes")),
                      "docs": _num(stats.get("kept")) + _num(stats.get("removed")), "kept": _num(stats.get("kept")),
                      "host": rec.get("host") or stats.get("host")})
    return units


def dedup_units(summary: dict, done: dict | None) -> list[dict]:
    """dedup's waves as units, laid end to end back from its finish (they run one after the other)."""
    waves = summary.get("wave_seconds") if isinstance(summary.get("wave_seconds"), dict) else {}
    end = _epoch((done or {}).get("finished_at"))
    units, t = [], end
    for name, secs in reversed(list(waves.items())):
        secs = _num(secs)
        units.append({"key": name, "start": t - secs if t is not None else None, "end": t, "seconds": secs,
                      "bytes": 0, "docs": _num(summary.get("documents")) if name == "signatures" else 0})
        t = t - secs if t is not None else None
    return list(reversed(units))


def tokenize_units(layout: Layout, set_name: str) -> dict[str, list[dict]]:
    """{snapshot: units} of one token set: one unit per encoded input, from its part marker."""
    markers = layout.tokens(set_name).markers
    out: dict[str, list[dict]] = {}
    for key, fp in markers.done().items():
        rec = markers.read(key, fp) or {}
        stats = rec.get("stats") or {}
        secs, end = _num(stats.get("seconds")), _epoch(rec.get("finished_at"))
        out.setdefault(key.split("~", 1)[0], []).append({
            "key": key, "start": end - secs if end is not None else None, "end": end, "seconds": secs,
            "bytes": _num(stats.get("bytes")), "docs": _num(stats.get("documents")), "tokens": _num(stats.get("tokens")),
            "host": rec.get("host")})
    return out


def collect_timeline(layout: Layout, name: str, records: dict[str, dict], dedup: dict | None,
                     token_sets: list[str]) -> list[dict]:
    """The stages of one snapshot, in pipeline order, each with its throughput and stragglers."""
    stages = []
    if records:
        stages.append(stage_summary("extract", extract_units(records)))
    if dedup is not None:
        done = layout.storage.read_json(layout.snapshot(name).dedup.done_uri)
        s = stage_summary("dedup", dedup_units(dedup, done))
        s["task_s"] = round(sum(_num(w.get("cpu_s")) for w in (dedup.get("tasks") or {}).values()
                                if isinstance(w, dict)), 3) or s["task_s"]  # CPU seconds of every wave's tasks
        s["documents"] = int(_num(dedup.get("documents")))
        s["docs_per_s"] = s["documents"] / s["wall_s"] if s["wall_s"] else None
        s["stragglers"] = []  # waves are not units of equal work
        stages.append(s)
    for set_name in token_sets:
        units = tokenize_units(layout, set_name).get(name)
        if units:
            s = stage_summary(f"tokenize {set_name}", units)
            s["tokens"] = int(sum(u["tokens"] for u in units))
            stages.append(s)
    return stages


def project_snapshot(name: str, layout: Layout, records: dict[str, dict], stages: list[dict], price: float,
                     files: int | None = None) -> dict | None:
    """Core-hours, cost, bytes fetched and stored for a whole snapshot, from this run's per-file means."""
    extract = next((s for s in stages if s["stage"] == "extract"), None)
    if not records or extract is None:
        return None
    units = extract_units(records)
    n_run = len(units)
    listing = layout.storage.read_json(layout.snapshot(name).listing_uri) or {}
    if files:
        total, source = int(files), "given with --snapshot-files"
    elif isinstance(listing.get("listed_total"), int) and listing["listed_total"] > 0:
        total, source = listing["listed_total"], "the number of files this snapshot's listing names"
    else:
        total, source = TYPICAL_SNAPSHOT_FILES, ("assumed: a typical Common Crawl snapshot (100 segments x ~900 "
                                                 "files); give the real figure with --snapshot-files")
    per_file = {
        "extract_s": extract["task_s"] / n_run,
        "download_bytes": sum(u["download_bytes"] for u in units) / n_run,
        "read_bytes": sum(u["bytes"] for u in units) / n_run,
        "documents": sum(u["docs"] for u in units) / n_run,
        "kept": sum(u["kept"] for u in units) / n_run,
    }
    snap = layout.snapshot(name)
    out_bytes = sum(e.size or 0 for kind in ("docs", "removed", "extracted", "final")
                    for e in layout.storage.list(snap.folder(kind), suffix=".parquet"))
    per_file["stored_bytes"] = out_bytes / n_run
    dedup = next((s for s in stages if s["stage"] == "dedup"), None)
    dedup_per_doc = dedup["task_s"] / dedup["documents"] if dedup and dedup["documents"] else None
    tok = [s for s in stages if s["stage"].startswith("tokenize")]
    tok_per_byte = tok[0]["task_s"] / tok[0]["bytes"] if tok and tok[0]["bytes"] else None
    parts = {"extract (download + extraction + filters)": per_file["extract_s"] * total}
    if dedup_per_doc is not None:
        parts["dedup (signatures, shuffle, components, PII)"] = dedup_per_doc * per_file["kept"] * total
    if tok_per_byte is not None:
        text_bytes_per_file = tok[0]["bytes"] / n_run
        parts["tokenize (encoding)"] = tok_per_byte * text_bytes_per_file * total
    core_h = {k: v / 3600 for k, v in parts.items()}
    total_h = sum(core_h.values())
    hosts = sorted({u.get("host") for u in units if u.get("host")})
    assumptions = [
        f"{total:,} WARC files in the snapshot ({source})",
        f"the {n_run} file(s) of this run are typical of the snapshot (Common Crawl spreads pages over its files "
        "at random, but a few files vary: more files make a firmer figure)",
        "one core per task (ray.num_cpus_per_task = 1): a task's seconds are core-seconds; the extract task's "
        "time includes its download, which is shorter on machines near the data (s3://commoncrawl from AWS "
        "us-east-1)",
        "dedup's CPU time grows linearly with the documents it reads, tokenize's with the bytes of text",
        f"measured on {', '.join(hosts[:4]) or 'this machine'}; other CPUs scale the figures",
        f"price: {price:g} per core-hour (report --core-hour-price; your cloud's rate)",
    ]
    return {
        "files_in_run": n_run, "files_in_snapshot": total, "files_source": source, "per_file": per_file,
        "core_hours": core_h, "total_core_hours": total_h, "price_per_core_hour": price, "cost": total_h * price,
        "download_bytes": per_file["download_bytes"] * total, "stored_bytes": per_file["stored_bytes"] * total,
        "documents": per_file["documents"] * total, "kept": per_file["kept"] * total,
        "assumptions": assumptions,
    }


# --- rendering ---------------------------------------------------------------------------------------------


def _f(v, fmt: str = ",.1f") -> str:
    return "-" if v is None else format(v, fmt)


def _size(n: float) -> str:
    for div, unit in ((1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if n >= div:
            return f"{n / div:.3g} {unit}"
    return f"{n:.0f} B"


def render_timeline(snap_name: str, stages: list[dict], gantt_chart) -> str:
    if not stages:
        return ""
    rows = [(s["stage"], [(a, b, k) for a, b, k in s["intervals"]]) for s in stages if s["intervals"]]
    chart = gantt_chart(f"timeline:{snap_name}", rows, label=f"Stage timeline, {snap_name}") if rows else ""
    head = ("<table><thead><tr><th>stage</th><th class=\"n\">units</th><th class=\"n\">wall s</th>"
            "<th class=\"n\">task s</th><th class=\"n\">MB in</th><th class=\"n\">MB/s</th>"
            "<th class=\"n\">documents</th><th class=\"n\">docs/s</th><th class=\"n\">median unit s</th></tr></thead><tbody>")
    body = "".join(
        f"<tr data-stage=\"{escape(s['stage'])}\"><td>{escape(s['stage'])}</td><td class=\"n\">{s['units']:,}</td>"
        f"<td class=\"n\">{_f(s['wall_s'])}</td><td class=\"n\">{_f(s['task_s'])}</td>"
        f"<td class=\"n\">{_f(s['bytes'] / 1e6, ',.2f') if s['bytes'] else '-'}</td>"
        f"<td class=\"n\">{_f(s['mb_per_s'], ',.2f') if s['bytes'] else '-'}</td>"
        f"<td class=\"n\">{s['documents']:,}</td><td class=\"n\">{_f(s['docs_per_s'])}</td>"
        f"<td class=\"n\">{_f(s['median_s'], ',.2f')}</td></tr>" for s in stages)
    note = ("<p class=\"meta\">Wall time: the union of the stage's units' intervals (idle time between runs left "
            "out); MB in: bytes read (extract: decompressed WARC bytes; tokenize: text); task s: the units' own "
            "seconds (dedup: CPU seconds of its tasks).</p>")
    slow = [(s["stage"], u) for s in stages for u in s["stragglers"]]
    if slow:
        srows = "".join(f"<tr><td>{escape(st)}</td><td>{escape(str(u['key']))}</td><td class=\"n\">{u['seconds']:,.1f}</td>"
                        f"<td class=\"n\">{u['x_median']:g}x</td><td class=\"n\">{int(u['docs']):,}</td>"
                        f"<td>{escape(str(u.get('host') or '-'))}</td></tr>" for st, u in slow)
        stragglers = (f"<h3>Stragglers (units taking {STRAGGLER_RATIO:g}x the stage's median or more)</h3>"
                      "<table data-table=\"stragglers\"><thead><tr><th>stage</th><th>unit</th><th class=\"n\">seconds"
                      "</th><th class=\"n\">of median</th><th class=\"n\">documents</th><th>host</th></tr></thead>"
                      f"<tbody>{srows}</tbody></table>")
    else:
        stragglers = (f"<p class=\"meta\" data-table=\"stragglers\">No straggler: no unit took {STRAGGLER_RATIO:g}x "
                      "its stage's median.</p>")
    return chart + head + body + "</tbody></table>" + note + stragglers


def render_projection(snap_name: str, p: dict | None) -> str:
    if p is None:
        return ""
    rows = "".join(f"<tr><td>{escape(k)}</td><td class=\"n\">{v:,.1f}</td></tr>" for k, v in p["core_hours"].items())
    per = p["per_file"]
    return (
        f"<div data-section=\"projection:{escape(snap_name)}\"><p>From this run's {p['files_in_run']} file(s), "
        f"scaled to <b>{p['files_in_snapshot']:,}</b> files: <b>{p['total_core_hours']:,.0f} core-hours</b>, "
        f"about <b>{p['cost']:,.0f}</b> at {p['price_per_core_hour']:g} per core-hour; "
        f"{_size(p['download_bytes'])} downloaded, {_size(p['stored_bytes'])} stored, "
        f"{p['documents']:,.0f} documents of which {p['kept']:,.0f} kept by the filters.</p>"
        f"<table><thead><tr><th>stage</th><th class=\"n\">core-hours</th></tr></thead><tbody>{rows}</tbody></table>"
        f"<p class=\"meta\">Per file in this run: {per['extract_s']:,.1f} task-seconds of extract, "
        f"{_size(per['download_bytes'])} downloaded, {_size(per['read_bytes'])} read, "
        f"{per['documents']:,.0f} documents ({per['kept']:,.0f} kept), {_size(per['stored_bytes'])} stored.</p>"
        "<p><b>Assumptions</b></p><ul class=\"assumptions\">"
        + "".join(f"<li>{escape(a)}</li>" for a in p["assumptions"]) + "</ul></div>"
    )
