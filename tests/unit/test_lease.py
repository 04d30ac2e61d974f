"""Run ids, and telling at once that a runner on this host is gone."""

from __future__ import annotations

import socket
import subprocess
import sys

from framefarm.lease import new_handover_token, new_run_id, owner_is_gone


def run_id_of(pid: int, *, started: str | None = None, namespace: str | None = None) -> str:
    """The run id a runner with process ``pid`` would have (its start time and namespace overridable)."""
    host, _, where, _ = new_run_id().split(":")
    my_namespace, _, _ = where.partition(".")
    with open(f"/proc/{pid}/stat") as stat:
        real_start = stat.read().rpartition(")")[2].split()[19]
    return f"{host}:{pid}:{namespace or my_namespace}.{started or real_start}:test"


def test_a_live_runner_is_not_gone_and_neither_is_this_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not owner_is_gone(run_id_of(child.pid))
        assert not owner_is_gone(new_run_id())
    finally:
        child.kill()
        child.wait()


def test_a_runner_whose_process_exited_or_whose_pid_was_reused_is_gone():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    owner = run_id_of(child.pid)
    reused = run_id_of(child.pid, started="1")  # another process now has its pid
    try:
        assert owner_is_gone(reused)
    finally:
        child.kill()
        child.wait()
    assert owner_is_gone(owner)


def test_runners_elsewhere_are_never_judged_gone():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    # another pid namespace on this host (a container sharing its host name), another host, a token
    assert not owner_is_gone(f"{socket.gethostname()}:{child.pid}:1.1:x")
    assert not owner_is_gone(f"not-{socket.gethostname()}:{child.pid}:1.1:x")
    assert not owner_is_gone(new_handover_token())
    assert not owner_is_gone(None)
