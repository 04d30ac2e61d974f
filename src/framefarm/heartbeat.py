"""The heartbeat of a run: it renews the run's lease on the job every interval, carries out the
``cancel``/``pause`` a CLI in another process asked for, and fences the run when the lease may no
longer be held.

The renewal runs on a thread of its own, so a store call that hangs (a busy SQLite file, a DynamoDB
call waiting out its read timeout) cannot hold up the fence: when less than one interval of the lease
is left by this runner's own clock, dispatch stops, whatever the store says. Work in flight finishes
and is recorded; the run then ends without writing the job's state (another runner may hold it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from framefarm.cancel import CancelToken
from framefarm.config import LEASE_LOST
from framefarm.lease import Lease
from framefarm.repositories.base import JobRepository

logger = logging.getLogger(__name__)


def stop_as_asked(token: CancelToken, action: str | None) -> None:
    """Stop a run as a control action asks: ``cancel`` kills its work in flight, ``pause`` lets it finish."""
    if action == "cancel":
        token.cancel("cancelled")
    elif action == "pause":
        token.drain("paused")


class Heartbeat:
    """Keeps one run's lease alive until ``stop``; drains ``token`` with LEASE_LOST when it cannot."""

    def __init__(self, repository: JobRepository, job_id: str, lease: Lease, token: CancelToken, *,
                 interval: float, stale_after: float, clock: Callable[[], float],
                 on_renewed: Callable[[float], None] | None = None) -> None:
        self._repository, self._job_id, self._owner, self._token = repository, job_id, lease.owner, token
        self._on_renewed = on_renewed  # what else the run leases until the same time (its budget slots)
        self._interval, self._stale_after, self._clock = interval, stale_after, clock
        self._held_until = lease.until
        self._lost = False
        self._renewing = threading.Lock()  # held while a renewal is out
        self._stopped = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._beat, name=f"framefarm-heartbeat-{self._job_id}", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _beat(self) -> None:
        while not self._stopped.wait(self._interval):
            if self._lost or self._clock() + self._interval >= self._held_until:
                logger.warning("job %s: this runner lost its lease (or could not renew it in time); "
                               "stopping dispatch", self._job_id)
                self._token.drain(LEASE_LOST)
                return
            if self._renewing.acquire(blocking=False):  # else the last renewal is still out: the fence decides
                threading.Thread(target=self._renew, name=f"framefarm-renew-{self._job_id}", daemon=True).start()

    def _renew(self) -> None:
        try:
            now = self._clock()
            lease = Lease(self._owner, now + self._stale_after)
            beat = self._repository.renew_lease(self._job_id, lease, now=now)
            if beat is None:
                self._lost = True
            else:
                self._held_until = lease.until
                stop_as_asked(self._token, beat.pending_action)
                if self._on_renewed is not None:
                    self._on_renewed(lease.until)
        except Exception:  # a store hiccup is retried next beat, while the lease still holds
            logger.warning("job %s: heartbeat failed", self._job_id, exc_info=True)
        finally:
            self._renewing.release()
