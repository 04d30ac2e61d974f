"""The chunk table of `framefarm status`."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from framefarm.console import RenderProgress, chunks_table, cost_table, job_summary, jobs_table
from framefarm.failures import FailureKind
from framefarm.status import ChunkRecord, ChunkState, JobRecord
from tests.helpers import eventually, make_spec


def error_cells(job: JobRecord) -> list[str]:
    """The error column, one cell per chunk, as a wide terminal shows it."""
    console = Console(width=300, record=True, file=io.StringIO())
    console.print(chunks_table(job))
    lines = console.export_text().splitlines()
    return [line.split("│")[-2].strip() for line in lines if line.startswith("│")]


def test_the_error_column_leads_with_the_failure_kind_within_80_characters():
    # GIVEN chunks that failed by a timeout, by their command's exit code, with a long error, and one that completed
    job = JobRecord.new(make_spec(4, job_id="shown"), now=1.0).model_copy(update={"chunks": [
        ChunkRecord(chunk_id=0, state=ChunkState.FAILED, attempts=2, kind=FailureKind.TIMEOUT,
                    error="the command ran past its 30 s timeout"),
        ChunkRecord(chunk_id=1, state=ChunkState.FAILED, attempts=1, kind=FailureKind.EXIT_CODE, error="exit code 1"),
        ChunkRecord(chunk_id=2, state=ChunkState.FAILED, attempts=1, kind=FailureKind.CONNECTION_LOST,
                    error="E" * 200),
        ChunkRecord(chunk_id=3, state=ChunkState.COMPLETED, attempts=1),
    ]})
    # WHEN the table is drawn
    cells = error_cells(job)
    # THEN the kind leads the error, unless the error already starts with it, and no cell passes 80 characters
    assert cells == ["timeout: the command ran past its 30 s timeout", "exit code 1",
                     "connection_lost: " + "E" * 60 + "...", ""]


LONG_ID = "render-2026-12-01-nightly-trailer-final-v3-4k"


def big_job(chunks: int = 300) -> JobRecord:
    """A job with a long id, 300 chunks, and costs and durations with every digit used."""
    job = JobRecord.new(make_spec(chunks, frames_per_chunk=1000, job_id=LONG_ID), now=1.0)
    records = [ChunkRecord(chunk_id=i, state=ChunkState.FAILED if i == 7 else ChunkState.COMPLETED, attempts=12,
                           duration_ms=123456.7, billed_duration_ms=123457, cost_usd=0.0013456789,
                           memory_mb=10240, max_memory_used_mb=10111, init_duration_ms=1234.5, throttles=99,
                           error="the command ran past its 900 s timeout [and more]" if i == 7 else None)
               for i in range(chunks)]
    metrics = job.metrics.model_copy(update={"cost_usd": 123.4567891, "total_duration_ms": 98765432.1,
                                             "total_billed_duration_ms": 98765432})
    return job.model_copy(update={"chunks": records, "completed_chunks": chunks - 1, "metrics": metrics})


def drawn(renderable: object, width: int) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text().splitlines()


def cells(line: str, edge: str = "│") -> list[str]:
    return [cell.strip() for cell in line.strip().strip(edge).split(edge)]


@pytest.mark.parametrize("width", [80, 50])
@pytest.mark.parametrize("draw, rows", [(lambda job: jobs_table([job]), 1), (chunks_table, 300), (cost_table, 300)])
def test_tables_fit_the_terminal_one_line_a_row_without_cutting_a_number(width, draw, rows):
    # GIVEN a job with a long id, 300 chunks and large numbers
    job = big_job()
    # WHEN a table is drawn 80 or 50 columns wide
    lines = drawn(draw(job), width)
    # THEN every line fits, every row is one line, and only ids and errors are shortened, never a number
    assert all(len(line) <= width for line in lines)
    header = cells(next(line for line in lines if line.startswith("┃")), "┃")
    table = [dict(zip(header, cells(line), strict=True)) for line in lines if line.startswith("│")]
    assert len(table) == rows  # strict: every row has a cell under every header
    assert not [(name, cell) for row in table for name, cell in row.items() if "…" in cell and name not in ("job", "error")]
    assert header[0] in ("job", "chunk") and len(header) >= 3  # fewer columns, the ones that name a row first
    assert all(row.get("cost") in ("$123.456789", "$0.001346", None) and row.get("attempts") in ("12", None)
               and row.get("done") in ("299/300", None) for row in table)


def test_a_long_id_is_shortened_in_the_middle_only_when_the_table_needs_it():
    # GIVEN a job with a long id
    job = big_job(chunks=2)
    # WHEN the job list is drawn wide, then 50 columns wide
    wide, narrow = drawn(jobs_table([job]), 200), drawn(jobs_table([job]), 50)
    # THEN a wide terminal shows the id whole, and a narrow one shows its head and tail, with its state and count
    assert LONG_ID in "\n".join(wide) and "$123.456789" in "\n".join(wide)
    row = next(line for line in narrow if "…" in line)
    assert "│ render-2026-12…er-final-v3-4k │ pending │  1/2 │" == row


@pytest.mark.parametrize("width", [80, 50])
def test_the_job_summary_wraps_between_facts_and_rounds_progress_down(width):
    # GIVEN a job with a long id, 299 of its 300 chunks done, and large numbers
    job = big_job()
    # WHEN its summary is drawn 80 or 50 columns wide
    lines = drawn(job_summary(job), width)
    # THEN each fact stays whole on one line, and 299 of 300 chunks is not shown as 100 %
    assert all(len(line) <= width for line in lines)
    for fact in (LONG_ID, "99% (299/300 chunks)", "created 01-01 00:00:01", "cost $123.456789", "billed 98765.43 s"):
        assert any(fact in line for line in lines), fact


def test_plain_progress_says_where_a_quiet_run_stands_every_few_seconds():
    # GIVEN progress lines on a console that is not a terminal, a line due after 0.01 s without news
    out = io.StringIO()
    progress = RenderProgress(Console(file=out, width=80), "quiet", total=5, done=1, every=0.01)
    # WHEN no chunk finishes for a while
    with progress:
        eventually(lambda: "\n" in out.getvalue(), timeout=10, what="a line without news")
    # THEN a plain line says where the job stands
    assert out.getvalue().splitlines()[0].startswith("quiet: 1/5 chunks (20%), ")


def test_a_running_chunk_shows_how_long_its_attempt_has_run():
    # GIVEN a chunk that started 75 s ago, and one done
    job = JobRecord.new(make_spec(2, job_id="live"), now=1.0).model_copy(update={"chunks": [
        ChunkRecord(chunk_id=0, state=ChunkState.COMPLETED, attempts=1),
        ChunkRecord(chunk_id=1, state=ChunkState.RUNNING, attempts=0, started_at=1000.0)]})
    # WHEN the chunk table is drawn at 1075 s
    lines = drawn(chunks_table(job, now=1075.0), 80)
    # THEN the running chunk comes first, with its elapsed time, and a rule parts it from the completed one
    rows = [line for line in lines if line.startswith(("│", "├"))]
    assert cells(rows[0])[:3] == ["1", "10-19", "running 0:01:15"]
    assert rows[1].startswith("├─") and cells(rows[2])[:3] == ["0", "0-9", "completed"]
