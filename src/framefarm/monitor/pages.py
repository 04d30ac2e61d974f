"""The monitor's HTML, rendered on the server: every value escaped, CSS inline, no resource from
another origin. The job page without its live parts is also the report (``report.py``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from html import escape
from urllib.parse import quote

from framefarm.monitor.charts import COLOURS, Link, cost_over_time_svg, cost_per_chunk_svg, timeline_svg
from framefarm.monitor.live import live_summary
from framefarm.monitor.timeline import Timeline, seconds
from framefarm.status import ChunkRecord, JobRecord

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.2em 2em;color:#222;background:#fafafa}
a{color:#2457a6}h1{font-size:1.3em;margin:.2em 0}h2{font-size:1.05em;margin:1.2em 0 .3em}
table{border-collapse:collapse}td,th{padding:.2em .7em;border-bottom:1px solid #ddd;text-align:left}
.state{font-weight:600}.completed,.rendered{color:#2e7d32}.failed{color:#c62828}.running,.stitching{color:#1565c0}
.cancelled,.paused{color:#8d6e00}.facts span{margin-right:1.4em;white-space:nowrap}.facts b{font-weight:600}
.note{padding:.4em .8em;background:#eef3fb;border-left:4px solid #3a7bd5}.error{background:#fdecec;border-color:#c62828}
svg{background:#fff;border:1px solid #e3e3e3;display:block;margin:.3em 0;max-width:100%;height:auto}
svg text{font:11px sans-serif;fill:#333}
svg .tick{fill:#777;font-size:10px}.legend span{margin-right:1em}.legend i{display:inline-block;width:.9em;height:.9em;
margin-right:.3em;vertical-align:-.1em}form{display:inline;margin-right:.6em}pre{background:#fff;border:1px solid #ddd;
padding:.6em;overflow:auto;max-height:30em}progress{width:16em}
"""


def layout(title: str, body: str, *, head: str = "", script: str = "") -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">{head}<style>{STYLE}</style></head>'
            f"<body>{body}{f'<script>{script}</script>' if script else ''}</body></html>")


def when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def job_href(job_id: str) -> str:
    return f"/jobs/{quote(job_id, safe='')}"


def jobs_page(jobs: Sequence[JobRecord], now: float, *, refresh: float = 2.0,
              queue: Mapping[str, int] | None = None) -> str:
    """Every job with its state, progress, frames, cost and age, and a waiting job's place in the shared
    budget's ``queue`` (``slots.waiting_jobs``); reloads itself every ``refresh`` s."""
    rows = []
    for job in jobs:
        summary = live_summary(job, now)
        place = f' <span class="queue">#{(queue or {})[job.id]} in queue</span>' if job.id in (queue or {}) else ""
        rows.append(f'<tr class="job" data-job="{escape(job.id)}"><td><a href="{job_href(job.id)}">{escape(job.id)}</a>'
                    f'</td><td class="state {summary["state"]}">{summary["state"]}{place}</td>'
                    f'<td><progress max="100" value="{summary["percent"]}"></progress> {summary["progress"]}</td>'
                    f'<td>{summary["frames"]}</td><td>{summary["cost"]}</td>'
                    f"<td>{seconds(max(0.0, now - job.created_at))}</td></tr>")
    table = ("<table><tr><th>job</th><th>state</th><th>progress</th><th>frames</th><th>cost</th><th>age</th></tr>"
             + "".join(rows) + "</table>") if rows else "<p>no jobs yet</p>"
    head = f'<meta http-equiv="refresh" content="{refresh:g}">'
    return layout("framefarm jobs", f"<h1>framefarm jobs</h1>{table}", head=head)


def facts(job: JobRecord, now: float) -> str:
    """The job's summary: each live figure in an element the page script updates by id."""
    summary = live_summary(job, now)
    metadata = job.spec.metadata
    shown = [("state", "state"), ("progress", "progress"), ("frames", "frames"), ("elapsed", "elapsed"),
             ("eta", "ETA"), ("cost", "cost")]
    items = "".join(f'<span>{name} <b id="{key}" class="{summary[key] if key == "state" else ""}">'
                    f"{escape(str(summary[key]))}</b></span>" for key, name in shown)
    error = f'<p class="note error" id="error">{escape(job.error)}</p>' if job.error else '<p id="error"></p>'
    return (f'<p class="facts">{items}</p><p><progress id="bar" max="100" value="{summary["percent"]}"></progress> '
            f"{metadata.width}x{metadata.height} @ {metadata.fps:g} fps · created {when(job.created_at)} · "
            f"billed {seconds(job.metrics.total_billed_duration_ms / 1000)} · failed attempts "
            f"{job.metrics.failed_attempts}{f' · output {escape(job.output)}' if job.output else ''}</p>{error}")


def charts(job: JobRecord, timeline: Timeline, *, link: Link) -> str:
    """The timeline, the slowest chunks and the two cost charts (what a live update redraws)."""
    legend = "".join(f'<span><i style="background:{colour}"></i>{name}</span>' for name, colour in COLOURS.items())
    legend += '<span><i style="background:#555"></i>cold start</span><span>▼ throttled</span>'
    per_row = (f"<p>{job.total_chunks} chunks: {timeline.per_row} chunks a row (each row spans its chunks' "
               "attempts, in their worst outcome; hover for counts)</p>") if timeline.aggregated else ""
    slow_rows = "".join(
        f"<tr><td>{_chunk_link(bar.figures.chunk_id, link)}</td><td>{bar.figures.attempt}</td>"
        f'<td class="{bar.outcome}">{bar.outcome}</td><td>{seconds(bar.seconds)}</td>'
        f"<td>${bar.figures.cost_usd:.6f}</td></tr>" for bar in timeline.slowest)
    slowest = ("<h2>Slowest attempts</h2><table class=\"slowest\"><tr><th>chunk</th><th>attempt</th><th>outcome</th>"
               f"<th>duration</th><th>cost</th></tr>{slow_rows}</table>") if slow_rows else ""
    return (f'<h2>Chunk timeline</h2><p class="legend">{legend}</p>{per_row}{timeline_svg(timeline, link=link)}'
            f"{slowest}<h2>Cost over time</h2>{cost_over_time_svg(timeline.bars(), timeline.start)}"
            f"<h2>Cost per chunk</h2>{cost_per_chunk_svg(job)}")


def _chunk_link(chunk_id: int, link: Link) -> str:
    href = link(chunk_id)
    return f'<a href="{escape(href)}">{chunk_id}</a>' if href else str(chunk_id)


ACTIONS = (("cancel", "Cancel"), ("pause", "Pause"), ("resume", "Resume"))

SCRIPT = """
const here = location.pathname, ids = ["state","progress","frames","elapsed","eta","cost","error"];
let seen = null, busy = false, again = false, last = 0;
function redraw() {
  if (busy) { again = true; return; }
  busy = true; last = Date.now();
  fetch(here + "/charts").then(r => r.text()).then(t => { document.getElementById("charts").innerHTML = t; })
    .finally(() => { busy = false; if (again) { again = false; redraw(); } });
}
const events = new EventSource(here + "/events");
events.onmessage = m => {
  const d = JSON.parse(m.data);
  for (const id of ids) { const e = document.getElementById(id); e.textContent = d[id]; }
  document.getElementById("state").className = d.state;
  document.getElementById("bar").value = d.percent;
  if (d.attempts !== seen || (!d.settled && Date.now() - last > 3000) || d.settled) { seen = d.attempts; redraw(); }
  if (d.settled) events.close();
};
"""


def job_page(job: JobRecord, timeline: Timeline, now: float, *, link: Link, said: str | None = None,
             live: bool = True) -> str:
    """The job page; ``live``: with actions and the script that follows the job (the report has neither)."""
    body = ["<p><a href=\"/\">all jobs</a></p>" if live else "", f"<h1>job {escape(job.id)}</h1>", facts(job, now)]
    if said:
        body.append(f'<p class="note" id="said">{escape(said)}</p>')
    if live:
        here = job_href(job.id)
        buttons = "".join(f'<form method="post" action="{here}/{action}"><button id="{action}">{text}</button></form>'
                          for action, text in ACTIONS)
        body.append(f'<p class="actions">{buttons}<form method="post" action="{here}/retry">'
                    f'<input name="chunk" type="number" min="0" size="6" placeholder="chunk" required>'
                    f'<button id="retry">Retry chunk</button></form></p>')
    body.append(f'<div id="charts">{charts(job, timeline, link=link)}</div>')
    if not live:
        body.append(f"<p>report written {when(now)} by framefarm</p>")
    script = SCRIPT if live and not job.state.is_settled else ""
    return layout(f"framefarm job {job.id}", "".join(body), script=script)


def logs_page(job: JobRecord, record: ChunkRecord, attempts: Sequence[tuple[int, dict[str, str | None]]]) -> str:
    """Every attempt of one chunk: its stdout and stderr as kept (whole, or the record's tail)."""
    parts = [f'<p><a href="{job_href(job.id)}">job {escape(job.id)}</a></p>',
             f"<h1>chunk {record.chunk_id} · {record.state.value} · {record.attempts} attempt"
             f"{'s' if record.attempts != 1 else ''}</h1>"]
    for number, streams in attempts:
        parts.append(f'<h2 class="attempt" data-attempt="{number}">attempt {number} of {record.attempts}</h2>')
        if not any(text is not None for text in streams.values()):
            parts.append("<p>(no log kept for this attempt)</p>")
        for stream, text in streams.items():
            if text:
                parts.append(f"<p>{stream}:</p><pre>{escape(text)}</pre>")
    if record.error:
        parts.append(f'<p class="note error">{escape(record.error)}</p>')
    if not attempts:
        parts.append("<p>no attempt yet</p>")
    return layout(f"chunk {record.chunk_id} of {job.id}", "".join(parts))

