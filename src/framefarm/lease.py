"""The run lease: one owner per run of a job.

A job record carries ``lease_owner`` (a run id) and ``lease_until`` (epoch seconds). A runner starts,
continues or takes over a job only by taking the lease in one conditional write (see
``JobRepository.take_lease``): when it is free (none, or run out), already its own, or handed to it by
the run before (a hand-over leaves the lease to a one-off successor token that the continuation event
carries). Only the owner renews it, each heartbeat; a runner that cannot renew before its lease runs
out stops dispatching, because by then another runner may own the job.

Run ids name where the runner lives (``host:pid:namespace.start:random``: the host, the process, its
pid namespace and its start time), so a process on the same host and in the same pid namespace can
tell at once that a runner is gone (no such process, or another one that reused its pid) instead of
waiting for the lease to run out. Containers that share a host name but not a pid namespace never
judge each other's runners.
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

    pending_action: str | None


def new_run_id() -> str:
    """A run id no other runner has: this host, this process (with its pid namespace and start time),
    and a random part."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_pid_namespace()}.{_started(pid)}:{uuid.uuid4().hex[:12]}"


def new_handover_token() -> str:
    """The owner a hand-over leaves the lease to; the continuation that carries it takes it."""
    return f"{HANDOVER_PREFIX}{uuid.uuid4().hex}"


def owner_is_gone(owner: str | None) -> bool:
    """True when ``owner`` is a runner on this host, in this pid namespace, whose process is gone.

    Only a definite answer counts: another host's or namespace's runner, a hand-over token, or a
    process that exists with the runner's start time all count as alive, and then the lease has to
    run out.
    """
    if owner is None:
        return False
    host, pid_text, where, *_ = [*owner.split(":"), "", ""]
    namespace, _, started = where.partition(".")
    if host != socket.gethostname() or not pid_text.isdigit() or namespace != _pid_namespace():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # this process: the manager knows its own runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        pass
    return started not in ("", "0") and _started(pid) not in (started, "0")  # "0": cannot tell


def _pid_namespace() -> str:
    """This process's pid namespace (its inode on Linux; "0" where there is none to read)."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"


def _started(pid: int) -> str:
    """When process ``pid`` started, in clock ticks since boot (Linux); "0" where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[19]  # field 22; the name before ")" may hold spaces
    except (OSError, IndexError):
        return "0"
