"""A job's attempts laid out in time: one row per chunk and one bar per attempt, or, for a job with
more chunks than a page can draw, one row per bucket of neighbouring chunks (its span, its worst
outcome) with the slowest chunks listed apart — a few hundred SVG nodes, whatever the job's size."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from framefarm.attempt_history import attempts_of
from framefarm.status import ChunkAttempt, ChunkState, JobRecord

#: Rows drawn one per chunk up to this many chunks; above it, chunks share rows.
MAX_ROWS = 400
#: How many of the slowest chunks a timeline names.
SLOWEST = 10
#: Outcomes, the worst first: a bucket row takes the worst of its attempts.
OUTCOMES = ("running", "failed", "transient", "cancelled", "completed")


@dataclass(frozen=True, slots=True)
class Bar:
    """One attempt from ``start`` to ``end`` (now, while it runs)."""

    figures: ChunkAttempt
    start: float
    end: float
    outcome: str

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def cold_start_s(self) -> float:
        return (self.figures.init_duration_ms or 0.0) / 1000.0

    def title(self) -> str:
        """What hovering the bar says: the attempt's duration, billed time, memory and cost."""
        f = self.figures
        parts = [f"chunk {f.chunk_id} attempt {f.attempt}: {self.outcome}", f"duration {seconds(self.seconds)}"]
        if self.outcome != "running":
            parts.append(f"billed {seconds(f.billed_duration_ms / 1000)}")
            if f.memory_mb:
                used = f", max used {f.max_memory_used_mb} MB" if f.max_memory_used_mb else ""
                parts.append(f"memory {f.memory_mb} MB{used}")
            parts.append(f"cost ${f.cost_usd:.6f}")
        if f.init_duration_ms:
            parts.append(f"cold start {seconds(self.cold_start_s)}")
        if f.throttles:
            parts.append(f"throttled {f.throttles}x before it ran")
        if f.error:
            parts.append(f.error if len(f.error) <= 120 else f.error[:117] + "...")
        return " · ".join(parts)


@dataclass(frozen=True)
class Row:
    """Chunks ``first``..``last`` (one chunk unless aggregated) and their bars (one per attempt, or one
    span per bucket)."""

    first: int
    last: int
    bars: tuple[Bar, ...]
    attempts: int
    title: str = ""

    @property
    def label(self) -> str:
        return f"chunk {self.first}" if self.first == self.last else f"chunks {self.first}-{self.last}"


@dataclass(frozen=True)
class Timeline:
    rows: tuple[Row, ...]
    start: float
    end: float
    per_row: int  # chunks per row: 1, or the bucket size
    slowest: tuple[Bar, ...]

    @property
    def aggregated(self) -> bool:
        return self.per_row > 1

    def bars(self) -> list[Bar]:
        return [bar for row in self.rows for bar in row.bars]


def outcome(figures: ChunkAttempt) -> str:
    if figures.state is ChunkState.FAILED and figures.kind is not None and figures.kind.transient:
        return "transient"
    return figures.state.value


def attempt_bars(job: JobRecord, earlier: Mapping[int, Mapping[int, ChunkAttempt]], now: float
                 ) -> dict[int, list[Bar]]:
    """Each chunk's attempts as bars, by chunk id (an attempt without a start time is left out)."""
    bars: dict[int, list[Bar]] = {}
    for record in job.chunks:
        row = bars[record.chunk_id] = []
        for figures in attempts_of(record, earlier.get(record.chunk_id, {})):
            if figures.started_at is None:
                continue
            end = figures.finished_at if figures.finished_at is not None else now
            row.append(Bar(figures, figures.started_at, max(end, figures.started_at), outcome(figures)))
    return bars


def build_timeline(job: JobRecord, earlier: Mapping[int, Mapping[int, ChunkAttempt]], now: float, *,
                   max_rows: int = MAX_ROWS) -> Timeline:
    """The job's timeline at ``now``: a row per chunk, or per bucket when it has over ``max_rows`` chunks."""
    by_chunk = attempt_bars(job, earlier, now)
    every = [bar for bars in by_chunk.values() for bar in bars]
    start = min((bar.start for bar in every), default=job.created_at)
    end = max((bar.end for bar in every), default=start)
    slowest = tuple(sorted(every, key=lambda bar: bar.seconds, reverse=True)[:SLOWEST])
    ids = sorted(by_chunk)
    per_row = max(1, -(-len(ids) // max_rows))
    if per_row == 1:
        rows = tuple(Row(chunk_id, chunk_id, tuple(by_chunk[chunk_id]), len(by_chunk[chunk_id])) for chunk_id in ids)
    else:
        rows = tuple(bucket_row(ids[at:at + per_row], by_chunk) for at in range(0, len(ids), per_row))
    return Timeline(rows, start, max(end, start), per_row, slowest)


def bucket_row(ids: list[int], by_chunk: Mapping[int, list[Bar]]) -> Row:
    """Neighbouring chunks as one row: a single span from their first start to their last end, in the
    worst outcome among them; its title counts outcomes and names the slowest attempt."""
    bars = [bar for chunk_id in ids for bar in by_chunk[chunk_id]]
    counts = {name: sum(bar.outcome == name for bar in bars) for name in OUTCOMES}
    said = ", ".join(f"{count} {name}" for name, count in counts.items() if count)
    label = f"chunks {ids[0]}-{ids[-1]}: {len(bars)} attempts" + (f" ({said})" if said else "")
    if not bars:
        return Row(ids[0], ids[-1], (), 0, label)
    worst = next(name for name in OUTCOMES if counts[name])
    slow = max(bars, key=lambda bar: bar.seconds)
    span_figures = ChunkAttempt(chunk_id=ids[0], attempt=len(bars), state=slow.figures.state,
                                  cost_usd=sum(bar.figures.cost_usd for bar in bars),
                                  billed_duration_ms=sum(bar.figures.billed_duration_ms for bar in bars))
    span = Bar(span_figures, min(bar.start for bar in bars), max(bar.end for bar in bars), worst)
    title = (f"{label}; slowest: chunk {slow.figures.chunk_id} attempt {slow.figures.attempt}, "
             f"{seconds(slow.seconds)}; billed {seconds(span_figures.billed_duration_ms / 1000)}, "
             f"cost ${span_figures.cost_usd:.6f}")
    return Row(ids[0], ids[-1], (span,), len(bars), title)


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 60 else f"{int(value // 60)} min {value % 60:04.1f} s"
