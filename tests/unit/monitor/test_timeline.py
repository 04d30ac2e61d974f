"""The timeline and its charts: a row per chunk and a bar per attempt, and bounded for huge jobs."""

from __future__ import annotations

import re

from framefarm.failures import FailureKind
from framefarm.monitor.charts import MAX_COLUMNS, cost_over_time_svg, cost_per_chunk_svg, timeline_svg
from framefarm.monitor.timeline import MAX_ROWS, build_timeline
from framefarm.status import ChunkAttempt, ChunkRecord, ChunkState, JobRecord
from tests.helpers import make_spec


def job_of(records: list[ChunkRecord], chunks: int | None = None) -> JobRecord:
    spec = make_spec(chunks or len(records), job_id="job")
    return JobRecord(id="job", spec=spec, total_chunks=len(spec.chunks), created_at=0.0, updated_at=0.0,
                     chunks=records)


def done(chunk_id: int, start: float, end: float, **figures) -> ChunkRecord:
    figures = {"attempts": 1, "duration_ms": (end - start) * 1000, **figures}
    return ChunkRecord(chunk_id=chunk_id, state=ChunkState.COMPLETED, started_at=start, finished_at=end, **figures)


def test_one_row_per_chunk_one_bar_per_attempt_coloured_by_outcome():
    # GIVEN chunk 0 rendered, chunk 1 timed out once then rendered, chunk 2 runs, chunk 3 never started
    timed_out = {1: ChunkAttempt(chunk_id=1, attempt=1, state=ChunkState.FAILED, started_at=0.0, finished_at=4.0,
                                 kind=FailureKind.TIMEOUT, duration_ms=4000.0)}
    job = job_of([done(0, 0.0, 2.0), done(1, 4.5, 6.0, attempts=2, duration_ms=5500.0, init_duration_ms=250.0,
                                           throttles=3, billed_duration_ms=1600, memory_mb=2048, cost_usd=0.0001),
                  ChunkRecord(chunk_id=2, state=ChunkState.RUNNING, started_at=5.0), ChunkRecord(chunk_id=3)])
    # WHEN its timeline is built at t=8 and drawn
    timeline = build_timeline(job, {1: timed_out}, now=8.0)
    svg = timeline_svg(timeline)
    # THEN there is one row per chunk and one bar per attempt, in the attempt's outcome
    assert [(row.first, [bar.outcome for bar in row.bars]) for row in timeline.rows] == [
        (0, ["completed"]), (1, ["transient", "completed"]), (2, ["running"]), (3, [])]
    assert svg.count('<g class="row"') == 4 and svg.count('class="bar ') == 4
    # AND the running bar reaches now; the retried chunk's second bar has its own duration, not the sum
    assert timeline.rows[2].bars[0].end == 8.0
    assert timeline.rows[1].bars[1].figures.duration_ms == 1500.0
    # AND hovering a bar says its duration, billed time, memory and cost; cold start and throttling are marked
    title = re.search(r'data-chunk="1" data-attempt="2"[^>]*><title>([^<]*)</title>', svg).group(1)
    assert "duration 1.50 s" in title and "billed 1.60 s" in title and "memory 2048 MB" in title
    assert "cost $0.000100" in title
    assert svg.count('class="cold"') == 1 and svg.count('class="throttle"') == 1
    # AND the slowest attempt is named first
    assert (timeline.slowest[0].figures.chunk_id, timeline.slowest[0].figures.attempt) == (1, 1)


def test_a_ten_thousand_chunk_job_draws_buckets_not_ten_thousand_rows():
    # GIVEN 10,000 rendered chunks, chunk 7777 much slower than the rest
    records = [done(i, i * 0.01, i * 0.01 + (30.0 if i == 7777 else 1.0)) for i in range(10_000)]
    job = job_of(records, 10_000)
    # WHEN its timeline and charts are drawn
    timeline = build_timeline(job, {}, now=200.0)
    svg = timeline_svg(timeline)
    # THEN at most MAX_ROWS rows, each a span of its chunks, and the slow chunk is still named first
    assert timeline.aggregated and len(timeline.rows) <= MAX_ROWS
    assert svg.count('<g class="row"') == len(timeline.rows) and svg.count('class="bar ') == len(timeline.rows)
    assert timeline.rows[0].title.startswith("chunks 0-24: 25 attempts (25 completed)")
    assert timeline.slowest[0].figures.chunk_id == 7777
    # AND the cost charts are bounded too
    assert cost_per_chunk_svg(job).count("<rect") <= MAX_COLUMNS
    assert len(cost_over_time_svg(timeline.bars(), timeline.start)) < 20_000


def test_cost_over_time_climbs_to_the_total_and_cost_per_chunk_shows_the_retried_chunk():
    # GIVEN two chunks that cost 1 and 3 micro-dollars, the second over two attempts
    job = job_of([done(0, 0.0, 1.0, cost_usd=1e-6), done(1, 0.0, 2.0, cost_usd=3e-6, attempts=2)])
    timeline = build_timeline(job, {}, now=5.0)
    # WHEN the cost charts are drawn
    over_time, per_chunk = cost_over_time_svg(timeline.bars(), timeline.start), cost_per_chunk_svg(job)
    # THEN the accrued cost ends at the total, and each chunk's column says its cost and attempts
    assert "<title>$0.000004 after 2.00 s</title>" in over_time
    assert "chunk 1: $0.000003 over 2 attempts" in per_chunk and "chunk 0: $0.000001 over 1 attempt<" in per_chunk
