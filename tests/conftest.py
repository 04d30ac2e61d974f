from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import settings

from framefarm.config import ffmpeg_path

# Property tests draw the same cases on every run unless asked for more, so a clean CI run cannot fail
# on a case nobody has seen: "ci" (the default, so also `make test`) is derandomized and keeps no
# example database; `make fuzz` selects "fuzz": many more cases, new ones every run, failures replayed.
settings.register_profile("ci", derandomize=True, max_examples=300, database=None, deadline=None)
# derandomize=False explicitly: under CI=true hypothesis's own defaults are derandomized.
settings.register_profile("fuzz", max_examples=10_000, deadline=None, print_blob=True, derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or "ci")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes to the developer's ./.framefarm."""
    monkeypatch.setenv("FRAMEFARM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FRAMEFARM_FFMPEG", raising=False)
    # Nor reads the developer's settings: their profiles, or names exported in their shell.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("FRAMEFARM_PROFILE", "FRAMEFARM_TABLE", "FRAMEFARM_BUCKET", "FRAMEFARM_STACK", "FRAMEFARM_GCS_BUCKET",
                 "FRAMEFARM_BACKEND", "FRAMEFARM_REGION", "FRAMEFARM_MAX_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return ffmpeg_path()


@pytest.fixture(scope="session")
def encode_chunk(ffmpeg: str):
    """Encode a small video-only test-pattern chunk: encode_chunk(path, start, count, size=..., fps=...,
    options=[more encoder options])."""

    def encode(path: Path, start: int = 0, count: int = 10, *, size: str = "160x120", fps: int | str = 10,
               codec: str = "libx264", pix_fmt: str = "yuv420p", options: Sequence[str] = ()) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
             "-i", f"testsrc2=size={size}:rate={fps}",
             "-vf", f"trim=start_frame={start}:end_frame={start + count},setpts=PTS-STARTPTS",
             "-an", "-c:v", codec, "-pix_fmt", pix_fmt, *options, str(path)],
            check=True)
        return path

    return encode


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region, so no test can reach a real account."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def aws(aws_credentials):
    from moto import mock_aws

    from framefarm.devcloud import fix_moto_number_arithmetic

    fix_moto_number_arithmetic()
    with mock_aws():
        yield


@pytest.fixture
def s3_client(aws):
    import boto3

    return boto3.client("s3", region_name="us-east-1")


class SerializedClient:
    """Forwards to a boto3 client one call at a time.

    moto's DynamoDB backend is not thread-safe: TransactWriteItems deep-copies a table for rollback
    while other requests mutate it (seen here: RuntimeError inside moto, in-process and behind its
    server alike). Serializing at the moto boundary keeps the tests about *our* logic under
    concurrent callers; isolation between truly concurrent transactions is DynamoDB's own guarantee.
    """

    def __init__(self, client) -> None:
        import threading

        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if not callable(attribute) or name in ("get_paginator", "get_waiter"):
            return attribute

        def call(*args, **kwargs):
            with self._lock:
                return attribute(*args, **kwargs)

        return call


@pytest.fixture
def dynamodb_client(aws):
    import boto3

    return SerializedClient(boto3.client("dynamodb", region_name="us-east-1"))


@pytest.fixture
def bucket(s3_client) -> str:
    import uuid

    name = f"framefarm-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def table(dynamodb_client) -> str:
    import uuid

    from framefarm.repositories.dynamodb import create_table

    name = f"framefarm-test-{uuid.uuid4().hex[:12]}"
    create_table(dynamodb_client, name)
    return name


@pytest.fixture(scope="session")
def gcs_endpoint():
    """A GCS JSON-API emulator (gcp-storage-emulator) on 127.0.0.1, in memory, for the session."""
    import socket

    from gcp_storage_emulator.server import create_server

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def gcs_client(gcs_endpoint):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="framefarm-test", credentials=AnonymousCredentials(),
                          client_options={"api_endpoint": gcs_endpoint})


@pytest.fixture
def gcs_bucket(gcs_client) -> str:
    import uuid

    name = f"framefarm-test-{uuid.uuid4().hex[:12]}"
    gcs_client.create_bucket(name)
    return name
