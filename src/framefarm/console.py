"""Terminal rendering for the CLI: the render progress bar and the job/chunk tables (rich)."""

from __future__ import annotations

import datetime as dt
import threading
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from framefarm.adapters.base import WorkerResult
from framefarm.options import RunHooks
from framefarm.status import ChunkRecord, JobRecord

STATE_STYLES = {"completed": "green", "failed": "red", "cancelled": "yellow", "paused": "yellow",
                "running": "cyan", "rendered": "green", "stitching": "cyan", "pending": "dim"}


class RenderProgress(RunHooks):
    """A progress bar: chunks done / total, failed attempts, elapsed and ETA.

    The run's hooks: ``progress`` and ``attempt_finished`` run on the executor's coordinating thread,
    rich redraws from its own.
    """

    def __init__(self, console: Console, job_id: str, total: int, done: int = 0) -> None:
        self._failures = 0
        self._lock = threading.Lock()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("chunks"), TextColumn("{task.fields[failures]}"), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
        )
        self._task = self._progress.add_task(job_id, total=total, completed=done, failures="")

    def __enter__(self) -> RenderProgress:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._progress.stop()

    def progress(self, completed: int, total: int) -> None:
        self._progress.update(self._task, completed=completed, total=total)

    def attempt_finished(self, chunk_id: int, attempt: int, result: WorkerResult, started_at: float,
                         finished_at: float) -> None:
        if not result.ok:
            with self._lock:
                self._failures += 1
                failures = f"[red]{self._failures} failed attempt{'s' if self._failures != 1 else ''}"
            self._progress.update(self._task, failures=failures)

    def stitch_started(self) -> None:
        self._progress.update(self._task, description="stitching")


def jobs_table(jobs: list[JobRecord]) -> Table:
    table = Table(title="framefarm jobs")
    # Ids are what users copy into the next command: never cut them.
    table.add_column("job", no_wrap=True, min_width=max((len(job.id) for job in jobs), default=3))
    table.add_column("state", no_wrap=True)
    for column in ("done", "created", "work", "billed", "cost"):
        table.add_column(column, no_wrap=True, justify="left" if column == "created" else "right")
    for job in jobs:
        table.add_row(job.id, _state(job.state.value), f"{job.completed_chunks}/{job.total_chunks}",
                      _time(job.created_at), _ms(job.metrics.total_duration_ms),
                      _ms(job.metrics.total_billed_duration_ms), _usd(job.metrics.cost_usd))
    return table


def job_summary(job: JobRecord) -> str:
    metrics = job.metrics
    lines = [
        f"[bold]{job.id}[/]  {_state(job.state.value)}  {job.progress:.0f}% "
        f"({job.completed_chunks}/{job.total_chunks} chunks)",
        f"frames {job.spec.metadata.total_frames} @ {job.spec.metadata.fps:g} fps, "
        f"{job.spec.metadata.width}x{job.spec.metadata.height}; created {_time(job.created_at)}",
        f"work {_ms(metrics.total_duration_ms)}, billed {_ms(metrics.total_billed_duration_ms)}, "
        f"cost ${metrics.cost_usd:.6f}, failed attempts {metrics.failed_attempts}",
    ]
    if job.output:
        lines.append(f"output {job.output}")
    if job.error:
        lines.append(f"[red]error[/] {job.error}")
    return "\n".join(lines)


def chunks_table(job: JobRecord) -> Table:
    table = Table()
    for column in ("chunk", "frames", "state", "attempts", "duration", "billed", "cost"):
        table.add_column(column, no_wrap=True, justify="left" if column in ("frames", "state") else "right")
    table.add_column("error", overflow="fold")
    frames = {chunk.id: chunk for chunk in job.spec.chunks}
    for record in job.chunks:
        chunk = frames.get(record.chunk_id)
        span = f"{chunk.start_frame}-{chunk.end_frame - 1}" if chunk else "?"
        table.add_row(str(record.chunk_id), span, _state(record.state.value), str(record.attempts),
                      _ms(record.duration_ms), _ms(record.billed_duration_ms), _usd(record.cost_usd),
                      _one_line(record))
    return table


def cost_table(job: JobRecord) -> Table:
    """Billed time and cost per chunk, most expensive first, with memory and throttling."""
    table = Table(title=f"{job.id}: ${job.metrics.cost_usd:.6f} for {_ms(job.metrics.total_billed_duration_ms)} billed")
    for column in ("chunk", "attempts", "billed", "memory", "max used", "init", "throttled", "cost"):
        table.add_column(column, no_wrap=True, justify="right")
    for record in sorted(job.chunks, key=lambda r: r.cost_usd, reverse=True):
        table.add_row(str(record.chunk_id), str(record.attempts), _ms(record.billed_duration_ms),
                      f"{record.memory_mb} MB" if record.memory_mb else "-",
                      f"{record.max_memory_used_mb} MB" if record.max_memory_used_mb else "-",
                      _ms(record.init_duration_ms) if record.init_duration_ms else "-",
                      str(record.throttles), _usd(record.cost_usd))
    return table


def _one_line(record: ChunkRecord) -> str:
    """The chunk's error led by its failure kind ("timeout: ..."), within the column's 80 characters."""
    if not record.error:
        return ""
    text = record.error
    if record.kind is not None and not text.startswith(record.kind.value.replace("_", " ")):
        text = f"{record.kind.value}: {text}"  # an error that starts with its kind ("exit code 1") says it already
    return text if len(text) <= 80 else text[:77] + "..."


def _state(state: str) -> str:
    return f"[{STATE_STYLES.get(state, 'white')}]{state}[/]"


def _ms(value: float) -> str:
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def _usd(value: float) -> str:
    return f"${value:.6f}" if value else "-"


def _time(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch).strftime("%m-%d %H:%M:%S")
