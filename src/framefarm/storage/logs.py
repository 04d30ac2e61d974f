"""Full chunk logs: a chunk record keeps bounded tails (``status.tail``) of its latest attempt; a
longer log, and every log of a failed attempt (the evidence a retry would otherwise replace), is kept
whole in the job's store under ``keys.log_key(job, chunk, attempt, stream)``: at most the chunk's
attempts, two objects each.

Whoever holds the whole text writes it: the worker runtime on remote workers (their reply carries
only tails, since Lambda refuses a reply over 6 MB), the JobManager for local adapters. Readers
(``framefarm logs``) go back to the store only for a tail that was cut.
"""

from __future__ import annotations

import logging

from framefarm.config import TAIL_CHARS
from framefarm.storage.base import Storage
from framefarm.storage.keys import log_key
from framefarm.tails import is_cut

logger = logging.getLogger(__name__)


def keep_full_logs(storage: Storage, job_id: str, chunk_id: int, attempt: int, *, stdout: str, stderr: str,
                   kept_chars: int = TAIL_CHARS, failed: bool = False) -> None:
    """Store each log longer than ``kept_chars`` (what the chunk record keeps of it), and, for a
    ``failed`` attempt, every log it wrote (the record will show a later attempt's). A log that is
    itself a cut tail (a remote worker's reply) is skipped: the worker stored it whole.

    A log that cannot be stored (a full disk, a refused write) loses only itself: it is logged and
    skipped, never raised, since the record's tail still says how the chunk ended."""
    for stream, text in (("stdout", stdout), ("stderr", stderr)):
        if not text or is_cut(text) or (len(text) <= kept_chars and not failed):
            continue
        try:
            storage.put_text(log_key(job_id, chunk_id, attempt, stream), text)
        except Exception:
            logger.warning("job %s chunk %d attempt %d: could not keep the full %s", job_id, chunk_id, attempt,
                           stream, exc_info=True)


def full_log(storage: Storage, job_id: str, chunk_id: int, attempt: int, stream: str, tail_text: str, *,
             kept_chars: int = TAIL_CHARS) -> str:
    """The whole log behind a record's tail (``kept_chars`` long when cut): from the store when the tail
    was cut, else the tail itself (also when the store has no copy, e.g. a worker that could not write it)."""
    if not is_cut(tail_text, kept_chars):
        return tail_text
    try:
        return storage.get_text(log_key(job_id, chunk_id, attempt, stream))
    except FileNotFoundError:
        return tail_text


def attempt_log(storage: Storage, job_id: str, chunk_id: int, attempt: int, stream: str) -> str | None:
    """An earlier attempt's log, as kept whole in the store; None when it was not kept (it succeeded with
    a short log, or ran before failed attempts' logs were kept)."""
    try:
        return storage.get_text(log_key(job_id, chunk_id, attempt, stream))
    except FileNotFoundError:
        return None
