"""LambdaWorkerAdapter against devcloud over HTTP: payload, billing, errors, throttling."""

from __future__ import annotations

import json
import threading

import pytest

from framefarm import ExecutionOptions, InMemoryJobRepository, JobExecutor, JobManager, LocalStorage, WorkerJob
from framefarm.adapters.aws_lambda import LambdaWorkerAdapter, invoke_async, lambda_client
from framefarm.billing import LAMBDA_PRICES
from framefarm.cancel import CancelToken
from framefarm.devcloud import DevCloud, DevFunction
from framefarm.failures import FailureKind
from tests.helpers import make_spec

HANDLERS = "tests.lambda_functions"


def seen_events(directory):
    """The events echo_worker was given, in the order they came."""
    files = sorted(directory.glob("*.json"), key=lambda path: path.stat().st_mtime_ns)
    return [json.loads(path.read_text()) for path in files]


@pytest.fixture
def seen(tmp_path):
    directory = tmp_path / "seen"
    directory.mkdir()
    return directory


@pytest.fixture
def cloud(aws_credentials, monkeypatch, seen):
    functions = [DevFunction("worker", f"{HANDLERS}.echo_worker", memory_mb=2048, timeout=30,
                             environment={"SEEN_DIR": str(seen)}),
                 DevFunction("failing", f"{HANDLERS}.failing_worker", memory_mb=512),
                 DevFunction("slow", f"{HANDLERS}.slow_worker", timeout=0.5),
                 DevFunction("chatty", f"{HANDLERS}.chatty_worker")]
    with DevCloud(functions) as devcloud:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", devcloud.endpoint)
        yield devcloud


@pytest.fixture
def storage(tmp_path):
    return LocalStorage(tmp_path / "store")


def job(chunk_id=3, cancel=None, on_stdout=None, on_stderr=None):
    return WorkerJob(command="ignored", meta={"job_id": "job-1", "chunk_id": chunk_id, "attempt": 1},
                     cancel=cancel, on_stdout=on_stdout, on_stderr=on_stderr)


def test_payload_output_and_billing(cloud, storage, seen):
    streamed = []
    adapter = LambdaWorkerAdapter("worker", storage)
    result = adapter.execute(job(on_stdout=streamed.append, on_stderr=streamed.append))
    # THEN the worker got exactly {job_id, chunk_id, spec_url, attempt}
    assert seen_events(seen) == [{"job_id": "job-1", "chunk_id": 3, "spec_url": storage.url("jobs/job-1/spec.json"),
                            "attempt": 1}]
    # AND the output came back buffered; streaming callbacks were never called
    assert (result.exit_code, result.stdout, result.output_location) == (0, "chunk 3 done\n", "jobs/job-1/chunks/00003.mp4")
    assert streamed == []
    # AND billing comes from the REPORT line: billed >= measured, memory as configured, cost from the table
    call = cloud.calls("worker")[-1]
    assert result.request_id == call.request_id and result.billed_duration_ms == call.billed_duration_ms >= 20
    assert result.memory_mb == 2048 and result.init_duration_ms is not None
    assert result.cost_usd == pytest.approx(LAMBDA_PRICES.cost(billed_duration_ms=result.billed_duration_ms,
                                                               memory_mb=2048))
    # AND init duration is reported on the first call only
    assert adapter.execute(job()).init_duration_ms is None


def test_function_error_is_a_failed_attempt_with_the_message(cloud, storage):
    result = LambdaWorkerAdapter("failing", storage).execute(job())
    assert (result.kind, result.exit_code) == (FailureKind.FUNCTION_ERROR, None) and not result.ok
    assert result.error == "Lambda Unhandled error: ValueError: ffmpeg exploded"
    assert result.billed_duration_ms >= 1 and result.memory_mb == 512


def test_function_timeout_is_reported(cloud, storage):
    result = LambdaWorkerAdapter("slow", storage).execute(job())
    assert "Task timed out after 0.50 seconds" in result.error and result.billed_duration_ms == 500
    assert result.kind is FailureKind.TIMEOUT and result.transient


def test_throttling_is_retried_without_using_an_attempt(cloud, storage):
    # GIVEN the next 3 calls are throttled
    cloud.throttle("worker", 3)
    waits = []
    adapter = LambdaWorkerAdapter("worker", storage, throttle_delay=0.01, jitter=lambda: 1.0, sleep=waits.append)
    # WHEN a chunk runs
    result = adapter.execute(job())
    # THEN it succeeded on the 4th call, with growing backoff, and counted 3 throttles
    assert result.ok and result.throttles == 3 and waits == [0.01, 0.02, 0.04]


def test_throttling_past_the_limit_fails_the_attempt_saying_what_to_do(cloud, storage):
    cloud.throttle("worker", 10)
    result = LambdaWorkerAdapter("worker", storage, throttle_retries=2, sleep=lambda s: None).execute(job())
    assert not result.ok and result.throttles == 3 and "raise the function's concurrency limit" in result.error
    assert result.kind is FailureKind.THROTTLED_OUT and result.transient


def test_cancel_ends_a_throttle_wait(cloud, storage):
    cloud.throttle("worker", 100)
    token = CancelToken()
    threading.Timer(0.2, token.cancel).start()
    result = LambdaWorkerAdapter("worker", storage, throttle_delay=60).execute(job(cancel=token))
    assert result.kind is FailureKind.CANCELLED and result.error == "cancelled" and result.throttles == 1


def test_through_the_manager_throttles_show_on_the_record_but_attempts_stay_one(cloud, storage):
    cloud.throttle("worker", 2)
    manager = JobManager(InMemoryJobRepository(), JobExecutor(LambdaWorkerAdapter(
        "worker", storage, throttle_delay=0.001)), storage)
    manager.create_job(make_spec(3, job_id="job-1"))
    assert manager.run_job("job-1", ExecutionOptions(concurrency=1)).state.value == "rendered"
    records = manager.get_job("job-1").chunks
    assert [r.attempts for r in records] == [1, 1, 1] and sum(r.throttles for r in records) == 2
    assert all(r.billed_duration_ms > 0 and r.cost_usd > 0 for r in records)


def test_the_client_never_retries_an_invoke_by_itself():
    client = lambda_client(concurrency=1000, function_timeout=300, region="us-east-1")
    config = client.meta.config
    assert config.retries["total_max_attempts"] == 1
    assert config.read_timeout > 300 and config.max_pool_connections == 1000


def test_async_invoke_runs_in_the_background(cloud, seen):
    invoke_async(lambda_client(), "worker", {"job_id": "j", "chunk_id": 0, "spec_url": "file:///x/jobs/j/spec.json"})
    assert cloud.wait_idle(timeout=30)
    assert [call.kind for call in cloud.calls("worker")] == ["Event"] and len(seen_events(seen)) == 1


def test_unknown_function_is_a_deterministic_failed_attempt_naming_the_error(cloud, storage):
    result = LambdaWorkerAdapter("nope", storage).execute(job())
    assert (result.kind, result.exit_code, result.transient) == (FailureKind.BAD_REQUEST, None, False)
    assert result.error == "Lambda ResourceNotFoundException: Function not found: nope"


def test_a_reply_over_6_mb_is_lambdas_response_size_error_and_deterministic(cloud, storage):
    # GIVEN a function whose reply is 7 MiB
    # WHEN a chunk runs on it
    result = LambdaWorkerAdapter("chatty", storage).execute(job())
    # THEN devcloud answers as Lambda does: a function error, billed, that no retry can fix
    assert result.error == ("Lambda Unhandled error: Function.ResponseSizeTooLarge: Response payload size exceeded "
                            "maximum allowed payload size (6291456 bytes).")
    assert result.kind is FailureKind.RESPONSE_TOO_LARGE and not result.transient and result.billed_duration_ms >= 1
    assert cloud.calls("chatty")[-1].function_error == "Unhandled"


def test_a_request_over_6_mb_is_refused_with_413_as_a_deterministic_error(cloud):
    from botocore.exceptions import ClientError

    from framefarm.adapters.aws_lambda import Disposition, disposition

    # GIVEN a synchronous call whose request body is over 6 MiB
    with pytest.raises(ClientError) as refused:
        lambda_client().invoke(FunctionName="worker", Payload=b'"' + b"x" * (6 * 2**20) + b'"')
    # THEN devcloud refuses it as Lambda does, without running anything, and the table calls it deterministic
    error, status = refused.value.response["Error"], refused.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert (error["Code"], status) == ("RequestEntityTooLargeException", 413) and cloud.calls("worker") == []
    assert disposition(error["Code"], status=status) is Disposition.DETERMINISTIC
