"""Where the deployed resources are: names from the environment the CDK stack sets, or arguments."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from framefarm.config import (
    DEFAULT_LAMBDA_CONCURRENCY,
    ENV_BUCKET,
    ENV_CONCURRENCY,
    ENV_ORCHESTRATOR_FUNCTION,
    ENV_TABLE,
    ENV_WORKER_ARCHITECTURE,
    ENV_WORKER_FUNCTION,
    ENV_WORKER_TIMEOUT,
)
from framefarm.errors import FramefarmError
from framefarm.executor import JobExecutor
from framefarm.manager import JobManager


@dataclass(frozen=True)
class AwsSettings:
    table: str
    bucket: str
    worker_function: str | None = None
    orchestrator_function: str | None = None
    worker_timeout: float = 300.0
    worker_architecture: str = "x86_64"
    concurrency: int = DEFAULT_LAMBDA_CONCURRENCY

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **overrides: Any) -> AwsSettings:
        """Explicit overrides (non-None) win over the environment; table and bucket are required."""
        values: dict[str, Any] = {
            "table": environ.get(ENV_TABLE), "bucket": environ.get(ENV_BUCKET),
            "worker_function": environ.get(ENV_WORKER_FUNCTION),
            "orchestrator_function": environ.get(ENV_ORCHESTRATOR_FUNCTION),
            "worker_timeout": float(environ.get(ENV_WORKER_TIMEOUT, 300)),
            "worker_architecture": environ.get(ENV_WORKER_ARCHITECTURE, "x86_64"),
            "concurrency": int(environ.get(ENV_CONCURRENCY, DEFAULT_LAMBDA_CONCURRENCY)),
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        for name, env in (("table", ENV_TABLE), ("bucket", ENV_BUCKET)):
            if not values[name]:
                raise FramefarmError(f"no {name} given: pass --{name} or set {env}")
        return cls(**values)

    def require(self, name: str) -> str:
        value = getattr(self, name)
        if not value:
            env = {"worker_function": ENV_WORKER_FUNCTION, "orchestrator_function": ENV_ORCHESTRATOR_FUNCTION}[name]
            raise FramefarmError(f"no {name.replace('_', ' ')} given: pass --function or set {env}")
        return str(value)

    def storage(self, client: Any = None) -> Any:
        from framefarm.storage.s3 import S3Storage

        return S3Storage(self.bucket, client=client)

    def repository(self, *, client: Any = None, storage: Any = None) -> Any:
        from framefarm.repositories.dynamodb import DynamoDBJobRepository

        return DynamoDBJobRepository(self.table, client=client, storage=storage or self.storage())

    def manager(self, adapter: Any = None, storage: Any = None) -> JobManager:
        """A manager over this table and bucket; chunks run on ``adapter`` (None: it only creates
        and inspects jobs, and refuses to run a chunk)."""
        storage = storage or self.storage()
        return JobManager(self.repository(storage=storage), JobExecutor(adapter or _NoWorker()), storage)


class _NoWorker:
    """The adapter of a manager that only creates and inspects jobs (the submit function, the sweep)."""

    def execute(self, job: Any) -> Any:
        raise FramefarmError("this manager does not run chunks")
