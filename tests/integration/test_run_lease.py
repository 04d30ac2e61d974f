"""One owner per run, across processes: two runners racing for one job run each chunk once.

Each racer is its own process (``tests.lease_racer``) on one SQLite store, as two `framefarm`
commands, a duplicated continuation event or two overlapping resumes would be; the chunk command
appends to a ledger per chunk, so the test counts real runs at the worker, not the store's records.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from framefarm import JobState, SqliteJobRepository, plan_job
from framefarm.devcloud import LocalAwsStack
from framefarm.lease import Lease
from framefarm.repositories.dynamodb import DynamoDBJobRepository
from framefarm.storage.s3 import S3Storage
from tests.helpers import eventually
from tests.integration.test_crash_resume import FAST_HEARTBEAT, check_counted_once

CHUNKS = 24
# Writes its output after 50 ms and notes the call in ledger/<chunk id> (one line per run).
COUNTED_CHUNK = [sys.executable, "-c",
                 "import sys, time; open(sys.argv[2] + '/' + sys.argv[3], 'a').write('run\\n'); time.sleep(0.05); "
                 "open(sys.argv[1], 'w').write('chunk ' + sys.argv[3])",
                 "{output}", "LEDGER", "{chunk_id}"]


def counted_job(job_id: str, ledger: Path) -> dict:
    command = [str(ledger) if part == "LEDGER" else part for part in COUNTED_CHUNK]
    return {"id": job_id, "width": 64, "height": 48, "fps": 10, "total_frames": CHUNKS, "frames_per_chunk": 1,
            "command": command}


def race(tmp_path: Path, job_id: str, action: str, token: str | None = None, racers: int = 2) -> list[str]:
    """Start ``racers`` processes, release them together, and return what each printed."""
    go = tmp_path / f"go-{job_id}"
    args = [sys.executable, "-m", "tests.lease_racer", str(tmp_path / "jobs.db"), job_id, action, str(go)]
    processes = [subprocess.Popen([*args, *([token] if token else [])], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
                 for _ in range(racers)]
    eventually(lambda: len(list(tmp_path.glob(f"{go.name}.ready-*"))) == racers, what="racers at the start line")
    go.touch()
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        outcomes.append(out.strip())
    return outcomes


def runs_per_chunk(ledger: Path) -> dict[int, int]:
    return {int(path.name): len(path.read_text().splitlines()) for path in ledger.iterdir()}


@pytest.fixture
def store(tmp_path):
    repository = SqliteJobRepository(tmp_path / "jobs.db")
    yield repository
    repository.close()


def new_job(store, tmp_path: Path, job_id: str) -> Path:
    from framefarm.status import JobRecord

    ledger = tmp_path / f"ledger-{job_id}"
    ledger.mkdir()
    store.save(JobRecord.new(plan_job(counted_job(job_id, ledger)), now=time.time()))
    return ledger


@pytest.mark.slow
def test_a_continuation_delivered_twice_runs_each_chunk_once(store, tmp_path):
    # GIVEN a running job whose runner handed it over (its lease passed to a hand-over token)
    ledger = new_job(store, tmp_path, "handed")
    now = time.time()
    assert store.take_lease("handed", Lease("elsewhere:1:first-run", now + 60), now=now, expected={JobState.PENDING})
    assert store.hand_over("handed", "elsewhere:1:first-run", Lease("handover:abc", now + 60))
    # WHEN the continuation event is delivered twice and both deliveries run at once
    outcomes = race(tmp_path, "handed", "continue", token="handover:abc")
    # THEN one of them ran the job and the other was refused; the worker ran each chunk once
    assert sorted(outcome.split()[0] for outcome in outcomes) == ["ran", "refused"], outcomes
    assert runs_per_chunk(ledger) == dict.fromkeys(range(CHUNKS), 1)
    check_counted_once(store.require("handed"), CHUNKS)


@pytest.mark.slow
def test_two_resumes_of_an_abandoned_job_at_once_run_each_chunk_once(store, tmp_path):
    # GIVEN a job left running by a runner on another host whose lease ran out
    ledger = new_job(store, tmp_path, "abandoned")
    then = time.time() - 120
    assert store.take_lease("abandoned", Lease("elsewhere:1:dead", then + 15), now=then, expected={JobState.PENDING})
    # WHEN two operators resume it at the same moment
    outcomes = race(tmp_path, "abandoned", "resume")
    # THEN one resume ran it, the other was refused, and the worker ran each chunk once
    assert sorted(outcome.split()[0] for outcome in outcomes) == ["ran", "refused"], outcomes
    assert runs_per_chunk(ledger) == dict.fromkeys(range(CHUNKS), 1)
    check_counted_once(store.require("abandoned"), CHUNKS)


@pytest.fixture
def fast_heartbeat(monkeypatch):
    for name, value in FAST_HEARTBEAT.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def ledger(tmp_path) -> Path:
    path = tmp_path / "ledger"
    path.mkdir()
    return path


@pytest.mark.slow
def test_a_duplicated_orchestrator_event_on_aws_runs_each_chunk_once(aws_credentials, fast_heartbeat, ledger):
    with LocalAwsStack(worker_timeout=30, orchestrator_timeout=120) as stack:
        repository = DynamoDBJobRepository(stack.table, storage=S3Storage(stack.bucket))
        lambda_api = boto3.client("lambda")
        submission = json.dumps({"job": counted_job("twice", ledger), "options": {"concurrency": 4}}).encode()
        # GIVEN a submission retried by its caller, and the orchestrator event Lambda delivers twice
        answers = [json.loads(lambda_api.invoke(FunctionName="framefarm-submit", Payload=submission)["Payload"].read())
                   for _ in range(2)]
        lambda_api.invoke(FunctionName="framefarm-orchestrate", InvocationType="Event",
                          Payload=json.dumps({"job_id": "twice"}).encode())
        assert stack.cloud.wait_idle(timeout=300)
        # THEN the retried submit answered with the same job, and every chunk was invoked once, counted at the worker
        assert [answer["statusCode"] for answer in answers] == [202, 202]
        assert answers[0]["job_id"] == answers[1]["job_id"] == "twice" and answers[1]["duplicate"] is True
        assert [job.id for job in repository.list()] == ["twice"]
        assert runs_per_chunk(ledger) == dict.fromkeys(range(CHUNKS), 1)
        assert len(stack.cloud.calls("framefarm-render-chunk")) == CHUNKS
        check_counted_once(repository.require("twice"), CHUNKS)
        assert len(stack.cloud.calls("framefarm-orchestrate")) >= 2  # the duplicate did arrive, and did no work


@pytest.mark.slow
def test_duplicated_continuation_events_on_aws_run_each_chunk_once(aws_credentials, fast_heartbeat, ledger):
    # GIVEN orchestrator runs that hand over after about 3 s (timeout 30 s = 12 s worker + 15 s spare + 3 s),
    # and Lambda delivering every continuation event twice at once
    with LocalAwsStack(worker_timeout=12, orchestrator_timeout=30) as stack:
        repository = DynamoDBJobRepository(stack.table, storage=S3Storage(stack.bucket))
        stack.cloud.inject("framefarm-orchestrate", "duplicate", times=100,
                           match=lambda event: bool(event.get("continuation")))
        job = counted_job("handovers", ledger)
        job["command"] = [*job["command"][:2], job["command"][2].replace("0.05", "0.3"), *job["command"][3:]]
        answer = boto3.client("lambda").invoke(FunctionName="framefarm-submit", Payload=json.dumps(
            {"job": job, "options": {"concurrency": 2}}).encode())
        assert json.loads(answer["Payload"].read())["statusCode"] == 202
        assert stack.cloud.wait_idle(timeout=300)
        # THEN the job was handed over, each continuation ran twice, and the worker ran every chunk once
        continuations = [call.event for call in stack.cloud.calls("framefarm-orchestrate")
                         if call.event.get("continuation")]
        assert continuations and all(continuations.count(event) == 2 for event in continuations)
        check_counted_once(repository.require("handovers"), CHUNKS)
        assert runs_per_chunk(ledger) == dict.fromkeys(range(CHUNKS), 1)
