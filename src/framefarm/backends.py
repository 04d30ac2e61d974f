"""Backends: where chunks run and where a job's records and files are kept, as one value.

A backend knows how to build its worker adapter, its job store and its storage, and so a
``JobManager``. The library (``framefarm.render``), the CLI and the Lambda handlers all build theirs
through one of these, so there is one wiring:

- ``Local(home=None)``: chunks as local subprocesses; SQLite job store and files under ``home``
  (``$FRAMEFARM_HOME`` or ``./.framefarm``).
- ``Lambda(stack=None, *, function=, table=, bucket=, orchestrator=, submit_function=, region=, session=)``:
  chunks on the render-chunk function, records in DynamoDB, files in S3. Names come from the
  arguments, else the deployed stack's outputs (``stack``), else the environment (``FRAMEFARM_TABLE``,
  ``FRAMEFARM_BUCKET``, ``FRAMEFARM_WORKER_FUNCTION``, ...: what the stack sets on its functions and
  ``framefarm devcloud`` prints). With a submit function a submitted job is orchestrated in the cloud;
  without one, by the caller's process.
- ``CloudRun(service, *, bucket=None, home=None)``: chunks on a Cloud Run worker service; files in
  the GCS ``bucket`` (else local storage under ``home``, which a worker on this machine can read);
  records in the local SQLite store.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from framefarm.adapters.base import WorkerAdapter, WorkerJob, WorkerResult
from framefarm.aws.settings import AwsSettings
from framefarm.config import (
    DATABASE_FILENAME,
    DEFAULT_CONCURRENCY,
    DEFAULT_LAMBDA_CONCURRENCY,
    ENV_SUBMIT_FUNCTION,
    framefarm_home,
)
from framefarm.errors import FramefarmError, JobSpecError, JobStateError
from framefarm.executor import JobExecutor
from framefarm.manager import JobManager
from framefarm.repositories.base import JobRepository
from framefarm.storage.base import Storage

CLOUD_RUN_CONCURRENCY = 10  # chunks in flight on Cloud Run unless told otherwise


class Backend(ABC):
    """Where chunks run (``adapter``), where records are kept (``repository``) and files (``storage``)."""

    name: ClassVar[str]
    default_concurrency: ClassVar[int]
    chunks_in_storage: ClassVar[bool]  # chunk outputs land in storage (a remote worker): stitched after a download
    reports_cost: ClassVar[bool] = True  # its workers' results carry what they cost (a spending cap needs it)

    @abstractmethod
    def storage(self) -> Storage: ...

    @abstractmethod
    def repository(self, storage: Storage | None = None) -> JobRepository:
        """The job store (``storage``: where it keeps what it keeps outside itself; None: its own choice)."""

    @abstractmethod
    def adapter(self, storage: Storage, *, concurrency: int) -> WorkerAdapter: ...

    def concurrency(self, asked: int | None = None) -> int:
        """Chunks in flight: as asked, else this backend's default (the same for the library, the CLI
        and the Lambda handlers)."""
        return asked if asked is not None else self.default_concurrency

    def manager(self, *, concurrency: int | None = None, runs_chunks: bool = True) -> JobManager:
        """A JobManager over this backend's store and storage. ``runs_chunks=False``: one that only
        creates, inspects and controls jobs (it refuses to run a chunk), and needs no worker settings."""
        storage = self.storage()
        adapter = self.adapter(storage, concurrency=self.concurrency(concurrency)) if runs_chunks else NoWorker()
        return JobManager(self.repository(storage), JobExecutor(adapter), storage)


class NoWorker:
    """The adapter of a manager that only creates, inspects and controls jobs."""

    def execute(self, job: WorkerJob) -> WorkerResult:
        raise FramefarmError("this manager does not run chunks")


@dataclass(frozen=True)
class Local(Backend):
    """Chunks as subprocesses on this machine; SQLite store and files under ``home``."""

    home: str | os.PathLike[str] | None = None
    name: ClassVar[str] = "local"
    default_concurrency: ClassVar[int] = DEFAULT_CONCURRENCY
    chunks_in_storage: ClassVar[bool] = False
    reports_cost: ClassVar[bool] = False  # this machine's time is not billed per chunk

    @cached_property
    def root(self) -> Path:
        return framefarm_home(self.home).resolve()

    def storage(self) -> Storage:
        from framefarm.storage.local import LocalStorage

        return LocalStorage(self.root)

    def repository(self, storage: Storage | None = None) -> JobRepository:
        from framefarm.repositories.sqlite import SqliteJobRepository

        return SqliteJobRepository(self.root / DATABASE_FILENAME)

    def adapter(self, storage: Storage, *, concurrency: int) -> WorkerAdapter:
        from framefarm.adapters.local import LocalWorkerAdapter

        return LocalWorkerAdapter()



@dataclass(frozen=True)
class Lambda(Backend):
    """Chunks on AWS Lambda; records in DynamoDB; files in S3 (see the module docstring for names)."""

    stack: str | None = None
    function: str | None = None
    table: str | None = None
    bucket: str | None = None
    orchestrator: str | None = None
    submit_function: str | None = None
    run_here: bool = False  # orchestrate submitted jobs in this process even when a submit function is known
    region: str | None = None
    session: Any = field(default=None, repr=False, compare=False)  # a boto3 Session (credentials, region)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False, compare=False)
    name: ClassVar[str] = "lambda"
    default_concurrency: ClassVar[int] = DEFAULT_LAMBDA_CONCURRENCY
    chunks_in_storage: ClassVar[bool] = True

    @cached_property
    def boto_session(self) -> Any:
        if self.session is not None:
            return self.session
        import boto3

        return boto3.session.Session(region_name=self.region)

    def client(self, service: str, **kwargs: Any) -> Any:
        return self.boto_session.client(service, region_name=self.region, **kwargs)

    @cached_property
    def outputs(self) -> dict[str, str]:
        """The deployed stack's outputs (``infra/stacks/framefarm_stack.py`` names them); {} without a stack."""
        if not self.stack:
            return {}
        return stack_outputs(self.client("cloudformation"), self.stack)

    @cached_property
    def settings(self) -> AwsSettings:
        """Explicit names > the stack's outputs > the environment."""
        outputs = self.outputs
        return AwsSettings.from_env(
            self.environ, table=self.table or outputs.get("TableName"),
            bucket=self.bucket or outputs.get("BucketName"),
            worker_function=self.function or outputs.get("WorkerFunctionName"),
            orchestrator_function=self.orchestrator or outputs.get("OrchestratorFunctionName"))

    @cached_property
    def submit_function_name(self) -> str | None:
        """The submit function jobs are sent to (None: this process orchestrates them)."""
        if self.run_here:
            return None
        from_environment = self.table is None and self.stack is None  # not another deployment's function
        return (self.submit_function or self.outputs.get("SubmitFunctionName")
                or (self.environ.get(ENV_SUBMIT_FUNCTION) if from_environment else None) or None)

    def storage(self) -> Storage:
        from framefarm.storage.s3 import S3Storage, client_config

        return S3Storage(self.settings.require("bucket"), client=self.client("s3", config=client_config()))

    def storage_if_named(self) -> Storage | None:
        """The bucket's storage when one is named; without, a job store still reads each job's spec
        from the URL its record keeps, and a manager that runs no chunks needs no bucket."""
        return self.storage() if self.settings.bucket else None

    def repository(self, storage: Storage | None = None) -> JobRepository:
        from framefarm.repositories.dynamodb import DynamoDBJobRepository

        return DynamoDBJobRepository(self.settings.require("table"), client=self.client("dynamodb"),
                                     storage=storage if storage is not None else self.storage_if_named())

    def concurrency(self, asked: int | None = None) -> int:
        return asked if asked is not None else self.settings.concurrency  # FRAMEFARM_CONCURRENCY on the functions

    def lambda_client(self, *, concurrency: int = 1, function_timeout: float = 60.0) -> Any:
        from framefarm.adapters.aws_lambda import lambda_client

        return lambda_client(concurrency=concurrency, function_timeout=function_timeout, region=self.region,
                             session=self.boto_session)

    def adapter(self, storage: Storage, *, concurrency: int, client: Any = None) -> WorkerAdapter:
        from framefarm.adapters.aws_lambda import LambdaWorkerAdapter

        settings = self.settings
        function = settings.require("worker_function")
        client = client or self.lambda_client(concurrency=concurrency, function_timeout=settings.worker_timeout)
        return LambdaWorkerAdapter(function, storage, client=client, concurrency=concurrency,
                                   function_timeout=settings.worker_timeout,
                                   architecture=settings.worker_architecture)

    def manager(self, *, concurrency: int | None = None, runs_chunks: bool = True, client: Any = None
                ) -> JobManager:
        """As ``Backend.manager``; ``client``: the Lambda client its adapter invokes render-chunk with."""
        if not runs_chunks:
            storage = self.storage_if_named()
            return JobManager(self.repository(storage), JobExecutor(NoWorker()), storage)
        storage = self.storage()
        adapter = self.adapter(storage, concurrency=self.concurrency(concurrency), client=client)
        return JobManager(self.repository(storage), JobExecutor(adapter), storage)



@dataclass(frozen=True)
class CloudRun(Backend):
    """Chunks on a Cloud Run worker service (a URL or ``projects/P/locations/L/services/S``; needed only
    to run chunks); files in the GCS ``bucket`` (else local storage under ``home``); records in the
    local SQLite store under ``home``."""

    service: str | None = None
    bucket: str | None = None
    home: str | os.PathLike[str] | None = None
    token_provider: Any = field(default=None, repr=False, compare=False)  # for tests: a fixed ID token
    name: ClassVar[str] = "cloudrun"
    default_concurrency: ClassVar[int] = CLOUD_RUN_CONCURRENCY
    chunks_in_storage: ClassVar[bool] = True

    @cached_property
    def local(self) -> Local:
        return Local(self.home)

    def storage(self) -> Storage:
        if self.bucket:
            from framefarm.storage.gcs import GcsStorage

            return GcsStorage(self.bucket)
        return self.local.storage()

    def repository(self, storage: Storage | None = None) -> JobRepository:
        return self.local.repository()

    def adapter(self, storage: Storage, *, concurrency: int) -> WorkerAdapter:
        from framefarm.adapters.cloud_run import CloudRunWorkerAdapter

        if not self.service:
            raise JobSpecError("cloudrun: give the service (--service URL or projects/P/locations/L/services/S)")
        extra = {} if self.token_provider is None else {"token_provider": self.token_provider}
        return CloudRunWorkerAdapter(self.service, storage, **extra)



def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """The outputs of a deployed stack; FramefarmError naming the stack when it cannot be read."""
    from botocore.exceptions import ClientError

    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        raise FramefarmError(f"stack {stack_name}: {exc.response['Error'].get('Message', exc)}") from None
    return {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}


def submit_to_lambda(backend: Lambda, document: Mapping[str, Any], options: Mapping[str, Any], *,
                     client_token: str | None = None) -> dict[str, Any]:
    """Invoke the deployed submit function with a job document (what ``framefarm submit`` does);
    returns its answer (``job_id``, ``chunks``, ``duplicate``). JobSpecError for a submission it
    refused (400), JobStateError when the id is taken (409), FramefarmError for any other failure;
    nothing is sent when it is over Lambda's limit."""
    import json

    function = backend.submit_function_name
    if not function:
        raise JobSpecError("lambda: no submit function (give submit_function, a stack, or set "
                           f"{ENV_SUBMIT_FUNCTION})")
    body = lambda_submission(document, options, client_token=client_token)
    response = backend.lambda_client().invoke(FunctionName=function, InvocationType="RequestResponse",
                                              Payload=body)
    answer = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        message = answer.get("errorMessage", answer) if isinstance(answer, dict) else answer
        raise FramefarmError(f"the submit function failed: {message}")
    status = answer.get("statusCode") if isinstance(answer, dict) else None
    if status != 202:
        error = answer.get("error", answer) if isinstance(answer, dict) else answer
        kind = {400: JobSpecError, 409: JobStateError}.get(status or 0, FramefarmError)
        raise kind(str(error))
    return dict(answer)


def lambda_submission(document: Mapping[str, Any], options: Mapping[str, Any], *,
                      client_token: str | None = None) -> bytes:
    """The submit function's request for a job; JobSpecError when it is over Lambda's 6 MB limit."""
    import json

    from framefarm.adapters.aws_lambda import LAMBDA_PAYLOAD_LIMIT

    payload = {"job": dict(document), "options": dict(options),
               **({"client_token": client_token} if client_token else {})}
    body = json.dumps(payload).encode()
    if len(body) > LAMBDA_PAYLOAD_LIMIT:
        raise JobSpecError(f"the submission is {len(body) / 2**20:.1f} MiB and a Lambda request carries at most "
                           f"{LAMBDA_PAYLOAD_LIMIT / 2**20:.0f} MiB; describe the chunks with a template "
                           "(total_frames, frames_per_chunk, command) instead of listing them")
    return body
