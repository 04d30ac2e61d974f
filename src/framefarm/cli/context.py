"""What every command needs: the stores the flags point at, and the terminal.

No flags: the embedded defaults (SQLite job store and local storage under ``--home``).
``--table T``: DynamoDB; ``--bucket B``: S3 (specs, chunk outputs, full logs).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from framefarm.backends import Backend, CloudRun, Lambda, Local
from framefarm.config import framefarm_home
from framefarm.errors import FramefarmError
from framefarm.manager import JobManager
from framefarm.repositories.base import JobRepository
from framefarm.storage.base import Storage

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

    def backend(self, kind: str | None = None, *, function: str | None = None, service: str | None = None,
                run_here: bool = False) -> Backend:
        """The backend the flags name: ``kind`` (render's ``--backend``), else Lambda with ``--table``
        (or ``--stack``), Cloud Run's storage with ``--gcs-bucket``, else local."""
        if kind == "lambda" or (kind is None and self.table):
            return Lambda(table=self.table, bucket=self.bucket, function=self.function(function, "WorkerFunctionName"),
                          orchestrator=self.outputs.get("OrchestratorFunctionName"),
                          submit_function=self.outputs.get("SubmitFunctionName"), run_here=run_here)
        if kind == "cloudrun" or (kind is None and self.gcs_bucket):
            return CloudRun(service, bucket=self.gcs_bucket, home=self.home)
        return Local(self.home)

    def storage(self) -> Storage:
        """Where the flags say files are: ``--gcs-bucket``, ``--bucket``, else local storage under ``--home``."""
        if self.gcs_bucket:
            return CloudRun(bucket=self.gcs_bucket, home=self.home).storage()
        if self.bucket:
            return Lambda(bucket=self.bucket).storage()
        return Local(self.home).storage()

    def repository(self, storage: Storage | None = None) -> JobRepository:
        return self.backend().repository(storage)

    def manager(self, *, runs_chunks: bool = False) -> JobManager:
        """A manager over the flags' backend; ``runs_chunks``: it may run chunks (on that backend)."""
        return self.backend().manager(runs_chunks=runs_chunks)


def add_store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", help="DynamoDB job table (default: the local SQLite store)")
    parser.add_argument("--bucket", help="S3 bucket with specs, chunks and logs (default: local storage)")
    parser.add_argument("--gcs-bucket", help="GCS bucket with specs, chunks and logs (the Cloud Run backend)")
    parser.add_argument("--stack", help="a deployed framefarm stack: table, bucket and functions from its outputs")


def stack_outputs(stack_name: str) -> dict[str, str]:
    """The outputs of a deployed stack (``infra/stacks/framefarm_stack.py`` names them)."""
    try:
        return Lambda(stack=stack_name).outputs
    except FramefarmError as exc:
        raise FramefarmError(f"--{exc}") from None
