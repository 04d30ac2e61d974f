"""Webhook deliveries from a JobManager to a real HTTP receiver on 127.0.0.1, which checks each one
with its own implementation of the signature scheme; retries, give-ups, the bound at exit, and a
receiver that is down never touching the job's own state."""

from __future__ import annotations

import logging
import sys

import pytest

from framefarm import JobExecutor, JobManager, JobState, LocalStorage, LocalWorkerAdapter, SqliteJobRepository
from framefarm.backoff import Backoff
from framefarm.options import ExecutionOptions
from framefarm.spec import Notify
from framefarm.status import DeliveryState
from framefarm.webhooks.notifier import Notifier
from framefarm.webhooks.sender import WebhookSender
from tests.helpers import RecordingStitcher, ScriptedWorker, eventually, free_port, make_spec, retry_at_once
from tests.webhook_receiver import Receiver

SECRET = "whsec-test-0123456789abcdef"
QUICK = Backoff(0.01, 0.05)


@pytest.fixture
def store(tmp_path):
    repository = SqliteJobRepository(tmp_path / "jobs.db")
    yield repository
    repository.close()


def manager_for(worker, store, tmp_path, *, window: float = 600.0, backoff: Backoff = QUICK) -> JobManager:
    notifier = Notifier(store, sender=lambda repository: WebhookSender(
        repository, secret=lambda: SECRET, backoff=backoff, window=window, timeout=5.0))
    return JobManager(store, JobExecutor(worker.adapter() if isinstance(worker, ScriptedWorker) else worker),
                      LocalStorage(tmp_path / "artifacts"), notifier=notifier)


def run(manager: JobManager, url: str, tmp_path, *, chunks: int = 3, chunk_failures: bool = False, **options):
    spec = make_spec(chunks, job_id="job-1").model_copy(
        update={"notify": Notify(webhook=url, chunk_failures=chunk_failures)})
    stitched = {"stitcher": RecordingStitcher(), "output_file": tmp_path / "out.mp4"}
    manager.submit_job(spec, ExecutionOptions(**{**stitched, **options}))
    return manager.wait("job-1", timeout=60)


def settled(store, job_id: str = "job-1", count: int = 1):
    """The job's deliveries once ``count`` of them are no longer pending."""
    return eventually(lambda: (found := store.deliveries(job_id)) and len(found) >= count
                      and all(d.state is not DeliveryState.PENDING for d in found) and found,
                      timeout=30, what="deliveries settled")


def test_a_completed_job_posts_one_signed_delivery_with_its_facts(store, tmp_path):
    with Receiver(SECRET) as hook:
        # GIVEN a job whose spec asks for a webhook
        # WHEN it completes
        final = run(manager_for(ScriptedWorker(), store, tmp_path), hook.url, tmp_path)
        [record] = settled(store)
    # THEN the receiver got one genuine delivery naming the event, with the job's facts
    assert final.state is JobState.COMPLETED
    [got] = hook.received
    assert got.genuine and got.headers["Framefarm-Event"] == "job.completed"
    assert got.headers["Framefarm-Delivery"] == record.delivery_id
    assert got.headers["Content-Type"] == "application/json"
    payload = got.payload
    assert payload["job_id"] == "job-1" and payload["state"] == "completed" and payload["frames"] == 30
    assert payload["output"] == str(tmp_path / "out.mp4") and payload["failed_attempts"] == 0
    assert {"cost_usd", "billed_ms", "error"} <= payload.keys()
    # AND the job records it delivered at the first attempt
    assert (record.state, record.attempts, record.outcomes) == (DeliveryState.DELIVERED, 1, ["200"])


def test_a_receiver_that_answers_500_twice_gets_the_third_try(store, tmp_path):
    with Receiver(SECRET, answers=[500, 500]) as hook:
        # GIVEN a receiver failing twice
        run(manager_for(ScriptedWorker(), store, tmp_path), hook.url, tmp_path)
        [record] = settled(store)
    # THEN it got three genuine tries of one delivery (the same id: it can drop duplicates), the last answered
    assert [got.answered for got in hook.received] == [500, 500, 200]
    assert all(got.genuine for got in hook.received)
    assert {got.headers["Framefarm-Delivery"] for got in hook.received} == {record.delivery_id}
    assert len({got.body for got in hook.received}) == 1
    # AND every attempt is recorded on the job
    assert (record.state, record.attempts, record.outcomes) == (DeliveryState.DELIVERED, 3, ["500", "500", "200"])


@pytest.mark.parametrize("status, retried", [(410, False), (400, False), (429, True), (408, True), (503, True)])
def test_other_4xx_are_given_up_at_once_while_408_429_and_5xx_are_retried(store, tmp_path, status, retried):
    with Receiver(SECRET, answers=[status]) as hook:
        run(manager_for(ScriptedWorker(), store, tmp_path), hook.url, tmp_path)
        [record] = settled(store)
    if retried:
        assert record.state is DeliveryState.DELIVERED and record.outcomes == [str(status), "200"]
    else:
        assert len(hook.received) == 1
        assert record.state is DeliveryState.FAILED and record.outcomes == [str(status)]
        assert f"answered {status}: not retried" in record.error


def test_a_receiver_that_is_down_never_touches_the_job_and_is_given_up_after_the_window(store, tmp_path):
    # GIVEN a webhook URL nothing listens on, and a retry window of a fraction of a second
    manager = manager_for(ScriptedWorker(), store, tmp_path, window=0.3)
    # WHEN the job runs
    final = run(manager, f"http://127.0.0.1:{free_port()}/hook", tmp_path)
    # THEN the job completed and is recorded whole
    assert final.state is JobState.COMPLETED and final.completed_chunks == 3
    assert all(chunk.state.value == "completed" for chunk in store.get("job-1").chunks)
    # AND the delivery was tried more than once, then given up, saying why
    [record] = settled(store)
    assert record.state is DeliveryState.FAILED and record.attempts >= 2
    assert "gave up after" in record.error and "refused" in record.outcomes[-1].lower()
    assert store.get("job-1").state is JobState.COMPLETED


def test_chunk_failures_are_posted_when_asked(store, tmp_path):
    with Receiver(SECRET) as hook:
        # GIVEN a job asking for chunk failures, whose chunk 1 always fails
        final = run(manager_for(ScriptedWorker(fail={1: 99}), store, tmp_path), hook.url, tmp_path,
                    chunk_failures=True, retry=retry_at_once(1))
        settled(store, count=2)
    # THEN the receiver hears of the chunk, then of the job
    assert final.state is JobState.FAILED
    events = {got.headers["Framefarm-Event"]: got.payload for got in hook.received}
    assert list(events) == ["chunk.failed", "job.failed"]
    assert events["chunk.failed"]["chunk_id"] == 1 and events["chunk.failed"]["attempts"] == 2
    assert "boom in chunk 1 attempt 2" in events["chunk.failed"]["stderr_tail"]
    assert events["job.failed"]["failed_attempts"] == 2 and "Chunk 1 failed" in events["job.failed"]["error"]


def test_at_exit_a_bounded_wait_then_what_is_pending_is_recorded_abandoned(store, tmp_path):
    with Receiver(SECRET, answers=[503] * 1000) as hook:
        # GIVEN a receiver that keeps failing, and retries every second for ten minutes
        manager = manager_for(ScriptedWorker(), store, tmp_path, backoff=Backoff(1.0, 1.0))
        run(manager, hook.url, tmp_path)
        hook.arrived.wait(30)
        # WHEN the process ends, waiting at most a moment for its deliveries
        left = manager.notifier.drain(0.2)
    # THEN the delivery is left behind, and recorded abandoned with the attempts it made
    assert [job_id for job_id, _ in left] == ["job-1"]
    [record] = store.deliveries("job-1")
    assert record.state is DeliveryState.ABANDONED and record.attempts >= 1 and record.outcomes[0] == "503"
    assert "not delivered before this process ended" in record.error


def test_the_secret_appears_in_no_record_log_or_delivery(store, tmp_path, monkeypatch, caplog):
    # GIVEN the secret in the environment, and a chunk command that prints its whole environment
    monkeypatch.setenv("FRAMEFARM_WEBHOOK_SECRET", SECRET)
    caplog.set_level(logging.DEBUG)
    command = [sys.executable, "-c", "import os, sys; print(dict(os.environ)); open(sys.argv[1], 'w').write('x')",
               "{output}"]
    spec = make_spec(2, job_id="job-1", command=" ".join(command[:2]) + ' "' + command[2] + '" {output}')
    storage = LocalStorage(tmp_path / "artifacts")
    manager = JobManager(store, JobExecutor(LocalWorkerAdapter()), storage)  # the default notifier and secret
    with Receiver(SECRET, answers=[500]) as hook:
        manager.submit_job(spec.model_copy(update={"notify": Notify(webhook=hook.url, chunk_failures=True)}),
                           ExecutionOptions(merge=False))
        manager.wait("job-1", timeout=60)
        [record] = settled(store)
    # WHEN everything the job left behind is read
    kept = "\n".join([store.get("job-1").model_dump_json(), *(d.model_dump_json() for d in store.deliveries("job-1")),
                      *(storage.get_text(obj.key) for obj in storage.list("jobs/job-1/")),
                      caplog.text, *(got.body.decode() + str(got.headers) for got in hook.received)])
    # THEN the deliveries were signed with it, yet its bytes are nowhere
    assert record.state is DeliveryState.DELIVERED and all(got.genuine for got in hook.received)
    assert "PATH" in store.get("job-1").chunks[0].stdout_tail  # the command did print its environment
    assert SECRET not in kept


def test_a_failed_chunk_that_prints_the_secret_leaks_it_into_no_error_payload_or_event(store, tmp_path, monkeypatch):
    # GIVEN the secret in the environment, and a chunk that finds it on disk, prints it to stderr and fails
    monkeypatch.setenv("FRAMEFARM_WEBHOOK_SECRET", SECRET)
    found = tmp_path / "found-elsewhere"
    found.write_text(f"the secret is {SECRET}")
    published: list[dict] = []
    notifier = Notifier(store, sender=lambda repository: WebhookSender(repository, secret=lambda: SECRET,
                                                                      backoff=QUICK),
                        publish=lambda kind, detail: published.append(dict(detail)) or True)
    manager = JobManager(store, JobExecutor(LocalWorkerAdapter()), LocalStorage(tmp_path / "artifacts"),
                         notifier=notifier)
    command = f"{sys.executable} -c \"import sys; sys.exit(open(sys.argv[1]).read())\" {found} {{output}}"
    with Receiver(SECRET) as hook:
        spec = make_spec(1, job_id="job-1", command=command)
        manager.submit_job(spec.model_copy(update={"notify": Notify(webhook=hook.url, chunk_failures=True)}),
                           ExecutionOptions(merge=False))
        # WHEN the job fails
        final = manager.wait("job-1", timeout=60)
        settled(store, count=2)
    # THEN its error, the webhooks and the events say it failed, without the secret
    assert final.state is JobState.FAILED and "[redacted]" in final.error
    texts = [final.model_dump_json(), store.get("job-1").model_dump_json(), repr(published),
             *(got.body.decode() for got in hook.received)]
    assert len(hook.received) == 2 and len(published) == 2
    assert all(SECRET not in text for text in texts)
