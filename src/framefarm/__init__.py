"""framefarm: distributed video rendering on serverless workers.

A job (N frames) is split into chunks; each chunk runs as one call on a worker (a local subprocess,
an AWS Lambda function or a Google Cloud Run service); a manager tracks every chunk in a job store;
a stitcher joins the chunk videos. See docs/architecture.md for the architecture.

    import framefarm as ff
    result = ff.render("examples/testsrc.yaml", output="out/testsrc.mp4", concurrency=2)
"""

from __future__ import annotations

from typing import Any

from framefarm.adapters.base import CallableWorkerAdapter, WorkerAdapter, WorkerJob, WorkerResult
from framefarm.adapters.local import LocalWorkerAdapter
from framefarm.api import Progress, RenderFailed, RenderHandle, RenderResult, attach, load_job, render, submit
from framefarm.backends import Backend, CloudRun, Lambda, Local
from framefarm.cancel import CancelToken
from framefarm.errors import (
    ChunkFailedError,
    FramefarmError,
    JobAbortedError,
    JobNotFoundError,
    JobSpecError,
    JobStateError,
    StitchError,
    StorageError,
    ToolNotFoundError,
)
from framefarm.estimate import Estimate, estimate
from framefarm.executor import ExecutionReport, JobExecutor
from framefarm.failures import FailureKind
from framefarm.manager import JobManager
from framefarm.options import ExecutionOptions, RetryPolicy, RunHooks
from framefarm.repositories.base import JobRepository
from framefarm.repositories.memory import InMemoryJobRepository
from framefarm.repositories.sqlite import SqliteJobRepository
from framefarm.spec import Chunk, JobSpec, RenderMetadata, load_job_file, plan_job
from framefarm.status import ChunkRecord, ChunkState, JobMetrics, JobRecord, JobState, JobStatus
from framefarm.stitch.ffmpeg import FfmpegStitcher
from framefarm.storage.base import Storage
from framefarm.storage.local import LocalStorage
from framefarm.transcode import TranscodeResult, transcode

# Names whose modules import a cloud SDK: loaded on first use, so the base install stays SDK-free.
_LAZY = {
    "CloudRunWorkerAdapter": "framefarm.adapters.cloud_run",
    "DynamoDBJobRepository": "framefarm.repositories.dynamodb",
    "GcsStorage": "framefarm.storage.gcs",
    "LambdaWorkerAdapter": "framefarm.adapters.aws_lambda",
    "S3MergeAdapter": "framefarm.stitch.merge",
    "S3Storage": "framefarm.storage.s3",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'framefarm' has no attribute {name!r}")


__all__ = [
    "Backend",
    "CallableWorkerAdapter",
    "CancelToken",
    "Chunk",
    "ChunkFailedError",
    "ChunkRecord",
    "ChunkState",
    "CloudRun",
    "CloudRunWorkerAdapter",
    "DynamoDBJobRepository",
    "Estimate",
    "ExecutionOptions",
    "ExecutionReport",
    "FailureKind",
    "FfmpegStitcher",
    "FramefarmError",
    "GcsStorage",
    "InMemoryJobRepository",
    "JobAbortedError",
    "JobExecutor",
    "JobManager",
    "JobMetrics",
    "JobNotFoundError",
    "JobRecord",
    "JobRepository",
    "JobSpec",
    "JobSpecError",
    "JobState",
    "JobStateError",
    "JobStatus",
    "Lambda",
    "LambdaWorkerAdapter",
    "Local",
    "LocalStorage",
    "LocalWorkerAdapter",
    "Progress",
    "RenderFailed",
    "RenderHandle",
    "RenderMetadata",
    "RenderResult",
    "RetryPolicy",
    "RunHooks",
    "S3MergeAdapter",
    "S3Storage",
    "SqliteJobRepository",
    "StitchError",
    "Storage",
    "StorageError",
    "ToolNotFoundError",
    "TranscodeResult",
    "WorkerAdapter",
    "WorkerJob",
    "WorkerResult",
    "attach",
    "estimate",
    "load_job",
    "load_job_file",
    "plan_job",
    "render",
    "submit",
    "transcode",
]
__version__ = "0.1.0"
