"""Where the deployed resources are: names from the environment the CDK stack sets, or arguments.

Settings only; ``framefarm.backends.Lambda`` builds the clients, stores and managers from them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from framefarm.config import (
    DEFAULT_LAMBDA_CONCURRENCY,
    ENV_BUCKET,
    ENV_CONCURRENCY,
    ENV_LOST_EVENTS_QUEUE,
    ENV_ORCHESTRATOR_FUNCTION,
    ENV_TABLE,
    ENV_WORKER_ARCHITECTURE,
    ENV_WORKER_FUNCTION,
    ENV_WORKER_TIMEOUT,
)
from framefarm.errors import FramefarmError


@dataclass(frozen=True)
class AwsSettings:
    table: str | None = None
    bucket: str | None = None
    worker_function: str | None = None
    orchestrator_function: str | None = None
    worker_timeout: float = 300.0
    worker_architecture: str = "x86_64"
    concurrency: int = DEFAULT_LAMBDA_CONCURRENCY
    lost_events_queue: str | None = None  # the orchestrator's on-failure destination, which the sweep reads

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **overrides: Any) -> AwsSettings:
        """Explicit overrides (non-None) win over the environment; ``require`` a name before using it."""
        values: dict[str, Any] = {
            "table": environ.get(ENV_TABLE), "bucket": environ.get(ENV_BUCKET),
            "worker_function": environ.get(ENV_WORKER_FUNCTION),
            "orchestrator_function": environ.get(ENV_ORCHESTRATOR_FUNCTION),
            "worker_timeout": float(environ.get(ENV_WORKER_TIMEOUT, 300)),
            "worker_architecture": environ.get(ENV_WORKER_ARCHITECTURE, "x86_64"),
            "concurrency": int(environ.get(ENV_CONCURRENCY, DEFAULT_LAMBDA_CONCURRENCY)),
            "lost_events_queue": environ.get(ENV_LOST_EVENTS_QUEUE),
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)

    def require(self, name: str) -> str:
        """The setting ``name`` (table, bucket, worker_function, orchestrator_function), or FramefarmError
        saying how to give it."""
        value = getattr(self, name)
        if not value:
            flag, argument, env = _GIVEN_BY[name]
            raise FramefarmError(f"no {name.replace('_', ' ')} given: pass {flag} (ff.Lambda({argument}=...)), "
                                 f"a stack, or set {env}")
        return str(value)


_GIVEN_BY = {"table": ("--table", "table", ENV_TABLE), "bucket": ("--bucket", "bucket", ENV_BUCKET),
             "worker_function": ("--function", "function", ENV_WORKER_FUNCTION),
             "orchestrator_function": ("--function", "orchestrator", ENV_ORCHESTRATOR_FUNCTION)}
