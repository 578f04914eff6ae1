"""Inline SVG charts drawn in Python: the report needs no JavaScript, no CDN and no network.

Every chart is one <svg data-chart="NAME"> whose drawn marks (bars, points, lines) carry class="mark", so a
browser test can check that each chart rendered something. Hovering a mark shows its exact value (<title>).
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ["#3b6ea8", "#e07b39", "#4c9a5b", "#b8504b", "#8168b3", "#8c6d4f", "#c76fae", "#7f7f7f"]


def fmt_num(v: float) -> str:
    """1234567 -> '1.23M', 0.1234 -> '0.123': short labels for axes and bars."""
    if v is None:
        return "-"
    if isinstance(v, float) and not v.is_integer() and abs(v) < 1000:
        return f"{v:.3g}"
    v = float(v)
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{int(v)}" if v.is_integer() else f"{v:.3g}"


def _svg_open(name: str, width: int, height: int, label: str) -> str:
    return (
        f'<svg data-chart="{escape(name)}" class="chart" role="img" aria-label="{escape(label)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    )


def _nice_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """Round tick values that cover [lo, hi]: the first is <= lo, the last >= hi."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    if integer:  # counts: no tick at 0.25 documents
        step = max(1, math.ceil(step))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def hbar_chart(name: str, rows: list[tuple[str, float, str]], *, label: str, width: int = 760,
               color: str = PALETTE[0]) -> str:
    """Horizontal bars, one per (label, value, note) row, scaled to the largest value (funnels, top-k)."""
    rows = [(t if len(t) <= 48 else t[:46] + "…", v, n) for t, v, n in rows]
    bar_h, gap, right = 20, 6, 150
    left = min(360, max(120, 7 * max((len(t) for t, _, _ in rows), default=0) + 16))  # room for the labels
    height = len(rows) * (bar_h + gap) + gap + 4
    vmax = max((v for _, v, _ in rows), default=0) or 1
    plot_w = width - left - right
    parts = [_svg_open(name, width, height, label)]
    for i, (text, value, note) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        w = max(1.0, plot_w * value / vmax) if value > 0 else 1.0
        parts.append(
            f'<text x="{left - 8}" y="{y + bar_h * 0.72:.1f}" text-anchor="end" class="lbl">{escape(text)}</text>'
            f'<rect class="mark" x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}">'
            f"<title>{escape(text)}: {value:,}</title></rect>"
            f'<text x="{left + w + 6:.1f}" y="{y + bar_h * 0.72:.1f}" class="val">{escape(fmt_num(value))}'
            f"{(' ' + escape(note)) if note else ''}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def column_chart(name: str, bars: list[tuple[str, float]], *, label: str, x_title: str = "", y_title: str = "",
                 width: int = 760, height: int = 260, colors: list[str] | None = None,
                 titles: list[str] | None = None) -> str:
    """Vertical bars over categorical x labels (histogram bins, cluster sizes, shards); `titles`: what hovering
    each bar names (default: its label)."""
    rotate = max((len(t) for t, _ in bars), default=0) > 6  # long labels are slanted so they never overlap
    left, right, top, bottom = 64, 16, 14, 74 if rotate else 40
    height += bottom - 58
    plot_w, plot_h = width - left - right, height - top - bottom
    vmax = max((v for _, v in bars), default=0) or 1
    ticks = _nice_ticks(0, vmax, 4, integer=all(float(v).is_integer() for _, v in bars))
    vmax = max(vmax, ticks[-1])
    n = max(1, len(bars))
    slot = plot_w / n
    bw = min(max(1.0, slot * 0.8), 64.0)
    parts = [_svg_open(name, width, height, label)]
    for t in ticks:
        y = top + plot_h - plot_h * t / vmax
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{fmt_num(t)}</text>')
    every = max(1, math.ceil(n / 16))  # thin the x labels so they never overlap
    for i, (text, value) in enumerate(bars):
        x = left + i * slot + (slot - bw) / 2
        h = plot_h * value / vmax
        if value > 0:
            h = max(h, 1.0)
        color = colors[i] if colors else PALETTE[0]
        parts.append(f'<rect class="mark" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bw:.1f}" '
                     f'height="{h:.1f}" fill="{color}"><title>{escape(titles[i] if titles else text)}: '
                     f"{value:,}</title></rect>")
        if i % every == 0:
            cx, ty = x + bw / 2, top + plot_h + 14
            slant = f' text-anchor="end" transform="rotate(-30 {cx:.1f} {ty})"' if rotate else ' text-anchor="middle"'
            parts.append(f'<text x="{cx:.1f}" y="{ty}" class="tick"{slant}>{escape(text)}</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    return _close(parts, x_title, y_title, left + plot_w / 2, top + plot_h / 2, height)


def line_chart(name: str, series: list[tuple[str, list[tuple[float, float]]]], *, label: str,
               x_title: str = "", y_title: str = "", width: int = 760, height: int = 300) -> str:
    """One polyline per (name, points) series, with a legend; a single point is drawn as a dot."""
    left, right, top, bottom = 64, 130, 14, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    pts = [p for _, s in series for p in s]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    xlo, xhi = min(xs), max(xs)
    ylo, yhi = min(ys), max(ys)
    if xhi == xlo:
        xlo, xhi = xlo - 1, xhi + 1
    if yhi == ylo:
        ylo, yhi = ylo - 1, yhi + 1
    yt = _nice_ticks(ylo, yhi, 5)
    ylo, yhi = yt[0], yt[-1]
    xt = [t for t in _nice_ticks(xlo, xhi, 6) if xlo <= t <= xhi]

    def sx(x: float) -> float:
        return left + plot_w * (x - xlo) / (xhi - xlo)

    def sy(y: float) -> float:
        return top + plot_h - plot_h * (y - ylo) / (yhi - ylo)

    parts = [_svg_open(name, width, height, label)]
    for t in yt:
        parts.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{sy(t):.1f}" y2="{sy(t):.1f}"/>'
                     f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" class="tick">{fmt_num(t)}</text>')
    for t in xt:
        parts.append(f'<text x="{sx(t):.1f}" y="{top + plot_h + 16}" text-anchor="middle" class="tick">'
                     f"{fmt_num(t)}</text>")
    parts.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    for i, (sname, s) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        if len(s) > 1:
            parts.append(f'<polyline class="mark" fill="none" stroke="{color}" stroke-width="1.6" '
                         f'points="{coords}"><title>{escape(sname)}</title></polyline>')
        if len(s) <= 25:  # few points (e.g. eval steps): draw each one so it can be hovered
            for x, y in s:
                parts.append(f'<circle class="mark" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}">'
                             f"<title>{escape(sname)} step {fmt_num(x)}: {y:.4g}</title></circle>")
        ly = top + 14 + i * 18
        parts.append(f'<rect x="{left + plot_w + 14}" y="{ly - 9}" width="12" height="12" fill="{color}"/>'
                     f'<text x="{left + plot_w + 30}" y="{ly + 1}" class="lbl">{escape(sname)}</text>')
    return _close(parts, x_title, y_title, left + plot_w / 2, top + plot_h / 2, height)


def _close(parts: list[str], x_title: str, y_title: str, x_mid: float, y_mid: float, height: int) -> str:
    """The axis titles (centred on the plot area) and the end of the SVG."""
    if x_title:
        parts.append(f'<text x="{x_mid:.1f}" y="{height - 4}" text-anchor="middle" class="ttl">'
                     f"{escape(x_title)}</text>")
    if y_title:
        parts.append(f'<text x="12" y="{y_mid:.1f}" text-anchor="middle" class="ttl" '
                     f'transform="rotate(-90 12 {y_mid:.1f})">{escape(y_title)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def spread_chart(name: str, rows: list[tuple[str, float, float | None, list[float]]], *, label: str,
                 y_title: str = "", width: int = 760, height: int = 280) -> str:
    """One column per (label, mean, std, values) row: every value as a dot, the mean as a bar, mean ± std as
    a whisker; so a reader sees at once whether two columns' spreads overlap."""
    left, right, top, bottom = 64, 16, 14, 58
    plot_w, plot_h = width - left - right, height - top - bottom
    pts = [v for _, m, s, vals in rows for v in (*vals, m, m + (s or 0), m - (s or 0)) if v is not None]
    lo, hi = (min(pts), max(pts)) if pts else (0.0, 1.0)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.05 or 0.05
    ticks = _nice_ticks(lo - pad, hi + pad, 5)
    lo, hi = ticks[0], ticks[-1]

    def sy(v: float) -> float:
        return top + plot_h - plot_h * (v - lo) / (hi - lo)

    parts = [_svg_open(name, width, height, label)]
    for t in ticks:
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{sy(t):.1f}" y2="{sy(t):.1f}"/>'
                     f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" class="tick">{fmt_num(t)}</text>')
    slot = plot_w / max(1, len(rows))
    for i, (text, mean, std, values) in enumerate(rows):
        cx = left + slot * (i + 0.5)
        color = PALETTE[i % len(PALETTE)]
        if mean is not None:
            parts.append(f'<rect class="mark" x="{cx - 14:.1f}" y="{sy(mean) - 1.5:.1f}" width="28" height="3" '
                         f'fill="{color}"><title>{escape(text)}: mean {mean:.4g}'
                         + (f" ± {std:.3g}" if std is not None else "") + "</title></rect>")
            if std is not None:
                parts.append(f'<line class="mark" x1="{cx:.1f}" x2="{cx:.1f}" y1="{sy(mean - std):.1f}" '
                             f'y2="{sy(mean + std):.1f}" stroke="{color}" stroke-width="2"/>'
                             f'<line x1="{cx - 6:.1f}" x2="{cx + 6:.1f}" y1="{sy(mean - std):.1f}" y2="{sy(mean - std):.1f}" '
                             f'stroke="{color}"/><line x1="{cx - 6:.1f}" x2="{cx + 6:.1f}" y1="{sy(mean + std):.1f}" '
                             f'y2="{sy(mean + std):.1f}" stroke="{color}"/>')
        for j, v in enumerate(values):
            dx = (j - (len(values) - 1) / 2) * 7
            parts.append(f'<circle class="mark" cx="{cx + 20 + dx:.1f}" cy="{sy(v):.1f}" r="3" fill="{color}" '
                         f'fill-opacity="0.6"><title>{escape(text)} seed {j}: {v:.4g}</title></circle>')
        parts.append(f'<text x="{cx:.1f}" y="{top + plot_h + 16}" text-anchor="middle" class="tick">'
                     f"{escape(text)}</text>")
    parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    return _close(parts, "", y_title, left + plot_w / 2, top + plot_h / 2, height)


def gantt_chart(name: str, rows: list[tuple[str, list[tuple[float, float, str]]]], *, label: str,
                width: int = 760, max_bars: int = 1500) -> str:
    """One row per stage, one thin bar per unit over wall-clock time (seconds from the first start): what
    ran when, how many at once, and which units trail. A row with more than `max_bars` units shows an even
    sample of them (the longest always among them)."""
    left, right, top, bottom, row_h = 150, 16, 10, 40, 34
    height = top + bottom + row_h * len(rows)
    plot_w = width - left - right
    t0 = min((a for _, bars in rows for a, _, _ in bars), default=0.0)
    t1 = max((b for _, bars in rows for _, b, _ in bars), default=t0 + 1)
    span = max(t1 - t0, 1e-6)
    ticks = [t for t in _nice_ticks(0, span, 6) if t <= span]
    parts = [_svg_open(name, width, height, label)]
    for t in ticks:
        x = left + plot_w * t / span
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + row_h * len(rows)}"/>'
                     f'<text x="{x:.1f}" y="{top + row_h * len(rows) + 14}" text-anchor="middle" class="tick">'
                     f"{fmt_num(t)}</text>")
    for i, (stage, bars) in enumerate(rows):
        y0 = top + i * row_h
        short = stage if len(stage) <= 22 else stage[:21] + "…"
        parts.append(f'<text x="{left - 8}" y="{y0 + row_h / 2 + 4:.1f}" text-anchor="end" class="lbl">'
                     f"{escape(short)}<title>{escape(stage)}</title></text>")
        if len(bars) > max_bars:
            longest = max(bars, key=lambda b: b[1] - b[0])
            step = len(bars) / max_bars
            bars = sorted({bars[int(k * step)] for k in range(max_bars)} | {longest})
        placed = _lanes(bars)  # a unit goes in the first lane free at its start: overlaps stack
        n_lanes = max((lane for lane, _ in placed), default=0) + 1
        lane_h = (row_h - 8) / n_lanes
        for lane, (a, b, key) in placed:
            x = left + plot_w * (a - t0) / span
            w = max(1.0, plot_w * (b - a) / span)
            parts.append(f'<rect class="mark" x="{x:.1f}" y="{y0 + 4 + lane * lane_h:.1f}" width="{w:.1f}" '
                         f'height="{max(lane_h - 1, 1):.1f}" fill="{PALETTE[i % len(PALETTE)]}">'
                         f"<title>{escape(stage)} {escape(str(key))}: {b - a:,.1f} s</title></rect>")
    return _close(parts, "seconds since the first unit started", "", left + plot_w / 2, 0, height)


def _lanes(bars: list[tuple[float, float, str]]) -> list[tuple[int, tuple[float, float, str]]]:
    """(lane, bar) for each bar in start order, each in the first lane that is free when it starts."""
    ends: list[float] = []
    out = []
    for bar in sorted(bars):
        lane = next((j for j, end in enumerate(ends) if end <= bar[0]), None)
        if lane is None:
            ends.append(bar[1])
            lane = len(ends) - 1
        else:
            ends[lane] = bar[1]
        out.append((lane, bar))
    return out
