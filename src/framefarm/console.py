"""Terminal rendering for the CLI: the render progress bar and the job/chunk tables (rich)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Collection, Mapping
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from framefarm.adapters.base import WorkerResult
from framefarm.failures import FailureKind
from framefarm.fitted_table import Column, Facts, FittedTable, drawn, end, keep, middle
from framefarm.options import RunHooks
from framefarm.status import ChunkRecord, ChunkState, DeliveryRecord, JobRecord

STATE_STYLES = {"completed": "green", "failed": "red", "cancelled": "yellow", "paused": "yellow",
                "running": "cyan", "rendered": "green", "stitching": "cyan", "pending": "dim"}
GROUP_ORDER = (ChunkState.FAILED, ChunkState.RUNNING, ChunkState.CANCELLED, ChunkState.PENDING, ChunkState.COMPLETED)
BAR_LEAST = 10  # the narrowest progress bar worth drawing
ID_LEAST = 20  # a long id is shortened to this on a narrow terminal: enough to tell jobs apart, in full elsewhere


class RenderProgress(RunHooks):
    """A progress bar: chunks done / total, failed attempts, elapsed and ETA.

    On a console that is not a terminal (CI, nohup, a pipe) a bar shows nothing until the end, so it
    prints plain lines instead: one each time another 10 % of the chunks is done, and one every
    ``every`` seconds without news.

    The run's hooks: ``progress`` and ``attempt_finished`` run on the executor's coordinating thread,
    rich redraws from its own, and plain lines after a quiet spell come from a ticker thread.
    """

    def __init__(self, console: Console, job_id: str, total: int, done: int = 0, *, every: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._console, self._job_id, self._every, self._clock = console, job_id, every, clock
        self._failures = 0
        self._done, self._total, self._stage = done, total, "chunks"
        self._lock = threading.Lock()
        self._plain = not console.is_terminal
        self._started = self._last_line = clock()
        self._last_tenth = self._tenth(done)
        self._stopped = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="framefarm-progress-lines", daemon=True)
        self._progress = Progress(*bar_columns(console.width, total), console=console, transient=False)
        self._task = self._progress.add_task(middle(job_id, ID_LEAST), total=total, completed=done, failures="")

    def __enter__(self) -> RenderProgress:
        if self._plain:
            self._started = self._last_line = self._clock()
            self._ticker.start()
        else:
            self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._plain:
            self._stopped.set()
            self._ticker.join(timeout=5)  # it wakes at once on the event; bounded all the same
        else:
            self._progress.stop()

    def progress(self, completed: int, total: int) -> None:
        self._progress.update(self._task, completed=completed, total=total)
        with self._lock:
            self._done, self._total = completed, total
            tenth = self._tenth(completed)
            news, self._last_tenth = tenth > self._last_tenth, max(tenth, self._last_tenth)
        if self._plain and news:
            self._line()

    def attempt_finished(self, chunk_id: int, attempt: int, result: WorkerResult, started_at: float,
                         finished_at: float) -> None:
        if not result.ok and result.kind is not FailureKind.CANCELLED:  # a cancel (or Ctrl-C) is not a failure
            with self._lock:
                self._failures += 1
                failures = f"[red]{self._failures} failed"
            self._progress.update(self._task, failures=failures)

    def stitch_started(self) -> None:
        self._progress.update(self._task, description="stitching")
        with self._lock:
            self._stage = "stitching"
        if self._plain:
            self._line()

    def _tenth(self, completed: int) -> int:
        return completed * 10 // self._total if self._total else 10

    def _tick(self) -> None:
        while not self._stopped.wait(timeout=self._every):
            if self._clock() - self._last_line >= self._every:
                self._line()

    def _line(self) -> None:
        """``job: 12/30 chunks (40%), 1 failed attempt, 0:00:12 elapsed`` (or ``..., stitching, ...``)."""
        with self._lock:
            now = self._clock()
            self._last_line = now
            percent = self._done * 100 // self._total if self._total else 100
            parts = [f"{self._job_id}: {self._done}/{self._total} chunks ({percent}%)"]
            if self._stage != "chunks":
                parts.append(self._stage)
            if self._failures:
                parts.append(f"{self._failures} failed attempt{'s' if self._failures != 1 else ''}")
            parts.append(f"{dt.timedelta(seconds=int(now - self._started))} elapsed")
        self._console.print(", ".join(parts), markup=False, highlight=False, soft_wrap=True)


def bar_columns(width: int, total: int) -> list[ProgressColumn]:
    """The progress bar's columns that fit ``width`` whole (rich would cut "30/300" to "30/…"): on a
    narrow terminal the ETA goes first, then the bar itself, the elapsed time, the failures."""
    digits = len(str(total))
    columns: list[tuple[int, int, list[ProgressColumn]]] = [  # rank, width, columns; in display order
        (0, ID_LEAST, [TextColumn("[bold]{task.description}")]),
        (5, BAR_LEAST, []),
        (1, 2 * digits + 1 + 1 + len("chunks"), [MofNCompleteColumn(), TextColumn("chunks")]),
        (3, digits + 1 + len(" failed"), [TextColumn("{task.fields[failures]}")]),  # retries: more than total
        (4, len("0:00:00"), [TimeElapsedColumn()]),
        (6, len("ETA 0:00:00"), [TextColumn("ETA"), TimeRemainingColumn()]),
    ]
    widths = [need for _, need, _ in columns]
    kept = keep([rank for rank, _, _ in columns], widths, width, gap=1, edges=0)
    bar = width - drawn([widths[i] for i in kept], gap=1, edges=0) + BAR_LEAST
    return [column for i in kept for column in (columns[i][2] or [BarColumn(bar_width=min(bar, 40))])]


def jobs_table(jobs: list[JobRecord], queue: Mapping[str, int] | None = None) -> FittedTable:
    """Jobs, one a line; a narrow terminal shortens long ids in the middle, then drops work, billed...
    ``queue``: the place of jobs waiting for a slot of the shared budget, by id, shown with their state."""
    queue = queue or {}
    columns = [Column("job", 0, "left", middle, least=ID_LEAST), Column("state", 1, "left"), Column("done", 2),
               Column("created", 4, "left"), Column("work", 5), Column("billed", 6), Column("cost", 3)]
    return FittedTable(columns, [
        [job.id, _job_state(job) + (f" #{queue[job.id]} in queue" if job.id in queue else ""),
         f"{job.completed_chunks}/{job.total_chunks}", _time(job.created_at),
         _ms(job.metrics.total_duration_ms), _ms(job.metrics.total_billed_duration_ms), _usd(job.metrics.cost_usd)]
        for job in jobs], title="framefarm jobs")


def job_summary(job: JobRecord) -> Facts:
    metrics = job.metrics
    lines = [
        [f"[bold]{job.id}[/]", _job_state(job),  # a floor: 299 of 300 chunks is not 100 %
         f"{int(job.progress)}% ({job.completed_chunks}/{job.total_chunks} chunks)"],
        [f"frames {job.spec.metadata.total_frames} @ {job.spec.metadata.fps:g} fps",
         f"{job.spec.metadata.width}x{job.spec.metadata.height}", f"created {_time(job.created_at)}"],
        [f"work {_ms(metrics.total_duration_ms)}", f"billed {_ms(metrics.total_billed_duration_ms)}",
         f"cost ${metrics.cost_usd:.6f}", f"failed attempts {metrics.failed_attempts}"],
    ]
    if job.output:
        lines.append([f"output {escape(job.output)}"])
    if job.error:
        label = "[yellow]paused[/]" if job.pause_reason else "[red]error[/]"  # a cap reached is no failure
        lines.append([f"{label} {escape(job.error)}"])
    return Facts(lines)


def chunks_table(job: JobRecord, states: Collection[ChunkState] = (), *, now: float | None = None) -> FittedTable:
    """A job's chunks grouped by state, problems first (only ``states``, if given); a running chunk shows
    how long its attempt has run. A narrow terminal cuts the error short, then drops billed, duration..."""
    columns = [Column("chunk", 0), Column("frames", 4, "left"), Column("state", 1, "left"), Column("attempts", 2),
               Column("duration", 6), Column("billed", 7), Column("cost", 5),
               Column("error", 3, "left", end, least=12)]
    frames = {chunk.id: chunk for chunk in job.spec.chunks}
    now = time.time() if now is None else now
    rows: list[list[str] | None] = []
    for group in chunk_groups(job, states).values():
        rows.extend([None] if rows else [])  # a rule between two states
        for record in group:
            chunk = frames.get(record.chunk_id)
            span = f"{chunk.start_frame}-{chunk.end_frame - 1}" if chunk else "?"
            state = _state(record.state.value)
            if record.state is ChunkState.RUNNING and record.started_at is not None:
                state += f" {dt.timedelta(seconds=max(0, int(now - record.started_at)))}"
            rows.append([str(record.chunk_id), span, state, str(record.attempts), _ms(record.duration_ms),
                         _ms(record.billed_duration_ms), _usd(record.cost_usd), _one_line(record)])
    return FittedTable(columns, rows)


def chunk_groups(job: JobRecord, states: Collection[ChunkState] = ()) -> dict[ChunkState, list[ChunkRecord]]:
    """The job's chunks by state, problems first: failed, running, cancelled, pending, completed."""
    groups: dict[ChunkState, list[ChunkRecord]] = {state: [] for state in GROUP_ORDER if not states or state in states}
    for record in job.chunks:
        if record.state in groups:
            groups[record.state].append(record)
    return {state: records for state, records in groups.items() if records}


def chunk_counts(job: JobRecord) -> str:
    """``chunks: 1 failed, 2 running, 297 completed``."""
    return "chunks: " + ", ".join(f"{len(records)} {_state(state.value)}"
                                  for state, records in chunk_groups(job).items())


def cost_table(job: JobRecord) -> FittedTable:
    """Billed time and cost per chunk, most expensive first, with memory and throttling."""
    columns = [Column("chunk", 0), Column("attempts", 3), Column("billed", 1), Column("memory", 5),
               Column("max used", 4), Column("init", 6), Column("throttled", 7), Column("cost", 2)]
    rows = [[str(record.chunk_id), str(record.attempts), _ms(record.billed_duration_ms),
             f"{record.memory_mb} MB" if record.memory_mb else "-",
             f"{record.max_memory_used_mb} MB" if record.max_memory_used_mb else "-",
             _ms(record.init_duration_ms) if record.init_duration_ms else "-", str(record.throttles),
             _usd(record.cost_usd)]
            for record in sorted(job.chunks, key=lambda r: r.cost_usd, reverse=True)]
    billed = _ms(job.metrics.total_billed_duration_ms)
    title = f"{middle(job.id, ID_LEAST)}: ${job.metrics.cost_usd:.6f} for {billed} billed"
    return FittedTable(columns, rows, title=title)


def deliveries_table(records: list[DeliveryRecord]) -> FittedTable:
    """A job's webhook deliveries, oldest first: event, state, attempts and their outcomes, why it stopped."""
    columns = [Column("webhook", 0, "left"), Column("state", 1, "left"), Column("attempts", 2),
               Column("outcomes", 4, "left", end, least=8), Column("url", 5, "left", middle, least=16),
               Column("error", 3, "left", end, least=12)]
    rows: list[list[str] | None] = [
        [record.event, _state(record.state.value), str(record.attempts), " ".join(record.outcomes), record.url,
         record.error or ""] for record in records]
    return FittedTable(columns, rows)


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


def _job_state(job: JobRecord) -> str:
    """The job's state, a pause with its reason when it is not the asked-for kind: ``paused (budget)``."""
    reason = job.pause_reason
    return _state(job.state.value) + (f" ({reason})" if reason and reason != "requested" else "")


def _ms(value: float) -> str:
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def _usd(value: float) -> str:
    return f"${value:.6f}" if value else "-"


def _time(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch).strftime("%m-%d %H:%M:%S")
