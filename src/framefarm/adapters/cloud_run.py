"""CloudRunWorkerAdapter: one chunk = one authenticated POST to the Cloud Run worker service.

The service is a URL, or a resource name (``projects/P/locations/L/services/S``) resolved with
google-cloud-run's ``ServicesClient.get_service``, which also gives the container's CPU and memory
limits (the cost model) and the request timeout (the client waits longer, so a slow chunk is never
sent twice by a timeout). Requests carry an OIDC ID token for the service URL from an injectable
provider (default: ``google.oauth2.id_token.fetch_id_token``).

Billed time is the request time rounded up to 100 ms; cost from vCPU-seconds and GiB-seconds
(``billing.CloudRunPrices``). 429 and 503 are retried with backoff and jitter (not attempts,
counted in ``throttles``; ``throttled_out`` once spent); other 4xx are ``bad_request`` and 5xx
``function_error`` failed attempts, with the body kept; a lost connection is ``connection_lost``.
Output comes back buffered; ``on_stdout``/``on_stderr`` are accepted and never called.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from framefarm.adapters.base import CANCELLED, WorkerJob, WorkerResult, mark_sent
from framefarm.backoff import Backoff, pause
from framefarm.billing import CLOUD_RUN_PRICES, CloudRunPrices
from framefarm.errors import FramefarmError
from framefarm.failures import FailureKind
from framefarm.protocol import chunk_request, read_reply
from framefarm.redaction import redact
from framefarm.storage.base import Storage

RETRIED_STATUSES = (429, 503)
TOKEN_LIFETIME = 50 * 60  # Google ID tokens last an hour; refresh well before
SERVICE_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/services/[^/]+$")

TokenProvider = Callable[[str], str]


@dataclass(frozen=True)
class CloudRunService:
    """Where the worker is and what one of its instances has (for the cost model)."""

    url: str
    vcpu: float
    memory_gib: float
    timeout: float


def google_id_token(audience: str) -> str:
    """An ID token for ``audience`` from the environment's Google credentials."""
    import google.auth.transport.requests
    import google.oauth2.id_token

    return str(google.oauth2.id_token.fetch_id_token(google.auth.transport.requests.Request(), audience))


def resolve_service(name: str, *, client: Any = None) -> CloudRunService:
    """URL, limits and timeout of a Cloud Run service, read with ``run_v2.ServicesClient``."""
    if client is None:
        from google.cloud import run_v2

        client = run_v2.ServicesClient()
    service = client.get_service(name=name)
    container = service.template.containers[0]
    limits = dict(container.resources.limits)
    timeout = service.template.timeout.total_seconds() if service.template.timeout else 300.0
    return CloudRunService(url=service.uri, vcpu=parse_cpu(limits.get("cpu", "1")),
                           memory_gib=parse_memory_gib(limits.get("memory", "512Mi")), timeout=timeout)


def parse_cpu(value: str) -> float:
    """Kubernetes CPU quantities: "2", "1000m"."""
    return float(value[:-1]) / 1000.0 if value.endswith("m") else float(value)


def parse_memory_gib(value: str) -> float:
    """Kubernetes memory quantities: "512Mi", "4Gi", "1G", "2048M" -> GiB."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?)?", value)
    if match is None:
        raise FramefarmError(f"cannot read memory limit {value!r}")
    number, unit = float(match.group(1)), match.group(2) or ""
    factor = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
              "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}[unit]
    return number * factor / 2**30


class CloudRunWorkerAdapter:
    """Runs chunks on a Cloud Run worker service (see the module docstring)."""

    def __init__(self, service: str | CloudRunService, storage: Storage, *, services_client: Any = None,
                 token_provider: TokenProvider = google_id_token, session: Any = None,
                 prices: CloudRunPrices = CLOUD_RUN_PRICES, vcpu: float = 1.0, memory_gib: float = 0.5,
                 service_timeout: float = 300.0, retries: int = 12, retry_delay: float = 0.25,
                 max_retry_delay: float = 20.0, clock: Callable[[], float] = time.monotonic,
                 jitter: Callable[[], float] = random.random, sleep: Callable[[float], None] = time.sleep) -> None:
        if isinstance(service, CloudRunService):
            self.service = service
        elif SERVICE_NAME.match(service):
            self.service = resolve_service(service, client=services_client)
        elif service.startswith(("https://", "http://")):
            self.service = CloudRunService(url=service.rstrip("/"), vcpu=vcpu, memory_gib=memory_gib,
                                           timeout=service_timeout)
        else:
            raise FramefarmError(f"--service {service!r}: give a URL or projects/P/locations/L/services/S")
        self.call_timeout = self.service.timeout  # the executor's watchdog waits this plus its margin
        self.storage = storage
        self._loopback = urlparse(self.service.url).hostname in ("127.0.0.1", "localhost", "::1")
        self._token_provider = token_provider
        self._token: tuple[str, float] | None = None
        self._token_lock = threading.Lock()
        if session is None:
            import requests

            session = requests.Session()
        self._session = session
        self.prices = prices
        self._retries = retries
        self._backoff = Backoff(retry_delay, max_retry_delay, jitter)
        self._clock, self._sleep = clock, sleep

    def token(self) -> str:
        if self._loopback:
            return ""  # a worker on this machine has no Cloud Run IAM in front of it
        with self._token_lock:
            now = self._clock()
            if self._token is None or now - self._token[1] > TOKEN_LIFETIME:
                self._token = (self._token_provider(self.service.url), now)
            return self._token[0]

    def execute(self, job: WorkerJob) -> WorkerResult:
        body = json.dumps(chunk_request(job, self.storage))
        throttles = 0
        started = self._clock()
        while True:
            sent = self._clock()
            token = self.token()
            headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
            mark_sent(job)
            try:
                response = self._session.post(
                    self.service.url + "/", data=body, headers=headers,
                    timeout=(10, self.service.timeout + 60))  # read timeout above the service's own
            except OSError as exc:  # requests' ConnectionError and Timeout: reset, refused, read timed out
                return self._failure(FailureKind.CONNECTION_LOST,
                                     f"connection lost: {type(exc).__name__}: {redact(str(exc), [token])}",
                                     throttles, started)
            request_ms = (self._clock() - sent) * 1000.0
            if response.status_code not in RETRIED_STATUSES:
                break
            throttles += 1
            if throttles > self._retries:
                return self._failure(FailureKind.THROTTLED_OUT,
                                     f"HTTP {response.status_code} {throttles} times: the service is at its "
                                     "instance limit; raise maxScale or lower --concurrency", throttles, started)
            if pause(self._backoff.delay(throttles), job.cancel, self._sleep):
                return self._failure(FailureKind.CANCELLED, CANCELLED, throttles, started)
        billed = self.prices.billed_ms(request_ms)
        billing: dict[str, Any] = {"billed_duration_ms": billed, "memory_mb": int(self.service.memory_gib * 1024),
                   "cost_usd": self.prices.cost(billed_duration_ms=billed, vcpu=self.service.vcpu,
                                                memory_gib=self.service.memory_gib)}
        wall_ms = (self._clock() - started) * 1000.0
        if response.status_code != 200:
            kind = FailureKind.BAD_REQUEST if response.status_code < 500 else FailureKind.FUNCTION_ERROR
            return WorkerResult(kind=kind, throttles=throttles, duration_ms=wall_ms,
                                error=f"HTTP {response.status_code}: {redact(response.text[:1000], [token])}",
                                **billing)
        try:
            reply = read_reply(response.json())
        except ValueError:
            reply = None
        if reply is None:
            return WorkerResult(kind=FailureKind.FUNCTION_ERROR, throttles=throttles, duration_ms=wall_ms,
                                error=f"worker replied without an exit code: {response.text[:200]!r}", **billing)
        return reply.to_result(throttles=throttles, duration_ms=wall_ms, **billing)

    def _failure(self, kind: FailureKind, error: str, throttles: int, started: float) -> WorkerResult:
        return WorkerResult(kind=kind, error=error, throttles=throttles, duration_ms=(self._clock() - started) * 1000.0)

