"""Signed webhooks: a POST to the operator's URL when a job ends (and, when asked, when a chunk
fails for good), retried in the background, every attempt recorded on the job.

- ``signing``: the ``Framefarm-Signature`` scheme and ``verify`` for receivers;
- ``payload``: the event names and JSON bodies;
- ``sender``: ``WebhookSender``, delivery with backoff and its bounded drain at exit;
- ``secret``: the signing secret (``FRAMEFARM_WEBHOOK_SECRET``, or the stack's Secrets Manager secret);
- ``notifier``: what a JobManager calls when a job ends (webhook and EventBridge event).

Receivers need only ``verify``::

    from framefarm.webhooks import verify
    verify(raw_body, headers["Framefarm-Signature"], secret)   # SignatureError unless genuine and fresh
"""

from __future__ import annotations

from framefarm.webhooks.signing import (
    DEFAULT_TOLERANCE,
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    SignatureError,
    sign,
    verify,
)

__all__ = ["DEFAULT_TOLERANCE", "DELIVERY_HEADER", "EVENT_HEADER", "SIGNATURE_HEADER", "SignatureError", "sign",
           "verify"]
