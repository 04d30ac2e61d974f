"""The monitor's charts as SVG text, drawn on the server: the chunk timeline, accrued cost over time
and cost per chunk. Each has a bounded number of nodes (``timeline.MAX_ROWS`` rows, ``MAX_POINTS``
points, ``MAX_COLUMNS`` columns); hover text is an SVG ``<title>``, so it needs no script."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from framefarm.monitor.timeline import Bar, Timeline, seconds
from framefarm.status import JobRecord

WIDTH = 960
LABEL_WIDTH = 110
ROW_HEIGHT = 14
AXIS_HEIGHT = 22
MAX_POINTS = 400
MAX_COLUMNS = 400
CHART_HEIGHT = 160
#: Colours by outcome (also in the page's legend).
COLOURS = {"completed": "#2e9d57", "failed": "#d43d3d", "transient": "#e0a020", "cancelled": "#8a8a8a",
           "running": "#3a7bd5"}

Link = Callable[[int], str | None]  # chunk id -> where its row label leads (its logs), or None


def timeline_svg(timeline: Timeline, *, link: Link = lambda chunk_id: None) -> str:
    """One ``<g class="row">`` per row and one ``<rect class="bar OUTCOME">`` per bar; cold starts as a
    darker lead-in (``class="cold"``), throttled calls as a triangle (``class="throttle"``) at the start."""
    plot = WIDTH - LABEL_WIDTH - 40  # room for the last tick's label
    span = max(timeline.end - timeline.start, 1e-3)

    def x(at: float) -> float:
        return LABEL_WIDTH + plot * (at - timeline.start) / span

    height = AXIS_HEIGHT + ROW_HEIGHT * max(1, len(timeline.rows))
    slowest = {(bar.figures.chunk_id, bar.figures.attempt) for bar in timeline.slowest[:3]}
    out = [f'<svg class="timeline" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" data-rows="{len(timeline.rows)}" data-per-row="{timeline.per_row}">',
           _time_axis(timeline.start, span, LABEL_WIDTH, plot)]
    for index, row in enumerate(timeline.rows):
        top = AXIS_HEIGHT + index * ROW_HEIGHT
        href = link(row.first) if row.first == row.last else None
        label = f'<text x="4" y="{top + 11}" class="label">{escape(row.label)}</text>'
        if href:
            label = f'<a href="{escape(href)}">{label}</a>'
        out.append(f'<g class="row" data-first="{row.first}" data-last="{row.last}" data-attempts="{row.attempts}">')
        if row.title:
            out.append(f"<title>{escape(row.title)}</title>")
        out.append(label)
        for bar in row.bars:
            out.append(_bar(bar, x, top, mark=(bar.figures.chunk_id, bar.figures.attempt) in slowest
                            and not timeline.aggregated))
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def _bar(bar: Bar, x: Callable[[float], float], top: int, *, mark: bool) -> str:
    left, right = x(bar.start), x(bar.end)
    width = max(right - left, 1.5)
    extra = ' stroke="#111" stroke-width="1.5"' if mark else ""
    parts = [f'<rect class="bar {bar.outcome}" data-chunk="{bar.figures.chunk_id}" data-attempt="{bar.figures.attempt}"'
             f' x="{left:.1f}" y="{top + 2}" width="{width:.1f}" height="{ROW_HEIGHT - 4}" '
             f'fill="{COLOURS[bar.outcome]}"{extra}><title>{escape(bar.title())}</title></rect>']
    if bar.cold_start_s:
        cold = min(max(x(bar.start + bar.cold_start_s) - left, 1.5), width)
        parts.append(f'<rect class="cold" x="{left:.1f}" y="{top + 2}" width="{cold:.1f}" height="{ROW_HEIGHT - 4}" '
                     f'fill="#000" fill-opacity="0.35"><title>cold start {seconds(bar.cold_start_s)}</title></rect>')
    if bar.figures.throttles:
        parts.append(f'<path class="throttle" d="M{left:.1f} {top + 1} l5 0 l-2.5 5 z" fill="#b35c00">'
                     f"<title>throttled {bar.figures.throttles}x (waited, not billed)</title></path>")
    return "".join(parts)


def _time_axis(start: float, span: float, left: float, plot: float) -> str:
    ticks = []
    for step in range(6):
        at = left + plot * step / 5
        ticks.append(f'<line x1="{at:.1f}" y1="{AXIS_HEIGHT - 4}" x2="{at:.1f}" y2="{AXIS_HEIGHT}" stroke="#999"/>'
                     f'<text x="{at:.1f}" y="{AXIS_HEIGHT - 8}" class="tick" text-anchor="middle">'
                     f"+{seconds(span * step / 5)}</text>")
    return '<g class="axis">' + "".join(ticks) + "</g>"


def cost_over_time_svg(bars: Sequence[Bar], start: float) -> str:
    """Accrued cost against time: the running sum of finished attempts' cost, at most ``MAX_POINTS`` points."""
    done = sorted((bar.end, bar.figures.cost_usd) for bar in bars if bar.outcome != "running")
    total, points = 0.0, [(start, 0.0)]
    for end, cost in done:
        total += cost
        points.append((end, total))
    if len(points) > MAX_POINTS:
        step = -(-len(points) // MAX_POINTS)
        points = [*points[::step], points[-1]]
    span = max(points[-1][0] - start, 1e-3)
    top = max(total, 1e-12)
    plot, left = WIDTH - 90, 80
    base, high = CHART_HEIGHT - 20, CHART_HEIGHT - 40
    coords = " ".join(f"{left + plot * (at - start) / span:.1f},{base - high * value / top:.1f}"
                      for at, value in points)
    return (f'<svg class="cost-time" width="{WIDTH}" height="{CHART_HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {CHART_HEIGHT}">{_value_axis(top, left)}'
            f'<polyline points="{coords}" fill="none" stroke="#3a7bd5" stroke-width="2">'
            f"<title>${total:.6f} after {seconds(span)}</title></polyline>"
            f'<text x="{left}" y="{CHART_HEIGHT - 4}" class="tick">0 s</text>'
            f'<text x="{WIDTH - 10}" y="{CHART_HEIGHT - 4}" class="tick" text-anchor="end">+{seconds(span)}</text>'
            "</svg>")


def cost_per_chunk_svg(job: JobRecord) -> str:
    """Each chunk's cost over all its attempts as a column; a job with more than ``MAX_COLUMNS`` chunks
    draws the dearest chunk of each bucket of neighbours."""
    records = sorted(job.chunks, key=lambda record: record.chunk_id)
    per = max(1, -(-len(records) // MAX_COLUMNS))
    columns = []
    for at in range(0, len(records), per):
        group = records[at:at + per]
        dearest = max(group, key=lambda record: record.cost_usd)
        name = f"chunk {dearest.chunk_id}" if per == 1 else f"chunks {group[0].chunk_id}-{group[-1].chunk_id}, " \
                                                           f"dearest chunk {dearest.chunk_id}"
        columns.append((name, dearest.cost_usd, dearest.attempts))
    top = max((cost for _, cost, _ in columns), default=0.0) or 1e-12
    plot, left = WIDTH - 90, 80
    width = plot / max(1, len(columns))
    out = [f'<svg class="cost-chunk" width="{WIDTH}" height="{CHART_HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {CHART_HEIGHT}">', _value_axis(top, left)]
    for index, (name, cost, attempts) in enumerate(columns):
        high = (CHART_HEIGHT - 40) * cost / top
        colour = "#d43d3d" if attempts > 1 else "#6a8fbf"  # a retried chunk stands out
        plural = "s" if attempts != 1 else ""
        out.append(f'<rect x="{left + index * width:.1f}" y="{CHART_HEIGHT - 20 - high:.1f}" '
                   f'width="{max(width - 1, 0.8):.1f}" height="{high:.1f}" fill="{colour}">'
                   f"<title>{escape(name)}: ${cost:.6f} over {attempts} attempt{plural}</title></rect>")
    out.append("</svg>")
    return "".join(out)


def _value_axis(top: float, left: float) -> str:
    return (f'<line x1="{left}" y1="20" x2="{left}" y2="{CHART_HEIGHT - 20}" stroke="#999"/>'
            f'<line x1="{left}" y1="{CHART_HEIGHT - 20}" x2="{WIDTH - 10}" y2="{CHART_HEIGHT - 20}" stroke="#999"/>'
            f'<text x="{left - 6}" y="24" class="tick" text-anchor="end">${top:.6f}</text>'
            f'<text x="{left - 6}" y="{CHART_HEIGHT - 20}" class="tick" text-anchor="end">$0</text>')
