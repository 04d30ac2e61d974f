"""LambdaWorkerAdapter: one chunk = one synchronous Lambda invoke, billed duration from its REPORT line.

The request is ``{job_id, chunk_id, spec_url, attempt}`` (``framefarm.protocol``); the worker
(``lambda_handlers/render_chunk.py``) replies with exit code and buffered output.
``on_stdout``/``on_stderr`` are accepted and never called: Lambda returns output only at the end.

The boto3 client never re-invokes a chunk on its own: SDK retries are off, the read timeout is
above the function's timeout, and the connection pool holds ``concurrency`` connections. Throttling
(429 TooManyRequestsException) is retried here with exponential backoff and jitter, waiting on the
job's cancel token; those retries are not chunk attempts and are counted in ``throttles``.

Every error Lambda answers with goes through one table, ``INVOKE_ERRORS``: a client error by its code
(botocore's ``ClientError``), a function error by its ``errorType`` (``X-Amz-Function-Error``). Each
is a throttle (retried here), transient (a failed attempt under ``transient_retries``) or
deterministic (a failed attempt under ``retries``). An error the table does not know is treated as
transient and logged as a warning: it can neither fail the job at once nor use up ``retries``, and
``transient_retries`` bounds what it costs (see ``disposition``). ``failure_kind`` turns the
disposition into the result's ``FailureKind``; a call that ended without a reply has no exit code.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from enum import Enum
from types import MappingProxyType
from typing import Any

from framefarm.adapters.base import CANCELLED, WorkerJob, WorkerResult, mark_sent
from framefarm.backoff import Backoff, pause
from framefarm.billing import LAMBDA_PRICES, LambdaPrices, parse_report
from framefarm.failures import FailureKind
from framefarm.protocol import chunk_request, read_reply
from framefarm.storage.base import Storage

logger = logging.getLogger(__name__)

LAMBDA_PAYLOAD_LIMIT = 6 * 2**20  # bytes in a synchronous invocation's request (and its response)


class Disposition(str, Enum):
    """What one Lambda error means for the chunk that met it."""

    THROTTLE = "throttle"  # refused before the function ran: retried here with backoff, not an attempt
    TRANSIENT = "transient"  # the platform failed this time: a failed attempt under ``transient_retries``
    DETERMINISTIC = "deterministic"  # the same call fails the same way: a failed attempt under ``retries``


_T, _D = Disposition.TRANSIENT, Disposition.DETERMINISTIC

# Every error the Invoke API documents (botocore's lambda/2015-03-31 service model; a test checks none
# is missing), the errorTypes Lambda itself reports as function errors, and what each one means.
INVOKE_ERRORS: Mapping[str, Disposition] = MappingProxyType({
    # Throttled before the function ran.
    "TooManyRequestsException": Disposition.THROTTLE, "ThrottlingException": Disposition.THROTTLE,
    # The service, or the function's network, storage or snapshot, is not ready or failed this time.
    "ServiceException": _T, "EC2ThrottledException": _T, "EC2UnexpectedException": _T,
    "ENILimitReachedException": _T, "ENINotReadyException": _T, "SubnetIPAddressLimitReachedException": _T,
    "ResourceConflictException": _T,  # the function is being updated
    "ResourceNotReadyException": _T, "CodeArtifactUserPendingException": _T,
    "SnapStartNotReadyException": _T, "SnapStartTimeoutException": _T, "SnapStartRegenerationFailureException": _T,
    "EFSIOException": _T, "EFSMountConnectivityException": _T, "EFSMountTimeoutException": _T,
    "S3FilesMountConnectivityException": _T, "S3FilesMountTimeoutException": _T,
    # The request, the function's configuration or the caller's rights: the same call fails again.
    "InvalidRequestContentException": _D, "InvalidParameterValueException": _D, "UnsupportedMediaTypeException": _D,
    "RequestTooLargeException": _D, "SerializedRequestEntityTooLargeException": _D,
    "RequestEntityTooLargeException": _D,  # what Lambda sends for a request over 6 MB
    "ResourceNotFoundException": _D, "NoPublishedVersionException": _D, "ModeNotSupportedException": _D,
    "RecursiveInvocationException": _D, "ServiceQuotaExceededException": _D,
    "DurableExecutionAlreadyStartedException": _D, "AccessDeniedException": _D,
    "KMSAccessDeniedException": _D, "KMSDisabledException": _D, "KMSInvalidStateException": _D,
    "KMSNotFoundException": _D, "EC2AccessDeniedException": _D, "InvalidSubnetIDException": _D,
    "InvalidSecurityGroupIDException": _D, "InvalidZipFileException": _D, "InvalidRuntimeException": _D,
    "RuntimeVersionDeletedException": _D, "RuntimeAliasDeletedException": _D,
    "CodeArtifactUserDeletedException": _D, "CodeArtifactUserFailedException": _D,
    "EFSMountFailureException": _D, "S3FilesMountFailureException": _D, "SnapStartException": _D,
    # Function errors Lambda reports itself: timed out or the sandbox died; or the function cannot answer.
    "Sandbox.Timedout": _T, "Runtime.ExitError": _T,
    "Function.ResponseSizeTooLarge": _D, "Runtime.MarshalError": _D, "Runtime.ImportModuleError": _D,
    "Runtime.HandlerNotFound": _D, "Runtime.UserCodeSyntaxError": _D,
})
# errorTypes with these prefixes are Lambda's own; any other is the exception the handler raised.
LAMBDA_ERROR_PREFIXES = ("Runtime.", "Sandbox.", "Function.")


def disposition(name: str, *, function_error: bool = False, status: int | None = None) -> Disposition:
    """What the Lambda error ``name`` (a client error code, or a function error's errorType) means.

    Not in ``INVOKE_ERRORS``: a handler's own exception (a function errorType without Lambda's
    prefixes) is deterministic; an unknown code answered with HTTP 429 is a throttle; anything else
    is unknown and treated as transient, with a warning naming it. Transient because an error
    Lambda answers with is about the platform (the render command's failures come back as exit
    codes in a reply): a new kind of hiccup must not fail the job, and a new deterministic error
    costs at most ``transient_retries`` calls, not the job's ``retries``.
    """
    known = INVOKE_ERRORS.get(name)
    if known is not None:
        return known
    if function_error and not name.startswith(LAMBDA_ERROR_PREFIXES):
        return Disposition.DETERMINISTIC
    if status == 429:
        return Disposition.THROTTLE
    logger.warning("Lambda error %s is not in framefarm's table (adapters/aws_lambda.py INVOKE_ERRORS); "
                   "treated as transient", name)
    return Disposition.TRANSIENT


def failure_kind(name: str, *, function_error: bool = False, status: int | None = None) -> FailureKind | None:
    """The FailureKind of a call that met the Lambda error ``name``; None for a throttle (retried here).

    A function error is the function's failure (``FUNCTION_ERROR``), except Lambda's own time limit
    (``TIMEOUT``) and an oversized reply (``RESPONSE_TOO_LARGE``); a transient one (the sandbox died,
    or an error not in the table) lost its worker midway (``CONNECTION_LOST``). A client error refused
    the call before any function ran: deterministic ones as sent (``BAD_REQUEST``), transient ones
    because the platform could not put it through this time (``CONNECTION_LOST``).
    """
    meaning = disposition(name, function_error=function_error, status=status)
    if meaning is Disposition.THROTTLE:
        return None
    if name in _FUNCTION_ERROR_KINDS:
        return _FUNCTION_ERROR_KINDS[name]
    if meaning is Disposition.TRANSIENT:
        return FailureKind.CONNECTION_LOST
    return FailureKind.FUNCTION_ERROR if function_error else FailureKind.BAD_REQUEST


_FUNCTION_ERROR_KINDS = MappingProxyType({"Sandbox.Timedout": FailureKind.TIMEOUT,
                                          "Function.ResponseSizeTooLarge": FailureKind.RESPONSE_TOO_LARGE})


def lambda_client(*, concurrency: int = 100, function_timeout: float = 900.0, region: str | None = None,
                  session: Any = None) -> Any:
    """A Lambda client that cannot invoke anything twice by itself (see the module docstring)."""
    from botocore.config import Config

    config = Config(read_timeout=function_timeout + 60, connect_timeout=10, max_pool_connections=concurrency,
                    retries={"total_max_attempts": 1}, tcp_keepalive=True)
    if session is None:
        import boto3

        session = boto3.session.Session()
    return session.client("lambda", region_name=region, config=config)


def invoke_async(client: Any, function_name: str, payload: dict[str, Any]) -> None:
    """Fire-and-forget invoke (InvocationType=Event): submit → orchestrator, orchestrator → itself."""
    client.invoke(FunctionName=function_name, InvocationType="Event", Payload=json.dumps(payload).encode())


class LambdaWorkerAdapter:
    """Runs chunks on a render-chunk Lambda function.

    ``storage`` is where the job's spec lives (the worker fetches it from ``spec_url``);
    ``architecture`` and ``prices`` set the cost of each invocation.
    """

    def __init__(self, function_name: str, storage: Storage, *, client: Any = None, concurrency: int = 100,
                 function_timeout: float = 900.0, architecture: str = "x86_64", prices: LambdaPrices = LAMBDA_PRICES,
                 throttle_retries: int = 12, throttle_delay: float = 0.25, max_throttle_delay: float = 20.0,
                 clock: Callable[[], float] = time.monotonic, jitter: Callable[[], float] = random.random,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.function_name = function_name
        self.call_timeout = function_timeout  # the executor's watchdog waits this plus its margin
        self.storage = storage
        self.client = client or lambda_client(concurrency=concurrency, function_timeout=function_timeout)
        self.architecture = architecture
        self.prices = prices
        self._throttle_retries = throttle_retries
        self._backoff = Backoff(throttle_delay, max_throttle_delay, jitter)
        self._clock = clock
        self._sleep = sleep

    def execute(self, job: WorkerJob) -> WorkerResult:
        body = json.dumps(chunk_request(job, self.storage)).encode()
        started = self._clock()
        throttles = 0
        while True:
            mark_sent(job)
            try:
                response = self.client.invoke(FunctionName=self.function_name, InvocationType="RequestResponse",
                                              LogType="Tail", Payload=body)
                break
            except Exception as exc:
                if _is_connection_failure(exc):  # the function may have run; its output key is the same on a retry
                    return self._failure(FailureKind.CONNECTION_LOST, f"connection lost: {type(exc).__name__}: {exc}",
                                         throttles, started)
                answer = _error_answer(exc)
                if answer is None:  # not an answer from Lambda (bad parameters, no credentials): the adapter's own
                    raise
                code, status, message = answer
                kind = failure_kind(code, status=status)
                if kind is not None:
                    return self._failure(kind, f"Lambda {code}: {message}", throttles, started)
                throttles += 1
                if throttles > self._throttle_retries:
                    return self._failure(FailureKind.THROTTLED_OUT,
                                         f"throttled {throttles} times by Lambda; raise the function's concurrency "
                                         "limit or lower --concurrency", throttles, started)
                wait = self._backoff.delay(throttles)
                logger.info("chunk %s throttled (%d); retrying in %.2f s", job.meta.get("chunk_id"), throttles, wait)
                if pause(wait, job.cancel, self._sleep):
                    return self._failure(FailureKind.CANCELLED, CANCELLED, throttles, started)
        return self._result(response, throttles, (self._clock() - started) * 1000.0)

    def _failure(self, kind: FailureKind, error: str, throttles: int, started: float) -> WorkerResult:
        return WorkerResult(kind=kind, throttles=throttles, error=error, duration_ms=(self._clock() - started) * 1000.0)

    def _result(self, response: dict[str, Any], throttles: int, wall_ms: float) -> WorkerResult:
        raw = response["Payload"].read()
        log_tail = base64.b64decode(response.get("LogResult", "") or b"").decode("utf-8", errors="replace")
        report = parse_report(log_tail)
        billing: dict[str, Any] = {}
        if report is not None:
            billing = {
                "billed_duration_ms": report.billed_duration_ms, "memory_mb": report.memory_mb,
                "max_memory_used_mb": report.max_memory_used_mb, "init_duration_ms": report.init_duration_ms,
                "request_id": report.request_id,
                "cost_usd": self.prices.cost(billed_duration_ms=report.billed_duration_ms,
                                             memory_mb=report.memory_mb, architecture=self.architecture),
            }
        try:
            payload = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            payload = {"errorMessage": raw.decode("utf-8", errors="replace")[:1000]}
        if response.get("FunctionError"):
            kind = response["FunctionError"]
            message = payload.get("errorMessage", "") if isinstance(payload, dict) else str(payload)
            error_type = payload.get("errorType", "Error") if isinstance(payload, dict) else "Error"
            return WorkerResult(kind=failure_kind(error_type, function_error=True) or FailureKind.FUNCTION_ERROR,
                                stderr=log_tail,
                                throttles=throttles, error=f"Lambda {kind} error: {error_type}: {message}",
                                duration_ms=wall_ms, **billing)
        reply = read_reply(payload)
        if reply is None:
            return WorkerResult(kind=FailureKind.FUNCTION_ERROR, throttles=throttles, duration_ms=wall_ms,
                                error=f"worker replied without an exit code: {str(payload)[:200]}", **billing)
        return reply.to_result(throttles=throttles, duration_ms=wall_ms, **billing)


def _is_connection_failure(exc: Exception) -> bool:
    """A reset, a refused or dropped connection, or a read timeout: the call's fate is unknown."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    return isinstance(exc, (BotoConnectionError, HTTPClientError, ConnectionError))


def _error_answer(exc: Exception) -> tuple[str, int | None, str] | None:
    """(code, HTTP status, message) of an error Lambda answered with; None for any other exception."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict) or not response.get("Error", {}).get("Code"):
        return None
    error = response["Error"]
    return str(error["Code"]), response.get("ResponseMetadata", {}).get("HTTPStatusCode"), str(error.get("Message", ""))
