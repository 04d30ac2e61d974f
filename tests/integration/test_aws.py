"""The AWS flow on one machine: moto's server (S3, DynamoDB) + devcloud running the real handlers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml

from framefarm.devcloud import LocalAwsStack
from framefarm.repositories.dynamodb import DynamoDBJobRepository
from framefarm.status import ChunkState, JobState, is_cut
from framefarm.stitch.probe import decoded_audio_samples, packets
from framefarm.storage.s3 import S3Storage
from tests.helpers import read_devcloud_exports

EXAMPLE = Path(__file__).parents[2] / "examples" / "testsrc.yaml"
SLEEPY_CHUNK = [sys.executable, "-c",
                "import sys, time; time.sleep(float(sys.argv[2])); open(sys.argv[1], 'wb').write(b'chunk')",
                "{output}"]
CHATTY_CHUNK = [sys.executable, "-c",  # prints 7.8 MB: over the 6 MB Lambda allows a reply
                "import sys; [print('line %07d' % i) for i in range(600_000)]; open(sys.argv[1], 'wb').write(b'c')",
                "{output}"]


@pytest.fixture
def stack(aws_credentials):
    with LocalAwsStack(worker_timeout=60, orchestrator_timeout=300) as running:
        yield running


def invoke(function: str, payload: dict) -> dict:
    response = boto3.client("lambda").invoke(FunctionName=function, Payload=json.dumps(payload).encode())
    return json.loads(response["Payload"].read())


def repository(stack: LocalAwsStack) -> DynamoDBJobRepository:
    return DynamoDBJobRepository(stack.table, storage=S3Storage(stack.bucket))


def sleepy_job(chunks: int, seconds: float = 0.0, job_id: str = "sleepy") -> dict:
    return {"id": job_id, "width": 64, "height": 48, "fps": 10, "total_frames": chunks, "frames_per_chunk": 1,
            "command": [*SLEEPY_CHUNK, str(seconds)]}


def framefarm(stack: LocalAwsStack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framefarm", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **stack.env})


def test_submit_with_bad_input_writes_nothing(stack):
    # GIVEN a job whose chunks overlap
    bad = {"job": {"metadata": {"total_frames": 20, "fps": 10, "width": 64, "height": 48}, "chunks": [
        {"id": 0, "start_frame": 0, "frame_count": 15, "output_file": "a.mp4", "command": "x"},
        {"id": 1, "start_frame": 10, "frame_count": 10, "output_file": "b.mp4", "command": "x"}]}}
    # WHEN it is submitted (directly, and as an API Gateway event)
    direct = invoke("framefarm-submit", bad)
    api = invoke("framefarm-submit", {"httpMethod": "POST", "body": json.dumps(bad)})
    not_json = invoke("framefarm-submit", {"httpMethod": "POST", "body": "{nope"})
    # THEN each is a 400 naming the problem, and nothing was written or started
    assert direct == {"statusCode": 400, "error": "job: chunks[1].start_frame: 10 overlaps chunk 0 (frames 0-14)"}
    assert api["statusCode"] == 400 and "overlaps chunk 0" in json.loads(api["body"])["error"]
    assert not_json["statusCode"] == 400 and "invalid JSON" in json.loads(not_json["body"])["error"]
    assert boto3.client("dynamodb").scan(TableName=stack.table)["Count"] == 0
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=stack.bucket)
    assert stack.cloud.calls("framefarm-orchestrate") == []


def test_render_chunk_uploads_to_the_deterministic_key_and_rejects_bad_events(stack):
    # GIVEN a job whose spec is in S3 (as submit leaves it)
    answer = invoke("framefarm-submit", {"job": sleepy_job(3, job_id="keys")})
    assert answer["statusCode"] == 202
    stack.cloud.wait_idle(timeout=120)
    spec_url = f"s3://{stack.bucket}/jobs/keys/spec.json"
    # WHEN chunk 1 is rendered again, twice
    first = invoke("framefarm-render-chunk", {"job_id": "keys", "chunk_id": 1, "spec_url": spec_url})
    second = invoke("framefarm-render-chunk", {"job_id": "keys", "chunk_id": 1, "spec_url": spec_url})
    # THEN both upload to the same key, which holds one object
    assert first["exit_code"] == 0 and first["output_key"] == second["output_key"] == "jobs/keys/chunks/00001.mp4"
    keys = [obj["Key"] for obj in boto3.client("s3").list_objects_v2(Bucket=stack.bucket)["Contents"]]
    assert keys.count("jobs/keys/chunks/00001.mp4") == 1
    # AND bad events get a clear error payload, not an exception
    assert invoke("framefarm-render-chunk", {"job_id": "keys"})["error"] == "bad request: chunk_id: Field required (and 1 more problems)"
    outside = invoke("framefarm-render-chunk", {"job_id": "keys", "chunk_id": 0,
                                                "spec_url": f"s3://{stack.bucket}/jobs/other/spec.json"})
    assert outside["kind"] == "bad_request" and "outside job keys's prefix" in outside["error"]
    missing = invoke("framefarm-render-chunk", {"job_id": "keys", "chunk_id": 99, "spec_url": spec_url})
    assert missing["error"] == "bad request: job keys has no chunk 99"


def test_a_chunk_printing_8_mb_completes_on_lambda_and_logs_shows_its_whole_output(stack, tmp_path):
    # GIVEN a job whose one chunk prints 7.8 MB
    jobfile = tmp_path / "chatty.yaml"
    jobfile.write_text(yaml.safe_dump({"width": 64, "height": 48, "fps": 10, "total_frames": 1,
                                       "frames_per_chunk": 1, "command": CHATTY_CHUNK}))
    # WHEN it renders on the render-chunk Lambda
    rendered = framefarm(stack, "render", str(jobfile), "--backend", "lambda", "--function", "framefarm-render-chunk",
                         "--table", stack.table, "--bucket", stack.bucket, "--no-stitch", "--job-id", "chatty")
    # THEN it completed in one call: the worker's reply fit under Lambda's limit
    assert rendered.returncode == 0, rendered.stderr
    assert [call.function_error for call in stack.cloud.calls("framefarm-render-chunk")] == [None]
    record = repository(stack).require("chatty").chunk(0)
    assert record.attempts == 1 and is_cut(record.stdout_tail, repository(stack).tail_chars)
    assert record.stdout_tail.endswith("line 0599999\n")
    # AND `framefarm logs` shows the whole output, which the worker kept in S3
    logs = framefarm(stack, "logs", "chatty", "--chunk", "0", "--table", stack.table, "--bucket", stack.bucket)
    assert logs.returncode == 0, logs.stderr
    assert "line 0000000" in logs.stdout and "line 0599999" in logs.stdout


def test_orchestrator_hands_over_before_its_deadline_and_loses_nothing(aws_credentials):
    # GIVEN an orchestrator whose deadline leaves ~1.5 s of dispatching per invocation
    with LocalAwsStack(worker_timeout=3, orchestrator_timeout=3 + 15 + 1.5) as stack:
        # WHEN a job of 12 half-second chunks runs two at a time (about 3 s of work)
        assert invoke("framefarm-submit", {"job": sleepy_job(12, 0.5), "options": {"concurrency": 2}})["statusCode"] == 202
        assert stack.cloud.wait_idle(timeout=180)
        # THEN it took several orchestrator invocations, handed over between them
        runs = stack.cloud.calls("framefarm-orchestrate")
        assert len(runs) >= 2 and [run.function_error for run in runs] == [None] * len(runs)
        assert [run.event.get("continuation", 0) for run in runs] == list(range(len(runs)))
        # AND every chunk ran and was counted exactly once
        job = repository(stack).require("sleepy")
        assert job.state is JobState.RENDERED and job.completed_chunks == 12
        assert [record.attempts for record in job.chunks] == [1] * 12
        assert len(stack.cloud.calls("framefarm-render-chunk")) == 12
        assert job.metrics.total_billed_duration_ms == sum(r.billed_duration_ms for r in job.chunks)


@pytest.mark.slow
def test_end_to_end_testsrc_submit_orchestrate_render_stitch(stack, tmp_path):
    # GIVEN the example job, shortened (3 s at 320x240: 90 frames in 3 chunks, with its tone)
    job = yaml.safe_load(EXAMPLE.read_text())
    job.update({"width": 320, "height": 240, "total_frames": 90, "frames_per_chunk": 30})
    jobfile = tmp_path / "testsrc.yaml"
    jobfile.write_text(yaml.safe_dump(job))
    # WHEN it is submitted through the submit Lambda
    submitted = framefarm(stack, "submit", str(jobfile), "--function", "framefarm-submit", "--job-id", "e2e",
                          "--concurrency", "3")
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.strip() == "e2e"
    assert stack.cloud.wait_idle(timeout=240)
    # THEN the orchestrator ran every chunk on render-chunk Lambdas and the chunks are in S3
    status = repository(stack).require("e2e")
    assert status.state is JobState.RENDERED, status.error
    assert [obj.key for obj in S3Storage(stack.bucket).list("jobs/e2e/chunks/")] == [
        f"jobs/e2e/chunks/{i:05d}.mp4" for i in range(3)]
    # AND DynamoDB has one record per chunk with billed duration, and job totals equal to the sums
    assert all(r.state is ChunkState.COMPLETED and r.billed_duration_ms > 0 and r.cost_usd > 0 and r.request_id
               for r in status.chunks)
    assert status.metrics.total_billed_duration_ms == sum(r.billed_duration_ms for r in status.chunks)
    assert status.metrics.cost_usd == pytest.approx(sum(r.cost_usd for r in status.chunks))
    # AND `framefarm stitch` on the operator's machine makes a frame-exact video
    output = tmp_path / "out.mp4"
    stitched = framefarm(stack, "stitch", "e2e", "--table", stack.table, "--bucket", stack.bucket, "-o", str(output))
    assert stitched.returncode == 0, stitched.stderr
    assert len(packets(output)) == 90 and decoded_audio_samples(output) == 3 * 48000
    assert repository(stack).require("e2e").state is JobState.COMPLETED
    # AND status and cost read DynamoDB directly
    assert "completed" in framefarm(stack, "status", "e2e", "--table", stack.table).stdout
    assert "$" in framefarm(stack, "cost", "e2e", "--table", stack.table).stdout


@pytest.mark.slow
def test_render_from_the_operators_machine_on_lambda(stack, tmp_path):
    job = yaml.safe_load(EXAMPLE.read_text())
    job.update({"width": 160, "height": 120, "total_frames": 40, "frames_per_chunk": 10, "audio": None})
    jobfile = tmp_path / "small.yaml"
    jobfile.write_text(yaml.safe_dump(job))
    output = tmp_path / "lambda.mp4"
    result = framefarm(stack, "render", str(jobfile), "--backend", "lambda", "--function", "framefarm-render-chunk",
                       "--table", stack.table, "--bucket", stack.bucket, "--concurrency", "4", "-o", str(output),
                       "--job-id", "operator")
    assert result.returncode == 0, result.stderr
    assert len(packets(output)) == 40
    assert repository(stack).require("operator").state is JobState.COMPLETED


@pytest.mark.slow
def test_assets_reach_the_lambda_workers(stack, tmp_path, encode_chunk):
    assets = tmp_path / "assets"
    encode_chunk(assets / "input.mp4", 0, 20, size="160x120", fps=10)
    jobfile = tmp_path / "cut.yaml"
    jobfile.write_text(yaml.safe_dump({
        "width": 160, "height": 120, "fps": 10, "total_frames": 20, "frames_per_chunk": 5,
        "command": "{ffmpeg} -hide_banner -loglevel error -y -i input.mp4 "
                   "-vf trim=start_frame={start_frame}:end_frame={end_frame},setpts=PTS-STARTPTS "
                   "-an -c:v libx264 -pix_fmt yuv420p {output}"}))
    output = tmp_path / "cut.mp4"
    result = framefarm(stack, "render", str(jobfile), "--backend", "lambda", "--function", "framefarm-render-chunk",
                       "--table", stack.table, "--bucket", stack.bucket, "--assets", str(assets), "-o", str(output),
                       "--job-id", "cut", "--concurrency", "4")
    assert result.returncode == 0, result.stderr
    assert S3Storage(stack.bucket).exists("jobs/cut/assets.zip")
    assert len(packets(output)) == 20


def test_missing_chunks_are_named_before_stitching(stack, tmp_path):
    assert invoke("framefarm-submit", {"job": sleepy_job(3, job_id="partial")})["statusCode"] == 202
    stack.cloud.wait_idle(timeout=120)
    S3Storage(stack.bucket).delete_prefix("jobs/partial/chunks/00001.mp4")
    result = framefarm(stack, "stitch", "partial", "--table", stack.table, "--bucket", stack.bucket,
                       "-o", str(tmp_path / "o.mp4"))
    assert result.returncode == 1
    assert "1 of 3 chunks are not in s3://" in result.stderr and result.stderr.strip().endswith(": 1")


def test_framefarm_devcloud_prints_a_working_environment(tmp_path):
    # GIVEN `framefarm devcloud` running in its own process
    server = subprocess.Popen([sys.executable, "-m", "framefarm", "devcloud"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        env, _ = read_devcloud_exports(server.stdout)
        # WHEN a job is submitted with the environment it printed
        jobfile = tmp_path / "job.yaml"
        jobfile.write_text(yaml.safe_dump(sleepy_job(2, job_id="from-shell")))
        submitted = subprocess.run([sys.executable, "-m", "framefarm", "submit", str(jobfile), "--function",
                                    "framefarm-submit"], capture_output=True, text=True, timeout=120,
                                   env={**os.environ, **env})
        # THEN it is accepted and the job is in its table
        assert submitted.returncode == 0, submitted.stderr
        status = subprocess.run([sys.executable, "-m", "framefarm", "status", "from-shell", "--table",
                                 env["FRAMEFARM_TABLE"]], capture_output=True, text=True, timeout=120,
                                env={**os.environ, **env})
        assert status.returncode == 0 and "from-shell" in status.stdout
    finally:
        server.terminate()
        rest, stderr = server.communicate(timeout=30)
    # AND the export lines came last, and moto's access log went to its file, not the terminal
    assert all(line.startswith("export ") for line in rest.splitlines()), rest
    log = Path(os.environ["FRAMEFARM_HOME"]) / "devcloud.log"
    assert "POST / HTTP/1.1" in log.read_text() and "HTTP/1.1" not in stderr


def test_stack_outputs_stand_in_for_each_name(aws, capsys):
    # GIVEN a deployed stack's outputs (CloudFormation on moto) and its table
    from framefarm.cli.context import Context, stack_outputs
    from framefarm.repositories.dynamodb import create_table

    create_table(boto3.client("dynamodb"), "jobs-from-stack")
    template = {"Resources": {"Placeholder": {"Type": "AWS::S3::Bucket"}},
                "Outputs": {"TableName": {"Value": "jobs-from-stack"}, "BucketName": {"Value": "bucket-from-stack"},
                            "SubmitFunctionName": {"Value": "Framefarm-submit"},
                            "WorkerFunctionName": {"Value": "Framefarm-render-chunk"}}}
    boto3.client("cloudformation").create_stack(StackName="Framefarm", TemplateBody=json.dumps(template))
    # WHEN the CLI is given --stack
    assert stack_outputs("Framefarm")["TableName"] == "jobs-from-stack"
    from framefarm.cli import build_parser

    context = Context.from_args(build_parser().parse_args(["jobs", "--stack", "Framefarm", "--bucket", "mine"]))
    # THEN names come from the outputs, and an explicit flag still wins
    assert (context.table, context.bucket) == ("jobs-from-stack", "mine")
    assert context.function(None, "SubmitFunctionName") == "Framefarm-submit"
    from framefarm.cli import main

    assert main(["jobs", "--stack", "Framefarm"]) == 0
    capsys.readouterr()
    assert main(["jobs", "--stack", "Missing"]) == 1
    assert capsys.readouterr().err.strip() == "error: --stack Missing: Stack with id Missing does not exist"


def test_jobs_table_lists_from_dynamodb_alone(aws, capsys, monkeypatch):
    # GIVEN jobs in a table whose specs are in S3
    import boto3.session

    from framefarm import JobRecord, plan_job
    from framefarm.cli import main
    from framefarm.repositories.dynamodb import create_table

    create_table(boto3.client("dynamodb"), "listed")
    boto3.client("s3").create_bucket(Bucket="specs")
    repository = DynamoDBJobRepository("listed", storage=S3Storage("specs"))
    for i, job_id in enumerate(("first", "second")):
        spec = plan_job({**sleepy_job(3, job_id=job_id), "command": "render {output}"})
        repository.save(JobRecord.new(spec, now=1_700_000_000.0 + i))
    built: list[str] = []
    original = boto3.session.Session.client
    monkeypatch.setattr(boto3.session.Session, "client",
                        lambda self, name, *a, **k: built.append(name) or original(self, name, *a, **k))
    # WHEN `framefarm jobs --table` lists them
    assert main(["jobs", "--table", "listed"]) == 0
    # THEN both are shown, newest first, and the only client built was DynamoDB's (no spec read from S3)
    shown = capsys.readouterr().out
    assert "second" in shown and "first" in shown and shown.index("second") < shown.index("first")
    assert "0/3" in shown and built == ["dynamodb"]
    # AND `framefarm status --table` still reads the spec, from the URL in the job item
    assert main(["status", "first", "--table", "listed"]) == 0
    assert "frames 3 @ 10 fps" in capsys.readouterr().out


def test_share_hands_out_short_lived_presigned_links(stack):
    import requests

    storage = S3Storage(stack.bucket)
    # GIVEN a job with no stitched video yet, THEN there is nothing to share, said in one line
    nothing = framefarm(stack, "share", "shared", "--bucket", stack.bucket, "--table", stack.table)
    # (the hint carries the flags the command was given, so it runs as printed)
    assert nothing.returncode != 0 and "run `framefarm stitch shared --upload --table " in nothing.stderr
    assert f"--bucket {stack.bucket}` first" in nothing.stderr
    # GIVEN the stitched video uploaded next to the job's spec
    storage.put_bytes("jobs/shared/spec.json", b"{}")
    storage.put_bytes("jobs/shared/final.mp4", b"the video")
    # WHEN a link is asked for
    shared = framefarm(stack, "share", "shared", "--bucket", stack.bucket, "--table", stack.table)
    # THEN it is a presigned GET for that object, valid 15 minutes, and it works without credentials
    assert shared.returncode == 0, shared.stderr
    url = shared.stdout.strip()
    assert "/jobs/shared/final.mp4?" in url and "X-Amz-Expires=900" in url and "X-Amz-Signature=" in url
    assert requests.get(url, timeout=30).content == b"the video"
    # AND a link may not outlive an hour
    long = framefarm(stack, "share", "shared", "--bucket", stack.bucket, "--table", stack.table, "--expires", "7200")
    assert long.returncode != 0 and "links last 1 to 3600 seconds (got 7200)" in long.stderr


def test_devcloud_state_is_saved_after_the_calls_under_way_finish(tmp_path):
    # GIVEN `framefarm devcloud --state` with a job of two 2-second chunks running on it
    state = tmp_path / "state"
    server = subprocess.Popen([sys.executable, "-m", "framefarm", "devcloud", "--state", str(state)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        env, _ = read_devcloud_exports(server.stdout)
        jobfile = tmp_path / "job.yaml"
        jobfile.write_text(yaml.safe_dump(sleepy_job(2, 2.0, job_id="under-way")))
        submitted = subprocess.run([sys.executable, "-m", "framefarm", "submit", str(jobfile), "--function",
                                    "framefarm-submit", "--concurrency", "2"], capture_output=True, text=True,
                                   timeout=120, env={**os.environ, **env})
        assert submitted.returncode == 0, submitted.stderr
    finally:
        # WHEN it is stopped while the chunks run
        server.terminate()
        server.communicate(timeout=120)
    # THEN the snapshot holds the job as its run left it: the calls under way finished before the save
    items = [json.loads(line) for line in (state / "snapshot" / "items.jsonl").read_text().splitlines()]
    meta = next(item for item in items if item["PK"]["S"] == "JOB#under-way" and item["SK"]["S"] == "META")
    assert meta["state"]["S"] == "rendered" and meta["completed_chunks"]["N"] == "2", meta.get("error")
