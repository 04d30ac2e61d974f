"""Webhook deliveries in the background: signed POSTs, retried with backoff, every attempt recorded.

``WebhookSender.send`` stores a pending delivery on the job and returns at once; one thread per
sender posts it. An answer of 2xx delivers it; 408, 429, 5xx, a timeout or a connection error is
tried again after a growing wait (``framefarm.backoff.Backoff``) for ``window`` seconds (10 min);
any other 4xx gives up at once. Each attempt moves the delivery's record forward in the job store
(``JobRepository.record_delivery``); a store that fails costs only that record, never the job.

A process that ends calls ``drain(timeout)``: it waits at most ``timeout`` s for what is pending,
then records what is left ``abandoned`` (the CLI's render; an atexit hook does the same for library
callers), or, with ``abandon=False``, leaves it pending for another process to carry on (the
orchestrator Lambda, which hands it over): ``resume`` takes a stored pending delivery up again.
"""

from __future__ import annotations

import atexit
import heapq
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from framefarm.backoff import Backoff
from framefarm.config import ENV_WEBHOOK_EXIT_WAIT
from framefarm.errors import FramefarmError
from framefarm.repositories.base import JobRepository
from framefarm.status import DELIVERY_OUTCOMES_KEPT, DeliveryRecord, DeliveryState
from framefarm.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign

logger = logging.getLogger(__name__)

RETRY_WINDOW = 600.0  # seconds from the first attempt after which a failing delivery is given up
RETRY_BACKOFF = Backoff(initial=2.0, maximum=120.0)  # waits of 1-2 s, 2-4 s, ... up to 60-120 s
REQUEST_TIMEOUT = 10.0  # seconds one POST may take
EXIT_WAIT = 10.0  # seconds a process that ends waits for its deliveries (FRAMEFARM_WEBHOOK_EXIT_WAIT)
RETRIED_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class Answer:
    """What one POST got: an HTTP status, or why there was none."""

    status: int | None = None
    error: str | None = None

    @property
    def outcome(self) -> str:
        """Short, for the record: "200", "503", "timed out", "connection refused"."""
        return str(self.status) if self.status is not None else (self.error or "no answer")[:60]

    def verdict(self) -> DeliveryState | None:
        """DELIVERED (2xx), FAILED (a 4xx other than 408 and 429: the receiver refuses it), or None: try again."""
        if self.status is None:
            return None
        if 200 <= self.status < 300:
            return DeliveryState.DELIVERED
        if self.status in RETRIED_STATUSES or self.status >= 500:
            return None
        return DeliveryState.FAILED if 400 <= self.status < 500 else None


Post = Callable[[str, bytes, dict[str, str], float], Answer]


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST ``body`` to ``url`` (no redirects followed: a redirect is an answer, not a delivery)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return Answer(status=response.status)
    except urllib.error.HTTPError as exc:
        return Answer(status=exc.code)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Answer(error=" ".join(str(reason).split()) or type(exc).__name__)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class WebhookSender:
    """Sends webhook deliveries for jobs in ``repository``, signed with ``secret()``.

    >>> sender = WebhookSender(repository, secret=lambda: "a-long-shared-secret")
    >>> sender.send("job-1", "https://example.com/hooks", "job.completed", {"job_id": "job-1"})
    >>> sender.drain(timeout=10)    # at exit: what is still pending is recorded abandoned
    """

    def __init__(self, repository: JobRepository, *, secret: Callable[[], str], post: Post = post,
                 clock: Callable[[], float] = time.time, backoff: Backoff = RETRY_BACKOFF,
                 window: float = RETRY_WINDOW, timeout: float = REQUEST_TIMEOUT) -> None:
        self._repository, self._secret, self._post, self._clock = repository, secret, post, clock
        self._backoff, self._window, self._timeout = backoff, window, timeout
        self._wake = threading.Condition()
        self._queue: list[tuple[float, int, str, DeliveryRecord]] = []  # (due, order, job id, record)
        self._busy: tuple[str, DeliveryRecord] | None = None
        self._order = 0
        self._stopped = False
        self._thread: threading.Thread | None = None

    def send(self, job_id: str, url: str, event: str, payload: dict[str, Any]) -> DeliveryRecord:
        """Store a pending delivery of ``payload`` and queue it; returns its record at once."""
        now = self._clock()
        record = DeliveryRecord(delivery_id=f"dlv_{uuid.uuid4().hex}", event=event, url=url,
                                body=json.dumps(payload, separators=(",", ":")), created_at=now, updated_at=now,
                                next_at=now)
        self._store(job_id, record)
        self.resume(job_id, record)
        return record

    def resume(self, job_id: str, record: DeliveryRecord) -> None:
        """Queue a stored pending delivery (one another process left, or one just made)."""
        if record.state is not DeliveryState.PENDING:
            return
        delay = max(0.0, (record.next_at or 0.0) - self._clock())
        with self._wake:
            if self._stopped:
                raise FramefarmError("this webhook sender was drained; make another")
            self._order += 1
            heapq.heappush(self._queue, (time.monotonic() + delay, self._order, job_id, record))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="framefarm-webhooks", daemon=True)
                self._thread.start()
                _unfinished.add(self)
            self._wake.notify_all()

    def pending(self) -> list[tuple[str, DeliveryRecord]]:
        """The deliveries not yet settled: (job id, latest record)."""
        with self._wake:
            queued = [(job_id, record) for _, _, job_id, record in sorted(self._queue)]
            return queued + ([self._busy] if self._busy is not None else [])

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until every delivery is settled; True when they are."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._queue or self._busy is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(left)
            return True

    def drain(self, timeout: float, *, abandon: bool = True) -> list[tuple[str, DeliveryRecord]]:
        """Wait up to ``timeout`` s for pending deliveries, then stop; returns those left. With
        ``abandon`` they are recorded ``abandoned``; without, they stay pending in the store."""
        self.wait_idle(timeout)
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(self._timeout + 1.0)  # an attempt under way ends within its request timeout
        _unfinished.discard(self)
        left = self.pending()
        for job_id, record in left if abandon else ():
            self._store(job_id, record.model_copy(update={
                "state": DeliveryState.ABANDONED, "updated_at": self._clock(), "next_at": None,
                "error": f"not delivered before this process ended ({_attempts(record.attempts)} made); "
                         "the job itself is recorded"}))
        return left

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (not self._queue or self._queue[0][0] > time.monotonic()):
                    self._wake.wait(self._queue[0][0] - time.monotonic() if self._queue else None)
                if self._stopped:
                    return
                _, _, job_id, record = heapq.heappop(self._queue)
                self._busy = (job_id, record)
            try:
                record = self._attempt(job_id, record)
            except Exception:  # a bug here must not kill the thread with deliveries queued
                logger.exception("webhook %s of job %s: attempt failed", record.delivery_id, job_id)
                record = record.model_copy(update={"state": DeliveryState.FAILED, "error": "internal error"})
                self._store(job_id, record)
            with self._wake:
                self._busy = None
                if record.state is DeliveryState.PENDING:
                    self._order += 1
                    due = time.monotonic() + max(0.0, (record.next_at or 0.0) - self._clock())
                    heapq.heappush(self._queue, (due, self._order, job_id, record))
                self._wake.notify_all()

    def _attempt(self, job_id: str, record: DeliveryRecord) -> DeliveryRecord:
        """One signed POST; returns the record after it (stored)."""
        try:
            secret = self._secret()
        except FramefarmError as exc:  # nothing to sign with: no attempt can ever succeed
            return self._store(job_id, record.model_copy(update={
                "state": DeliveryState.FAILED, "updated_at": self._clock(), "next_at": None, "error": str(exc)}))
        body = record.body.encode()
        now = self._clock()
        headers = {"Content-Type": "application/json", "User-Agent": "framefarm-webhooks",
                   EVENT_HEADER: record.event, DELIVERY_HEADER: record.delivery_id,
                   SIGNATURE_HEADER: sign(body, secret, timestamp=int(now))}
        answer = self._post(record.url, body, headers, self._timeout)
        attempts = record.attempts + 1
        state, error, next_at = answer.verdict(), None, None
        if state is DeliveryState.FAILED:
            error = f"the receiver answered {answer.status}: not retried"
        elif state is None:
            next_at = self._clock() + self._backoff.delay(attempts)
            if next_at - record.created_at > self._window:
                state = DeliveryState.FAILED
                error = (f"gave up after {_attempts(attempts)} over {self._clock() - record.created_at:.0f} s; "
                         f"last: {answer.outcome}")
                next_at = None
            else:
                state = DeliveryState.PENDING
        logger.info("webhook %s of job %s (%s): attempt %d: %s", record.delivery_id, job_id, record.event, attempts,
                    answer.outcome)
        outcomes = [*record.outcomes, answer.outcome][-DELIVERY_OUTCOMES_KEPT:]
        return self._store(job_id, record.model_copy(update={
            "state": state, "attempts": attempts, "outcomes": outcomes, "error": error, "updated_at": self._clock(),
            "next_at": next_at}))

    def _store(self, job_id: str, record: DeliveryRecord) -> DeliveryRecord:
        try:
            self._repository.record_delivery(job_id, record)
        except Exception:  # the delivery goes on; only its record is behind
            logger.warning("webhook %s of job %s: not recorded", record.delivery_id, job_id, exc_info=True)
        return record


def exit_wait() -> float:
    """Seconds a process that ends waits for its deliveries: FRAMEFARM_WEBHOOK_EXIT_WAIT, else EXIT_WAIT."""
    try:
        return max(0.0, float(os.environ.get(ENV_WEBHOOK_EXIT_WAIT) or EXIT_WAIT))
    except ValueError:
        return EXIT_WAIT


def _attempts(count: int) -> str:
    return f"{count} attempt" + ("" if count == 1 else "s")


# Senders with a thread, drained (bounded) when the interpreter exits, so a library caller's
# pending deliveries are tried a little longer and then recorded, not silently dropped.
_unfinished: weakref.WeakSet[WebhookSender] = weakref.WeakSet()


@atexit.register
def _drain_at_exit() -> None:
    for sender in list(_unfinished):
        sender.drain(exit_wait())
