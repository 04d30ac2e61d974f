"""The shared concurrency budget across processes: separate `framefarm render` commands on one
``.framefarm/`` never run more chunks at once than FRAMEFARM_MAX_CONCURRENCY between them, a job
waiting for its first slot is listed pending with its place in the queue, and the slot of a runner
killed with SIGKILL comes back when its lease runs out. Chunks are counted at the worker: each chunk
process appends its start and end to a ledger."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench.shared_concurrency import Note, ledger_function, most_at_once, read_ledger, run_jobs, side_by_side

from framefarm.concurrency import live
from framefarm.devcloud import LocalAwsStack
from framefarm.slots import waiting_jobs
from framefarm.status import JobState
from tests.helpers import eventually
from tests.integration.test_cli import framefarm, store, write_job

# Notes "start"/"end" with the job and the time in the ledger, runs SECONDS (after the file GO exists,
# when one is named: 60 s at most), then writes its output (no braces: they would be placeholders).
LEDGER_CHUNK = ("import os, sys, time\n"
                "job, chunk, output, ledger, seconds, go = sys.argv[1:7]\n"
                "note = lambda what: open(ledger, 'a').write('%s %s %s %r\\n' % (what, job, chunk, time.time()))\n"
                "note('start'); deadline = time.time() + 60\n"
                "while go and not os.path.exists(go) and time.time() < deadline: time.sleep(0.05)\n"
                "time.sleep(float(seconds)); note('end')\n"
                "open(output, 'w').write('chunk')\n")
FAST_LEASE = {"FRAMEFARM_HEARTBEAT_INTERVAL": "0.2", "FRAMEFARM_STALE_AFTER": "2"}


def ledger_job(tmp_path: Path, name: str, chunks: int, seconds: float, go: Path | None = None) -> Path:
    ledger = tmp_path / "ledger"
    return write_job(tmp_path, f"{name}.yaml", id=name, width=64, height=48, fps=10, total_frames=chunks,
                     frames_per_chunk=1, command=[sys.executable, "-c", LEDGER_CHUNK, name, "{chunk_id}", "{output}",
                                                  str(ledger), str(seconds), str(go or "")])


def render(job: Path, *flags: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "framefarm", "render", str(job), "--no-stitch", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=job.parent,
                            env={**os.environ, **env})


def notes(tmp_path: Path) -> list[Note]:
    """(start|end, job, time) for every chunk run so far, by time."""
    path = tmp_path / "ledger"
    return read_ledger(path) if path.exists() else []


def test_two_renders_on_one_store_never_run_more_chunks_at_once_than_the_budget(tmp_path):
    # GIVEN two jobs of 8 chunks, each asking for 3 at once, and a budget of 2 shared by the store;
    # the first job's chunks hold on until the second render is up and waiting for the budget
    env = {"FRAMEFARM_MAX_CONCURRENCY": "2"}
    go = tmp_path / "go"
    first = render(ledger_job(tmp_path, "first", 8, 0.3, go), "--concurrency", "3", env=env)
    eventually(lambda: any(what == "start" for what, _, _ in notes(tmp_path)), what="first chunk", timeout=60)
    # WHEN a second render starts in another process while the first holds the budget
    second = render(ledger_job(tmp_path, "second", 8, 0.3), "--concurrency", "3", env=env)
    eventually(lambda: "second" in waiting_jobs(store(), time.time()), what="second waiting", timeout=60)
    go.touch()
    # THEN both complete, never more than 2 chunks ran at once between them, and they ran side by side
    for process in (first, second):
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    ledger = notes(tmp_path)
    assert len([note for note in ledger if note[0] == "end"]) == 16
    assert most_at_once(ledger) == 2
    last_of_first = max(at for what, job, at in ledger if job == "first")
    assert any(job == "second" and at < last_of_first for what, job, at in ledger)


def test_a_job_waiting_for_its_first_slot_is_listed_pending_with_its_place_in_the_queue(tmp_path):
    # GIVEN a budget of 1 held by a render whose chunk runs a minute
    env = {"FRAMEFARM_MAX_CONCURRENCY": "1", **FAST_LEASE}
    first = render(ledger_job(tmp_path, "first", 1, 60), env=env)
    eventually(lambda: notes(tmp_path), what="the long chunk started", timeout=60)
    # WHEN two more renders ask for the budget, the second with a higher priority
    waiting = [render(ledger_job(tmp_path, "second", 1, 0.05), env=env)]
    eventually(lambda: "second" in queued(), what="second queued", timeout=60)
    waiting.append(render(ledger_job(tmp_path, "urgent", 1, 0.05), "--priority", "5", env=env))
    # THEN `jobs` lists them pending, the higher priority first, and the running job without a place
    listed = eventually(lambda: queued() if len(queued()) == 2 else None, what="both queued", timeout=60)
    assert listed == {"urgent": ("pending", 1), "second": ("pending", 2)}
    table = framefarm("jobs").stdout
    assert "pending #1 in queue" in table and "pending #2 in queue" in table
    # WHEN the long render is cancelled
    assert framefarm("cancel", "first").returncode == 0
    # THEN the waiting ones run, and the first in the queue first
    for process in (first, *waiting):
        process.communicate(timeout=120)
    assert [job for what, job, _ in notes(tmp_path) if what == "start"] == ["first", "urgent", "second"]


def queued() -> dict[str, tuple[str, int]]:
    """The jobs `framefarm jobs --json` lists with a place in the queue: (state, place) by id."""
    jobs = json.loads(framefarm("jobs", "--json").stdout)["jobs"]
    return {job["id"]: (job["state"], job["queue_place"]) for job in jobs if job["queue_place"] is not None}


def test_the_slot_of_a_killed_runner_comes_back_when_its_lease_runs_out(tmp_path):
    # GIVEN a budget of 1 held by a render whose chunk runs a minute
    env = {"FRAMEFARM_MAX_CONCURRENCY": "1", **FAST_LEASE}
    stuck = render(ledger_job(tmp_path, "stuck", 1, 60), env=env)
    eventually(lambda: notes(tmp_path), what="the stuck chunk started", timeout=60)
    holder, = live(store().slot_holders(), time.time())
    assert (holder.job_id, holder.held) == ("stuck", 1)
    # WHEN its runner is killed (SIGKILL: nothing gives the slot back) and another render asks for the budget
    stuck.send_signal(signal.SIGKILL)
    stuck.wait(timeout=30)
    last_lease = live(store().slot_holders(), time.time())[0].lease_until
    after = render(ledger_job(tmp_path, "after", 2, 0.05), env=env)
    # THEN it runs once the dead runner's lease has run out, not before, and completes
    _, err = after.communicate(timeout=120)
    assert after.returncode == 0, err
    first_start = min(at for what, job, at in notes(tmp_path) if job == "after" and what == "start")
    assert first_start >= last_lease
    assert store().slot_holders() == []


@pytest.mark.slow
def test_two_jobs_on_devcloud_share_the_budget_without_throttles(aws_credentials, tmp_path):
    # GIVEN render-chunk on devcloud with a reserved concurrency of 10, and a budget of 10 on the store
    # (the 2 x 300 chunks at 200 each on 250, scaled down: each instance is a process of its own)
    ledger = tmp_path / "ledger"
    with LocalAwsStack(functions=[ledger_function(ledger, reserved=10, handler_ms=300)]) as stack:
        # WHEN two jobs of 30 chunks, each asking for 8 at once, run side by side on their own runners
        run = run_jobs(stack, ledger, {"a": 30, "b": 30}, concurrency=8, budget=10)
    # THEN both complete, never more than 10 chunks ran at once (counted at the worker), almost no call
    # was throttled, and each had its share of what ran while both ran
    assert run.states == {"a": JobState.RENDERED, "b": JobState.RENDERED} and run.chunks == 60
    assert most_at_once(run.ledger) <= 10
    assert run.throttles <= 1
    means = side_by_side(run.ledger)
    assert min(means.values()) >= 0.4 * sum(means.values()), means  # an even split is 0.5
