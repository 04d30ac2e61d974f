"""The logic behind the three Lambda functions; ``lambda_handlers/*.py`` are one-line entry points.

- ``submit(event, context)``: validate a job, store it (pending) and its spec, start the orchestrator.
  Idempotent by a client token (``client_token`` in the event; by default the job id and a digest of
  its spec): a retried submission answers with the job the first one created.
- ``orchestrate(event, context)``: run the job on render-chunk workers; hand over before the deadline.
  Every run first takes the job's lease (see ``framefarm.lease``), so an event delivered twice runs
  the job once: the second delivery finds the lease held and answers ``skipped``. A hand-over passes
  the lease to a token that the continuation event carries (``run_id``). Lambda retries a crashed
  asynchronous call with the same event: the retry finds the job still ``running``, waits for the
  dead run's lease to run out and takes it over (completed chunks are kept, each chunk is counted
  once). A submission's first event runs only a job still pending (a job cancelled before its
  orchestrator came stays cancelled); ``framefarm resume`` sends ``"resume": true`` to restart a
  stopped one, and ``{"sweep": true}`` (the stack's schedule) hands back every job whose event
  Lambda gave up on (``framefarm.aws.lost_events``) and every abandoned ``running`` job.
- ``render_chunk(event, context)``: run one chunk (``framefarm.worker.runtime``; request and reply:
  ``framefarm.protocol``).

Handlers log one JSON line per event, keyed by ``job_id`` (and ``chunk_id``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import tempfile
import threading
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from framefarm import events
from framefarm.adapters.aws_lambda import invoke_async
from framefarm.adapters.base import WorkerResult
from framefarm.aws.lost_events import recover_lost_events
from framefarm.backends import Lambda
from framefarm.cancel import CancelToken
from framefarm.config import (
    DEFAULT_RETRIES,
    DEFAULT_RETRY_DELAY,
    DEFAULT_TRANSIENT_RETRIES,
    HANDOVER,
    HANDOVER_SPARE,
)
from framefarm.errors import JobSpecError, JobStateError
from framefarm.manager import default_client_token
from framefarm.options import ExecutionOptions, RetryPolicy, RunHooks
from framefarm.protocol import ChunkResponse, parse_request
from framefarm.spec import parse_job
from framefarm.spec.model import WebhookUrl
from framefarm.status import JobState
from framefarm.validation import one_line
from framefarm.webhooks.notifier import with_webhook
from framefarm.worker.runtime import run_chunk

logger = logging.getLogger("framefarm.aws")
MAX_IDLE_CONTINUATIONS = 3  # continuations in a row without a completed chunk before giving up
TAKEOVER_STALE_PERIODS = 2.0  # a running job's runner is taken for dead after this many stale periods
SWEEP_LIMIT = 500  # newest jobs a sweep looks at


class RunOptions(BaseModel):
    """What a submission may set about how its job runs (bounded: the event comes from outside)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int | None = Field(default=None, ge=1, le=10_000)
    retries: int = Field(default=DEFAULT_RETRIES, ge=0, le=20)
    transient_retries: int = Field(default=DEFAULT_TRANSIENT_RETRIES, ge=0, le=50)
    retry_delay: float = Field(default=DEFAULT_RETRY_DELAY, ge=0, le=900)
    timeout: float | None = Field(default=None, gt=0, le=900)
    max_cost: float | None = Field(default=None, gt=0, allow_inf_nan=False)  # this run's cap (resume --max-cost)
    webhook: WebhookUrl | None = None  # replaces the job's notify.webhook for this run (``resume --webhook``)

    @classmethod
    def parse(cls, raw: Any) -> RunOptions:
        """The options in ``raw``; JobSpecError naming the first bad field."""
        if not isinstance(raw, dict):
            raise JobSpecError(f"options: expected an object, got {type(raw).__name__}")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise JobSpecError(one_line(exc, prefix="options")) from None


def log_event(message: str, **fields: Any) -> None:
    logger.info(json.dumps({"message": message, **fields}, default=str))


# -- submit -----------------------------------------------------------------------------------------

def submit(event: Any, context: Any = None, *, backend: Lambda | None = None) -> dict[str, Any]:
    """Accept ``{"job": <job document>, "options": {...}}``, the document itself, or an API Gateway
    proxy event carrying either as its body. Invalid input: a 400 answer, nothing written."""
    api_style = _is_api_event(event)
    try:
        document, options, client_token = _submission(event)
        spec = parse_job(document, source="job", job_id=_job_id_for(document, client_token))
    except JobSpecError as exc:
        return _answer(api_style, 400, {"error": str(exc)})
    client_token = client_token or default_client_token(spec)
    backend = backend or Lambda()
    manager = backend.manager(runs_chunks=False)
    try:
        status, created = manager.create_job_once(spec, client_token=client_token)
    except JobStateError as exc:
        return _answer(api_style, 409, {"error": str(exc)})
    answer = {"job_id": spec.id, "chunks": len(spec.chunks), **({} if created else {"duplicate": True})}
    if status.state is not JobState.PENDING:  # a retry of a submission whose job already started
        log_event("submitted again", job_id=spec.id, state=status.state.value)
        return _answer(api_style, 202, answer)
    try:  # create_job stored the spec in S3 too (the repository keeps it there), where workers read it
        # For a retry that finds the job still pending, this may start a second orchestrator: the
        # run lease lets only one of them run it.
        invoke_async(backend.lambda_client(), backend.settings.require("orchestrator_function"),
                     {"job_id": spec.id, "options": options})
    except Exception as exc:  # undo, so a job that can never start is not left pending
        if created:
            manager.delete_job(spec.id)
        log_event("submit failed", job_id=spec.id, error=str(exc))
        return _answer(api_style, 500, {"error": f"job not started: {exc}"})
    log_event("submitted", job_id=spec.id, chunks=len(spec.chunks), duplicate=not created)
    return _answer(api_style, 202, answer)


def _job_id_for(document: Any, client_token: str | None) -> str | None:
    """A document that names no job id gets one from its client token, so a retry gets the same one."""
    if client_token is None or (isinstance(document, dict) and document.get("id")):
        return None
    return f"job-{hashlib.sha256(client_token.encode()).hexdigest()[:12]}"


def _submission(event: Any) -> tuple[Any, dict[str, Any], str | None]:
    body = event
    if _is_api_event(event):
        raw = event.get("body") or ""
        if not isinstance(raw, str):
            raise JobSpecError(f"body: expected the job as a JSON string, got {type(raw).__name__}")
        if event.get("isBase64Encoded"):
            try:
                raw = base64.b64decode(raw, validate=True).decode("utf-8", errors="replace")
            except (ValueError, binascii.Error):
                raise JobSpecError("body: isBase64Encoded is set but the body is not valid base64") from None
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise JobSpecError(f"body: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if isinstance(body, dict) and "job" in body:
        options = RunOptions.parse(body.get("options") or {})
        token = body.get("client_token")
        if token is not None and not (isinstance(token, str) and 1 <= len(token) <= 128 and token.isprintable()):
            raise JobSpecError("client_token: expected 1 to 128 printable characters")
        return body["job"], options.model_dump(exclude_defaults=True), token
    return body, {}, None


def _is_api_event(event: Any) -> bool:
    """An API Gateway proxy event: the submission is its (JSON, maybe base64) body."""
    return isinstance(event, dict) and "body" in event and ("httpMethod" in event or "requestContext" in event)


def _answer(api_style: bool, status: int, body: dict[str, Any]) -> dict[str, Any]:
    if api_style:
        return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
    return {"statusCode": status, **body}


# -- orchestrate ------------------------------------------------------------------------------------

def orchestrate(event: Any, context: Any, *, backend: Lambda | None = None,
                client: Any = None) -> dict[str, Any]:
    """Run a job's chunks on the worker function, recording each in DynamoDB as it completes.

    Before this invocation's own deadline (keeping the worker timeout plus a margin in reserve) it
    stops dispatching, lets calls in flight finish and be recorded, and invokes itself to continue.
    It ends with the job ``rendered`` (chunks ready for ``framefarm stitch``), failed or cancelled.
    """
    if isinstance(event, dict) and event.get("sweep"):
        return sweep(context, backend=backend, client=client)
    if isinstance(event, dict) and isinstance(event.get("deliveries"), list):
        return deliver(event, context, backend=backend, client=client)
    if not isinstance(event, dict) or not isinstance(event.get("job_id"), str):
        log_event("bad orchestrator event", event=str(event)[:200])
        return {"error": "expected {\"job_id\": ...} or {\"sweep\": true}"}
    job_id = event["job_id"]
    continuation = int(event.get("continuation", 0))
    options = event.get("options") or {}
    run = RunOptions.parse(options)
    backend = backend or Lambda()
    settings = backend.settings
    concurrency = backend.concurrency(run.concurrency)
    client = client or backend.lambda_client(concurrency=concurrency, function_timeout=settings.worker_timeout)
    manager = backend.manager(concurrency=concurrency, client=client)
    before = manager.summary(job_id)
    token = CancelToken()
    budget = context.get_remaining_time_in_millis() / 1000.0 - settings.worker_timeout - HANDOVER_SPARE
    timer = threading.Timer(max(0.0, budget), lambda: token.drain(HANDOVER))
    timer.daemon = True
    timer.start()
    run_options = ExecutionOptions(
        notify=with_webhook(before.spec.notify, run.webhook) if run.webhook else None,
        concurrency=concurrency, timeout=run.timeout, merge=False, cancel=token, hooks=_LogAttempts(job_id),
        retry=RetryPolicy(retries=run.retries, transient_retries=run.transient_retries, delay=run.retry_delay),
        job_dir=tempfile.mkdtemp(prefix=f"framefarm-{job_id}-"), max_cost=run.max_cost)
    try:
        if continuation:
            summary = manager.continue_job(job_id, run_options, handed_by=event.get("run_id"))
        elif before.state is JobState.RUNNING:  # Lambda's retry of a crashed run, or a resume: take over
            summary = manager.take_over(job_id, run_options, patience=TAKEOVER_STALE_PERIODS * manager.stale_after)
        else:  # a submission's first event runs only a job still pending; a resume event restarts a stopped one
            summary = manager.run_job(job_id, run_options, only_new=not event.get("resume"))
    except JobStateError as exc:  # another runner holds the job (a duplicate event), or it is done
        log_event("orchestrator not needed", job_id=job_id, reason=str(exc))
        return {"job_id": job_id, "state": manager.summary(job_id).state.value, "skipped": str(exc)}
    finally:
        timer.cancel()
    answer = {"job_id": job_id, "state": summary.state.value, "completed_chunks": summary.completed_chunks,
              "total_chunks": summary.total_chunks, "continuation": continuation}
    successor = manager.handover_token(job_id)
    if summary.state is JobState.RUNNING and successor is not None:  # handed over
        idle = int(event.get("idle", 0)) + (1 if summary.completed_chunks == before.completed_chunks else 0)
        if idle >= MAX_IDLE_CONTINUATIONS:
            if manager.repository.set_state(job_id, JobState.FAILED, now=time.time(), expected={JobState.RUNNING},
                                            owner=successor,
                                            error=f"no chunk completed in {idle} orchestrator runs in a row; "
                                                  "is the worker timeout longer than the orchestrator allows?"):
                manager.announce(job_id, run_options.notify)  # an end like any other: its webhook and events
            answer["state"] = JobState.FAILED.value
        else:
            invoke_async(client, settings.require("orchestrator_function"),
                         {"job_id": job_id, "continuation": continuation + 1, "options": options, "idle": idle,
                          "run_id": successor})
            answer["continued"] = True
    answer.update(_settle_deliveries(manager, context, client, settings.require("orchestrator_function")))
    log_event("orchestrator finished", **answer)
    return answer


def deliver(event: dict[str, Any], context: Any, *, backend: Lambda | None = None, client: Any = None
            ) -> dict[str, Any]:
    """Carry on the webhook deliveries an earlier invocation handed over: ``{"deliveries": [{"job_id",
    "delivery_id"}, ...]}``. Those already settled (a repeated event) are skipped."""
    backend = backend or Lambda()
    manager = backend.manager(runs_chunks=False)
    client = client or backend.lambda_client()
    wanted: dict[str, set[str]] = {}
    for entry in event["deliveries"]:
        if isinstance(entry, dict) and isinstance(entry.get("job_id"), str):
            wanted.setdefault(entry["job_id"], set()).add(str(entry.get("delivery_id")))
    for job_id, ids in wanted.items():
        for record in manager.repository.deliveries(job_id):
            if record.delivery_id in ids:
                manager.notifier.sender.resume(job_id, record)
    answer = _settle_deliveries(manager, context, client, backend.settings.require("orchestrator_function"))
    log_event("deliveries carried on", **answer)
    return answer


def _settle_deliveries(manager: Any, context: Any, client: Any, orchestrator: str) -> dict[str, Any]:
    """Wait for this invocation's webhook deliveries while its time lasts (keeping HANDOVER_SPARE), then
    hand those still pending to a new invocation (``deliver``); a frozen Lambda sends nothing."""
    remaining = context.get_remaining_time_in_millis() / 1000.0 if context is not None else 0.0
    left = manager.notifier.drain(max(0.0, remaining - HANDOVER_SPARE), abandon=False)
    if not left:
        return {}
    invoke_async(client, orchestrator, {"deliveries": [{"job_id": job_id, "delivery_id": record.delivery_id}
                                                       for job_id, record in left]})
    return {"deliveries_handed_over": len(left)}


class _LogAttempts(RunHooks):
    """One log line per chunk attempt."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id

    def attempt_finished(self, chunk_id: int, attempt: int, result: WorkerResult, started_at: float,
                         finished_at: float) -> None:
        log_event("chunk attempt", job_id=self.job_id, chunk_id=chunk_id, attempt=attempt,
                  exit_code=result.exit_code, kind=result.kind, billed_duration_ms=result.billed_duration_ms,
                  cost_usd=result.cost_usd, error=result.error)

    def budget_reached(self, spent_usd: float, max_cost: float) -> None:
        log_event("budget reached", job_id=self.job_id, spent_usd=spent_usd, max_cost=max_cost)
        events.publish(events.BUDGET_REACHED, {"job_id": self.job_id, "cost_usd": spent_usd, "max_cost_usd": max_cost})


def sweep(context: Any = None, *, backend: Lambda | None = None, client: Any = None) -> dict[str, Any]:
    """Hand back to the orchestrator every job whose event Lambda gave up on (its lost-events queue,
    ``framefarm.aws.lost_events``), then every recent ``running`` job whose orchestrator died unseen
    (Lambda's retries spent, nobody ran ``framefarm resume``). Runs on a schedule (the stack's rule).
    The webhooks of jobs it fails are settled as the orchestrator's are (``context``: its time left)."""
    backend = backend or Lambda()
    manager = backend.manager(runs_chunks=False)
    client = client or backend.lambda_client()
    orchestrator = backend.settings.require("orchestrator_function")
    queue = backend.settings.lost_events_queue
    lost = recover_lost_events(backend.client("sqs"), queue, manager, lambda event: invoke_async(
        client, orchestrator, event)) if queue else None
    recent = manager.list_jobs(limit=SWEEP_LIMIT)
    # A listing has no heartbeats (the index leaves them out): a running job's own item says if it is stale.
    running = [manager.repository.get(job.id, chunks=False) for job in recent if job.state is JobState.RUNNING]
    abandoned = [job.id for job in running if job is not None and job.state is JobState.RUNNING
                 and manager.is_stale(job) and not (lost and job.id in lost.handed_back)]
    for job_id in abandoned:
        invoke_async(client, orchestrator, {"job_id": job_id})
    answer: dict[str, Any] = {"checked": len(recent), "resumed": abandoned}
    if lost is not None:
        answer["lost_events"] = lost.as_dict()
    answer.update(_settle_deliveries(manager, context, client, orchestrator))
    log_event("swept", **answer)
    return answer


# -- render chunk -----------------------------------------------------------------------------------

def render_chunk(event: Any, context: Any = None) -> dict[str, Any]:
    """Run one chunk. Stops the command before the function's own timeout so its output is reported."""
    request = parse_request(event)
    if isinstance(request, ChunkResponse):
        log_event("bad request", error=request.error)
        return request.model_dump()
    timeout = None
    if context is not None:
        timeout = max(1.0, context.get_remaining_time_in_millis() / 1000.0 - 10.0)
    response = run_chunk(request, timeout=timeout)
    log_event("chunk done", job_id=request.job_id, chunk_id=request.chunk_id, exit_code=response.exit_code,
              kind=response.kind, duration_ms=response.duration_ms, output_key=response.output_key,
              error=response.error)
    return response.model_dump()
