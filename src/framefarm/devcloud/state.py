"""devcloud's state on disk (``framefarm devcloud --state DIR``): the table's and bucket's names and
their contents, kept across restarts.

    DIR/names.json                    {"table", "bucket"}: chosen on the first start, reused on every later one
    DIR/snapshot/items.jsonl          the table's items in DynamoDB's wire format, one a line
    DIR/snapshot/objects.jsonl        the bucket's keys, one a line, each with the file holding its bytes
    DIR/snapshot/objects/<n>

moto keeps everything in memory, so devcloud saves a snapshot when it stops and loads it when it starts.
A snapshot is written beside the last one and swapped in only when complete: a crash while saving
keeps the previous snapshot. Objects keep their bytes and tags (chunk outputs carry one, for their
expiry); on load each goes back up with a SHA256 checksum, as framefarm uploads them, so downloads
stay verified.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

NAMES_FILE = "names.json"
SNAPSHOT_DIR = "snapshot"


def resource_names(state_dir: Path) -> tuple[str, str]:
    """(table, bucket): the names saved in ``state_dir``, or new ones, saved there before they are used."""
    names_file = state_dir / NAMES_FILE
    if names_file.exists():
        names = json.loads(names_file.read_text())
        return names["table"], names["bucket"]
    suffix = uuid.uuid4().hex[:8]
    table, bucket = f"framefarm-jobs-{suffix}", f"framefarm-artifacts-{suffix}"
    state_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(names_file, json.dumps({"table": table, "bucket": bucket}) + "\n")
    return table, bucket


def save_snapshot(state_dir: Path, *, table: str, bucket: str, dynamodb: Any, s3: Any) -> tuple[int, int]:
    """Write the table's items and the bucket's objects to ``state_dir``; (items, objects) saved."""
    fresh = state_dir / f"{SNAPSHOT_DIR}.new"
    shutil.rmtree(fresh, ignore_errors=True)
    (fresh / "objects").mkdir(parents=True)
    items = 0
    with (fresh / "items.jsonl").open("w") as out:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                out.write(json.dumps(item, default=_encode_bytes) + "\n")
                items += 1
    objects = 0
    with (fresh / "objects.jsonl").open("w") as out:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for entry in page.get("Contents", []):
                data_file = f"objects/{objects}"
                (fresh / data_file).write_bytes(s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read())
                tags = s3.get_object_tagging(Bucket=bucket, Key=entry["Key"]).get("TagSet", [])
                out.write(json.dumps({"key": entry["Key"], "file": data_file, "tags": tags}) + "\n")
                objects += 1
    current, old = state_dir / SNAPSHOT_DIR, state_dir / f"{SNAPSHOT_DIR}.old"
    shutil.rmtree(old, ignore_errors=True)
    if current.exists():
        current.rename(old)
    fresh.rename(current)
    shutil.rmtree(old, ignore_errors=True)
    return items, objects


def load_snapshot(state_dir: Path, *, table: str, bucket: str, dynamodb: Any, s3: Any) -> tuple[int, int]:
    """Put a saved snapshot's items and objects back into the (empty) table and bucket; (items, objects)."""
    snapshot = state_dir / SNAPSHOT_DIR
    if not snapshot.exists() and (state_dir / f"{SNAPSHOT_DIR}.old").exists():
        snapshot = state_dir / f"{SNAPSHOT_DIR}.old"  # stopped between the two renames of a save
    if not snapshot.exists():
        return 0, 0
    items = objects = 0
    for line in (snapshot / "items.jsonl").read_text().splitlines():
        dynamodb.put_item(TableName=table, Item=json.loads(line, object_hook=_decode_bytes))
        items += 1
    for line in (snapshot / "objects.jsonl").read_text().splitlines():
        entry = json.loads(line)
        tagging = urlencode({tag["Key"]: tag["Value"] for tag in entry.get("tags", [])})
        s3.put_object(Bucket=bucket, Key=entry["key"], Body=(snapshot / entry["file"]).read_bytes(),
                      ChecksumAlgorithm="SHA256", **({"Tagging": tagging} if tagging else {}))
        objects += 1
    return items, objects


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def _encode_bytes(value: object) -> dict[str, str]:
    if isinstance(value, bytes):  # a binary ("B") attribute value
        return {"$b64": base64.b64encode(value).decode()}
    raise TypeError(f"cannot save a {type(value).__name__} in devcloud's state")


def _decode_bytes(value: dict[str, Any]) -> Any:
    return base64.b64decode(value["$b64"]) if value.keys() == {"$b64"} else value
