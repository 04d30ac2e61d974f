"""Every attempt of a chunk, not only its latest: what a timeline draws one bar for.

A chunk record (``status.ChunkRecord``) holds its latest attempt's times and figures and the sums
over all of them. An attempt that a later one can replace in the record (a failed or cancelled one,
or a completed one that ``retry`` reopens) is kept first as a small JSON object in the job's storage
under ``keys.attempt_key``, beside its logs (``storage.logs``). So a chunk that rendered once, the
common case, costs no extra write; a retried chunk costs one small object per earlier attempt.

    >>> figures = attempts_of(record, earlier.get(record.chunk_id, {}))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import asdict, replace

from framefarm.failures import FailureKind
from framefarm.status import ChunkAttempt, ChunkRecord, ChunkState
from framefarm.storage.base import Storage
from framefarm.storage.keys import attempt_key, attempts_prefix

logger = logging.getLogger(__name__)


def attempt_json(attempt: ChunkAttempt) -> str:
    """The attempt without its logs, which are kept whole beside it (``storage.logs``)."""
    return json.dumps({**asdict(replace(attempt, stdout_tail="", stderr_tail="")), "state": attempt.state.value,
                       "kind": attempt.kind.value if attempt.kind is not None else None})


def attempt_from_json(text: str) -> ChunkAttempt:
    """ValueError, KeyError or TypeError for a text that is no attempt."""
    data = json.loads(text)
    known = {name: data[name] for name in ChunkAttempt.__dataclass_fields__ if name in data}
    kind = known.get("kind")
    return ChunkAttempt(**{**known, "state": ChunkState(known["state"]),
                           "kind": FailureKind(kind) if kind is not None else None})


def keep_attempt(storage: Storage, job_id: str, attempt: ChunkAttempt) -> None:
    """Keep an attempt that a later one may replace in its chunk's record (failed or cancelled).

    Like a full log, a copy that cannot be written loses only itself: logged, never raised."""
    keep(storage, job_id, attempt)


def keep_reopened(storage: Storage, job_id: str, records: Collection[ChunkRecord]) -> None:
    """Keep the completed attempt of each chunk ``retry`` reopens (its record will show the next one)."""
    if not records:
        return
    earlier = earlier_attempts(storage, job_id, {record.chunk_id for record in records})
    for record in records:
        figures = attempts_of(record, earlier.get(record.chunk_id, {}))
        if figures and figures[-1].attempt == record.attempts:
            keep(storage, job_id, figures[-1])


def keep(storage: Storage, job_id: str, attempt: ChunkAttempt) -> None:
    try:
        storage.put_text(attempt_key(job_id, attempt.chunk_id, attempt.attempt), attempt_json(attempt))
    except Exception:
        logger.warning("job %s chunk %d attempt %d: could not keep its figures", job_id, attempt.chunk_id,
                       attempt.attempt, exc_info=True)


def earlier_attempts(storage: Storage, job_id: str, chunk_ids: Collection[int] | None = None,
                     known: Mapping[str, ChunkAttempt] | None = None) -> dict[int, dict[int, ChunkAttempt]]:
    """The kept attempts of the job's chunks (only ``chunk_ids``, if given), by chunk id then attempt
    number: one listing, then one read per object not already in ``known`` (kept by key: they never change)."""
    found: dict[int, dict[int, ChunkAttempt]] = {}
    for stored in storage.list(attempts_prefix(job_id)):
        figures = known.get(stored.key) if known is not None else None
        if figures is None:
            name = stored.key.rpartition("/")[2]
            if chunk_ids is not None and int(name.partition(".")[0]) not in chunk_ids:
                continue
            try:
                figures = attempt_from_json(storage.get_text(stored.key))
            except (FileNotFoundError, ValueError, KeyError, TypeError):
                logger.warning("job %s: unreadable attempt figures at %s", job_id, stored.key)
                continue
        if chunk_ids is None or figures.chunk_id in chunk_ids:
            found.setdefault(figures.chunk_id, {})[figures.attempt] = figures
    return found


def attempts_of(record: ChunkRecord, earlier: Mapping[int, ChunkAttempt]) -> list[ChunkAttempt]:
    """Every attempt of ``record``'s chunk that is known, oldest first: the kept earlier ones, the record's
    latest (its amounts less the earlier ones') unless it waits to render again, and the one running now, if
    any. An earlier attempt
    nobody kept (a job recorded before attempts were) is left out."""
    running = record.state is ChunkState.RUNNING
    last_finished = record.attempts
    # while one runs, or the chunk waits to render again, every finished attempt was replaced (so kept)
    in_record = record.state not in (ChunkState.RUNNING, ChunkState.PENDING) and last_finished >= 1
    kept = last_finished - 1 if in_record else last_finished
    shown = [earlier[number] for number in range(1, kept + 1) if number in earlier]
    if in_record:  # its own amounts: the record's sums less the earlier attempts' (most chunks have none)
        shown.append(ChunkAttempt(
            record.chunk_id, last_finished, record.state,
            max(0.0, record.duration_ms - sum(f.duration_ms for f in shown)) if shown else record.duration_ms,
            max(0, record.billed_duration_ms - sum(f.billed_duration_ms for f in shown)) if shown
            else record.billed_duration_ms,
            record.memory_mb, record.max_memory_used_mb, record.init_duration_ms, record.request_id,
            max(0.0, record.cost_usd - sum(f.cost_usd for f in shown)) if shown else record.cost_usd,
            max(0, record.throttles - sum(f.throttles for f in shown)) if shown else record.throttles,
            error=record.error, kind=record.kind, started_at=record.started_at, finished_at=record.finished_at))
    if running:
        shown.append(ChunkAttempt(chunk_id=record.chunk_id, attempt=last_finished + 1, state=ChunkState.RUNNING,
                                  started_at=record.started_at))
    return shown

