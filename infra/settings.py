"""The stack's knobs, from CDK context (``cdk deploy -c workerMemory=4096``) with defaults.

Validated at synth: a worker timeout the orchestrator cannot wait out is refused here, not found
at 3 a.m. in production.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from framefarm.aws.functions import FIXED_LIMITS, ORCHESTRATE
from framefarm.config import HANDOVER_SPARE

ORCHESTRATOR_TIMEOUT = FIXED_LIMITS[ORCHESTRATE][1]  # seconds: Lambda's maximum
MIN_DISPATCH_WINDOW = 60  # seconds each orchestrator run must have for dispatching, at least
UNRESERVED_MINIMUM = 100  # concurrent executions Lambda keeps unreserved in every account and region


@dataclass(frozen=True)
class InfraSettings:
    region: str | None = None
    worker_memory_mb: int = 2048
    worker_architecture: str = "x86_64"
    worker_timeout: int = 300
    max_concurrency: int = 100  # chunks in flight on the stack at once: render-chunk's reserved concurrency
    account_concurrency: int = 1000  # the account's Lambda concurrency quota (1,000 unless raised)
    chunk_expiry_days: int = 7
    log_retention_days: int = 30
    sweep_minutes: int = 5  # how often the orchestrator looks for abandoned running jobs
    event_bus: str = "default"  # the EventBridge bus job events go to

    @classmethod
    def from_context(cls, get: Any) -> InfraSettings:
        """``get`` is ``node.try_get_context``."""
        def pick(name: str, default: Any, kind: type) -> Any:
            value = get(name)
            if value is None:
                return default
            try:
                return kind(value)
            except ValueError:  # only the numbers can be wrong
                raise ValueError(f"{name}: {value!r} is not a whole number") from None

        settings = cls(region=get("region"), worker_memory_mb=pick("workerMemory", 2048, int),
                       worker_architecture=pick("workerArchitecture", "x86_64", str),
                       worker_timeout=pick("workerTimeout", 300, int),
                       max_concurrency=pick("maxConcurrency", 100, int),
                       account_concurrency=pick("accountConcurrency", 1000, int),
                       chunk_expiry_days=pick("chunkExpiryDays", 7, int),
                       log_retention_days=pick("logRetentionDays", 30, int),
                       sweep_minutes=pick("sweepMinutes", 5, int), event_bus=pick("eventBus", "default", str))
        settings.validate()
        return settings

    def validate(self) -> None:
        longest = ORCHESTRATOR_TIMEOUT - HANDOVER_SPARE - MIN_DISPATCH_WINDOW
        if not 1 <= self.worker_timeout <= longest:
            raise ValueError(f"workerTimeout: {self.worker_timeout} s leaves the {ORCHESTRATOR_TIMEOUT} s orchestrator "
                             f"under {MIN_DISPATCH_WINDOW} s to dispatch; use 1-{longest:.0f} s")
        if self.worker_architecture not in ("x86_64", "arm64"):
            raise ValueError(f"workerArchitecture: {self.worker_architecture!r}; use x86_64 or arm64")
        if not 128 <= self.worker_memory_mb <= 10_240:
            raise ValueError(f"workerMemory: {self.worker_memory_mb} MB; Lambda allows 128-10240")
        if not re.fullmatch(r"[A-Za-z0-9._/-]{1,256}", self.event_bus):
            raise ValueError(f"eventBus: {self.event_bus!r}; an EventBridge bus name (letters, digits, . _ - /)")
        if self.chunk_expiry_days < 1 or self.sweep_minutes < 1:
            raise ValueError("chunkExpiryDays and sweepMinutes must be at least 1")
        most = self.account_concurrency - UNRESERVED_MINIMUM
        if most < 1:
            raise ValueError(f"accountConcurrency: {self.account_concurrency} leaves nothing to reserve "
                             f"(Lambda keeps {UNRESERVED_MINIMUM} unreserved); give your account's quota")
        if not 1 <= self.max_concurrency <= most:
            raise ValueError(f"maxConcurrency: {self.max_concurrency} cannot be reserved for render-chunk in an "
                             f"account of {self.account_concurrency} concurrent executions (Lambda keeps "
                             f"{UNRESERVED_MINIMUM} unreserved); use 1-{most}, or -c accountConcurrency=N if your "
                             "quota is higher")
