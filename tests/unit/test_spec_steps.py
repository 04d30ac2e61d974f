"""Several commands per chunk in a job document: ``command: {steps: [...]}``, planned step by step;
a list of commands written where one argv list goes is refused in one line that says what to write."""

from __future__ import annotations

import json

import pytest

from framefarm import JobSpec, JobSpecError, plan_job
from framefarm.spec import Steps, command_steps, parse_document, parse_job

TEMPLATE = {"width": 64, "height": 48, "fps": 8, "total_frames": 8, "frames_per_chunk": 4}


def test_each_step_is_split_and_filled_for_its_chunk():
    # GIVEN a template whose chunks render frames, then encode them
    template = {**TEMPLATE, "command": {"steps": [
        "blender -b --python make_scene.py -- frames/ -s {start_frame} -e {last_frame}",
        ["{ffmpeg}", "-start_number", "{start_frame}", "-i", "frames/%04d.png", "-frames:v", "{frame_count}",
         "{output}"]]}}
    # WHEN it is planned
    spec = plan_job(template)
    # THEN every chunk holds both steps as argv lists with its own frames
    assert spec.chunks[1].command == Steps(steps=[
        ["blender", "-b", "--python", "make_scene.py", "--", "frames/", "-s", "4", "-e", "7"],
        ["{ffmpeg}", "-start_number", "4", "-i", "frames/%04d.png", "-frames:v", "4", "chunks/00001.mp4"]])
    assert command_steps(spec.chunks[1].command)[0][-1] == "7"


def test_a_planned_spec_with_steps_goes_through_json_unchanged():
    # GIVEN a planned spec with steps (what is stored for workers)
    spec = plan_job({**TEMPLATE, "command": {"steps": ["a {start_frame}", "b {output}"]}})
    # WHEN it is written as JSON and read back (as a worker does)
    again = JobSpec.model_validate_json(spec.model_dump_json())
    # THEN it is the same spec, the steps under command
    assert again == spec
    assert json.loads(spec.model_dump_json())["chunks"][0]["command"] == {"steps": [["a", "0"], ["b", "chunks/00000.mp4"]]}


def test_a_single_command_spec_is_stored_as_before():
    # GIVEN a spec written by a runner from before steps existed (one argv list per chunk)
    old = {"id": "old-1", "metadata": {"total_frames": 2, "fps": 1, "width": 2, "height": 2},
           "chunks": [{"id": 0, "start_frame": 0, "frame_count": 2, "output_file": "c/0.mp4",
                       "command": ["ffmpeg", "-i", "x", "c/0.mp4"]}]}
    # WHEN it is read and written again
    spec = JobSpec.model_validate(old)
    # THEN its chunk's command is the same argv list, in the same JSON
    assert json.loads(spec.model_dump_json())["chunks"][0]["command"] == ["ffmpeg", "-i", "x", "c/0.mp4"]


def test_a_yaml_job_file_with_steps():
    # GIVEN the form the docs show
    text = """
width: 64
height: 48
fps: 8
total_frames: 8
chunks: 2
command:
  steps:
    - render -s {start_frame} -e {last_frame}
    - "{ffmpeg} -i frames/%04d.png {output}"
"""
    # WHEN it is read
    spec = parse_job(parse_document(text, source="job.yaml"), source="job.yaml")
    # THEN each chunk has two steps
    assert [argv[0] for argv in command_steps(spec.chunks[0].command)] == ["render", "{ffmpeg}"]


@pytest.mark.parametrize(("command", "message"), [
    (["render -s 1", "encode out.mp4"],
     r"^job.yaml: command: 'render -s 1' is the program of one argv list but has spaces: for several commands "
     r"write command: \{steps: \[\.\.\.\]\}; for one, a string, or the program alone first$"),
    ([["render"], ["encode"]], r"^job.yaml: command: is a list of lists; several commands go under steps"),
    ({"steps": []}, r"^job.yaml: command.steps: List should have at least 1 item"),
    ({"steps": ["render", ""]}, r"^job.yaml: command.steps\[1\]: is empty$"),
    ({"steps": ["render", "x {start}"]}, r"^job.yaml: command.steps\[1\]: unknown placeholder \{start\}"),
    ({"step": ["render"]}, r"^job.yaml: command: a mapping here takes only steps \(several commands\), got \['step'\]$"),
    ({"steps": "render"}, r"^job.yaml: command.steps: Input should be a valid list"),
    ({"steps": ["r"] * 65}, r"^job.yaml: command.steps: List should have at most 64 items"),
    (7, r"^job.yaml: command: expected a string, an argv list or \{steps: \[\.\.\.\]\}, got 7$"),
])
def test_a_list_of_commands_in_the_wrong_shape_is_refused_in_one_line(command, message):
    # GIVEN a job document whose command is ambiguous or malformed
    # WHEN it is read
    with pytest.raises(JobSpecError, match=message) as caught:
        parse_job({**TEMPLATE, "command": command}, source="job.yaml")
    # THEN one line says what is wrong and how to write it
    assert "\n" not in str(caught.value)


def test_an_explicit_chunk_list_takes_steps_too():
    # GIVEN an explicit spec (chunks listed) whose chunk has steps
    document = {"id": "explicit-1", "metadata": {"total_frames": 2, "fps": 1, "width": 2, "height": 2},
                "chunks": [{"id": 0, "start_frame": 0, "frame_count": 2, "output_file": "c/0.mp4",
                            "command": {"steps": ["render", "encode c/0.mp4"]}}]}
    # WHEN it is read
    spec = parse_job(document)
    # THEN the chunk runs both
    assert command_steps(spec.chunks[0].command) == [["render"], ["encode", "c/0.mp4"]]


def test_a_quoted_program_with_spaces_is_still_one_command():
    # GIVEN a template whose one command's program has spaces, quoted in a string
    spec = plan_job({**TEMPLATE, "command": "'/opt/My Tools/render' {output}"})
    # WHEN the planned spec is stored and read back (as a worker reads it)
    again = JobSpec.model_validate_json(spec.model_dump_json())
    # THEN the chunk keeps the program whole: only a template's argv list is taken for a list of commands
    assert again.chunks[0].command == ["/opt/My Tools/render", "chunks/00000.mp4"]
