"""Where the signing secret comes from: ``FRAMEFARM_WEBHOOK_SECRET``, or on AWS the stack's Secrets
Manager secret, whose ARN ``FRAMEFARM_WEBHOOK_SECRET_ARN`` holds (read when a delivery is signed,
kept in memory only). The secret is never put in a job record, a log line, an event or a spec."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from framefarm.config import ENV_WEBHOOK_SECRET, ENV_WEBHOOK_SECRET_ARN
from framefarm.errors import FramefarmError

MIN_SECRET_LENGTH = 16

_lock = threading.Lock()
_from_arn: dict[str, str] = {}


class WebhookSecretError(FramefarmError):
    """No usable signing secret."""


def webhook_secret(environ: Mapping[str, str] | None = None, *, client: Any = None) -> str:
    """The signing secret; WebhookSecretError saying how to give one."""
    source = os.environ if environ is None else environ
    value = source.get(ENV_WEBHOOK_SECRET)
    arn = source.get(ENV_WEBHOOK_SECRET_ARN)
    if not value and arn:
        value = _read_secret(arn, client)
    if not value:
        raise WebhookSecretError(f"no webhook signing secret: set {ENV_WEBHOOK_SECRET} (at least "
                                 f"{MIN_SECRET_LENGTH} characters; receivers check deliveries with the same one)")
    if len(value) < MIN_SECRET_LENGTH:
        raise WebhookSecretError(f"{ENV_WEBHOOK_SECRET}: {len(value)} characters is too short to sign with; "
                                 f"use at least {MIN_SECRET_LENGTH} (e.g. `openssl rand -hex 32`)")
    return value


def _read_secret(arn: str, client: Any) -> str:
    with _lock:
        if arn in _from_arn:
            return _from_arn[arn]
    if client is None:
        import boto3

        client = boto3.client("secretsmanager")
    try:
        value = str(client.get_secret_value(SecretId=arn)["SecretString"])
    except Exception as exc:  # the error names the secret, never its value
        raise WebhookSecretError(f"cannot read the webhook secret {arn}: {type(exc).__name__}") from None
    with _lock:
        _from_arn[arn] = value
    return value
