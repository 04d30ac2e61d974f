"""The SQLite store on old systems: it refuses a library older than 3.31, and its SQL needs nothing newer.

Debian 11 ships SQLite 3.34, Ubuntu 20.04 3.31; this machine has a newer one, so every statement the
store runs through the contract tests is traced and checked for syntax and functions added after 3.31
(`make test-old-sqlite` runs the same contract tests on Debian 11's own libsqlite3).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from framefarm import SqliteJobRepository
from framefarm.errors import ToolNotFoundError
from framefarm.repositories.sqlite import SCHEMA

CONTRACT_TESTS = Path(__file__).with_name("test_contract.py")

# What SQLite added after 3.31, as patterns over a statement whose literals, quoted names and comments
# are blanked. "top" patterns see the statement with every parenthesised part emptied, so a subquery's
# FROM or a column named "strict" cannot match.
NEWER_FEATURES: dict[str, tuple[str, str]] = {
    "iif() (3.32)": ("all", r"\biif\s*\("),
    "UPDATE ... FROM (3.33)": ("top", r"\bUPDATE\b.*\bSET\b.*\bFROM\b"),
    "RETURNING (3.35)": ("all", r"\bRETURNING\b"),
    "ALTER TABLE ... DROP COLUMN (3.35)": ("all", r"\bALTER\s+TABLE\b.*\bDROP\b"),
    "MATERIALIZED common table expressions (3.35)": ("all", r"\bAS\s+(NOT\s+)?MATERIALIZED\b"),
    "math functions (3.35)": ("all", r"\b(acosh?|asinh?|atan2?|atanh|ceil|ceiling|cosh?|degrees|exp|floor|ln|"
                                     r"log|log10|log2|mod|pi|pow|power|radians|sinh?|sqrt|tanh?|trunc)\s*\("),
    "STRICT tables (3.37)": ("top", r"\bCREATE\s+TABLE\b.*\bSTRICT\b"),
    "PRAGMA table_list (3.37)": ("all", r"\bPRAGMA\s+(\w+\.)?table_list\b"),
    "-> and ->> (3.38)": ("all", r"->"),
    "JSON functions (built in from 3.38)": ("all", r"\bjson\w*\s*\("),
    "unixepoch(), format() (3.38)": ("all", r"\b(unixepoch|format)\s*\("),
    "RIGHT and FULL JOIN (3.39)": ("all", r"\b(RIGHT|FULL)\s+(OUTER\s+)?JOIN\b"),
    "IS DISTINCT FROM (3.39)": ("all", r"\bIS\s+(NOT\s+)?DISTINCT\s+FROM\b"),
    "unhex(), octet_length(), timediff(), concat(), string_agg() (3.41-3.44)": (
        "all", r"\b(unhex|octet_length|timediff|concat|concat_ws|string_agg)\s*\("),
}
LITERALS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]|--[^\n]*|/\*.*?\*/", re.DOTALL)
PARENTHESISED = re.compile(r"\([^()]*\)")


def newer_sql(statement: str) -> list[str]:
    """The features in ``statement`` that SQLite 3.31 lacks (empty when it runs there)."""
    blanked = LITERALS.sub(" x ", statement)
    top = blanked
    while (emptied := PARENTHESISED.sub(" ", top)) != top:
        top = emptied
    views = {"all": blanked, "top": top}
    return [feature for feature, (view, pattern) in NEWER_FEATURES.items()
            if re.search(pattern, views[view], re.IGNORECASE | re.DOTALL)]


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


@pytest.mark.parametrize(("statement", "feature"), [
    ("UPDATE jobs SET heartbeat_at = 5.0 WHERE id = 'job-1' RETURNING requested", "RETURNING (3.35)"),
    ("INSERT INTO jobs (id) VALUES ('a') returning *", "RETURNING (3.35)"),
    ("UPDATE chunks SET state = j.state FROM jobs AS j WHERE j.id = chunks.job_id", "UPDATE ... FROM (3.33)"),
    ("WITH done AS (SELECT 1) UPDATE jobs SET state = 'x' FROM done", "UPDATE ... FROM (3.33)"),
    ("ALTER TABLE jobs DROP COLUMN heartbeat_at", "ALTER TABLE ... DROP COLUMN (3.35)"),
    ("CREATE TABLE t (a INTEGER) STRICT", "STRICT tables (3.37)"),
    ("CREATE TABLE t (a INTEGER PRIMARY KEY) WITHOUT ROWID, STRICT", "STRICT tables (3.37)"),
    ("SELECT spec ->> '$.id' FROM jobs", "-> and ->> (3.38)"),
    ("SELECT spec -> '$.chunks' FROM jobs", "-> and ->> (3.38)"),
    ("SELECT ceil(cost_usd) FROM jobs", "math functions (3.35)"),
    ("SELECT LOG10 (total_chunks) FROM jobs", "math functions (3.35)"),
    ("SELECT iif(state = 'completed', 1, 0) FROM chunks", "iif() (3.32)"),
    ("WITH c AS MATERIALIZED (SELECT 1) SELECT * FROM c", "MATERIALIZED common table expressions (3.35)"),
    ("SELECT * FROM jobs FULL OUTER JOIN chunks ON 1", "RIGHT and FULL JOIN (3.39)"),
    ("SELECT * FROM jobs WHERE error IS NOT DISTINCT FROM NULL", "IS DISTINCT FROM (3.39)"),
    ("SELECT json_extract(spec, '$.id') FROM jobs", "JSON functions (built in from 3.38)"),
    ("SELECT unixepoch()", "unixepoch(), format() (3.38)"),
    ("PRAGMA table_list", "PRAGMA table_list (3.37)"),
])
def test_the_check_flags_sql_newer_than_3_31(statement, feature):
    # GIVEN a statement using one feature added after 3.31, WHEN it is checked, THEN that feature is named
    assert newer_sql(statement) == [feature]


@pytest.mark.parametrize("statement", [
    *(part for part in SCHEMA.split(";") if part.strip()),
    "UPDATE jobs SET error = 'returning -> strict FROM x', state = (SELECT state FROM chunks) WHERE id = 'a'",
    'SELECT "returning", [from] FROM jobs -- RETURNING in a comment',
    "INSERT INTO chunks (job_id, chunk_id, state) VALUES ('j', 1, 'pending') "
    "ON CONFLICT (job_id, chunk_id) DO UPDATE SET state = excluded.state WHERE chunks.state != 'completed'",
    "CREATE TABLE t (a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) STORED, strict INTEGER)",
    "SELECT count(*) FILTER (WHERE state = 'failed'), row_number() OVER (ORDER BY chunk_id) FROM chunks",
    "UPDATE jobs SET completed_chunks = completed_chunks + 1, cost_usd = cost_usd + 0.5 WHERE id = 'a'",
])
def test_the_check_passes_sql_that_runs_on_3_31(statement):
    # GIVEN SQL that SQLite 3.31 runs (including words like RETURNING inside literals and names)
    # WHEN it is checked, THEN nothing is flagged
    assert newer_sql(statement) == []


class TraceSqlite:
    """A pytest plugin: every sqlite3 connection opened during a test traces its statements here."""

    def __init__(self) -> None:
        self.statements: set[str] = set()

    @pytest.fixture(autouse=True)
    def _trace_connections(self, monkeypatch: pytest.MonkeyPatch) -> None:
        connect = sqlite3.connect

        def traced(*args, **kwargs) -> sqlite3.Connection:
            connection = connect(*args, **kwargs)
            connection.set_trace_callback(self.statements.add)
            return connection

        monkeypatch.setattr(sqlite3, "connect", traced)


@pytest.fixture(scope="module")
def contract_statements() -> set[str]:
    """Every statement the SQLite store ran in the repository contract tests (run once, in this process;
    the outer test's timeout bounds them)."""
    trace = TraceSqlite()
    outcome = pytest.main([str(CONTRACT_TESTS), "-q", "-k", "sqlite", "-p", "no:cacheprovider", "--timeout=0"],
                          plugins=[trace])
    assert outcome == pytest.ExitCode.OK, "the contract tests failed on the SQLite store; fix them first"
    assert any(statement.startswith("UPDATE chunks") for statement in trace.statements)
    return trace.statements


@pytest.mark.parametrize("feature", NEWER_FEATURES)
def test_the_contract_tests_run_no_sql_newer_than_3_31(contract_statements, feature):
    # GIVEN every statement the SQLite store ran in the contract tests
    # WHEN each is checked, THEN none uses this feature
    offending = sorted(statement for statement in contract_statements if feature in newer_sql(statement))
    assert offending == [], f"{feature}: {offending[:3]}"
