"""What every command needs: the stores the flags point at, and the terminal.

No flags: the embedded defaults (SQLite job store and local storage under ``--home``).
``--table T``: DynamoDB; ``--bucket B``: S3 (specs, chunk outputs, full logs).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from framefarm.adapters.base import WorkerAdapter
from framefarm.adapters.local import LocalWorkerAdapter
from framefarm.config import DATABASE_FILENAME, framefarm_home
from framefarm.errors import FramefarmError
from framefarm.executor import JobExecutor
from framefarm.manager import JobManager
from framefarm.repositories.base import JobRepository
from framefarm.repositories.sqlite import SqliteJobRepository
from framefarm.storage.base import Storage
from framefarm.storage.local import LocalStorage

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PAUSED, EXIT_CANCELLED = 0, 1, 2, 3, 130


@dataclass
class Context:
    home: Path
    out: Console
    err: Console
    table: str | None = None
    bucket: str | None = None
    gcs_bucket: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Context:
        """Explicit flags win; ``--stack`` fills what they leave out from the stack's outputs."""
        outputs = stack_outputs(args.stack) if getattr(args, "stack", None) else {}
        return cls(home=framefarm_home(args.home).resolve(), out=Console(), err=Console(stderr=True, highlight=False),
                   table=getattr(args, "table", None) or outputs.get("TableName"),
                   bucket=getattr(args, "bucket", None) or outputs.get("BucketName"),
                   gcs_bucket=getattr(args, "gcs_bucket", None), outputs=outputs)

    def function(self, explicit: str | None, output: str) -> str | None:
        """A function name: the flag, else the stack output (SubmitFunctionName, WorkerFunctionName)."""
        return explicit or self.outputs.get(output)

    @property
    def on_aws(self) -> bool:
        return self.table is not None

    @property
    def remote_storage(self) -> bool:
        return bool(self.bucket or self.gcs_bucket)

    def storage(self) -> Storage:
        if self.gcs_bucket:
            from framefarm.storage.gcs import GcsStorage

            return GcsStorage(self.gcs_bucket)
        if self.bucket:
            from framefarm.storage.s3 import S3Storage

            return S3Storage(self.bucket)
        return LocalStorage(self.home)

    def repository(self, storage: Storage | None = None) -> JobRepository:
        if self.table:
            from framefarm.repositories.dynamodb import DynamoDBJobRepository

            return DynamoDBJobRepository(self.table,
                                         storage=storage or (self.storage() if self.remote_storage else None))
        return SqliteJobRepository(self.home / DATABASE_FILENAME)

    def manager(self, adapter: WorkerAdapter | None = None, storage: Storage | None = None) -> JobManager:
        storage = storage or self.storage()
        return JobManager(self.repository(storage), JobExecutor(adapter or LocalWorkerAdapter()), storage)


def add_store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", help="DynamoDB job table (default: the local SQLite store)")
    parser.add_argument("--bucket", help="S3 bucket with specs, chunks and logs (default: local storage)")
    parser.add_argument("--gcs-bucket", help="GCS bucket with specs, chunks and logs (the Cloud Run backend)")
    parser.add_argument("--stack", help="a deployed framefarm stack: table, bucket and functions from its outputs")


def stack_outputs(stack_name: str) -> dict[str, str]:
    """The outputs of a deployed stack (``infra/stacks/framefarm_stack.py`` names them)."""
    import boto3
    from botocore.exceptions import ClientError

    try:
        stacks = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        raise FramefarmError(f"--stack {stack_name}: {exc.response['Error'].get('Message', exc)}") from None
    return {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}
