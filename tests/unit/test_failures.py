"""FailureKind: one typed reason per failed call, set at the adapter's boundary and read by everything after it."""

from __future__ import annotations

import io
import json
import sys
import time

import pytest
from pydantic import ValidationError

from framefarm import (
    CallableWorkerAdapter,
    CancelToken,
    ChunkFailedError,
    ExecutionOptions,
    InMemoryJobRepository,
    JobAbortedError,
    JobExecutor,
    JobManager,
    JobState,
    LocalStorage,
    LocalWorkerAdapter,
    RetryPolicy,
    WorkerJob,
    WorkerResult,
)
from framefarm.adapters.aws_lambda import LambdaWorkerAdapter
from framefarm.adapters.cloud_run import CloudRunWorkerAdapter
from framefarm.failures import TRANSIENT_KINDS, FailureKind
from framefarm.protocol import ChunkResponse, read_reply
from framefarm.status import ChunkState
from framefarm.watchdog import LiveAttempt, Watchdog
from tests.helpers import hooks, make_spec, retry_at_once, stubbed_client

PY = sys.executable
REMOTE_JOB = {"job_id": "job-1", "chunk_id": 0, "attempt": 1}


# -- the model -----------------------------------------------------------------------------------------

def test_transient_is_derived_from_the_kind():
    # GIVEN one failed result of every kind
    for kind in FailureKind:
        result = WorkerResult(kind=kind, error=kind.value)
        # THEN throttled out, timed out and lost connections are transient, nothing else is
        assert result.transient == (kind in {FailureKind.THROTTLED_OUT, FailureKind.TIMEOUT,
                                             FailureKind.CONNECTION_LOST})
        assert not result.ok
    assert TRANSIENT_KINDS == {kind for kind in FailureKind if kind.transient}


def test_a_non_zero_exit_code_without_a_kind_is_the_commands_failure_and_zero_is_success():
    assert WorkerResult(exit_code=4).kind is FailureKind.EXIT_CODE
    assert WorkerResult(exit_code=0).kind is None and WorkerResult(exit_code=0).ok


def test_a_result_that_says_nothing_true_is_refused():
    with pytest.raises(ValidationError):
        WorkerResult()  # no exit code and no kind


@pytest.mark.parametrize("fields, exit_code, kind", [
    ({"exit_code": -9}, 137, FailureKind.EXIT_CODE),  # Python's code for a signal: as a shell reports it
    ({"exit_code": 0, "error": "something broke"}, 0, FailureKind.FUNCTION_ERROR),  # the worker's own failure
    ({"exit_code": 1, "transient": True}, 1, FailureKind.CONNECTION_LOST),  # 0.1's flag for a platform failure
])
def test_results_built_by_adapters_written_for_0_1_mean_what_they_meant(fields, exit_code, kind):
    result = WorkerResult(**fields)
    assert (result.exit_code, result.kind, result.ok) == (exit_code, kind, False)
    assert result.transient is (kind is FailureKind.CONNECTION_LOST)


def test_the_reply_carries_the_kind_across_json():
    # GIVEN a worker's reply for a chunk that exited 0 without writing its output
    sent = ChunkResponse(exit_code=0, kind=FailureKind.NO_OUTPUT, error="exit code 0 but no output at x.mp4")
    # WHEN it crosses the wire and becomes the adapter's result
    result = read_reply(json.loads(json.dumps(sent.model_dump()))).to_result(duration_ms=5.0)
    # THEN the kind and the command's own exit code arrive intact
    assert (result.kind, result.exit_code, result.ok) == (FailureKind.NO_OUTPUT, 0, False)


def test_a_reply_with_neither_exit_code_nor_kind_is_not_a_reply():
    assert read_reply({"stdout": "hello"}) is None


# -- the executor --------------------------------------------------------------------------------------

def attempts_at_chunk_0(adapter, retry: RetryPolicy | None = None) -> list[WorkerResult]:
    """Run a one-chunk job to its end (whatever that is); every attempt's result, in order."""
    seen: list[WorkerResult] = []
    with pytest.raises((ChunkFailedError, JobAbortedError)):
        JobExecutor(adapter).execute(make_spec(1), ExecutionOptions(
            merge=False, retry=retry or retry_at_once(), hooks=hooks(attempt_finished=lambda chunk_id, n, result, *_: seen.append(result))))
    return seen


@pytest.mark.parametrize("kind", [kind for kind in FailureKind if kind is not FailureKind.CANCELLED])
def test_the_executor_retries_by_kind(kind):
    # GIVEN a worker whose chunk always fails with this kind, one retry and three transient retries
    adapter = CallableWorkerAdapter(lambda job: WorkerResult(kind=kind, error=f"always {kind.value}"))
    # WHEN the job runs
    attempts = attempts_at_chunk_0(adapter, retry_at_once(1, transient_retries=3))
    # THEN transient kinds used the transient budget (1 + 3 attempts), the others the retries (1 + 1)
    assert len(attempts) == (4 if kind in TRANSIENT_KINDS else 2)
    assert {result.kind for result in attempts} == {kind}


def test_a_cancelled_reply_stops_the_run_by_its_kind_whatever_its_text():
    # GIVEN a remote worker that reports its cancel in its own words
    adapter = CallableWorkerAdapter(lambda job: WorkerResult(kind=FailureKind.CANCELLED, error="stopped by marker"))
    # WHEN the job runs with retries to spare, THEN it stops after one attempt, as cancelled
    assert len(attempts_at_chunk_0(adapter, retry_at_once(3))) == 1


@pytest.mark.parametrize(("exc", "kind"), [(ConnectionResetError("reset by peer"), FailureKind.CONNECTION_LOST),
                                           (ValueError("bad parameter"), FailureKind.FUNCTION_ERROR)])
def test_an_adapter_that_raises_gets_a_kind(exc, kind):
    def raising(job):
        raise exc

    # WHEN the adapter raises, THEN the attempt has the kind that fits, no exit code, and the exception's text
    [result] = attempts_at_chunk_0(CallableWorkerAdapter(raising), retry_at_once(transient_retries=0))
    assert (result.kind, result.exit_code) == (kind, None)
    assert result.error == f"{type(exc).__name__}: {exc}"


def test_the_store_records_an_attempt_cancelled_by_kind_as_cancelled():
    # GIVEN a job whose worker answers "cancelled" in words that are not the word itself
    store = InMemoryJobRepository()
    adapter = CallableWorkerAdapter(lambda job: WorkerResult(kind=FailureKind.CANCELLED, error="job cancel marker"))
    manager = JobManager(store, JobExecutor(adapter))
    manager.create_job(make_spec(1, job_id="job"))
    # WHEN it runs
    assert manager.run_job("job", ExecutionOptions(retry=RetryPolicy(retries=2))).state is JobState.CANCELLED
    # THEN its chunk's attempt is recorded as cancelled, not failed
    assert manager.get_job("job").chunk(0).state is ChunkState.CANCELLED


# -- no negative exit code on any failure path ----------------------------------------------------------

class Answer:
    def __init__(self, status: int, body: object) -> None:
        self.status_code = status
        self.text = body if isinstance(body, str) else json.dumps(body)

    def json(self) -> object:
        return json.loads(self.text)


class Session:
    """A requests-like session that gives the same answer (or raises) on every POST."""

    def __init__(self, answer: Answer | Exception) -> None:
        self.answer = answer

    def post(self, url: str, **kwargs: object) -> Answer:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def cloud_run(answer: Answer | Exception, tmp_path, job: WorkerJob | None = None) -> WorkerResult:
    adapter = CloudRunWorkerAdapter("https://worker-abc.a.run.app", LocalStorage(tmp_path), session=Session(answer),
                                    token_provider=lambda audience: "t", retries=1, sleep=lambda seconds: None)
    return adapter.execute(job or WorkerJob(command="ignored", meta=REMOTE_JOB))


def lambda_answer(payload: object, tmp_path, *, function_error: str | None = None,
                  client_error: tuple[str, int] | None = None, times: int = 1) -> WorkerResult:
    from botocore.response import StreamingBody

    with stubbed_client("lambda") as (client, stub):
        for _ in range(times):
            if client_error is not None:
                stub.add_client_error("invoke", service_error_code=client_error[0], service_message="no",
                                      http_status_code=client_error[1])
                continue
            data = json.dumps(payload).encode()
            response = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(data), len(data))}
            if function_error:
                response["FunctionError"] = function_error
            stub.add_response("invoke", response)
        adapter = LambdaWorkerAdapter("worker", LocalStorage(tmp_path), client=client, throttle_retries=times - 1,
                                      sleep=lambda seconds: None)
        return adapter.execute(WorkerJob(command="ignored", meta=REMOTE_JOB))


def local(code: str, tmp_path, **kwargs: object) -> WorkerResult:
    return LocalWorkerAdapter().execute(WorkerJob(command=[PY, "-c", code], cwd=tmp_path, **kwargs))


def cancelled_token() -> CancelToken:
    token = CancelToken()
    token.cancel()
    return token


def watchdog_verdict() -> WorkerResult:
    live = LiveAttempt(make_spec(1).chunks[0], 1, CancelToken(), silent_since=time.monotonic() - 1.0)
    result = Watchdog(limit=0.0, margin=0.0).verdict(live)
    assert result is not None
    return result


def adapter_raised() -> WorkerResult:
    def raising(job):
        raise RuntimeError("boom")

    [result] = attempts_at_chunk_0(CallableWorkerAdapter(raising))
    return result


FAILURE_PATHS = {
    "local exit": (lambda tmp: local("raise SystemExit(3)", tmp), FailureKind.EXIT_CODE),
    "local signal": (lambda tmp: local("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", tmp),
                     FailureKind.EXIT_CODE),
    "local not found": (lambda tmp: LocalWorkerAdapter().execute(WorkerJob(command=[str(tmp / "nope")])),
                        FailureKind.EXIT_CODE),
    "local timeout": (lambda tmp: local("import time; time.sleep(60)", tmp, timeout=0.2), FailureKind.TIMEOUT),
    "local cancel": (lambda tmp: local("import time; time.sleep(60)", tmp, cancel=cancelled_token()),
                     FailureKind.CANCELLED),
    "local no output": (lambda tmp: local("pass", tmp, meta={"chunk_id": 0, "output_file": "chunks/00000.mp4"}),
                        FailureKind.NO_OUTPUT),
    "watchdog": (lambda tmp: watchdog_verdict(), FailureKind.TIMEOUT),
    "adapter raised": (lambda tmp: adapter_raised(), FailureKind.FUNCTION_ERROR),
    "lambda function error": (lambda tmp: lambda_answer({"errorType": "ValueError", "errorMessage": "x"}, tmp,
                                                        function_error="Unhandled"), FailureKind.FUNCTION_ERROR),
    "lambda refused": (lambda tmp: lambda_answer(None, tmp, client_error=("AccessDeniedException", 403)),
                       FailureKind.BAD_REQUEST),
    "lambda throttled out": (lambda tmp: lambda_answer(None, tmp, client_error=("TooManyRequestsException", 429),
                                                       times=2), FailureKind.THROTTLED_OUT),
    "lambda unreadable reply": (lambda tmp: lambda_answer({"hello": 1}, tmp), FailureKind.FUNCTION_ERROR),
    "lambda remote no output": (lambda tmp: lambda_answer({"exit_code": 0, "kind": "no_output", "error": "x"}, tmp),
                                FailureKind.NO_OUTPUT),
    "lambda remote cancel": (lambda tmp: lambda_answer({"kind": "cancelled", "error": "cancelled"}, tmp),
                             FailureKind.CANCELLED),
    "cloud run connection": (lambda tmp: cloud_run(ConnectionRefusedError("refused"), tmp),
                             FailureKind.CONNECTION_LOST),
    "cloud run 400": (lambda tmp: cloud_run(Answer(400, {"error": "bad request: chunk_id"}), tmp),
                      FailureKind.BAD_REQUEST),
    "cloud run 500": (lambda tmp: cloud_run(Answer(500, "Internal Server Error"), tmp), FailureKind.FUNCTION_ERROR),
    "cloud run throttled out": (lambda tmp: cloud_run(Answer(429, {"error": "busy"}), tmp),
                                FailureKind.THROTTLED_OUT),
    "cloud run cancel": (lambda tmp: cloud_run(Answer(503, "busy"), tmp, WorkerJob(
        command="ignored", meta=REMOTE_JOB, cancel=cancelled_token())), FailureKind.CANCELLED),
    "cloud run unreadable reply": (lambda tmp: cloud_run(Answer(200, "<html>"), tmp), FailureKind.FUNCTION_ERROR),
    "cloud run remote no output": (lambda tmp: cloud_run(Answer(200, {"exit_code": 0, "kind": "no_output",
                                                                      "error": "x"}), tmp), FailureKind.NO_OUTPUT),
    "cloud run remote cancel": (lambda tmp: cloud_run(Answer(200, {"kind": "cancelled", "error": "cancelled"}), tmp),
                                FailureKind.CANCELLED),
}


@pytest.mark.parametrize("path", sorted(FAILURE_PATHS))
def test_every_failure_path_names_its_kind_and_no_exit_code_is_negative(path, tmp_path, aws_credentials):
    produce, kind = FAILURE_PATHS[path]
    # WHEN the call fails this way
    result = produce(tmp_path)
    # THEN its kind says how, and its exit code is the command's own (never negative) or absent
    assert result.kind is kind and not result.ok
    assert result.exit_code is None or result.exit_code >= 0
    # AND no failure without a command of its own borrows one of the CLI's exit codes (0, 1, 2, 3, 130)
    if kind not in (FailureKind.EXIT_CODE, FailureKind.NO_OUTPUT, FailureKind.TIMEOUT, FailureKind.CANCELLED):
        assert result.exit_code is None
