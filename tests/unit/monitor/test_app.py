"""The monitor's routes over a real job store: pages, logs, live events and actions."""

from __future__ import annotations

import json
import re

import anyio

from framefarm.monitor.live import follow, live_summary
from framefarm.status import ChunkState, JobState
from tests.helpers import eventually


def test_the_jobs_page_lists_a_finished_and_a_running_job(farm, client):
    # GIVEN a rendered job and one running
    farm.finished_job_with_a_retry()
    farm.running_job()
    # WHEN the jobs page is asked for
    page = client.get("/")
    # THEN it lists both with their state, progress and frames, and reloads itself
    assert page.status_code == 200
    rows = dict(re.findall(r'data-job="(\w+)".*?class="state (\w+)"', page.text))
    assert rows == {"finished": "rendered", "running": "running"}
    assert "100% (6/6 chunks)" in page.text and "0% (0/6 chunks)" in page.text and "60/60" in page.text
    assert 'http-equiv="refresh"' in page.text



def test_the_jobs_page_shows_a_job_waiting_for_the_shared_budget_as_pending_with_its_place(farm, client):
    import time

    from framefarm.concurrency import SlotAsk

    # GIVEN a running job holding the store's only slot, and another whose runner waits for one
    farm.running_job("holder")
    farm.running_job("waiter")
    until = time.time() + 60
    assert farm.repository.take_slots(SlotAsk("run-holder", "holder", 1, 1.0, until), count=1, limit=1,
                                      now=time.time()) == 1
    assert farm.repository.take_slots(SlotAsk("run-waiter", "waiter", 1, 1.0, until), count=1, limit=1,
                                      now=time.time()) == 0
    # WHEN the jobs page is asked for
    page = client.get("/")
    # THEN the waiting job shows pending with its place in the queue, and the holder running
    rows = dict(re.findall(r'data-job="(\w+)".*?class="state (\w+)"', page.text))
    assert rows == {"holder": "running", "waiter": "pending"}
    assert "pending <span class=\"queue\">#1 in queue</span>" in page.text

def test_the_job_page_draws_a_row_per_chunk_and_a_bar_per_attempt_with_logs_one_click_away(farm, client):
    # GIVEN a rendered job whose chunk 2 failed once
    job_id = farm.finished_job_with_a_retry(chunks=6, retried=2)
    # WHEN its page is asked for
    page = client.get(f"/jobs/{job_id}").text
    # THEN six rows, seven bars: chunk 2 has a failed one and a completed one
    assert page.count('<g class="row"') == 6 and page.count('class="bar ') == 7
    assert re.findall(r'class="bar (\w+)" data-chunk="2"', page) == ["failed", "completed"]
    # AND the row's label leads to the logs of every attempt of that chunk
    assert 'href="/jobs/finished/chunks/2/logs"' in page
    logs = client.get("/jobs/finished/chunks/2/logs").text
    assert "attempt 1 of 2" in logs and "boom in chunk 2 attempt 1" in logs
    assert "attempt 2 of 2" in logs and "rendered chunk 2" in logs
    # AND a missing job or chunk is a one-line 404
    missing = client.get("/jobs/nope")
    assert missing.status_code == 404 and missing.text.strip().startswith("No job 'nope' in ")
    assert client.get("/jobs/finished/chunks/99/logs").status_code == 404


def test_live_events_follow_a_running_job_until_it_settles(farm, client):
    # GIVEN a running job whose chunks wait to be released
    job_id = farm.running_job(chunks=2)
    seen = []
    with client.stream("GET", f"/jobs/{job_id}/events") as stream:
        lines = stream.iter_lines()
        # WHEN its event stream is read while its chunks finish one by one
        for line in lines:
            if not line.startswith("data: "):
                continue
            event = json.loads(line[len("data: "):])
            seen.append(event)
            if event["settled"]:
                break
            waiting = [chunk_id for chunk_id, gate in farm.held.items() if not gate.is_set()]
            if waiting:  # one more chunk may end
                farm.release(waiting[0])
    # THEN progress moved through every step to the end, and the stream stopped once the job settled
    progress = [event["progress"] for event in seen]
    assert progress[0].startswith("0% (0/2") and progress[-1] == "100% (2/2 chunks)"
    assert "50% (1/2 chunks)" in progress
    assert seen[-1]["state"] == "rendered" and seen[-1]["settled"] is True


def test_a_live_message_is_sent_only_when_the_summary_changes():
    # GIVEN a job read three times unchanged, then settled
    class Reads:
        def __init__(self, jobs):
            self.jobs, self.count = jobs, 0

        def __call__(self):
            self.count += 1
            return self.jobs[min(self.count - 1, len(self.jobs) - 1)]

    from tests.unit.monitor.test_timeline import job_of

    running = job_of([], 2).model_copy(update={"state": JobState.RUNNING, "total_chunks": 2})
    settled = running.model_copy(update={"state": JobState.CANCELLED, "updated_at": 1.0})
    reads = Reads([running, running, running, settled])

    async def collect():
        return [text async for text in follow(reads, lambda: 0.0, interval=0, keepalive=99)]

    # WHEN it is followed
    messages = anyio.run(collect)
    # THEN one message for the three identical reads, one for the change, and the stream ends
    assert reads.count == 4 and len(messages) == 2
    assert json.loads(messages[-1][len("data: "):]) == live_summary(settled, 0.0)
    assert all(len(text.encode()) < 400 for text in messages)


def test_cancel_from_the_page_cancels_the_running_job(farm, client):
    # GIVEN a running job whose first chunk is in flight
    job_id = farm.running_job()
    eventually(lambda: farm.manager.get_job(job_id).chunk(0).state is ChunkState.RUNNING, what="chunk 0 running")
    # WHEN the page's Cancel button posts
    answer = client.post(f"/jobs/{job_id}/cancel", follow_redirects=False)
    # THEN the page comes back saying so, and the job ends cancelled
    assert answer.status_code == 303 and "said=" in answer.headers["location"]
    assert farm.manager.wait(job_id, timeout=30).state is JobState.CANCELLED
    # AND what the page then says is the CLI's own line
    assert "asked the process running running to cancel it" in client.get(answer.headers["location"]).text


def test_an_action_the_job_cannot_take_comes_back_as_one_line_and_changes_nothing(farm, client):
    # GIVEN a rendered job
    job_id = farm.finished_job_with_a_retry()
    before = farm.manager.get_job(job_id)
    # WHEN the page asks to retry chunk 99 (it has 0-5), and to retry with no number
    page = client.post(f"/jobs/{job_id}/retry", data={"chunk": "99"}).text
    junk = client.post(f"/jobs/{job_id}/retry", data={"chunk": "x"}).text
    # THEN each says why in one line, and the job is as it was
    assert "retry refused: job &#x27;finished&#x27; has no chunk 99 (its chunk ids run 0-5)" in page
    assert "retry refused: give a chunk number to retry (got &#x27;x&#x27;)" in junk
    assert farm.manager.get_job(job_id) == before


def test_retry_from_the_page_renders_the_chunk_again_through_the_cli_s_calls(farm, monitor, client):
    # GIVEN a rendered job
    job_id = farm.finished_job_with_a_retry(retried=2)
    # WHEN the page retries chunk 4 (the monitor's process runs it, as `framefarm retry` would)
    said = client.post(f"/jobs/{job_id}/retry", data={"chunk": "4"}).text
    assert "job finished: rendering chunk 4 again" in said
    monitor.manager.wait(job_id, timeout=30)
    # THEN chunk 4 ran a second attempt, and the page draws two bars on its row
    assert farm.manager.get_job(job_id).chunk(4).attempts == 2
    page = client.get(f"/jobs/{job_id}").text
    assert len(re.findall(r'class="bar \w+" data-chunk="4"', page)) == 2


def test_the_job_page_reads_a_job_on_dynamodb_and_s3_the_same_way(table, bucket, dynamodb_client, s3_client):
    from framefarm import ExecutionOptions, JobExecutor, JobManager
    from framefarm.monitor.app import Monitor, create_app
    from framefarm.repositories.dynamodb import DynamoDBJobRepository
    from framefarm.storage.s3 import S3Storage
    from tests.helpers import ScriptedWorker, make_spec, retry_at_once
    from tests.unit.monitor.conftest import TestClient

    # GIVEN a job recorded in DynamoDB with its logs and earlier attempts in S3, chunk 1 retried once
    storage = S3Storage(bucket, client=s3_client)
    manager = JobManager(DynamoDBJobRepository(table, client=dynamodb_client, storage=storage),
                         JobExecutor(ScriptedWorker(fail={1: 1}).adapter()), storage)
    manager.create_job(make_spec(4, job_id="aws-job"))
    manager.run_job("aws-job", ExecutionOptions(retry=retry_at_once(1)))
    client = TestClient(create_app(Monitor(manager, actions=None)), base_url="http://127.0.0.1:8765")  # type: ignore[arg-type]
    # WHEN its page and chunk 1's logs are asked for
    page, logs = client.get("/jobs/aws-job").text, client.get("/jobs/aws-job/chunks/1/logs").text
    # THEN four rows, five bars (two on chunk 1), and both attempts' logs
    assert page.count('<g class="row"') == 4 and page.count('class="bar ') == 5
    assert re.findall(r'class="bar (\w+)" data-chunk="1"', page) == ["failed", "completed"]
    assert "boom in chunk 1 attempt 1" in logs and "rendered chunk 1" in logs


def test_without_storage_the_logs_page_shows_the_record_s_tails(tmp_path):
    from framefarm import ExecutionOptions, JobExecutor, JobManager, SqliteJobRepository
    from framefarm.monitor.app import Monitor, create_app
    from tests.helpers import ScriptedWorker, make_spec
    from tests.unit.monitor.conftest import TestClient

    # GIVEN a job in a store read without its storage (a table named without its bucket)
    manager = JobManager(SqliteJobRepository(tmp_path / "jobs.db"), JobExecutor(ScriptedWorker().adapter()))
    manager.create_job(make_spec(2, job_id="bare"))
    manager.run_job("bare", ExecutionOptions())
    client = TestClient(create_app(Monitor(manager, actions=None)), base_url="http://127.0.0.1:8765")  # type: ignore[arg-type]
    # WHEN a chunk's logs are asked for  THEN its record's tail is shown as its one attempt
    logs = client.get("/jobs/bare/chunks/1/logs").text
    assert "attempt 1 of 1" in logs and "rendered chunk 1" in logs
    manager.repository.close()
