"""The wire protocol between a runner and a remote worker: one chunk request, one reply.

    request {job_id, chunk_id, spec_url, attempt}
    reply   {exit_code, kind, stdout, stderr, output_key, duration_ms, error}

The reply carries the attempt's ``FailureKind`` (None on success), so what a remote worker saw
(cancelled, no output, a bad request, its command's exit code or time limit) reaches the runner as
the same kind a local run gives. ``exit_code`` is the command's, None when no command ran.

The request names the job's spec rather than carrying the chunk's command: the worker reads the
command from the spec, one command or several (``{"steps": [argv, ...]}``, run in order), so a spec
with one command is the same JSON as before steps existed. A worker older than steps refuses a spec
with them as a ``bad_request`` naming ``chunks[N].command``; it never runs half of a chunk.

The adapters that call remote workers (``adapters.aws_lambda``, ``adapters.cloud_run``) build the
request and read the reply here; the worker (``worker.runtime`` behind the Lambda handler and the
Cloud Run server) parses the request and builds the reply here. Neither side imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from framefarm.adapters.base import WorkerJob, WorkerResult
from framefarm.failures import FailureKind, with_settled_kind
from framefarm.spec import JOB_ID_PATTERN
from framefarm.storage.base import Storage
from framefarm.storage.keys import spec_key
from framefarm.validation import one_line


class ChunkRequest(BaseModel):
    """What a worker is asked to do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str = Field(pattern=JOB_ID_PATTERN)
    chunk_id: int = Field(ge=0)
    spec_url: str = Field(min_length=1, max_length=2048)
    attempt: int = Field(default=1, ge=1, le=1_000_000)  # as the job store numbers it: names the full logs


class ChunkResponse(BaseModel):
    """What a worker replies. ``output_key`` is set only when the output was uploaded.

    A reply with neither an exit code nor a kind is not a reply (``read_reply`` gives None).
    """

    model_config = ConfigDict(frozen=True)

    exit_code: int | None = Field(default=None, ge=0)
    kind: FailureKind | None = None
    stdout: str = ""
    stderr: str = ""
    output_key: str | None = None
    duration_ms: float = 0.0
    error: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _settle_kind(cls, data: Any) -> Any:
        return with_settled_kind(data)

    def to_result(self, **caller_side: Any) -> WorkerResult:
        """The WorkerResult an adapter returns; ``caller_side`` adds what the caller measured (billing, time)."""
        fields: dict[str, Any] = {"exit_code": self.exit_code, "kind": self.kind, "stdout": self.stdout,
                                  "stderr": self.stderr, "duration_ms": self.duration_ms, "error": self.error,
                                  "output_location": self.output_key}
        return WorkerResult(**{**fields, **caller_side})


def chunk_request(job: WorkerJob, storage: Storage) -> dict[str, Any]:
    """What a remote worker is sent for ``job``: the chunk, where its job's spec is, and which attempt."""
    job_id = job.meta["job_id"]
    return {"job_id": job_id, "chunk_id": job.meta["chunk_id"], "spec_url": storage.url(spec_key(job_id)),
            "attempt": int(job.meta.get("attempt", 1))}


def read_reply(payload: Any) -> ChunkResponse | None:
    """A worker's reply as a ChunkResponse; None when it is not one."""
    try:
        return ChunkResponse.model_validate(payload)
    except ValidationError:
        return None


def parse_request(event: Any) -> ChunkRequest | ChunkResponse:
    """The request in ``event``, or a bad-request response saying what is wrong with it."""
    if not isinstance(event, Mapping):
        return bad_request(f"expected a JSON object with job_id, chunk_id, spec_url; got {type(event).__name__}")
    try:
        return ChunkRequest.model_validate(dict(event))
    except ValidationError as exc:
        return bad_request(one_line(exc))


def bad_request(message: str) -> ChunkResponse:
    text = f"bad request: {message}"
    return ChunkResponse(kind=FailureKind.BAD_REQUEST, error=text, stderr=text + "\n")
