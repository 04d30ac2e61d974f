"""`framefarm delete`, `framefarm prune` and the store `jobs` names, driven as a user would."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from framefarm import JobState
from framefarm.cli import main
from framefarm.lease import Lease
from framefarm.repositories.dynamodb import DynamoDBJobRepository
from framefarm.spec import plan_job
from framefarm.status import JobRecord
from framefarm.storage.s3 import S3Storage
from tests.integration.test_cli import framefarm, python_job, store

WRITE_CHUNK = "import sys; open(sys.argv[2], 'w').write('x')"


def job_dir(job_id: str) -> Path:
    return Path(os.environ["FRAMEFARM_HOME"]) / "jobs" / job_id


def rendered(tmp_path: Path, *job_ids: str) -> None:
    job = python_job(tmp_path, WRITE_CHUNK)
    for job_id in job_ids:
        assert framefarm("render", str(job), "--job-id", job_id, "--no-stitch").returncode == 0


def age_by(job_id: str, seconds: float) -> None:
    with sqlite3.connect(Path(os.environ["FRAMEFARM_HOME"]) / "jobs.db") as db:
        db.execute("UPDATE jobs SET updated_at = ? WHERE id = ?", (time.time() - seconds, job_id))


def hold(job_id: str) -> None:
    now = time.time()
    assert store().take_lease(job_id, Lease("elsewhere:1:runner", now + 3600), now=now, expected={JobState.RENDERED})


def test_delete_removes_a_jobs_records_and_its_job_directory(tmp_path):
    # GIVEN a rendered job, with its chunks in its job directory
    rendered(tmp_path, "doomed", "kept")
    assert (job_dir("doomed") / "chunks").is_dir()
    # WHEN it is deleted
    deleted = framefarm("delete", "doomed")
    # THEN its records and its files are gone, the other job is untouched, and it says so in one line
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted job doomed (rendered) from the local job store" in " ".join(deleted.stderr.split())
    assert store().get("doomed") is None and not job_dir("doomed").exists()
    assert store().get("kept") is not None and job_dir("kept").is_dir()
    # AND deleting it again is one line naming the store, exit 2
    again = framefarm("delete", "doomed")
    assert again.returncode == 2 and again.stderr.startswith("error: No job 'doomed' in the local job store")


def test_delete_refuses_a_job_a_runner_holds(tmp_path):
    # GIVEN a job a runner elsewhere holds
    rendered(tmp_path, "held")
    hold("held")
    # WHEN it is deleted, THEN it is refused in one line and nothing is removed
    deleted = framefarm("delete", "held")
    assert deleted.returncode == 2 and "a runner holds it; cancel it first" in deleted.stderr, deleted.stderr
    assert store().get("held") is not None and job_dir("held").is_dir()


def test_prune_lists_with_dry_run_then_removes_old_jobs_and_keeps_new_and_held_ones(tmp_path):
    # GIVEN an 8-day-old job, a fresh one, and an 8-day-old one a runner holds
    rendered(tmp_path, "old", "new", "old-held")
    hold("old-held")
    age_by("old", 8 * 86400)
    age_by("old-held", 8 * 86400)
    # WHEN a dry run prunes jobs older than 7 days
    dry = framefarm("prune", "--older-than", "7d", "--dry-run")
    # THEN it lists the old job only, says it keeps the held one, and removes nothing
    assert dry.returncode == 0, dry.stderr
    assert [line.split()[0] for line in dry.stdout.splitlines()] == ["old"]
    assert "kept old-held (running): a runner holds it" in dry.stderr and "would remove 1" in dry.stderr
    assert store().get("old") is not None and job_dir("old").is_dir()
    # WHEN it prunes for real
    pruned = framefarm("prune", "--older-than", "7d")
    # THEN the old job's records and files are gone; the fresh and the held ones stay
    assert pruned.returncode == 0, pruned.stderr
    assert [line.split()[0] for line in pruned.stdout.splitlines()] == ["old"]
    assert store().get("old") is None and not job_dir("old").exists()
    assert {job.id for job in store().list()} == {"new", "old-held"}
    # AND a shorter age (90m, 12h) takes the fresh job only once it is that old
    assert framefarm("prune", "--older-than", "90m").stdout == ""
    age_by("new", 13 * 3600)
    assert framefarm("prune", "--older-than", "12h").stdout.startswith("new ")


def test_prune_refuses_a_duration_without_a_unit_in_one_line(tmp_path):
    result = framefarm("prune", "--older-than", "7")
    assert result.returncode == 2
    assert "'7' is not a duration; give a number and a unit (s, m, h, d, w), e.g. 90m, 12h, 7d" in result.stderr


def test_jobs_names_the_store_it_lists(tmp_path):
    listing = framefarm("jobs")
    assert listing.returncode == 0
    assert f"jobs in the local job store {Path(os.environ['FRAMEFARM_HOME']).resolve() / 'jobs.db'}" in \
        " ".join(listing.stderr.split())


def test_delete_on_aws_removes_the_items_and_the_s3_prefix_and_wants_the_bucket(bucket, table, dynamodb_client,
                                                                                 capsys):
    # GIVEN two jobs in DynamoDB with their files in S3
    storage = S3Storage(bucket)
    repository = DynamoDBJobRepository(table, client=dynamodb_client, storage=storage)
    now = time.time()
    for job_id in ("gone", "stays"):
        spec = plan_job({"width": 64, "height": 48, "fps": 10, "total_frames": 2, "frames_per_chunk": 1,
                         "command": "x {output}"}, job_id=job_id)
        repository.save(JobRecord(id=job_id, spec=spec, state=JobState.RENDERED, total_chunks=2,
                                  created_at=now, updated_at=now))
        storage.put_bytes(f"jobs/{job_id}/chunks/00000.mp4", b"chunk")
    # WHEN one is deleted naming the table only, THEN it is refused in one line: its files would stay behind
    assert main(["delete", "gone", "--table", table]) == 2
    assert "name the bucket too (--bucket or --stack)" in capsys.readouterr().err
    assert repository.get("gone") is not None
    # WHEN it is deleted naming the table and the bucket
    assert main(["delete", "gone", "--table", table, "--bucket", bucket]) == 0
    # THEN its items and everything under jobs/gone/ are gone; the other job is untouched
    assert f"the DynamoDB table {table}" in capsys.readouterr().err
    assert repository.get("gone") is None and storage.list("jobs/gone/") == []
    assert repository.get("stays") is not None and storage.list("jobs/stays/") != []
