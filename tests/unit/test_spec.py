"""Job files and the job model: planning, placeholders, and one-line validation errors."""

from __future__ import annotations

import json

import pytest

from framefarm import Chunk, JobSpec, JobSpecError, RenderMetadata, load_job_file, plan_job

TEMPLATE = {"width": 320, "height": 240, "fps": 30, "total_frames": 100, "frames_per_chunk": 30,
            "command": "{ffmpeg} -vf trim=start_frame={start_frame}:end_frame={end_frame} -s {width}x{height} {output}"}
META = {"total_frames": 30, "fps": 10, "width": 64, "height": 48}


def chunk(cid: int, start: int, count: int, output: str | None = None) -> dict:
    return {"id": cid, "start_frame": start, "frame_count": count, "output_file": output or f"c{cid}.mp4",
            "command": ["render"]}


def test_template_is_planned_into_contiguous_chunks():
    spec = plan_job(TEMPLATE, job_id="j1")
    assert [(c.id, c.start_frame, c.frame_count) for c in spec.chunks] == [
        (0, 0, 30), (1, 30, 30), (2, 60, 30), (3, 90, 10)]
    assert spec.chunks[3].command == ["{ffmpeg}", "-vf", "trim=start_frame=90:end_frame=100", "-s", "320x240",
                                      "chunks/00003.mp4"]
    assert spec.chunks[3].output_file == "chunks/00003.mp4"
    assert spec.metadata.duration == pytest.approx(100 / 30)


def test_chunk_count_spreads_frames_evenly():
    spec = plan_job({**{k: v for k, v in TEMPLATE.items() if k != "frames_per_chunk"}, "chunks": 3})
    assert [c.frame_count for c in spec.chunks] == [34, 33, 33]


def test_placeholder_values_never_split_or_join_arguments():
    # GIVEN an output path with a space and shell metacharacters in the command
    spec = plan_job({**TEMPLATE, "chunk_output": "my chunks/{chunk_id}.mp4",
                     "command": "tool --title 'a; rm -rf /' {output}"})
    # THEN each stays one literal argument
    assert spec.chunks[0].command == ["tool", "--title", "a; rm -rf /", "my chunks/0.mp4"]


def test_audio_command_is_planned_once_with_total_duration():
    spec = plan_job({**TEMPLATE, "audio": "{ffmpeg} -i sine=duration={duration} {output}"})
    assert spec.audio is not None
    assert spec.audio.command == ["{ffmpeg}", "-i", "sine=duration=3.333333", "audio.m4a"]


def test_unknown_placeholder_is_named():
    with pytest.raises(JobSpecError, match=r"command: unknown placeholder \{start\}"):
        plan_job({**TEMPLATE, "command": "x {start}"})


@pytest.mark.parametrize(("change", "message"), [
    ({"fps": 0}, r"^fps: Input should be greater than 0 \(got 0\)"),
    ({"total_frames": -5}, r"^total_frames: Input should be greater than 0"),
    ({"total_frames": 10**12}, r"^total_frames: Input should be less than or equal to 10000000"),
    ({"chunks": 3}, r"give exactly one of frames_per_chunk or chunks"),
    ({"colour": "red"}, r"^colour: unknown field"),
    ({"command": ""}, r"^command: is empty"),
    ({"command": "ffmpeg 'unclosed"}, r"^command: cannot be split into arguments"),
    ({"width": "wide"}, r"^width: Input should be a valid integer"),
])
def test_bad_templates_fail_with_one_line_naming_the_field(change, message):
    with pytest.raises(JobSpecError, match=message) as raised:
        plan_job({**TEMPLATE, **change})
    assert "\n" not in str(raised.value)


def test_valid_explicit_spec():
    spec = JobSpec(metadata=META, chunks=[chunk(0, 0, 10), chunk(1, 10, 20)])
    assert spec.chunk(1).end_frame == 30
    assert isinstance(spec.chunks[0], Chunk) and isinstance(spec.metadata, RenderMetadata)


@pytest.mark.parametrize(("chunks", "message"), [
    ([chunk(0, 0, 20), chunk(1, 10, 20)], r"chunks\[1\]\.start_frame: 10 overlaps chunk 0 \(frames 0-19\)"),
    ([chunk(0, 0, 10), chunk(1, 15, 15)], r"chunks\[1\]\.start_frame: 15 leaves frames 10-14 uncovered"),
    ([chunk(0, 0, 10), chunk(0, 10, 20)], r"chunks\[1\]\.id: 0 duplicates chunks\[0\]\.id"),
    ([chunk(0, 0, 10), chunk(1, 10, 10)], r"frame counts sum to 20, but metadata.total_frames is 30"),
    ([chunk(0, 0, 10, "a.mp4"), chunk(1, 10, 20, "a.mp4")], r"chunks\[1\]\.output_file: 'a.mp4' is also"),
    ([chunk(0, 0, 30, "../../x")], r"chunks\[0\]\.output_file: '../../x' escapes the job directory"),
    ([chunk(0, 0, 30, "/etc/passwd")], r"chunks\[0\]\.output_file: '/etc/passwd' escapes the job directory"),
    ([chunk(0, 0, 30, "a\\..\\..\\x")], r"chunks\[0\]\.output_file: .* backslash"),
    ([{**chunk(0, 0, 30), "frame_count": 0}], r"chunks\[0\]\.frame_count: Input should be greater than 0"),
    ([{**chunk(0, 0, 30), "shell": True}], r"chunks\[0\]\.shell: unknown field"),
    ([], r"chunks: List should have at least 1 item"),
])
def test_bad_explicit_specs_fail_naming_the_chunk_and_field(chunks, message):
    with pytest.raises(JobSpecError, match=message):
        JobSpec(metadata=META, chunks=chunks)


def test_inconsistent_duration_is_rejected():
    with pytest.raises(JobSpecError, match=r"metadata\.duration: 9\.0 s does not match"):
        JobSpec(metadata={**META, "duration": 9.0}, chunks=[chunk(0, 0, 30)])


def test_bad_job_id_is_rejected():
    with pytest.raises(JobSpecError, match=r"^id: String should match pattern"):
        JobSpec(id="../evil", metadata=META, chunks=[chunk(0, 0, 30)])


def test_spec_round_trips_through_json():
    spec = plan_job({**TEMPLATE, "audio": "a {output}"})
    assert JobSpec.model_validate_json(spec.model_dump_json()) == spec


def test_yaml_job_file(tmp_path):
    path = tmp_path / "render.yaml"
    path.write_text("width: 64\nheight: 48\nfps: 10\ntotal_frames: 20\nframes_per_chunk: 10\ncommand: r {output}\n")
    spec = load_job_file(path)
    assert len(spec.chunks) == 2 and spec.id.startswith("render-")


def test_json_explicit_job_file(tmp_path):
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"id": "explicit", "metadata": META, "chunks": [chunk(0, 0, 30)]}))
    assert load_job_file(path).id == "explicit"


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad.yaml", "width: 64\n  height: [48\n", r"bad.yaml: invalid YAML at line 2, column 9"),
    ("bad.json", '{"width": 64,', r"bad.json: invalid JSON at line 1, column 14"),
    ("list.yaml", "- 1\n- 2\n", r"list.yaml: expected a mapping of fields, got list"),
    ("extra.yaml", "width: 64\nheight: 48\nfps: 10\ntotal_frames: 20\nchunks: 2\ncommand: r\nsurprise: 1\n",
     r"extra.yaml: surprise: unknown field"),
])
def test_bad_job_files_fail_with_one_line_naming_file_and_problem(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(JobSpecError, match=message) as raised:
        load_job_file(path)
    assert "\n" not in str(raised.value)


def test_missing_job_file_is_one_line(tmp_path):
    with pytest.raises(JobSpecError, match=r"nope.yaml: no such job file"):
        load_job_file(tmp_path / "nope.yaml")


def test_a_job_files_priority_weights_its_share_and_is_checked():
    # GIVEN job files with and without a priority (its weight in a store's shared concurrency budget)
    template = {"width": 64, "height": 48, "fps": 10, "total_frames": 20, "chunks": 2, "command": "r {output}"}
    # THEN it is kept, 1 by default, and a weight that is not a positive number up to 1,000 is named
    assert plan_job({**template, "priority": 3}).priority == 3.0
    assert plan_job(template).priority == 1.0
    for bad, why in ((0, "greater than 0"), ("high", "valid number"), (5000, "less than or equal to 1000")):
        with pytest.raises(JobSpecError, match=f"priority: Input should be .*{why}"):
            plan_job({**template, "priority": bad})
