"""The CLI's side of spending caps and estimates on this machine: a cap the local backend cannot keep is
refused in one line, a job paused by its cap says so in status, jobs and --json, and estimate answers."""

from __future__ import annotations

import json
import sys

from framefarm import ExecutionOptions, JobExecutor, JobManager
from framefarm.billing import CLOUD_RUN_PRICES
from framefarm.spec import load_job_file
from tests.helpers import LEDGER_CHUNK, WorkerServer, assert_stopped_at_the_cap, ledger_starts
from tests.integration.test_cli import framefarm, store, write_job
from tests.unit.test_budget import FlatPriceWorker
from tests.webhook_receiver import Receiver


def quick_job(tmp_path, **extra):
    return write_job(tmp_path, width=64, height=48, fps=10, total_frames=4, frames_per_chunk=1,
                     command=[sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write('x')", "{output}"],
                     **extra)


def test_a_cap_on_the_local_backend_is_refused_in_one_line_and_nothing_is_stored(tmp_path):
    # GIVEN a job file, and one with a budget of its own
    plain, capped = quick_job(tmp_path), quick_job(tmp_path, name="capped.yaml", budget={"max_cost": 1})
    # WHEN each is rendered locally with a cap (by flag, by its budget)
    results = [framefarm("render", str(plain), "--max-cost", "0.50"), framefarm("render", str(capped))]
    # THEN each is refused: exit 2, one line saying why, and no job stored
    for result in results:
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            "error: max_cost: the local backend reports no cost, so a spending cap cannot be kept there; render "
            "on lambda or cloudrun, or drop the cap (--max-cost, budget:)"]
    assert store().list() == []
    # AND a cap that is not an amount is a usage error
    assert framefarm("render", str(plain), "--max-cost", "-1").returncode == 2


def test_a_job_paused_by_its_cap_shows_the_reason_in_status_jobs_and_json(tmp_path):
    # GIVEN a job of 4 chunks at $0.01 each, capped at $0.015, run by a manager on the CLI's store
    spec = load_job_file(quick_job(tmp_path, budget={"max_cost": 0.015}), job_id="capped")
    manager = JobManager(store(), JobExecutor(FlatPriceWorker(0.01)))
    manager.create_job(spec)
    assert manager.run_job("capped", ExecutionOptions(concurrency=2, job_dir=tmp_path / "run")).state.value == "paused"
    # WHEN status, jobs and their JSON are asked for
    status, jobs = framefarm("status", "capped"), framefarm("jobs")
    document = json.loads(framefarm("status", "capped", "--json").stdout)["job"]
    # THEN each says it paused for its budget, with what it spent against the cap
    assert "paused (budget)" in status.stdout and "budget: $0.010000 spent of the $0.015000 cap" in status.stdout
    assert "paused (budget)" in jobs.stdout
    assert document["state"] == "paused" and document["pause_reason"] == "budget" and document["max_cost"] == 0.015
    assert document["error"].startswith("budget: $0.010000 spent")


def test_estimate_on_this_machine_gives_a_wall_time_and_no_cost(tmp_path):
    # GIVEN a job file of 4 chunks
    jobfile = quick_job(tmp_path)
    # WHEN it is estimated at 2 chunks in flight
    result = framefarm("estimate", str(jobfile), "--concurrency", "2", "--json")
    # THEN a sample of two chunks rendered, and the answer has a wall time and no cost (local reports none)
    assert result.returncode == 0, result.stderr
    estimate = json.loads(result.stdout)["estimate"]
    assert estimate["basis"] == "sample" and estimate["samples"] == 2 and estimate["cost_usd"] is None
    assert estimate["chunks"] == 4 and estimate["wall_s"] > 0 and estimate["concurrency"] == 2
    assert "no cost (the local backend reports none)" in framefarm("estimate", str(jobfile)).stdout


def test_an_estimate_sample_announces_nothing_to_the_jobs_webhook(tmp_path, monkeypatch):
    # GIVEN a job file whose notify: asks a webhook (a live receiver) to hear of its end
    monkeypatch.delenv("FRAMEFARM_WEBHOOK_SECRET", raising=False)
    secret = "whsec-estimate-0123456789"
    with Receiver(secret) as hook:
        jobfile = quick_job(tmp_path, notify={"webhook": hook.url})
        # WHEN it is estimated (a sample of it renders as a job of its own), with a signing secret and without
        signed = framefarm("estimate", str(jobfile), "--json", env={"FRAMEFARM_WEBHOOK_SECRET": secret})
        unsigned = framefarm("estimate", str(jobfile), "--sample", "--json")
        # THEN each answers: the sample is not the job, and needs no secret
        assert signed.returncode == 0, signed.stderr
        assert unsigned.returncode == 0, unsigned.stderr
        samples = [json.loads(result.stdout)["estimate"]["sources"][0] for result in (signed, unsigned)]
        # AND no sample's end is told to the job's webhook: no delivery recorded, none posted
        assert [store().deliveries(sample) for sample in samples] == [[], []] and hook.received == []


def test_retry_refuses_a_cap_or_webhook_it_cannot_keep_before_reopening_any_chunk(tmp_path, monkeypatch):
    # GIVEN a job rendered on this machine, and no webhook signing secret
    monkeypatch.delenv("FRAMEFARM_WEBHOOK_SECRET", raising=False)
    assert framefarm("render", str(quick_job(tmp_path)), "--job-id", "done", "--no-stitch").returncode == 0
    # WHEN a chunk is retried with a cap the local backend cannot keep, or a webhook nothing can sign
    results = [framefarm("retry", "done", "--chunk", "1", "--no-stitch", "--max-cost", "1"),
               framefarm("retry", "done", "--chunk", "1", "--no-stitch", "--webhook", "http://127.0.0.1:9/hook")]
    # THEN each is refused in one line, and the job is as it was: nothing reopened, no chunk output deleted
    assert [result.returncode for result in results] == [2, 1], [result.stderr for result in results]
    assert results[0].stderr.strip().splitlines() == [
        "error: max_cost: the local backend reports no cost, so a spending cap cannot be kept there; render "
        "on lambda or cloudrun, or drop the cap (--max-cost, budget:)"]
    assert results[1].stderr.strip().splitlines()[-1].startswith("error: no webhook signing secret")
    job = store().get("done")
    assert job.state.value == "rendered" and job.completed_chunks == 4


def test_a_cap_on_cloud_run_stops_the_render_which_exits_paused_saying_how_to_go_on(tmp_path):
    # GIVEN the real Cloud Run worker server (1 vCPU, 0.5 GiB) and 8 chunks of ~0.3 s, capped at about 3.5
    # chunks' cost (billed in 100 ms steps)
    cap = 3.5 * CLOUD_RUN_PRICES.cost(billed_duration_ms=500, vcpu=1.0, memory_gib=0.5)
    job = write_job(tmp_path, width=64, height=48, fps=10, total_frames=8, frames_per_chunk=1,
                    command=[*LEDGER_CHUNK, str(tmp_path / "ledger"), "0.3"])
    server = WorkerServer(timeout=60)
    try:
        # WHEN it renders there, two at a time
        result = framefarm("render", str(job), "--backend", "cloudrun", "--service", server.url, "--job-id", "capped",
                           "--concurrency", "2", "--no-stitch", "--max-cost", f"{cap:.10f}")
    finally:
        server.close()
    # THEN it exits paused (3), its last line saying why and how to go on
    assert result.returncode == 3, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("paused job capped for its budget: $") and last.endswith(
        "continue with a higher cap: `framefarm resume capped --no-stitch --max-cost USD`")
    # AND the worker started fewer chunks than the job has, each recorded, none past the cap
    assert_stopped_at_the_cap(store().require("capped"), ledger_starts(tmp_path / "ledger"), cap)
