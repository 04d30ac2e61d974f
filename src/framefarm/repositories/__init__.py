"""Job stores: where job state, chunk records and counters live (memory, SQLite, DynamoDB)."""

from framefarm.repositories.base import JobRepository
from framefarm.repositories.memory import InMemoryJobRepository
from framefarm.repositories.sqlite import SqliteJobRepository

__all__ = ["InMemoryJobRepository", "JobRepository", "SqliteJobRepository"]
