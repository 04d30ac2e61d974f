"""Worker adapters: one ``execute(job) -> result`` method each (local, AWS Lambda, Cloud Run)."""

from framefarm.adapters.base import CallableWorkerAdapter, WorkerAdapter, WorkerJob, WorkerResult
from framefarm.adapters.local import LocalWorkerAdapter
from framefarm.failures import FailureKind

__all__ = ["CallableWorkerAdapter", "FailureKind", "LocalWorkerAdapter", "WorkerAdapter", "WorkerJob", "WorkerResult"]
