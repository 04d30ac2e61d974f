"""The names the library promises are importable from `framefarm`, and `__all__` is curated."""

from __future__ import annotations

import subprocess
import sys

import framefarm

# Every public name of the library's first contract (old names stay importable).
CONTRACT = {
    "JobSpec", "Chunk", "RenderMetadata", "plan_job",
    "WorkerJob", "WorkerResult", "WorkerAdapter",
    "JobExecutor", "ExecutionOptions", "CancelToken",
    "JobManager", "JobStatus", "JobState", "ChunkRecord",
    "InMemoryJobRepository", "SqliteJobRepository", "DynamoDBJobRepository",
    "LocalWorkerAdapter", "LambdaWorkerAdapter", "CloudRunWorkerAdapter", "FfmpegStitcher", "S3MergeAdapter",
    "LocalStorage", "S3Storage", "GcsStorage",
    "FramefarmError", "JobSpecError", "ChunkFailedError", "JobAbortedError", "StitchError",
}


# The library in one call, and what users catch or extend (issue: "a library API as short as renderMediaOnLambda").
ONE_CALL = {
    "render", "submit", "attach", "load_job", "RenderHandle", "RenderResult", "Progress", "RenderFailed",
    "Backend", "Local", "Lambda", "CloudRun", "RetryPolicy", "RunHooks", "FailureKind",
    "JobStateError", "JobNotFoundError", "StorageError", "ToolNotFoundError", "ChunkState", "JobMetrics",
    "JobRepository", "Storage", "JobRecord",
}


def test_old_names_are_the_new_things():
    assert framefarm.JobStatus is framefarm.JobRecord


def test_contract_names_are_exported():
    assert CONTRACT <= set(framefarm.__all__)
    assert ONE_CALL <= set(framefarm.__all__)
    for name in framefarm.__all__:
        assert getattr(framefarm, name) is not None


def test_all_is_sorted_and_unique():
    assert framefarm.__all__ == sorted(set(framefarm.__all__))


def test_errors_share_one_root():
    for name in ("JobSpecError", "ChunkFailedError", "JobAbortedError", "StitchError", "RenderFailed",
                 "JobStateError", "JobNotFoundError", "StorageError", "ToolNotFoundError"):
        assert issubclass(getattr(framefarm, name), framefarm.FramefarmError)


def test_import_needs_no_cloud_sdk():
    code = "import sys, framefarm; print(sorted(m for m in ('boto3', 'botocore', 'google') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_all_names_only_what_the_package_means_to_export():
    # a curated list: no module, no private name, nothing imported only for internal use
    import types

    for name in framefarm.__all__:
        assert not name.startswith("_") and not isinstance(getattr(framefarm, name), types.ModuleType), name
    assert {"api", "backends", "options"} & set(framefarm.__all__) == set()
