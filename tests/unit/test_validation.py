"""One validation-error formatter for job documents, submit options and chunk requests: one line that
names the field, whatever line breaks or control characters the caller's keys and values hold."""

from __future__ import annotations

import pytest

from framefarm import JobSpecError
from framefarm.aws.handlers import RunOptions
from framefarm.protocol import ChunkResponse, parse_request
from framefarm.spec import parse_job

TEMPLATE = {"width": 64, "height": 48, "fps": 10, "total_frames": 20, "frames_per_chunk": 10,
            "command": "render {start_frame} {output}"}
REQUEST = {"job_id": "job", "chunk_id": 0, "spec_url": "s3://b/jobs/job/spec.json"}
# A key with a line break and brackets: brackets are how pydantic names union branches, and a
# formatter that drops such parts would lose the very field the message must name.
ODD_KEY = "tags[\n]"


def assert_one_line(message: str, *names: str) -> None:
    assert "\n" not in message and "\r" not in message, message
    for name in names:
        assert name in message, message


@pytest.mark.parametrize(("change", "names"), [
    ({ODD_KEY: 1}, ["job: 'tags[\\n]': unknown field"]),
    ({"id": "evil\nid"}, ["job: id: String should match pattern", "(got 'evil\\nid')"]),
    ({"command": "render '{output}\n"}, ["job: command: cannot be split into arguments", "\\n"]),
])
def test_a_job_document_error_is_one_line_naming_the_field(change, names):
    # GIVEN a job document with a key or a value holding a line break
    document = {**TEMPLATE, **change}
    # WHEN it is parsed
    with pytest.raises(JobSpecError) as raised:
        parse_job(document, source="job")
    # THEN the error is one line, names the field and shows the value escaped
    assert_one_line(str(raised.value), *names)


@pytest.mark.parametrize(("options", "names"), [
    ({ODD_KEY: 1}, ["options.'tags[\\n]': unknown field"]),
    ({"retries": "two\n"}, ["options.retries: Input should be a valid integer", "(got 'two\\n')"]),
])
def test_a_submit_options_error_is_one_line_naming_the_field(options, names):
    # GIVEN submit options with a key or a value holding a line break
    # WHEN they are parsed
    with pytest.raises(JobSpecError) as raised:
        RunOptions.parse(options)
    # THEN the error is one line in the job document's format, naming the option
    assert_one_line(str(raised.value), *names)


@pytest.mark.parametrize(("request_", "names"), [
    ({**REQUEST, ODD_KEY: 1}, ["bad request: 'tags[\\n]': unknown field"]),
    ({**REQUEST, "job_id": "job\nid"}, ["bad request: job_id: String should match pattern", "(got 'job\\nid')"]),
])
def test_a_chunk_request_error_is_one_line_naming_the_field(request_, names):
    # GIVEN a chunk request with a key or a value holding a line break
    # WHEN a worker parses it
    response = parse_request(request_)
    # THEN the bad-request reply's error is one line in the same format, naming the field and the value
    assert isinstance(response, ChunkResponse) and response.error is not None
    assert_one_line(response.error, *names)
