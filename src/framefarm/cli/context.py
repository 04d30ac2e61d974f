"""What every command needs: the stores the flags point at, and the terminal.

No settings: the embedded defaults (SQLite job store and local storage under ``--home``).
``--table T``: DynamoDB; ``--bucket B``: S3 (specs, chunk outputs, full logs). Each setting comes from its
flag, else the environment, else a profile (``framefarm.cli.settings``).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from framefarm.backends import Backend, CloudRun, Lambda, Local
from framefarm.cli.settings import Settings, resolve
from framefarm.config import ENV_MAX_CONCURRENCY, framefarm_home
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
    settings: Settings = field(default_factory=Settings)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Context:
        """Each setting from its flag, environment variable or profile; a stack fills what they leave out
        from its outputs."""
        settings = resolve(args)
        if (budget := settings.get("max_concurrency")) is not None:  # a profile's reaches every JobManager here
            os.environ[ENV_MAX_CONCURRENCY] = budget
        stack, region = settings.get("stack"), settings.get("region")
        outputs = stack_outputs(stack, region) if stack else {}
        return cls(home=framefarm_home(settings.get("home")).resolve(), out=Console(),
                   err=Console(stderr=True, highlight=False),
                   table=settings.get("table") or outputs.get("TableName"),
                   bucket=settings.get("bucket") or outputs.get("BucketName"),
                   gcs_bucket=settings.get("gcs_bucket"), outputs=outputs, settings=settings)

    def function(self, explicit: str | None, output: str) -> str | None:
        """A function name: the flag, else the stack output (SubmitFunctionName, WorkerFunctionName)."""
        return explicit or self.outputs.get(output)

    def hint(self, command: str) -> str:
        """``framefarm COMMAND`` with the flags this run was given: runnable as printed."""
        return f"framefarm {command}{self.settings.hint_flags()}"

    @property
    def on_aws(self) -> bool:
        return self.table is not None

    @property
    def remote_storage(self) -> bool:
        return bool(self.bucket or self.gcs_bucket)

    def backend(self, kind: str | None = None, *, function: str | None = None, service: str | None = None,
                run_here: bool = False) -> Backend:
        """The backend the flags name: ``kind`` (render's ``--backend``), else Lambda with ``--table``
        (or ``--stack``), Cloud Run's storage with ``--gcs-bucket``, else local; the settings' backend
        before those guesses."""
        kind = kind or self.settings.get("backend")
        if kind == "lambda" or (kind is None and self.table):
            return Lambda(table=self.table, bucket=self.bucket, function=self.function(function, "WorkerFunctionName"),
                          orchestrator=self.outputs.get("OrchestratorFunctionName"),
                          submit_function=self.outputs.get("SubmitFunctionName"), run_here=run_here,
                          region=self.settings.get("region"))
        if kind == "cloudrun" or (kind is None and self.gcs_bucket):
            return CloudRun(service, bucket=self.gcs_bucket, home=self.home)
        return Local(self.home)

    def storage(self) -> Storage:
        """Where the flags say files are: ``--gcs-bucket``, ``--bucket``, else local storage under ``--home``."""
        if self.gcs_bucket:
            return CloudRun(bucket=self.gcs_bucket, home=self.home).storage()
        if self.bucket:
            return Lambda(bucket=self.bucket, region=self.settings.get("region")).storage()
        return Local(self.home).storage()

    def repository(self, storage: Storage | None = None) -> JobRepository:
        return self.backend().repository(storage)

    def manager(self, *, runs_chunks: bool = False) -> JobManager:
        """A manager over the flags' backend; ``runs_chunks``: it may run chunks (on that backend)."""
        return self.backend().manager(runs_chunks=runs_chunks)


GLOBAL_FLAG_HELP = {
    "--home": "local job store and job directories (default: $FRAMEFARM_HOME, a profile's home, or ./.framefarm)",
    "--profile": "a [profile.NAME] of framefarm.toml (default: $FRAMEFARM_PROFILE, else [profile.default])",
    "--table": "DynamoDB job table (default: $FRAMEFARM_TABLE, the profile's, else the local SQLite store)",
    "--bucket": "S3 bucket with specs, chunks and logs (default: $FRAMEFARM_BUCKET, the profile's, else local)",
    "--gcs-bucket": "GCS bucket with specs, chunks and logs (the Cloud Run backend; $FRAMEFARM_GCS_BUCKET)",
    "--stack": "a deployed framefarm stack: table, bucket and functions from its outputs ($FRAMEFARM_STACK)",
}


def add_store_flags(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """The global flags (where things are), on the top parser or on a command: accepted before or after
    the command's name. On a command they default to nothing, so they do not hide the top parser's."""
    for flag, text in GLOBAL_FLAG_HELP.items():
        if flag not in parser._option_string_actions:  # a command may take them once only
            parser.add_argument(flag, help=text, default=None if top else argparse.SUPPRESS)


def stack_outputs(stack_name: str, region: str | None = None) -> dict[str, str]:
    """The outputs of a deployed stack (``infra/stacks/framefarm_stack.py`` names them)."""
    try:
        return Lambda(stack=stack_name, region=region).outputs
    except FramefarmError as exc:
        raise FramefarmError(f"--{exc}") from None
