"""The run lease: one owner per run of a job.

A job record carries ``lease_owner`` (a run id) and ``lease_until`` (epoch seconds). A runner starts,
continues or takes over a job only by taking the lease in one conditional write (see
``JobRepository.take_lease``): when it is free (none, or run out), already its own, or handed to it by
the run before (a hand-over leaves the lease to a one-off successor token that the continuation event
carries). Only the owner renews it, each heartbeat; a runner that cannot renew before its lease runs
out stops dispatching, because by then another runner may own the job.

Run ids name where the runner lives (``host:pid:random``), so a process on the same host can tell at
once that a runner is gone (its process no longer exists) instead of waiting for the lease to run out.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

HANDOVER_PREFIX = "handover:"


@dataclass(frozen=True)
class Lease:
    """Who runs a job, and until when (epoch seconds) unless renewed."""

    owner: str
    until: float


@dataclass(frozen=True)
class Beat:
    """What a renewal found: the request (``cancel``/``pause``) waiting on the job, if any."""

    requested: str | None


def new_run_id() -> str:
    """A run id no other runner has: this host, this process, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def new_handover_token() -> str:
    """The owner a hand-over leaves the lease to; the continuation that carries it takes it."""
    return f"{HANDOVER_PREFIX}{uuid.uuid4().hex}"


def owner_is_gone(owner: str | None) -> bool:
    """True when ``owner`` is a runner on this host whose process no longer exists.

    Only a definite answer counts: another host's runner, a hand-over token, or a process id that
    exists (perhaps reused) all count as alive, and then the lease has to run out.
    """
    if owner is None:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # this process: the manager knows its own runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False
