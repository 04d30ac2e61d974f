"""LambdaWorkerAdapter: one chunk = one synchronous Lambda invoke, billed duration from its REPORT line.

The request is ``{job_id, chunk_id, spec_url}``; the worker (``lambda_handlers/render_chunk.py``)
replies with exit code and buffered output. ``on_stdout``/``on_stderr`` are accepted and never
called: Lambda returns output only at the end.

The boto3 client never re-invokes a chunk on its own: SDK retries are off, the read timeout is
above the function's timeout, and the connection pool holds ``concurrency`` connections. Throttling
(429 TooManyRequestsException) is retried here with exponential backoff and jitter, waiting on the
job's cancel token; those retries are not chunk attempts and are counted in ``throttles``.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from framefarm.adapters.base import CANCELLED, WorkerJob, WorkerResult, announce_call
from framefarm.backoff import Backoff, pause
from framefarm.billing import LAMBDA_PRICES, LambdaPrices, parse_report
from framefarm.storage.base import Storage
from framefarm.worker.runtime import chunk_request, read_reply

logger = logging.getLogger(__name__)

LAMBDA_PAYLOAD_LIMIT = 6 * 2**20  # bytes in a synchronous invocation's request (and its response)
EXIT_FUNCTION_ERROR = -2  # the function raised or timed out: there is no exit code
TRANSIENT_FUNCTION_ERRORS = frozenset({"Sandbox.Timedout", "Runtime.ExitError"})  # timed out, or the sandbox died


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
            announce_call(job)
            try:
                response = self.client.invoke(FunctionName=self.function_name, InvocationType="RequestResponse",
                                              LogType="Tail", Payload=body)
                break
            except Exception as exc:
                if _is_connection_failure(exc):  # the function may have run; its output key is the same on a retry
                    return self._failure(f"connection lost: {type(exc).__name__}: {exc}", throttles, started,
                                         transient=True)
                if not _is_throttle(exc):
                    raise
                throttles += 1
                if throttles > self._throttle_retries:
                    return self._failure(f"throttled {throttles} times by Lambda; raise the function's concurrency "
                                         "limit or lower --concurrency", throttles, started, transient=True)
                wait = self._backoff.delay(throttles)
                logger.info("chunk %s throttled (%d); retrying in %.2f s", job.meta.get("chunk_id"), throttles, wait)
                if pause(wait, job.cancel, self._sleep):
                    return self._failure(CANCELLED, throttles, started)
        return self._result(response, throttles, (self._clock() - started) * 1000.0)

    def _failure(self, error: str, throttles: int, started: float, *, transient: bool = False) -> WorkerResult:
        return WorkerResult(exit_code=EXIT_FUNCTION_ERROR, throttles=throttles, error=error, transient=transient,
                            duration_ms=(self._clock() - started) * 1000.0)

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
            return WorkerResult(exit_code=EXIT_FUNCTION_ERROR, stderr=log_tail, throttles=throttles,
                                error=f"Lambda {kind} error: {error_type}: {message}", duration_ms=wall_ms,
                                transient=error_type in TRANSIENT_FUNCTION_ERRORS, **billing)
        reply = read_reply(payload)
        if reply is None:
            return WorkerResult(exit_code=EXIT_FUNCTION_ERROR, throttles=throttles, duration_ms=wall_ms,
                                error=f"worker replied without an exit code: {str(payload)[:200]}", **billing)
        return reply.to_result(throttles=throttles, duration_ms=wall_ms, **billing)


def _is_connection_failure(exc: Exception) -> bool:
    """A reset, a refused or dropped connection, or a read timeout: the call's fate is unknown."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    return isinstance(exc, (BotoConnectionError, HTTPClientError, ConnectionError))


def _is_throttle(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = response.get("Error", {}).get("Code", "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("TooManyRequestsException", "ThrottlingException") or status == 429
