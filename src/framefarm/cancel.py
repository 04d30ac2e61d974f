"""CancelToken: how a caller stops a running job.

Two strengths:

- ``cancel()`` stops dispatch *and* kills work in flight (adapters register a kill callback);
- ``drain()`` only stops dispatch: work in flight finishes and is recorded (used for pause, so that
  a paused-then-resumed job runs every chunk exactly once).

Either way the executor raises ``JobAbortedError(reason)``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class CancelToken:
    """Thread-safe stop signal shared by the executor and the adapters running its chunks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._kill = threading.Event()
        self._reason: str | None = None
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next_handle = 0
        self._children: set[CancelToken] = set()

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop dispatching and kill work in flight."""
        with self._lock:
            self._reason = self._reason or reason
            self._stop.set()
            self._kill.set()
            callbacks = list(self._callbacks.values())
            self._callbacks.clear()
            children = list(self._children)
        for callback in callbacks:
            callback()
        for child in children:
            child.cancel(reason)

    def drain(self, reason: str = "paused") -> None:
        """Stop dispatching; let work in flight finish."""
        with self._lock:
            self._reason = self._reason or reason
            self._stop.set()
            children = list(self._children)
        for child in children:
            child.drain(reason)

    def child(self) -> CancelToken:
        """A token that stops whenever this one does, and can also be stopped on its own."""
        child = CancelToken()
        with self._lock:
            self._children.add(child)
            killed, stopped, reason = self._kill.is_set(), self._stop.is_set(), self._reason
        if killed:
            child.cancel(reason or "cancelled")
        elif stopped:
            child.drain(reason or "paused")
        return child

    def release(self, child: CancelToken) -> None:
        """Stop passing stops on to ``child`` (its work is over), so a long run does not keep every child."""
        with self._lock:
            self._children.discard(child)

    @property
    def cancelled(self) -> bool:
        """True once work in flight should be killed."""
        return self._kill.is_set()

    @property
    def stopping(self) -> bool:
        """True once no new work should start (after ``cancel`` or ``drain``)."""
        return self._stop.is_set()

    @property
    def reason(self) -> str | None:
        return self._reason

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking early (returning True) when stopping."""
        return self._stop.wait(timeout)

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` on ``cancel()`` (at once if already cancelled); returns an unregister function."""
        with self._lock:
            if not self._kill.is_set():
                handle = self._next_handle
                self._next_handle += 1
                self._callbacks[handle] = callback
                return lambda: self._callbacks.pop(handle, None) and None
        callback()
        return lambda: None
