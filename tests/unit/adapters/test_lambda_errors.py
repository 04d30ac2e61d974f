"""Lambda's invoke errors through LambdaWorkerAdapter's one table, with botocore's Stubber (no network)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from framefarm import ExecutionOptions, JobExecutor, LocalStorage, WorkerJob
from framefarm.adapters.aws_lambda import INVOKE_ERRORS, LambdaWorkerAdapter
from framefarm.failures import FailureKind
from tests.helpers import hooks, make_spec, retry_at_once, stubbed_client

# What each row of the table must mean, restated here so a changed row is a failing test.
THROTTLES = {"TooManyRequestsException", "ThrottlingException"}
TRANSIENT = {
    "ServiceException", "EC2ThrottledException", "EC2UnexpectedException", "ENILimitReachedException",
    "ENINotReadyException", "SubnetIPAddressLimitReachedException", "ResourceConflictException",
    "ResourceNotReadyException", "CodeArtifactUserPendingException", "SnapStartNotReadyException",
    "SnapStartTimeoutException", "SnapStartRegenerationFailureException", "EFSIOException",
    "EFSMountConnectivityException", "EFSMountTimeoutException", "S3FilesMountConnectivityException",
    "S3FilesMountTimeoutException",
}
DETERMINISTIC = {
    "InvalidRequestContentException", "InvalidParameterValueException", "UnsupportedMediaTypeException",
    "RequestTooLargeException", "SerializedRequestEntityTooLargeException", "RequestEntityTooLargeException",
    "ResourceNotFoundException", "NoPublishedVersionException", "ModeNotSupportedException",
    "RecursiveInvocationException", "ServiceQuotaExceededException", "DurableExecutionAlreadyStartedException",
    "AccessDeniedException", "KMSAccessDeniedException", "KMSDisabledException", "KMSInvalidStateException",
    "KMSNotFoundException", "EC2AccessDeniedException", "InvalidSubnetIDException",
    "InvalidSecurityGroupIDException", "InvalidZipFileException", "InvalidRuntimeException",
    "RuntimeVersionDeletedException", "RuntimeAliasDeletedException", "CodeArtifactUserDeletedException",
    "CodeArtifactUserFailedException", "EFSMountFailureException", "S3FilesMountFailureException",
    "SnapStartException",
}
# Function errors, with the kind each one gives a failed attempt.
TRANSIENT_FUNCTION_ERRORS = {"Sandbox.Timedout": FailureKind.TIMEOUT, "Runtime.ExitError": FailureKind.CONNECTION_LOST}
DETERMINISTIC_FUNCTION_ERRORS = {
    "Function.ResponseSizeTooLarge": FailureKind.RESPONSE_TOO_LARGE, "Runtime.MarshalError": FailureKind.FUNCTION_ERROR,
    "Runtime.ImportModuleError": FailureKind.FUNCTION_ERROR, "Runtime.HandlerNotFound": FailureKind.FUNCTION_ERROR,
    "Runtime.UserCodeSyntaxError": FailureKind.FUNCTION_ERROR,
}
REPLY = {"exit_code": 0, "stdout": "done\n", "output_key": "jobs/job-1/chunks/00000.mp4"}


@pytest.fixture
def stubbed(aws_credentials):
    with stubbed_client("lambda") as pair:
        yield pair


@pytest.fixture
def client(stubbed):
    return stubbed[0]


@pytest.fixture
def stub(stubbed):
    return stubbed[1]


@pytest.fixture
def adapter(client, tmp_path):
    return LambdaWorkerAdapter("worker", LocalStorage(tmp_path), client=client, throttle_delay=0.001,
                               sleep=lambda seconds: None)


def documented_status(client, code: str) -> int:
    shapes = {shape.name: shape for shape in client.meta.service_model.operation_model("Invoke").error_shapes}
    shape = shapes.get(code)
    return int(shape.metadata.get("error", {}).get("httpStatusCode", 400)) if shape is not None else 400


def answer(stub, payload: dict, function_error: str | None = None) -> None:
    from botocore.response import StreamingBody

    data = json.dumps(payload).encode()
    response = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(data), len(data))}
    if function_error:
        response["FunctionError"] = function_error
    stub.add_response("invoke", response)


def job() -> WorkerJob:
    return WorkerJob(command="ignored", meta={"job_id": "job-1", "chunk_id": 0, "attempt": 1})


def test_every_row_of_the_table_is_tested_here():
    expected = THROTTLES | TRANSIENT | DETERMINISTIC | set(TRANSIENT_FUNCTION_ERRORS) | set(DETERMINISTIC_FUNCTION_ERRORS)
    assert set(INVOKE_ERRORS) == expected


def test_every_error_the_invoke_api_documents_is_in_the_table(client):
    documented = {shape.name for shape in client.meta.service_model.operation_model("Invoke").error_shapes}
    assert documented - set(INVOKE_ERRORS) == set()


@pytest.mark.parametrize(("code", "kind"), [(code, FailureKind.CONNECTION_LOST) for code in sorted(TRANSIENT)]
                         + [(code, FailureKind.BAD_REQUEST) for code in sorted(DETERMINISTIC)])
def test_client_errors_are_failed_attempts_transient_or_not_as_the_table_says(client, stub, adapter, code, kind):
    # GIVEN Lambda answers the invoke with this error
    stub.add_client_error("invoke", service_error_code=code, service_message="no luck",
                          http_status_code=documented_status(client, code))
    # WHEN a chunk runs
    result = adapter.execute(job())
    # THEN it is a failed attempt, transient (the platform could not put the call through: connection_lost) or
    # deterministic (refused as sent: bad_request), naming the error, with no exit code, and not a throttle
    assert (result.kind, result.exit_code, result.throttles) == (kind, None, 0)
    assert result.transient == (code in TRANSIENT)
    assert result.error == f"Lambda {code}: no luck"


@pytest.mark.parametrize("code", sorted(THROTTLES))
def test_throttles_are_retried_by_the_adapter_and_are_not_attempts(client, stub, adapter, code):
    # GIVEN one throttle, then an answer
    stub.add_client_error("invoke", service_error_code=code, service_message="Rate Exceeded.", http_status_code=429)
    answer(stub, REPLY)
    # WHEN a chunk runs, THEN it succeeds within the one call, counting the throttle
    result = adapter.execute(job())
    assert result.ok and result.throttles == 1


@pytest.mark.parametrize(("error_type", "kind"), sorted(TRANSIENT_FUNCTION_ERRORS.items()))
def test_transient_function_errors(stub, adapter, error_type, kind):
    answer(stub, {"errorType": error_type, "errorMessage": "sandbox gone"}, function_error="Unhandled")
    result = adapter.execute(job())
    assert result.kind is kind and result.transient and result.error == f"Lambda Unhandled error: {error_type}: sandbox gone"


@pytest.mark.parametrize(("error_type", "kind"), sorted(DETERMINISTIC_FUNCTION_ERRORS.items()))
def test_deterministic_function_errors(stub, adapter, error_type, kind):
    answer(stub, {"errorType": error_type, "errorMessage": "cannot answer"}, function_error="Unhandled")
    result = adapter.execute(job())
    assert result.kind is kind and not result.transient and result.error == f"Lambda Unhandled error: {error_type}: cannot answer"


def test_a_handlers_own_exception_is_deterministic_and_not_logged_as_unknown(stub, adapter, caplog):
    answer(stub, {"errorType": "KeyError", "errorMessage": "'chunk_id'"}, function_error="Unhandled")
    with caplog.at_level(logging.WARNING, logger="framefarm.adapters.aws_lambda"):
        result = adapter.execute(job())
    assert (result.kind, result.exit_code, result.transient) == (FailureKind.FUNCTION_ERROR, None, False)
    assert caplog.records == []


@pytest.mark.parametrize(("kind", "name"), [("client", "BrandNewLambdaException"),
                                            ("function", "Runtime.BrandNewFailure")])
def test_an_unknown_error_is_transient_and_logged(stub, adapter, caplog, kind, name):
    # GIVEN an error the table does not know, as a client error or as one of Lambda's own function errors
    if kind == "client":
        stub.add_client_error("invoke", service_error_code=name, service_message="?", http_status_code=400)
    else:
        answer(stub, {"errorType": name, "errorMessage": "?"}, function_error="Unhandled")
    # WHEN a chunk meets it
    with caplog.at_level(logging.WARNING, logger="framefarm.adapters.aws_lambda"):
        result = adapter.execute(job())
    # THEN it is a transient failed attempt, and a warning names it
    assert result.kind is FailureKind.CONNECTION_LOST and result.transient and name in result.error
    assert [record.getMessage() for record in caplog.records] == [
        f"Lambda error {name} is not in framefarm's table (adapters/aws_lambda.py INVOKE_ERRORS); "
        "treated as transient"]


def test_an_unknown_code_answered_with_429_is_a_throttle(stub, adapter):
    stub.add_client_error("invoke", service_error_code="BrandNewRateLimit", service_message="slow down",
                          http_status_code=429)
    answer(stub, REPLY)
    result = adapter.execute(job())
    assert result.ok and result.throttles == 1


def test_an_unknown_error_does_not_use_up_the_jobs_retries(stub, adapter):
    # GIVEN a job allowed no deterministic retries, and an unknown Lambda error on the first call
    stub.add_client_error("invoke", service_error_code="BrandNewLambdaException", service_message="?",
                          http_status_code=500)
    answer(stub, REPLY)
    # WHEN it runs, THEN the chunk is retried under transient_retries and the job completes
    completed = []
    JobExecutor(adapter).execute(make_spec(1, job_id="job-1"), ExecutionOptions(
        retry=retry_at_once(0, transient_retries=1), merge=False,
        hooks=hooks(chunk_completed=lambda chunk_id, result: completed.append(chunk_id))))
    assert completed == [0]
