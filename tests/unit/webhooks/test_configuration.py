"""Where a webhook is asked for: `notify:` in a job file, `webhook=` in ff.render / ff.submit (and so
the CLI's --webhook), ExecutionOptions(notify=...) for one run (`resume --webhook`)."""

from __future__ import annotations

import sys

import pytest

import framefarm as ff
from framefarm import api
from framefarm.errors import JobSpecError
from framefarm.options import ExecutionOptions
from framefarm.spec import Notify, parse_job
from framefarm.status import DeliveryState
from framefarm.webhooks.secret import WebhookSecretError
from tests.helpers import eventually
from tests.webhook_receiver import Receiver

SECRET = "whsec-config-0123456789abcdef"
TINY = {"width": 64, "height": 48, "fps": 10, "total_frames": 20, "frames_per_chunk": 10,
        "command": [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write('x')", "{output}"]}


def delivered(store, job_id: str, count: int = 1):
    return eventually(lambda: (found := store.deliveries(job_id)) and len(found) >= count
                      and all(d.state is DeliveryState.DELIVERED for d in found) and found,
                      timeout=30, what="delivered")


def test_a_job_file_asks_for_webhooks_with_notify():
    spec = parse_job({**TINY, "notify": {"webhook": "https://hooks.example.com/ff", "chunk_failures": True}})
    assert spec.notify == Notify(webhook="https://hooks.example.com/ff", chunk_failures=True)
    assert parse_job(TINY).notify is None


@pytest.mark.parametrize("notify, message", [
    ({"webhook": "ftp://example.com/x"}, "notify.webhook: expected an http:// or https:// URL"),
    ({"webhook": "https:///no-host"}, "notify.webhook: expected an http:// or https:// URL"),
    ({"webhook": "https://example.com/x", "retries": 3}, "notify.retries"),
])
def test_a_bad_notify_section_is_a_one_line_error_naming_the_field(notify, message):
    with pytest.raises(JobSpecError, match=message) as caught:
        parse_job({**TINY, "notify": notify}, source="job.yaml")
    assert "\n" not in str(caught.value)


def test_ff_render_with_webhook_posts_when_the_job_ends(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMEFARM_WEBHOOK_SECRET", SECRET)
    home = ff.Local(home=tmp_path / "home")
    with Receiver(SECRET) as hook:
        result = ff.render(TINY, backend=home, job_id="lib", webhook=hook.url)
        [record] = delivered(home.repository(), "lib")
    assert result.state is ff.JobState.RENDERED
    [got] = hook.received
    assert got.genuine and got.payload["event"] == "job.rendered" and got.payload["job_id"] == "lib"
    assert record.delivery_id == got.headers["Framefarm-Delivery"]


def test_without_a_secret_a_webhook_is_refused_before_anything_is_stored(tmp_path, monkeypatch):
    monkeypatch.delenv("FRAMEFARM_WEBHOOK_SECRET", raising=False)
    home = ff.Local(home=tmp_path / "home")
    with pytest.raises(WebhookSecretError, match="set FRAMEFARM_WEBHOOK_SECRET"):
        ff.submit(TINY, backend=home, job_id="unsigned", webhook="http://127.0.0.1:9/x")
    assert home.repository().get("unsigned") is None
    monkeypatch.setenv("FRAMEFARM_WEBHOOK_SECRET", "short")
    with pytest.raises(WebhookSecretError, match="too short"):
        ff.submit(TINY, backend=home, job_id="unsigned", webhook="http://127.0.0.1:9/x")


def test_a_run_may_send_to_another_webhook_than_the_job_file_says(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMEFARM_WEBHOOK_SECRET", SECRET)
    home = ff.Local(home=tmp_path / "home")
    manager = home.manager()
    with Receiver(SECRET) as first, Receiver(SECRET) as second:
        # GIVEN a job whose spec names one webhook, paused before it ran
        spec = parse_job({**TINY, "id": "moved", "notify": {"webhook": first.url}})
        manager.create_job(spec)
        manager.pause_job("moved")
        # WHEN it is resumed with another (as `resume --webhook URL` does)
        manager.resume_job("moved", ExecutionOptions(merge=False, notify=Notify(webhook=second.url)))
        manager.wait("moved", timeout=60)
        delivered(manager.repository, "moved", count=2)
    # THEN the pause went to the job's own webhook, the end of the resumed run to the one given
    assert [got.payload["event"] for got in first.received] == ["job.paused"]
    assert [got.payload["event"] for got in second.received] == ["job.rendered"]


def test_the_submit_function_is_sent_the_webhook_with_the_job():
    spec = parse_job(TINY).model_copy(update={"notify": Notify(webhook="https://hooks.example.com/ff")})
    document = api._document(TINY, spec)
    assert document["notify"] == {"webhook": "https://hooks.example.com/ff", "chunk_failures": False}
    assert parse_job(document).notify == spec.notify


def test_the_orchestrator_takes_a_webhook_for_one_run_and_refuses_a_bad_one():
    from framefarm.aws.handlers import RunOptions

    assert RunOptions.parse({"webhook": "https://hooks.example.com/ff"}).webhook == "https://hooks.example.com/ff"
    with pytest.raises(JobSpecError, match=r"options\.webhook"):
        RunOptions.parse({"webhook": "file:///etc/passwd"})


def test_a_library_caller_that_exits_waits_a_bounded_time_then_records_the_delivery_abandoned(tmp_path):
    import json
    import os
    import subprocess

    with Receiver(SECRET, answers=[503] * 1000) as hook:
        # GIVEN a script that renders with a webhook that keeps answering 503, and exits at once
        script = ("import framefarm as ff, json, sys; "
                  "ff.render(json.loads(sys.argv[1]), backend=ff.Local(home=sys.argv[2]), job_id='script', "
                  "webhook=sys.argv[3])")
        env = {**os.environ, "FRAMEFARM_WEBHOOK_SECRET": SECRET, "FRAMEFARM_WEBHOOK_EXIT_WAIT": "0.5"}
        # WHEN it runs (a hang for the ten-minute retry window would overrun the timeout)
        done = subprocess.run([sys.executable, "-c", script, json.dumps(TINY), str(tmp_path / "home"), hook.url],
                              env=env, capture_output=True, text=True, timeout=120)
    # THEN it exited cleanly, and the delivery is recorded abandoned with the attempts it made
    assert done.returncode == 0, done.stderr
    [record] = ff.Local(home=tmp_path / "home").repository().deliveries("script")
    assert record.state is DeliveryState.ABANDONED and record.attempts == len(hook.received) >= 1
