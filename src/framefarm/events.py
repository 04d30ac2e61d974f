"""EventBridge events about jobs, put by the orchestrator on AWS: ``publish(kind, detail)``.

Source ``framefarm``; detail-types ``Job State Change`` (a job ended: completed, failed, cancelled,
paused, rendered), ``Chunk Failed`` (a chunk failed for good) and ``Budget Reached``. The bus is the
one the stack names in ``FRAMEFARM_EVENT_BUS`` (``default`` unless ``-c eventBus=NAME``); where that is
not set (not on AWS) ``publish`` does nothing. A bus that refuses an event costs only that event:
it is logged, never raised, so the job's own state is never at stake.

    from framefarm import events
    events.publish(events.BUDGET_REACHED, {"job_id": job_id, "max_cost_usd": 5.0, "cost_usd": 5.02})
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from framefarm.config import ENV_EVENT_BUS

logger = logging.getLogger(__name__)

SOURCE = "framefarm"
JOB_STATE_CHANGE = "Job State Change"
CHUNK_FAILED = "Chunk Failed"
BUDGET_REACHED = "Budget Reached"
DETAIL_TYPES = (JOB_STATE_CHANGE, CHUNK_FAILED, BUDGET_REACHED)


def event_bus(environ: Mapping[str, str] | None = None) -> str | None:
    """The bus events go to; None when none is configured (not on AWS)."""
    return (os.environ if environ is None else environ).get(ENV_EVENT_BUS) or None


def publish(kind: str, detail: Mapping[str, Any], *, bus: str | None = None, client: Any = None) -> bool:
    """Put one event of detail-type ``kind`` on ``bus`` (default: ``event_bus()``). True when
    EventBridge took it; False when there is no bus (a no-op) or it was refused (logged)."""
    if kind not in DETAIL_TYPES:
        raise ValueError(f"event kind {kind!r}: expected one of {', '.join(DETAIL_TYPES)}")
    bus = bus or event_bus()
    if bus is None:
        return False
    try:
        if client is None:
            import boto3

            client = boto3.client("events")
        answer = client.put_events(Entries=[{"Source": SOURCE, "DetailType": kind, "EventBusName": bus,
                                             "Detail": json.dumps(dict(detail), default=str)}])
    except Exception as exc:
        logger.warning("event %r for job %s not put on bus %s: %s", kind, detail.get("job_id"), bus, exc)
        return False
    if answer.get("FailedEntryCount"):
        entry = (answer.get("Entries") or [{}])[0]
        logger.warning("event %r for job %s refused by bus %s: %s %s", kind, detail.get("job_id"), bus,
                       entry.get("ErrorCode"), entry.get("ErrorMessage"))
        return False
    return True
