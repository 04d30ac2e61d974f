"""The job store fixture every contract test runs against: memory, SQLite and DynamoDB (moto)."""

from __future__ import annotations

import pytest

from framefarm import InMemoryJobRepository, SqliteJobRepository
from framefarm.repositories.base import JobRepository


@pytest.fixture(params=["memory", "sqlite", "dynamodb"])
def repo(request, tmp_path) -> JobRepository:
    if request.param == "memory":
        yield InMemoryJobRepository()
    elif request.param == "sqlite":
        repository = SqliteJobRepository(tmp_path / "jobs.db")
        yield repository
        repository.close()
    else:
        from framefarm.repositories.dynamodb import DynamoDBJobRepository
        from framefarm.storage.s3 import S3Storage

        table = request.getfixturevalue("table")
        storage = S3Storage(request.getfixturevalue("bucket"), client=request.getfixturevalue("s3_client"))
        yield DynamoDBJobRepository(table, client=request.getfixturevalue("dynamodb_client"), storage=storage,
                                    sleep=lambda s: None)
