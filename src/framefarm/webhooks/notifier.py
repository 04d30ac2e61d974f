"""What a JobManager tells the outside when a job ends: a signed webhook, when the job (or its run)
asks for one, and an EventBridge event, when a bus is configured (on AWS).

A job that ends failed also reports each chunk that failed for good in that run: on EventBridge
always (``Chunk Failed``), by webhook when ``notify.chunk_failures`` asks. Nothing here can change
or delay the job's own state: it is announced after it is stored, and every failure to announce it
is logged and recorded on the delivery, never raised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from framefarm import events
from framefarm.repositories.base import JobRepository
from framefarm.spec import Notify
from framefarm.status import ChunkState, DeliveryRecord, JobRecord, JobState
from framefarm.webhooks.payload import CHUNK_FAILED, chunk_payload, job_event, job_payload
from framefarm.webhooks.secret import webhook_secret
from framefarm.webhooks.sender import WebhookSender

logger = logging.getLogger(__name__)

Publish = Callable[[str, Mapping[str, Any]], bool]


def with_webhook(notify: Notify | None, webhook: str) -> Notify:
    """``notify`` with its webhook replaced by ``webhook`` (JobSpecError for a bad URL); the rest kept."""
    return Notify(webhook=webhook, chunk_failures=notify.chunk_failures if notify is not None else False)


class Notifier:
    """Announces the end of jobs kept in ``repository``. ``sender`` makes the WebhookSender (one at a
    time, started on the first delivery; a drained one is replaced); ``publish`` puts EventBridge events."""

    def __init__(self, repository: JobRepository, *, sender: Callable[[JobRepository], WebhookSender] | None = None,
                 publish: Publish = events.publish) -> None:
        self._repository = repository
        self._make_sender = sender or (lambda store: WebhookSender(store, secret=webhook_secret))
        self._publish = publish
        self._lock = threading.Lock()
        self._sender: WebhookSender | None = None

    @property
    def sender(self) -> WebhookSender:
        with self._lock:
            if self._sender is None:
                self._sender = self._make_sender(self._repository)
            return self._sender

    def job_ended(self, status: JobRecord, notify: Notify | None, *, since: float | None = None) -> None:
        """Announce ``status`` (stored, ended); chunks that failed at or after ``since`` are reported too."""
        event = job_event(status.state)
        if event is None:
            return
        webhook = notify.webhook if notify is not None else None
        chunk_hooks = webhook is not None and notify is not None and notify.chunk_failures
        if status.state is JobState.FAILED and (chunk_hooks or events.event_bus() is not None):
            records = self._repository.require(status.id).chunks
            for record in records:
                if record.state is ChunkState.FAILED and (since is None or (record.finished_at or 0.0) >= since):
                    detail = chunk_payload(status, record)
                    self._publish(events.CHUNK_FAILED, detail)
                    if chunk_hooks and webhook is not None:
                        self.sender.send(status.id, webhook, CHUNK_FAILED, detail)
        detail = job_payload(status)
        self._publish(events.JOB_STATE_CHANGE, detail)
        if webhook is not None:
            self.sender.send(status.id, webhook, event, detail)

    def drain(self, timeout: float, *, abandon: bool = True) -> list[tuple[str, DeliveryRecord]]:
        """Wait up to ``timeout`` s for the deliveries under way; see ``WebhookSender.drain``."""
        with self._lock:
            sender, self._sender = self._sender, None
        return sender.drain(timeout, abandon=abandon) if sender is not None else []
