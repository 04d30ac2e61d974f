"""Fault injection: faults armed for a function's next calls (``throttle``, ``crash``, ``reset``,
``duplicate``), each used up by one call that its ``match`` accepts, and kills that SIGKILL the
instance running a call once enough calls to another function have arrived after it began."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from framefarm.devcloud.instance import Instance

EventMatch = Callable[[Any], bool]
FAULTS = ("throttle", "crash", "reset", "duplicate")


@dataclass
class _Fault:
    kind: str
    remaining: int
    match: EventMatch | None


@dataclass
class _Kill:
    """Kill the next call to ``target`` once ``calls`` more calls to ``watched`` arrive after it began."""

    target: str
    watched: str
    calls: int
    request_id: str | None = None  # the target call it is armed on
    instance: Instance | None = None
    done: bool = False


class Faults:
    """The faults and kills armed on one DevCloud; safe to use from its serving threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, list[_Fault]] = {}
        self._kills: list[_Kill] = []

    def inject(self, name: str, kind: str, times: int = 1, match: EventMatch | None = None) -> None:
        """Make the next ``times`` calls to ``name`` (those ``match`` accepts) fail with ``kind`` (see FAULTS)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            self._faults.setdefault(name, []).append(_Fault(kind, times, match))

    def take(self, name: str, kind: str, event: Any) -> bool:
        """Use up one injected ``kind`` fault that applies to this call, if there is one."""
        with self._lock:
            for fault in self._faults.get(name, ()):
                if fault.kind == kind and fault.remaining > 0 and (fault.match is None or fault.match(event)):
                    fault.remaining -= 1
                    return True
        return False

    def kill(self, name: str, *, after_calls_to: str, calls: int) -> None:
        """SIGKILL the instance running the next call to ``name`` when, after it began, the ``calls``-th
        call to ``after_calls_to`` arrives."""
        with self._lock:
            self._kills.append(_Kill(name, after_calls_to, calls))

    @property
    def kills_done(self) -> int:
        with self._lock:
            return sum(kill.done for kill in self._kills)

    @property
    def kills_armed(self) -> int:
        """Kills whose target call is under way (its instance's init over), waiting for their kill point."""
        with self._lock:
            return sum(kill.instance is not None and not kill.done for kill in self._kills)

    def count_call(self, name: str) -> None:
        """A call to ``name`` arrived: kill the instances whose kill point it is."""
        with self._lock:
            due = []
            for kill in self._kills:
                if kill.watched == name and kill.instance is not None and not kill.done:
                    kill.calls -= 1
                    if kill.calls <= 0:
                        kill.done = True
                        due.append(kill.instance)
        for instance in due:
            instance.kill()

    def arm(self, name: str, instance: Instance, request_id: str) -> None:
        """A call to ``name`` began on ``instance``: the first kill waiting for one is armed on it."""
        with self._lock:
            for kill in self._kills:
                if kill.target == name and kill.instance is None and not kill.done:
                    kill.instance, kill.request_id = instance, request_id
                    break

    def disarm(self, request_id: str) -> None:
        """A call that ended before its kill point frees its kill for the next call to the target."""
        with self._lock:
            for kill in self._kills:
                if kill.request_id == request_id and not kill.done:
                    kill.instance, kill.request_id = None, None
