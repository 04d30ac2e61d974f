"""The instances of one devcloud function: warm ones reused (newest first), cold ones started on demand,
idle ones reaped after ``idle_timeout`` seconds, as Lambda keeps and recycles execution environments.

The pool does not bound its size: devcloud admits at most the function's reserved concurrency of calls,
and each call holds one instance, so the pool never holds more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from framefarm.devcloud.instance import Instance


class Pool:
    def __init__(self, start: Callable[[], Instance], idle_timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._start = start
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._idle: list[tuple[Instance, float]] = []  # (instance, when it last finished a call)
        self._instances: set[Instance] = set()
        self._closed = False

    def acquire(self) -> tuple[Instance, bool]:
        """An instance for one call, and whether it is new (cold: its init has yet to finish)."""
        dead = []
        with self._lock:
            while self._idle:
                instance, _ = self._idle.pop()
                if instance.alive:
                    break
                dead.append(instance)
            else:
                instance = None
        for gone in dead:
            self._discard(gone)
        if instance is not None:
            return instance, False
        instance = self._start()
        with self._lock:
            self._instances.add(instance)
            closed = self._closed
        if closed:
            instance.close()
        return instance, True

    def release(self, instance: Instance) -> None:
        """Take back an instance after its call: kept warm if it still lives, else cleaned up."""
        with self._lock:
            keep = instance.alive and not self._closed
            if keep:
                self._idle.append((instance, self._clock()))
        if not keep:
            self._discard(instance)

    def reap(self) -> int:
        """Close the instances idle for longer than ``idle_timeout``; how many."""
        cutoff = self._clock() - self.idle_timeout
        with self._lock:
            stale = [instance for instance, since in self._idle if since <= cutoff]
            self._idle = [(instance, since) for instance, since in self._idle if since > cutoff]
        for instance in stale:
            self._discard(instance)
        return len(stale)

    def instances(self) -> list[Instance]:
        """Every instance that lives (busy or idle)."""
        with self._lock:
            return [instance for instance in self._instances if instance.alive]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            everything, self._idle = list(self._instances), []
        for instance in everything:
            self._discard(instance)

    def _discard(self, instance: Instance) -> None:
        instance.close()
        with self._lock:
            self._instances.discard(instance)
