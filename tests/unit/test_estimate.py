"""framefarm.estimate: which earlier chunks count as this job's, and how they are projected onto it."""

from __future__ import annotations

import pytest

from framefarm.estimate import _laid_out, _projected, _same_chunks, chunk_key
from framefarm.spec import select_frames
from framefarm.status import ChunkRecord, ChunkState, JobRecord
from tests.helpers import make_spec


def done(chunk_id: int, cost: float, ms: float, *, cold: bool = False) -> ChunkRecord:
    return ChunkRecord(chunk_id=chunk_id, state=ChunkState.COMPLETED, attempts=1, cost_usd=cost, duration_ms=ms,
                       init_duration_ms=300.0 if cold else None)


def test_the_same_chunk_is_the_same_frames_and_command_whatever_the_job():
    # GIVEN a job, its --frames part under another id, and a job whose command differs
    spec = make_spec(4, job_id="full")
    part = select_frames(spec, 10, 19).model_copy(update={"id": "part"})
    other = make_spec(4, job_id="other", command="render --fast {start_frame} {end_frame} {output}")
    wanted = {chunk_key(spec, chunk) for chunk in spec.chunks}
    # WHEN their completed chunks are matched against the job
    record = JobRecord.new(part, now=0).model_copy(update={"chunks": [done(1, 0.02, 900)]})
    stranger = JobRecord.new(other, now=0).model_copy(update={"chunks": [done(1, 0.02, 900)]})
    # THEN the part's chunk counts, the other command's does not, nor an unpriced one where cost is wanted
    assert [(job_id, chunk.id) for job_id, chunk, _ in _same_chunks(record, wanted, priced=True)] == [("part", 1)]
    assert _same_chunks(stranger, wanted, priced=True) == []
    free = record.model_copy(update={"chunks": [done(1, 0.0, 900)]})
    assert _same_chunks(free, wanted, priced=True) == [] and len(_same_chunks(free, wanted, priced=False)) == 1


def test_the_first_wave_is_projected_cold_and_the_rest_warm():
    # GIVEN one cold chunk ($0.03, 3 s) and one warm ($0.01, 1 s) of a job of 6 ten-frame chunks
    spec = make_spec(6, job_id="six")
    matched = [("sample", spec.chunk(0), done(0, 0.03, 3000, cold=True)), ("sample", spec.chunk(1), done(1, 0.01, 1000))]
    # WHEN it is projected at 2 chunks in flight
    guess = _projected(spec, matched, 2, priced=True, basis="sample")
    # THEN 2 chunks cost the cold rate and 4 the warm one; the wall time lays 3+3, then 1+1+1+1 on two workers
    assert guess.cost_usd == pytest.approx(2 * 0.03 + 4 * 0.01)
    assert guess.wall_s == pytest.approx(5.0) and guess.work_s == pytest.approx(10.0)
    assert (guess.sources, guess.samples, guess.chunks, guess.frames) == (("sample",), 2, 6, 60)
    # AND with only warm chunks known, every chunk is warm; on a backend with no cost, there is none
    warm_only = _projected(spec, matched[1:], 2, priced=False, basis="history")
    assert warm_only.cost_usd is None and warm_only.work_s == pytest.approx(6.0)


def test_work_is_laid_out_on_the_first_free_worker():
    assert _laid_out([3, 1, 1, 1], 2) == 3 and _laid_out([1] * 5, 2) == 3 and _laid_out([2.5], 8) == 2.5
