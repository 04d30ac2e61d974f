"""Configuration names and defaults in one place.

Precedence everywhere: explicit argument > environment (``FRAMEFARM_*``) > default.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from framefarm.errors import ToolNotFoundError

ENV_FFMPEG = "FRAMEFARM_FFMPEG"
ENV_HOME = "FRAMEFARM_HOME"
# Resource names set on the Lambda functions by the CDK stack.
ENV_TABLE = "FRAMEFARM_TABLE"
ENV_BUCKET = "FRAMEFARM_BUCKET"
ENV_WORKER_FUNCTION = "FRAMEFARM_WORKER_FUNCTION"
ENV_ORCHESTRATOR_FUNCTION = "FRAMEFARM_ORCHESTRATOR_FUNCTION"
ENV_SUBMIT_FUNCTION = "FRAMEFARM_SUBMIT_FUNCTION"
ENV_WORKER_TIMEOUT = "FRAMEFARM_WORKER_TIMEOUT"  # seconds; the orchestrator keeps this much in reserve
ENV_WORKER_ARCHITECTURE = "FRAMEFARM_WORKER_ARCHITECTURE"
ENV_CONCURRENCY = "FRAMEFARM_CONCURRENCY"
ENV_MAX_CONCURRENCY = "FRAMEFARM_MAX_CONCURRENCY"  # chunks in flight across every job on one store
ENV_LOST_EVENTS_QUEUE = "FRAMEFARM_LOST_EVENTS_QUEUE"  # SQS URL: orchestrator events Lambda gave up on
# Workers.
ENV_CANCEL_POLL = "FRAMEFARM_CANCEL_POLL"  # seconds between cancel-marker checks while a command runs (2)
ENV_CHUNK_TIMEOUT = "FRAMEFARM_CHUNK_TIMEOUT"  # seconds a chunk may run on a Cloud Run worker before it is killed
# Webhooks and events (framefarm.webhooks, framefarm.events).
ENV_WEBHOOK_SECRET = "FRAMEFARM_WEBHOOK_SECRET"  # the signing secret itself (this machine)
ENV_WEBHOOK_SECRET_ARN = "FRAMEFARM_WEBHOOK_SECRET_ARN"  # a Secrets Manager secret holding it (the stack's)
ENV_WEBHOOK_EXIT_WAIT = "FRAMEFARM_WEBHOOK_EXIT_WAIT"  # seconds a finished render waits for its webhooks (10)
ENV_EVENT_BUS = "FRAMEFARM_EVENT_BUS"  # the EventBridge bus the orchestrator puts events on (set by the stack)

# How a running job shows it is alive, and how long a silent one is left before it counts as abandoned.
ENV_HEARTBEAT_INTERVAL = "FRAMEFARM_HEARTBEAT_INTERVAL"
ENV_STALE_AFTER = "FRAMEFARM_STALE_AFTER"
ENV_DEVCLOUD_CACHE = "FRAMEFARM_DEVCLOUD_CACHE"  # where devcloud keeps built Lambda task roots
DEFAULT_HEARTBEAT_INTERVAL = 2.0
DEFAULT_STALE_AFTER = 15.0

# How a job runs, unless told otherwise: the library, the CLI's flags and the Lambda handlers' options.
DEFAULT_RETRIES = 2  # retries per chunk after a deterministic failure (the command's exit code)
DEFAULT_TRANSIENT_RETRIES = 3  # retries per chunk after a transient one (throttled, timed out, connection lost)
DEFAULT_RETRY_DELAY = 1.0  # seconds before the first retry; grows with backoff and jitter
DEFAULT_CONCURRENCY = 2  # chunks in flight on local workers (this machine's cores)
DEFAULT_LAMBDA_CONCURRENCY = 100  # chunks in flight on Lambda; FRAMEFARM_CONCURRENCY overrides it

# Shared by layers that must agree on them.
TAIL_CHARS = 8_192  # bounded log tails on records; full logs go to storage
# Chunk outputs carry this tag so the bucket's lifecycle rule (infra) can expire what workers upload
# (a lifecycle prefix cannot say jobs/*/chunks/).
CHUNK_TAG = {"framefarm-kind": "chunk"}
HANDOVER = "handover"  # a stop reason: another runner continues the job (the orchestrator Lambda's deadline)
LEASE_LOST = "lease lost"  # a stop reason: another runner holds the job now, or may
BUDGET = "budget"  # a stop reason: the job's spending cap (framefarm.budget); it ends paused
HANDOVER_SPARE = 15.0  # seconds an orchestrator keeps after the slowest in-flight worker may return

DEFAULT_HOME_DIRNAME = ".framefarm"
DATABASE_FILENAME = "jobs.db"


def framefarm_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Directory for the embedded job store and local job directories (``./.framefarm``)."""
    if explicit is not None:
        return Path(explicit)
    return Path(os.environ.get(ENV_HOME) or Path.cwd() / DEFAULT_HOME_DIRNAME)


def ffmpeg_path(explicit: str | None = None) -> str:
    """The ffmpeg binary: explicit > ``$FRAMEFARM_FFMPEG`` > imageio-ffmpeg's bundled binary.

    Raises ToolNotFoundError with what to do when none is usable.
    """
    chosen = explicit or os.environ.get(ENV_FFMPEG)
    if chosen:
        resolved = shutil.which(chosen)
        if resolved is None:
            source = "argument" if explicit else ENV_FFMPEG
            raise ToolNotFoundError(
                f"ffmpeg not found at {chosen!r} (from {source}); point {ENV_FFMPEG} at an ffmpeg binary"
            )
        return resolved
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception as exc:  # imageio-ffmpeg raises RuntimeError when its binary is missing
        raise ToolNotFoundError(
            f"no bundled ffmpeg ({exc}); install imageio-ffmpeg or set {ENV_FFMPEG}"
        ) from exc


def heartbeat_timing() -> tuple[float, float]:
    """(heartbeat interval, stale after) in seconds, from the environment or the defaults."""
    interval = float(os.environ.get(ENV_HEARTBEAT_INTERVAL) or DEFAULT_HEARTBEAT_INTERVAL)
    stale_after = float(os.environ.get(ENV_STALE_AFTER) or DEFAULT_STALE_AFTER)
    return interval, max(stale_after, 2 * interval)
