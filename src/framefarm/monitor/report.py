"""``framefarm report``: the job page as one self-contained HTML file to share after the fact: the
summary, the chunk timeline and the cost charts, with CSS and SVG inline, no script and no link out,
so it opens anywhere with no network."""

from __future__ import annotations

from collections.abc import Mapping

from framefarm.monitor.pages import job_page
from framefarm.monitor.timeline import build_timeline
from framefarm.status import ChunkAttempt, JobRecord


def report_html(job: JobRecord, earlier: Mapping[int, Mapping[int, ChunkAttempt]], now: float) -> str:
    """The report of ``job`` (with its chunk records) as it stands at ``now``."""
    return job_page(job, build_timeline(job, earlier, now), now, link=lambda chunk_id: None, live=False)
