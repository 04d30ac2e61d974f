"""devcloud's state on disk: names chosen once, and a table's and bucket's contents saved and loaded."""

from __future__ import annotations

import base64
import hashlib

import boto3

from framefarm.devcloud.state import SNAPSHOT_DIR, load_snapshot, resource_names, save_snapshot
from framefarm.repositories.dynamodb import create_table


def fresh_stores(table: str, bucket: str) -> dict:
    dynamodb, s3 = boto3.client("dynamodb"), boto3.client("s3")
    create_table(dynamodb, table)
    s3.create_bucket(Bucket=bucket)
    return {"dynamodb": dynamodb, "s3": s3}


def test_names_are_chosen_once_and_kept(tmp_path):
    # GIVEN an empty state directory
    state = tmp_path / "state"
    # WHEN devcloud asks for names twice
    first, again = resource_names(state), resource_names(state)
    # THEN they are new names the first time and the same ones after
    assert first == again and first[0].startswith("framefarm-jobs-") and first[1].startswith("framefarm-artifacts-")
    assert resource_names(tmp_path / "other") != first


def test_items_and_objects_survive_a_save_and_a_load_into_fresh_stores(aws, tmp_path):
    # GIVEN a table with a text, a number and a binary attribute, and a bucket with two objects
    clients = fresh_stores("jobs", "artifacts")
    item = {"PK": {"S": "JOB#a"}, "SK": {"S": "META"}, "cost": {"N": "0.0000003"}, "tail": {"B": b"\x00\xff"}}
    clients["dynamodb"].put_item(TableName="jobs", Item=item)
    clients["s3"].put_object(Bucket="artifacts", Key="jobs/a/spec.json", Body=b"{}")
    clients["s3"].put_object(Bucket="artifacts", Key="jobs/a/chunks/00000.mp4", Body=bytes(range(256)) * 10,
                             Tagging="framefarm-kind=chunk")
    # WHEN they are saved, and loaded into an empty table and bucket (as after a restart)
    assert save_snapshot(tmp_path, table="jobs", bucket="artifacts", **clients) == (1, 2)
    restarted = fresh_stores("jobs-again", "artifacts-again")
    assert load_snapshot(tmp_path, table="jobs-again", bucket="artifacts-again", **restarted) == (1, 2)
    # THEN every item and byte is back
    assert restarted["dynamodb"].scan(TableName="jobs-again")["Items"] == [item]
    chunk = restarted["s3"].get_object(Bucket="artifacts-again", Key="jobs/a/chunks/00000.mp4")["Body"].read()
    assert chunk == bytes(range(256)) * 10
    # AND a chunk keeps its tag (its expiry rule) and comes back with a SHA256 that downloads are checked against
    tags = restarted["s3"].get_object_tagging(Bucket="artifacts-again", Key="jobs/a/chunks/00000.mp4")["TagSet"]
    assert tags == [{"Key": "framefarm-kind", "Value": "chunk"}]
    head = restarted["s3"].head_object(Bucket="artifacts-again", Key="jobs/a/chunks/00000.mp4", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(chunk).digest()).decode()


def test_a_save_interrupted_before_its_swap_keeps_the_previous_snapshot(aws, tmp_path):
    # GIVEN a saved snapshot holding one object
    clients = fresh_stores("jobs", "artifacts")
    clients["s3"].put_object(Bucket="artifacts", Key="first", Body=b"1")
    save_snapshot(tmp_path, table="jobs", bucket="artifacts", **clients)
    # WHEN a later save stopped between moving the old snapshot aside and putting the new one in place
    (tmp_path / SNAPSHOT_DIR).rename(tmp_path / f"{SNAPSHOT_DIR}.old")
    (tmp_path / f"{SNAPSHOT_DIR}.new").mkdir()
    # THEN loading finds the previous snapshot
    restarted = fresh_stores("jobs-again", "artifacts-again")
    assert load_snapshot(tmp_path, table="jobs-again", bucket="artifacts-again", **restarted) == (0, 1)
    # AND a directory without a snapshot loads nothing
    assert load_snapshot(tmp_path / "empty", table="jobs-again", bucket="artifacts-again", **restarted) == (0, 0)
