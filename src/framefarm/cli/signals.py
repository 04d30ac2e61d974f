"""Ctrl-C, SIGTERM and SIGHUP cancel a render cleanly."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def cancel_on_interrupt(cancel: Callable[[], object]) -> Iterator[None]:
    """Ctrl-C, ``kill`` (SIGTERM) and a closed terminal (SIGHUP) cancel the job cleanly, killing its
    subprocesses; the same signal again acts as it would have without this (Ctrl-C interrupts). A
    signal this process was started ignoring (``nohup`` ignores SIGHUP) stays ignored."""
    previous = {signum: before for signum in STOP_SIGNALS
                if (before := signal.getsignal(signum)) not in (signal.SIG_IGN, None)}
    # The handler runs on the main thread wherever it is, maybe inside the token's own lock, so it
    # only posts (SimpleQueue.put is safe in a signal handler) and another thread cancels.
    requests: queue.SimpleQueue[bool] = queue.SimpleQueue()

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signum, previous[signum])
        if signum == getattr(signal, "SIGHUP", None):
            _detach_from_terminal()
        requests.put(True)

    def cancel_on_request() -> None:
        if requests.get():
            cancel()

    canceller = threading.Thread(target=cancel_on_request, name="framefarm-signals", daemon=True)
    canceller.start()
    for signum in previous:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)
        requests.put(False)  # ends the canceller if no signal came


def _detach_from_terminal() -> None:
    """Point stdout and stderr at /dev/null where they are a terminal: after a hang-up, writing to it
    fails (EIO), and a progress line must not turn a clean cancel into a crash. Pipes and files keep
    what they get (``kill -HUP`` of a render whose output is logged)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            with contextlib.suppress(OSError):  # a closed descriptor: nothing to detach
                if stat.S_ISCHR(os.fstat(fd).st_mode):
                    os.dup2(devnull, fd)
    finally:
        os.close(devnull)
