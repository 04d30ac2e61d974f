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


@dataclass(frozen=True)
class InfraSettings:
    region: str | None = None
    worker_memory_mb: int = 2048
    worker_architecture: str = "x86_64"
    worker_timeout: int = 300
    max_concurrency: int = 100
    chunk_expiry_days: int = 7
    log_retention_days: int = 30
    sweep_minutes: int = 5  # how often the orchestrator looks for abandoned running jobs
    event_bus: str = "default"  # the EventBridge bus job events go to

    @classmethod
    def from_context(cls, get: Any) -> InfraSettings:
        """``get`` is ``node.try_get_context``."""
        def pick(name: str, default: Any, kind: type) -> Any:
            value = get(name)
            return default if value is None else kind(value)

        settings = cls(region=get("region"), worker_memory_mb=pick("workerMemory", 2048, int),
                       worker_architecture=pick("workerArchitecture", "x86_64", str),
                       worker_timeout=pick("workerTimeout", 300, int),
                       max_concurrency=pick("maxConcurrency", 100, int),
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
        if self.max_concurrency < 1 or self.chunk_expiry_days < 1 or self.sweep_minutes < 1:
            raise ValueError("maxConcurrency, chunkExpiryDays and sweepMinutes must be at least 1")
