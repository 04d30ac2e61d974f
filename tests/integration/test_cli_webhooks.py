"""`framefarm render --webhook`: the render never hangs on a webhook that is down, what was not
delivered is recorded and shown by `status`; a missing secret is said before anything runs."""

from __future__ import annotations

import json
import sys

from tests.integration.test_cli import framefarm, store, write_job
from tests.webhook_receiver import Receiver

SECRET = "whsec-cli-0123456789abcdef"


def small_job(tmp_path):
    command = [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write('x')", "{output}"]
    return write_job(tmp_path, total_frames=20, frames_per_chunk=10, width=64, height=48, fps=10, command=command)


def test_render_waits_a_bounded_time_for_a_failing_webhook_then_records_it_abandoned(tmp_path):
    with Receiver(SECRET, answers=[500] * 1000) as hook:
        # GIVEN a receiver that always answers 500, and one second allowed at exit
        env = {"FRAMEFARM_WEBHOOK_SECRET": SECRET, "FRAMEFARM_WEBHOOK_EXIT_WAIT": "1"}
        # WHEN a job renders with --webhook (bounded by the helper's timeout: a 10-minute hang fails it)
        result = framefarm("render", str(small_job(tmp_path)), "--job-id", "hooked", "--no-stitch",
                           "--webhook", hook.url, env=env)
    # THEN the render succeeded, said the webhook was not delivered, and ended with its usual last line
    assert result.returncode == 0, result.stderr
    assert "webhook not delivered: job.rendered" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("rendered 2 chunks")
    # AND the job is rendered, its delivery recorded abandoned after the attempts it made
    assert store().get("hooked").state.value == "rendered"
    status = json.loads(framefarm("status", "hooked", "--json").stdout)
    [delivery] = status["deliveries"]
    assert delivery["state"] == "abandoned" and delivery["attempts"] >= 1 and delivery["outcomes"][0] == "500"
    assert delivery["event"] == "job.rendered" and delivery["url"] == hook.url
    assert len(hook.received) == delivery["attempts"] and all(got.genuine for got in hook.received)
    table = framefarm("status", "hooked", env={"COLUMNS": "200"}).stdout
    assert "job.rendered" in table and "abandoned" in table


def test_render_with_a_webhook_and_no_secret_fails_before_anything_runs(tmp_path):
    result = framefarm("render", str(small_job(tmp_path)), "--job-id", "unsigned", "--webhook",
                       "http://127.0.0.1:9/hook", env={"FRAMEFARM_WEBHOOK_SECRET": ""})
    assert result.returncode != 0
    assert "no webhook signing secret: set FRAMEFARM_WEBHOOK_SECRET" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert store().get("unsigned") is None


def test_a_bad_webhook_url_is_a_one_line_error(tmp_path):
    result = framefarm("render", str(small_job(tmp_path)), "--webhook", "ftp://example.com/x",
                       env={"FRAMEFARM_WEBHOOK_SECRET": SECRET})
    assert result.returncode == 2 and "expected an http:// or https:// URL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
