"""The chunk table of `framefarm status`."""

from __future__ import annotations

import io

from rich.console import Console

from framefarm.console import chunks_table
from framefarm.failures import FailureKind
from framefarm.status import ChunkRecord, ChunkState, JobRecord
from tests.helpers import make_spec


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
