"""Exponential backoff with equal jitter, and a wait that a cancel ends: the one retry rhythm
that chunk retries (executor), platform throttling (Lambda, Cloud Run adapters) and job store
retries (DynamoDB conflicts and unprocessed writes, the store writer) share."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from framefarm.cancel import CancelToken


@dataclass(frozen=True)
class Backoff:
    """Try n waits between d/2 and d, where d = initial * 2^(n-1), capped at ``maximum``."""

    initial: float
    maximum: float
    jitter: Callable[[], float] = random.random

    def delay(self, attempt: int) -> float:
        ceiling = min(self.maximum, self.initial * (2 ** (attempt - 1)))
        return ceiling / 2 + ceiling / 2 * self.jitter()


def no_jitter() -> float:
    """Always the full delay: for a single caller retrying its own write, with nobody to spread out from."""
    return 1.0


def pause(seconds: float, cancel: CancelToken | None, sleep: Callable[[float], None]) -> bool:
    """Wait ``seconds``; a cancel ends the wait at once. True when it was cancelled."""
    if cancel is None:
        sleep(seconds)
        return False
    return cancel.wait(seconds)
