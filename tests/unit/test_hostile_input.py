"""Hostile input, fuzzed with hypothesis: job documents, job files, submit events, worker events and
Cloud Run request bodies. Always a clear one-line error (or a valid job), never an unhandled
exception, and nothing written."""

from __future__ import annotations

import json
import os

import boto3
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from framefarm import JobSpec, JobSpecError
from framefarm.aws.handlers import render_chunk, submit
from framefarm.backends import Lambda
from framefarm.spec import load_job_file, parse_job
from framefarm.worker.cloud_run_server import create_app

# How many cases, and whether they are the same every run, is the profile's (tests/conftest.py); the
# handler tests go through moto, so they take half as many.
FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
FUZZ_AWS = settings(FUZZ, max_examples=max(1, settings.default.max_examples // 2))

HOSTILE_TEXT = st.sampled_from([
    "../../etc/passwd", "/etc/passwd", "a/../../b.mp4", "chunks/\x00.mp4", "C:\\x.mp4", "~/x.mp4", "",
    "$(touch pwned)", "; rm -rf /", "`id`", "a | cat > x", "{output}{output}", "{0}", "{}", "{output.__class__}",
    "{__import__}", "{output!r:>99999999}", "💥🎬", "\u202e\u0000", "x" * 5000, "s3://other-bucket/jobs/x/spec.json",
]) | st.text(max_size=60)
HOSTILE_NUMBER = st.sampled_from([0, -1, -(10**9), 10**12, 2**63, 1.5, float("nan"), float("inf"), True]) \
    | st.integers() | st.floats()
JSON_LEAF = st.none() | st.booleans() | HOSTILE_NUMBER | HOSTILE_TEXT
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
TEMPLATE = {"width": 64, "height": 48, "fps": 10, "total_frames": 20, "frames_per_chunk": 10,
            "command": "render {start_frame} {end_frame} {output}"}
FIELDS = [*TEMPLATE, "id", "chunks", "chunk_output", "audio", "output", "merge_command", "assets_url", "metadata"]


@st.composite
def job_documents(draw) -> object:
    """A valid template with one to three fields set to hostile values, or any JSON value at all."""
    if draw(st.booleans()):
        return draw(JSON_VALUE)
    document = dict(TEMPLATE)
    for _ in range(draw(st.integers(1, 3))):
        document[draw(st.sampled_from(FIELDS))] = draw(JSON_VALUE)
    return document


def one_line(text: str) -> bool:
    """Non-empty, with no line break of any kind (\\n, \\r, \\x85, \\u2028...)."""
    return bool(text) and text.splitlines() == [text]


def check_outcome(parse) -> JobSpec | None:
    """Run ``parse``: a JobSpec whose chunks are safe, or a one-line JobSpecError; anything else fails."""
    try:
        spec = parse()
    except JobSpecError as exc:
        assert one_line(str(exc)), str(exc)
        return None
    for chunk in spec.chunks:
        assert not chunk.output_file.startswith("/") and ".." not in chunk.output_file.split("/")
        assert isinstance(chunk.command, list)  # split before placeholders were filled: never a shell string
    return spec


@FUZZ
@given(document=job_documents())
# cases the fuzz profile found: a field name or placeholder with a line break, an unbalanced brace
@example(document={**TEMPLATE, "\n": 1})
@example(document={**TEMPLATE, "chunk_output": "{"})
@example(document={**TEMPLATE, "command": "render {start_frame {output}"})
@example(document={**TEMPLATE, "command": ["render", "{a\rb}", "{output}"]})
@example(document={**TEMPLATE, "command": ["render", "{output:\u2028}"]})
def test_job_documents(document):
    check_outcome(lambda: parse_job(document, source="job"))


@FUZZ
@given(text=st.text(max_size=400) | st.sampled_from(["{", "- - -", "!!python/object:os.system ['id']", "\ufeff",
                                                     "total_frames: 1e309", "a: &x [*x]"]),
       suffix=st.sampled_from([".yaml", ".yml", ".json"]))
def test_job_files(tmp_path_factory, text, suffix):
    path = tmp_path_factory.mktemp("jobs") / f"job{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    check_outcome(lambda: load_job_file(path))


@st.composite
def submit_events(draw) -> object:
    kind = draw(st.sampled_from(["document", "wrapped", "api", "anything"]))
    if kind == "document":
        return draw(job_documents())
    if kind == "wrapped":
        return {"job": draw(job_documents()), "options": draw(JSON_VALUE | st.fixed_dictionaries(
            {}, optional={"concurrency": HOSTILE_NUMBER, "retries": HOSTILE_NUMBER, "timeout": HOSTILE_NUMBER,
                          "retry_delay": HOSTILE_NUMBER, "transient_retries": HOSTILE_NUMBER}))}
    if kind == "api":
        return {"httpMethod": "POST", "body": draw(st.text(max_size=200) | JSON_VALUE.map(json.dumps)),
                "isBase64Encoded": draw(st.booleans())}
    return draw(JSON_VALUE)


def is_valid_submission(event) -> bool:
    from framefarm.aws.handlers import _submission

    try:
        document, _, _ = _submission(event)
        parse_job(document, source="job")
    except JobSpecError:
        return False
    except Exception as exc:  # the handler must not raise either; let the test show it
        raise AssertionError(f"submission check raised {type(exc).__name__}: {exc}") from exc
    return True


@FUZZ_AWS
@given(event=submit_events())
# cases the fuzz profile found: an option key that is a line break
@example(event={"job": TEMPLATE, "options": {"\n": 1}})
@example(event={"job": {**TEMPLATE, "width": None}, "options": {"\x1e": None}})
def test_submit_events(event, table, bucket, dynamodb_client, s3_client):
    assume(not is_valid_submission(event))
    answer = submit(event, None, backend=Lambda(table=table, bucket=bucket))
    status = answer["statusCode"]
    error = answer.get("error") or json.loads(answer.get("body", "{}")).get("error", "")
    assert status == 400 and one_line(error), error
    assert dynamodb_client.scan(TableName=table)["Count"] == 0
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


WORKER_EVENTS = JSON_VALUE | st.fixed_dictionaries({}, optional={
    "job_id": st.sampled_from(["job", "../x", "a" * 200, "ünï", ""]) | HOSTILE_TEXT,
    "chunk_id": HOSTILE_NUMBER | HOSTILE_TEXT,
    "spec_url": st.sampled_from(["file:///etc/passwd", "file:///tmp/../etc/shadow", "s3://", "s3://b/../x",
                                 "s3://b/jobs/job/spec.json", "http://169.254.169.254/latest", "ftp://x/y",
                                 "file://" + "/x" * 600]) | HOSTILE_TEXT,
    "extra": JSON_VALUE})


@FUZZ_AWS
@given(event=WORKER_EVENTS)
@example(event={"job_id": "job", "chunk_id": 0, "spec_url": "s3://b/jobs/job/spec.json", "\u2028": 1})  # a key
def test_render_chunk_events(event, bucket, s3_client):
    # moto's S3 is live (s3:// URLs reach it); nothing may be written to it, or anywhere the event names
    answer = render_chunk(event, None)
    assert (answer["kind"], answer["exit_code"]) == ("bad_request", None)
    assert answer["error"].startswith("bad request: ") and one_line(answer["error"])
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


@pytest.fixture(scope="module")
def worker_client():
    return create_app().test_client()


@FUZZ
@given(body=st.binary(max_size=300) | JSON_VALUE.map(lambda value: json.dumps(value).encode())
       | WORKER_EVENTS.map(lambda value: json.dumps(value).encode()),
       content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]))
@example(body=b'{"job_id": "job", "chunk_id": 0, "spec_url": "s3://b/jobs/job/spec.json", "\\r": 1}',
         content_type="application/json")
@example(body=b'{"job_id":"0","chunk_id":0,"spec_url":" "}', content_type="application/json")  # found by fuzz
def test_cloud_run_request_bodies(worker_client, body, content_type):
    response = worker_client.post("/", data=body, content_type=content_type)
    reply = response.get_json()
    # a malformed body is refused at the door (400); a well-formed one naming no usable spec gets the
    # worker's own bad-request reply (200, kind bad_request): either way nothing runs
    assert response.status_code == 400 or (response.status_code, reply["kind"]) == (200, "bad_request")
    assert reply["error"].startswith("bad request") and one_line(reply["error"])


def test_a_spec_over_lambdas_payload_limit_is_refused_before_anything_is_sent(tmp_path, aws_credentials, capsys):
    # GIVEN an explicit job document over 6 MB (40,000 chunks with long commands)
    padding = "p" * 120
    chunks = [{"id": n, "start_frame": n, "frame_count": 1, "output_file": f"chunks/{n:05d}.mp4",
               "command": ["render", padding, str(n)]} for n in range(40_000)]
    job = tmp_path / "huge.json"
    job.write_text(json.dumps({"metadata": {"total_frames": 40_000, "fps": 30, "width": 64, "height": 48},
                               "chunks": chunks}))
    assert job.stat().st_size > 6 * 2**20
    # WHEN it is submitted, THEN the CLI says why in one line and invokes nothing
    from framefarm.cli import main

    calls = []
    original = boto3.client

    def recording_client(name, *args, **kwargs):
        calls.append(name)
        return original(name, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(boto3, "client", recording_client)
        patch.setattr(boto3.session.Session, "client", lambda self, name, *a, **k: recording_client(name, *a, **k))
        code = main(["submit", str(job), "--function", "framefarm-submit"])
    assert code == 2 and calls == []
    assert "MiB and a Lambda request carries at most 6 MiB" in capsys.readouterr().err


def test_placeholder_attribute_access_is_refused():
    # str.format would evaluate {output.__class__}: a job may only name the placeholders themselves
    with pytest.raises(JobSpecError, match="command"):
        parse_job({**TEMPLATE, "command": "render {output.__class__.__mro__}"}, source="job")




def test_the_ci_profile_is_derandomized_and_fuzz_draws_new_cases():
    # GIVEN the profiles tests/conftest.py registers
    ci, fuzz = settings.get_profile("ci"), settings.get_profile("fuzz")
    # THEN "ci" (what `make test` and CI load by default) draws from a fixed seed with no example
    # database, so a clean run never meets a case nobody saw; "fuzz" (`make fuzz`) searches anew and longer.
    # (Comparing two runs' draws in one process is not stable under load: hypothesis's engine adapts.)
    assert (ci.derandomize, ci.database) == (True, None)
    assert not fuzz.derandomize and fuzz.max_examples > 10 * ci.max_examples
    assert settings.default.derandomize is (os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci")
