"""A part of a job: select_frames keeps the chunks covering a frame range, and ff.submit(frames=) renders it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import framefarm as ff
from framefarm import api
from framefarm.errors import JobSpecError
from framefarm.spec import JobSpec, plan_job, select_frames

JOB = {"width": 64, "height": 48, "fps": 30, "total_frames": 900, "frames_per_chunk": 150,
       "command": "render {start_frame} {last_frame} {output}", "audio": "tone {duration} {output}"}


def test_the_chunks_covering_a_range_are_kept_whole_with_their_ids_frames_and_commands():
    # GIVEN a job of six 150-frame chunks
    spec = plan_job(JOB, job_id="scene")
    # WHEN frames 200-400 are selected
    part = select_frames(spec, 200, 400)
    # THEN chunks 1 and 2 (frames 150-449) are kept as they were, and the part is 300 frames from frame 150
    assert [chunk.id for chunk in part.chunks] == [1, 2]
    assert part.chunks == [spec.chunk(1), spec.chunk(2)]
    assert part.chunks[0].command == ["render", "150", "299", "chunks/00001.mp4"]
    assert (part.first_frame, part.metadata.total_frames, part.metadata.duration) == (150, 300, 10.0)
    # AND it has no audio track (the track covers the whole video), and it round-trips as a JobSpec
    assert part.audio is None and part.id == "scene"
    assert JobSpec.model_validate_json(part.model_dump_json()) == part


@pytest.mark.parametrize(("first", "last", "chunks"), [(0, 0, [0]), (149, 150, [0, 1]), (750, 899, [5]),
                                                       (0, 899, [0, 1, 2, 3, 4, 5])])
def test_a_range_takes_every_chunk_it_touches(first, last, chunks):
    assert [chunk.id for chunk in select_frames(plan_job(JOB), first, last).chunks] == chunks


@pytest.mark.parametrize(("first", "last", "message"), [
    (400, 200, "frames: 400-200 ends before it starts; give A-B with A <= B"),
    (850, 900, "frames: 850-900 is outside job scene's frames 0-899"),
])
def test_a_bad_range_is_one_clear_error(first, last, message):
    with pytest.raises(JobSpecError) as caught:
        select_frames(plan_job(JOB, job_id="scene"), first, last)
    assert str(caught.value) == message


def test_a_part_of_a_part_stays_inside_it():
    part = select_frames(plan_job(JOB, job_id="scene"), 200, 400)
    with pytest.raises(JobSpecError, match="outside job scene's frames 150-449"):
        select_frames(part, 100, 200)
    assert [chunk.id for chunk in select_frames(part, 300, 449).chunks] == [2]


def test_submit_with_frames_stores_and_renders_only_the_chunks_covering_them(tmp_path: Path):
    # GIVEN a job of four one-frame chunks that write their id
    job = {"width": 64, "height": 48, "fps": 10, "total_frames": 4, "frames_per_chunk": 1,
           "command": [sys.executable, "-c", "import sys; open(sys.argv[2], 'w').write(sys.argv[1])",
                       "{chunk_id}", "{output}"]}
    backend = ff.Local(home=tmp_path / "home")
    # WHEN frames 1-2 of it are rendered
    result = ff.render(job, backend=backend, job_id="part", frames=(1, 2))
    # THEN the job holds chunks 1 and 2 only, both rendered, and chunks 0 and 3 never ran
    stored = backend.repository().require("part")
    assert [record.chunk_id for record in stored.chunks] == [1, 2] and result.frames == 2
    assert result.state is ff.JobState.RENDERED
    chunks = tmp_path / "home" / "jobs" / "part" / "chunks"
    assert sorted(path.name for path in chunks.iterdir()) == ["00001.mp4", "00002.mp4"]
    # AND a bad range stores nothing
    with pytest.raises(JobSpecError, match="ends before it starts"):
        ff.submit(job, backend=backend, job_id="bad", frames=(2, 1))
    assert backend.repository().get("bad") is None


def test_a_part_sent_to_the_submit_function_is_the_part_in_full(monkeypatch):
    # GIVEN a Lambda backend with a submit function, and what it is sent recorded
    sent: list[dict] = []

    def submit_function(backend, document, options, *, client_token=None):
        sent.append(document)
        return {"job_id": document["id"]}

    monkeypatch.setattr(api, "submit_to_lambda", submit_function)
    backend = ff.Lambda(table="t", bucket="b", submit_function="framefarm-submit")
    # WHEN frames 200-400 of a template are submitted
    handle = ff.submit(JOB, backend=backend, job_id="scene", frames=(200, 400))
    # THEN the function gets the planned part (chunks 1 and 2 from frame 150, no audio), which it can check alone
    assert handle.job_id == "scene"
    part = JobSpec.model_validate(sent[0])
    assert [chunk.id for chunk in part.chunks] == [1, 2] and part.first_frame == 150 and part.audio is None
