"""The SQLite store on old systems: it refuses a library older than 3.31."""

from __future__ import annotations

import sqlite3

import pytest

from framefarm import SqliteJobRepository
from framefarm.errors import ToolNotFoundError


def test_sqlite_older_than_3_31_is_refused_naming_the_version(tmp_path, monkeypatch):
    # GIVEN Python linked against SQLite 3.22 (Ubuntu 18.04's)
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 22, 0))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.22.0")
    # WHEN the store opens, THEN one line names the version found, the one needed and what to do
    with pytest.raises(ToolNotFoundError) as refused:
        SqliteJobRepository(tmp_path / "jobs.db")
    message = str(refused.value)
    assert message.startswith("SQLite 3.22.0 is too old for the local job store (it needs 3.31 or newer); ")
    assert "--table" in message and "\n" not in message
    # AND no database file was made
    assert not (tmp_path / "jobs.db").exists()


def test_sqlite_3_31_is_accepted(tmp_path, monkeypatch):
    # GIVEN exactly the oldest supported version, WHEN the store opens, THEN it works
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 0))
    repository = SqliteJobRepository(tmp_path / "jobs.db")
    assert repository.list() == []
    repository.close()
