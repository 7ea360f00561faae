"""The HTML page of ``lean-data report --html``: one self-contained file, inline CSS and SVG.

No script, font or image is loaded from anywhere: the page opens offline and shows the
same thing in every browser. Per symbol, per stored series (feed and bar period):

- ``<svg class="price-chart">``: the close line (thinned per pixel column, spikes kept),
  each flagged bar a marker (``class="flag flag-<LEVEL>"``, ``data-time``, a ``<title>``
  tooltip with time, level, reasons and OHLCV) on a whisker from its low to its high;
- ``<svg class="coverage-timeline">``: stored runs of bars, gaps, known-empty gaps;
- ``<svg class="quality-histogram">``: bars per quality level per time bucket, stacked;

then the feeds' disagreement (``class="comparison"``) and the flagged bars
(``<table class="flagged-bars">``). Elements carry ``data-symbol``/``data-feed``/
``data-resolution`` so tests and scripts can find them.
"""

from __future__ import annotations

from bisect import bisect_left
from html import escape

from lean_data.cli.report_data import (
    LEVELS,
    Disagreement,
    Flagged,
    SeriesReport,
    SymbolReport,
    number,
    runs,
)
from lean_data.cli.svg import (
    Scale,
    element,
    line_path,
    minmax_columns,
    nice_ticks,
    padded,
    time_ticks,
    title,
)
from lean_data.cli.tables import iso

__all__ = ["COLOURS", "render"]

COLOURS = {
    "EXCELLENT": "#2e7d32",
    "GOOD": "#9ccc65",
    "FAIR": "#f59e0b",
    "POOR": "#dc2626",
    "INVALID": "#7c3aed",
    "UNSCORED": "#9e9e9e",
}
_WIDTH, _LEFT, _RIGHT = 960, 78, 16
_BUCKETS = 60

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1f2933; }
h1 { font-size: 22px; } h2 { border-bottom: 2px solid #cbd2d9; padding-top: 12px; }
h3 { font-size: 15px; margin: 18px 0 4px; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td {
  padding: 2px 10px; text-align: left; border-bottom: 1px solid #e4e7eb; white-space: nowrap;
}
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
svg { display: block; margin: 4px 0; background: #fff; }
svg text { font: 11px system-ui, sans-serif; fill: #52606d; }
.grid { stroke: #e4e7eb; } .axis { stroke: #9aa5b1; }
.close-line { fill: none; stroke: #1e40af; stroke-width: 1.2; }
.note { color: #52606d; } .where { color: #52606d; font-family: monospace; }
"""


def render(reports: list[SymbolReport], where: str) -> str:
    """The whole page for ``reports`` (read from the store at ``where``)."""
    names = ", ".join(r.symbol for r in reports)
    nav = " · ".join(element("a", escape(r.symbol), href=f"#{_slug(r.symbol)}") for r in reports)
    body = "".join(_symbol_section(r) for r in reports)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>lean-data report: {escape(names)}</title><style>{_CSS}</style></head>"
        f"<body><h1>lean-data report</h1>"
        f'<p class="where">store: {escape(where)}</p><nav>{nav}</nav>{body}</body></html>\n'
    )


def _slug(symbol: str) -> str:
    return "symbol-" + "".join(ch if ch.isalnum() else "-" for ch in symbol)


def _symbol_section(report: SymbolReport) -> str:
    parts = [
        element("h2", escape(report.symbol)),
        _summary_table(report),
        _comparison(report),
    ]
    for series in report.series:
        parts.append(_series_section(report.symbol, series))
    parts.append(_flagged_table(report.symbol, report.flagged))
    parts.append(_rejected_table(report))
    return element(
        "section",
        "".join(parts),
        class_="symbol",
        id=_slug(report.symbol),
        data_symbol=report.symbol,
    )


def _summary_table(report: SymbolReport) -> str:
    head = ["feed", "res", "rows", "first bar (UTC)", "last bar (UTC)", "coverage", "gaps"]
    numeric = {"rows", "coverage", "gaps", *LEVELS}
    cells = "".join(
        f'<th class="n">{h}</th>' if h in numeric else f"<th>{h}</th>" for h in (*head, *LEVELS)
    )
    rows = [f"<tr>{cells}</tr>"]
    for s in report.series:
        summary = s.series
        values = [
            f"<td>{escape(summary.feed)}</td><td>{summary.resolution}</td>",
            f'<td class="n">{summary.rows:,}</td>',
            f"<td>{iso(summary.first_ns)}</td><td>{iso(summary.last_ns)}</td>",
            f'<td class="n">{summary.coverage:.2f}%</td><td class="n">{len(summary.gaps)}</td>',
            *(f'<td class="n">{n:,}</td>' for n in s.level_counts.values()),
        ]
        rows.append(f"<tr>{''.join(values)}</tr>")
    return element("table", "".join(rows), class_="summary", data_symbol=report.symbol)


def _series_section(symbol: str, s: SeriesReport) -> str:
    feed, resolution = s.series.feed, str(s.series.resolution)
    heading = element("h3", escape(f"{symbol} · {feed} · {resolution} bars"))
    keys = {"data_symbol": symbol, "data_feed": feed, "data_resolution": resolution}
    body = heading + price_chart(symbol, s) + coverage_timeline(symbol, s)
    body += quality_histogram(symbol, s)
    return element("section", body, class_="series", **keys)


def _time_domain(s: SeriesReport) -> tuple[int, int]:
    step = s.series.resolution.nanos
    return s.series.first_ns, s.series.last_ns + step


def _time_axis(x: Scale, lo: int, hi: int, top: float, bottom: float) -> str:
    out = [element("line", class_="axis", x1=x.start, x2=x.end, y1=bottom, y2=bottom)]
    for t, label in time_ticks(lo, hi):
        px = x(t)
        out.append(element("line", class_="grid", x1=px, x2=px, y1=top, y2=bottom))
        anchor = "end" if px > x.end - 50 else "start" if px < x.start + 50 else "middle"
        out.append(element("text", escape(label), x=px, y=bottom + 14, text_anchor=anchor))
    return "".join(out)


def price_chart(symbol: str, s: SeriesReport) -> str:
    """The close line with every flagged bar marked by level, and the chart's legend."""
    height, top, bottom = 300, 22, 262
    lo_t, hi_t = _time_domain(s)
    x = Scale(lo_t, hi_t, _LEFT, _WIDTH - _RIGHT)
    prices = [b.close for b in s.bars] + [p for f in s.flagged for p in (f.bar.low, f.bar.high)]
    finite = [p for p in prices if p == p and abs(p) != float("inf")]
    lo_p, hi_p = padded(min(finite, default=0.0), max(finite, default=1.0))
    if finite and min(finite) >= 0:
        lo_p = max(lo_p, 0.0)
    y = Scale(lo_p, hi_p, bottom, top)
    out = [_time_axis(x, lo_t, hi_t, top, bottom)]
    ticks = nice_ticks(lo_p, hi_p)
    for value in ticks:
        py = y(value)
        out.append(element("line", class_="grid", x1=_LEFT, x2=_WIDTH - _RIGHT, y1=py, y2=py))
        out.append(
            element("text", _price_label(value, ticks), x=_LEFT - 6, y=py + 4, text_anchor="end")
        )
    flagged_times = {f.bar.ts_event for f in s.flagged}
    times = [b.ts_event for b in s.bars]
    closes = [b.close for b in s.bars]
    for start, end in runs(times, s.series.resolution.nanos):  # a line per run: gaps show
        first, last = bisect_left(times, start), bisect_left(times, end)
        points = minmax_columns(times[first:last], closes[first:last], x, flagged_times)
        path = line_path([(px, y(value)) for px, value in points])
        if path:
            out.append(element("path", class_="close-line", d=path))
    out.append(_legend(s))  # before the markers: a marker is never hidden under it
    out.extend(_marker(f, x, y) for f in s.flagged)
    return element(
        "svg",
        "".join(out),
        class_="price-chart",
        data_symbol=symbol,
        data_feed=s.series.feed,
        data_resolution=str(s.series.resolution),
        data_flagged=len(s.flagged),
        width=_WIDTH,
        height=height,
        viewBox=f"0 0 {_WIDTH} {height}",
        xmlns="http://www.w3.org/2000/svg",
        role="img",
        aria_label=f"{symbol} close prices, {s.series.feed} {s.series.resolution}",
    )


def _price_label(value: float, ticks: list[float]) -> str:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = 0 if step >= 1 else min(8, len(f"{step:.8f}".rstrip("0").split(".")[1]))
    return f"{value:,.{decimals}f}"


def flag_tooltip(f: Flagged) -> str:
    """What a marker's tooltip (and a test) reads: time, level, reasons, OHLCV."""
    bar = f.bar
    reasons = ", ".join(f.reasons) or "no reason stored"
    return (
        f"{iso(bar.ts_event)} {f.level} ({reasons}) {f.feed} {bar.resolution}\n"
        f"O {number(bar.open)} H {number(bar.high)} L {number(bar.low)} "
        f"C {number(bar.close)} V {number(bar.volume)}"
    )


def _marker(f: Flagged, x: Scale, y: Scale) -> str:
    bar, colour = f.bar, COLOURS[f.level]
    px, py = x(bar.ts_event), _clamped(y, bar.close)
    keys = {
        "class_": f"flag flag-{f.level}",
        "data_time": iso(bar.ts_event),
        "data_level": f.level,
        "data_feed": f.feed,
        "data_reasons": ",".join(f.reasons),
        "fill": colour,
        "stroke": "#111827",
        "stroke_width": 1,
    }
    whisker = element(
        "line",
        class_=f"whisker whisker-{f.level}",
        x1=px,
        x2=px,
        y1=_clamped(y, bar.high),
        y2=_clamped(y, bar.low),
        stroke=colour,
        stroke_width=2,
    )
    tip = title(flag_tooltip(f))
    return whisker + _shape(f.level, px, py, tip, keys)


def _clamped(y: Scale, value: float) -> float:
    if value != value:  # nan: draw at the bottom of the chart
        return y.start
    return min(max(y(value), min(y.start, y.end)), max(y.start, y.end))


def _shape(level: str, px: float, py: float, body: str, keys: dict[str, object]) -> str:
    """A marker of ``level``'s own shape: FAIR a triangle, POOR a circle, INVALID a square."""
    if level == "FAIR":
        corners = f"{px:.1f},{py - 7:.1f} {px - 6:.1f},{py + 4:.1f} {px + 6:.1f},{py + 4:.1f}"
        return element("polygon", body, points=corners, **keys)
    if level == "INVALID":
        return element("rect", body, x=px - 5, y=py - 5, width=10, height=10, **keys)
    return element("circle", body, cx=px, cy=py, r=6, **keys)


def _legend(s: SeriesReport) -> str:
    out: list[str] = []
    px = _WIDTH - _RIGHT - 330
    for level in ("", "FAIR", "POOR", "INVALID"):  # "": the close line
        if level:
            count = sum(1 for f in s.flagged if f.level == level)
            keys: dict[str, object] = {"fill": COLOURS[level], "stroke": "#111827"}
            out.append(_shape(level, px + 6, 11, "", keys))
            text = f"{level} ({count})"
        else:
            out.append(element("line", class_="close-line", x1=px, x2=px + 14, y1=11, y2=11))
            text = "close"
        out.append(element("text", text, x=px + 16, y=15))
        px += 82
    return element("g", "".join(out), class_="legend")


def coverage_timeline(symbol: str, s: SeriesReport) -> str:
    """Stored runs of bars, gaps and known-empty gaps on one time axis."""
    height, top, bottom = 64, 8, 36
    lo, hi = _time_domain(s)
    x = Scale(lo, hi, _LEFT, _WIDTH - _RIGHT)
    out = [_time_axis(x, lo, hi, top, bottom)]
    out.append(element("text", "stored", x=_LEFT - 6, y=26, text_anchor="end"))
    step = s.series.resolution.nanos
    for start, end in runs([b.ts_event for b in s.bars], step):
        tip = title(f"stored {iso(start)} to {iso(end)}")
        out.append(_span("span stored", "#2e7d32", x, start, end, tip, top, bottom))
    for gap in s.series.gaps:
        kind = "gap known-empty" if gap.known_empty else "gap"
        note = ", reported empty by the source" if gap.known_empty else ""
        tip = title(f"gap {iso(gap.start_ns)} to {iso(gap.end_ns)}: {gap.bars} bars{note}")
        colour = "#9aa5b1" if gap.known_empty else "#dc2626"
        out.append(_span(kind, colour, x, gap.start_ns, gap.end_ns, tip, top, bottom))
    return element(
        "svg",
        "".join(out),
        class_="coverage-timeline",
        data_symbol=symbol,
        data_feed=s.series.feed,
        data_resolution=str(s.series.resolution),
        data_gaps=len(s.series.gaps),
        width=_WIDTH,
        height=height,
        viewBox=f"0 0 {_WIDTH} {height}",
        xmlns="http://www.w3.org/2000/svg",
    )


def _span(
    kind: str, colour: str, x: Scale, start: int, end: int, tip: str, top: float, bottom: float
) -> str:
    left = x(start)
    return element(
        "rect",
        tip,
        class_=kind,
        data_start=iso(start),
        data_end=iso(end),
        x=left,
        y=top,
        width=max(x(end) - left, 1.5),
        height=bottom - top,
        fill=colour,
    )


def quality_histogram(symbol: str, s: SeriesReport) -> str:
    """Bars per quality level in equal time buckets, stacked best level lowest."""
    height, top, bottom = 170, 10, 140
    lo, hi = _time_domain(s)
    buckets = max(1, min(_BUCKETS, len(s.bars)))
    width = (hi - lo) / buckets
    counts = [dict.fromkeys(LEVELS, 0) for _ in range(buckets)]
    for bar, level in zip(s.bars, s.levels, strict=True):
        counts[min(int((bar.ts_event - lo) / width), buckets - 1)][level] += 1
    tallest = max((sum(c.values()) for c in counts), default=0) or 1
    x = Scale(lo, hi, _LEFT, _WIDTH - _RIGHT)
    out = [_time_axis(x, lo, hi, top, bottom)]
    out.append(element("text", f"{tallest:,} bars", x=_LEFT - 6, y=top + 8, text_anchor="end"))
    for index, tally in enumerate(counts):
        start = lo + int(index * width)
        out.append(_stack(tally, start, lo + int((index + 1) * width), x, tallest, top, bottom))
    return element(
        "svg",
        "".join(out) + _level_key(s, bottom + 30),
        class_="quality-histogram",
        data_symbol=symbol,
        data_feed=s.series.feed,
        data_resolution=str(s.series.resolution),
        width=_WIDTH,
        height=height,
        viewBox=f"0 0 {_WIDTH} {height}",
        xmlns="http://www.w3.org/2000/svg",
    )


def _stack(
    tally: dict[str, int], start: int, end: int, x: Scale, tallest: int, top: float, bottom: float
) -> str:
    left, right = x(start), x(end)
    base = bottom
    out: list[str] = []
    for level, count in tally.items():
        if not count:
            continue
        size = max(count / tallest * (bottom - top), 2.0)  # a lone flagged bar still shows
        base -= size
        tip = title(f"{iso(start)} to {iso(end)}: {count:,} {level}")
        out.append(
            element(
                "rect",
                tip,
                class_=f"bucket level-{level}",
                data_start=iso(start),
                data_level=level,
                data_count=count,
                x=left,
                y=base,
                width=max(right - left - 1, 1),
                height=size,
                fill=COLOURS[level],
            )
        )
    return "".join(out)


def _level_key(s: SeriesReport, py: float) -> str:
    out: list[str] = []
    px = _LEFT
    for level, count in s.level_counts.items():
        out.append(element("rect", x=px, y=py - 9, width=10, height=10, fill=COLOURS[level]))
        out.append(element("text", f"{level} {count:,}", x=px + 14, y=py))
        px += 130
    return element("g", "".join(out), class_="legend")


def _comparison(report: SymbolReport) -> str:
    symbol = report.symbol
    feeds = report.feeds
    if len(feeds) < 2:
        text = f"One feed ({escape(feeds[0]) if feeds else 'none'}): nothing to compare."
        return element("p", text, class_="comparison one-feed note", data_symbol=symbol)
    if not report.comparisons:
        text = f"Feeds {escape(', '.join(feeds))} store different bar periods: nothing to compare."
        return element("p", text, class_="comparison note", data_symbol=symbol)
    return "".join(_disagreement(symbol, d) for d in report.comparisons)


def _disagreement(symbol: str, d: Disagreement) -> str:
    summary = (
        f"{escape(d.first)} vs {escape(d.second)} ({d.resolution} bars): {d.shared:,} shared "
        f"open times, closes differ at {d.differing:,}"
    )
    if d.largest:
        ts, bps, _, _ = d.largest[0]
        summary += f"; largest {bps:,.2f} bps at {iso(ts)}"
    head = (
        f"<tr><th>time (UTC)</th><th class='n'>{escape(d.first)} close</th>"
        f"<th class='n'>{escape(d.second)} close</th><th class='n'>difference (bps)</th></tr>"
    )
    rows = [head] + [
        element(
            "tr",
            f"<td>{iso(ts)}</td><td class='n'>{number(a)}</td><td class='n'>{number(b)}</td>"
            f"<td class='n'>{bps:,.2f}</td>",
            class_="difference",
            data_time=iso(ts),
            data_bps=f"{bps:.4f}",
        )
        for ts, bps, a, b in d.largest
    ]
    table = element("table", "".join(rows)) if d.largest else ""
    return element(
        "div",
        f"<p>{summary}</p>{table}",
        class_="comparison",
        data_symbol=symbol,
        data_feeds=f"{d.first},{d.second}",
        data_resolution=str(d.resolution),
        data_shared=d.shared,
        data_differing=d.differing,
    )


def _flagged_table(symbol: str, flagged: list[Flagged]) -> str:
    heading = element("h3", f"Flagged bars of {escape(symbol)} (level below GOOD): {len(flagged)}")
    if not flagged:
        return heading
    columns = ("time (UTC)", "feed", "res", "level", "reasons")
    head = "".join(f"<th>{c}</th>" for c in columns)
    head += "".join(f"<th class='n'>{c}</th>" for c in ("open", "high", "low", "close", "volume"))
    rows = [f"<tr>{head}</tr>"]
    for f in flagged:
        bar = f.bar
        values = (bar.open, bar.high, bar.low, bar.close, bar.volume)
        cells = (
            f"<td>{iso(bar.ts_event)}</td><td>{escape(f.feed)}</td><td>{bar.resolution}</td>"
            f"<td>{f.level}</td><td>{escape(', '.join(f.reasons))}</td>"
            + "".join(f"<td class='n'>{number(v)}</td>" for v in values)
        )
        rows.append(
            element(
                "tr",
                cells,
                class_=f"flagged flag-{f.level}",
                data_time=iso(bar.ts_event),
                data_level=f.level,
                data_feed=f.feed,
            )
        )
    table = element("table", "".join(rows), class_="flagged-bars", data_symbol=symbol)
    return heading + table


def _rejected_table(report: SymbolReport) -> str:
    """INVALID items not stored (the errors table's ``invalid_data`` rows), all of them."""
    rejected = report.rejected
    if not rejected:
        return ""
    heading = element(
        "h3", f"INVALID items of {escape(report.symbol)} not stored: {len(rejected):,}"
    )
    rows = ["<tr><th>received (UTC)</th><th>feed</th><th>why</th></tr>"]
    rows += [
        f"<tr class='rejected'><td>{iso(r.ts_ns)}</td><td>{escape(r.feed)}</td>"
        f"<td>{escape(r.message)}</td></tr>"
        for r in rejected
    ]
    table = element("table", "".join(rows), class_="rejected-items", data_symbol=report.symbol)
    return heading + table
