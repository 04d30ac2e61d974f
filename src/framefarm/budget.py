"""Spending caps: the gate a run's dispatch loop asks before it starts another chunk attempt.

A job's cap is ``budget: {max_cost: USD}`` in its job file (``--max-cost`` / ``max_cost=`` write it
there), or ``ExecutionOptions.max_cost`` for one run (``resume --max-cost``), which wins. The gate
lets an attempt start only while

    cost so far + (attempts in flight + 1) * expected cost of an attempt  <=  cap

where the cost so far counts earlier runs of the job (from the store) and every attempt of this run
that has ended, and the expected cost of an attempt is the mean over the attempts that reported a
cost. Until one has (a job's first attempt), there is no estimate: the first attempt runs alone, as
the probe, and nothing else starts until it ends. A resumed job starts with the mean of its earlier
runs. The first refusal is for good: no new chunk or retry starts, attempts in flight finish and
are recorded, the caller's hooks hear ``budget_reached``, the executor raises
``JobAbortedError("budget")`` (``config.BUDGET``) once they have, and the job ends ``paused``
with an error that starts ``budget:`` (``JobRecord.pause_reason``). Attempts that report no cost
(an adapter that cannot price them, a call lost before it ran) count as free: backends that report
no cost refuse a cap instead (``Backend.reports_cost``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from framefarm.errors import JobSpecError
from framefarm.status import BUDGET_ERROR_PREFIX

if TYPE_CHECKING:
    from framefarm.adapters.base import WorkerResult
    from framefarm.options import RunHooks
    from framefarm.spec import JobSpec


def max_cost_of(spec: JobSpec, max_cost: float | None = None) -> float | None:
    """The cap a run of ``spec`` keeps: ``max_cost`` when given (one run's), else the job's own."""
    if max_cost is not None:
        return checked_max_cost(max_cost)
    return spec.budget.max_cost if spec.budget is not None else None


def checked_max_cost(value: float) -> float:
    """``value`` as a cap in USD; JobSpecError for one that is not a positive, finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise JobSpecError(f"max_cost: must be a positive number of US dollars (got {value!r})")
    return float(value)


def with_budget(spec: JobSpec, max_cost: float) -> JobSpec:
    """``spec`` capped at ``max_cost`` USD (what ``--max-cost`` and ``max_cost=`` do to a new job)."""
    from framefarm.spec import Budget

    return spec.model_copy(update={"budget": Budget(max_cost=checked_max_cost(max_cost))})


def budget_error(spent: float, max_cost: float) -> str:
    """The error a job paused by its cap keeps: what it spent, and the cap (a resume with a higher one goes on)."""
    return f"{BUDGET_ERROR_PREFIX}${spent:.6f} spent of the ${max_cost:.6f} cap, and the next chunk would pass it"


class BudgetGate:
    """The cap of one run (``max_cost`` None: none, every attempt may start).

    ``charge`` each attempt that ends; ``allows_another(in_flight)`` before each one starts."""

    def __init__(self, max_cost: float | None, *, spent: float = 0.0, earlier_attempts: int = 0,
                 hooks: RunHooks | None = None) -> None:
        self.max_cost, self.spent, self._hooks = max_cost, spent, hooks
        # a resumed job's earlier attempts give the estimate its first value
        self._priced, self._priced_cost = (earlier_attempts, spent) if spent > 0 and earlier_attempts else (0, 0.0)
        self.reached = False

    @classmethod
    def for_run(cls, spec: JobSpec, max_cost: float | None, *, spent: float, earlier_attempts: Mapping[int, int],
                hooks: RunHooks) -> BudgetGate:
        return cls(max_cost_of(spec, max_cost), spent=spent, earlier_attempts=sum(earlier_attempts.values()),
                   hooks=hooks)

    @property
    def expected_attempt_cost(self) -> float | None:
        """The mean cost of an attempt so far; None before any attempt reported one."""
        return self._priced_cost / self._priced if self._priced else None

    def charge(self, result: WorkerResult) -> None:
        """An attempt ended: add what it cost."""
        if result.cost_usd is None:
            return
        self.spent += result.cost_usd
        self._priced += 1
        self._priced_cost += result.cost_usd

    def allows_another(self, in_flight: int) -> bool:
        """Whether one more attempt may start now, ``in_flight`` being under way. The first refusal
        (``reached``) is for good, and tells the hooks; attempts already admitted still start."""
        if self.max_cost is None:
            return True
        if not self.reached:
            expected = self.expected_attempt_cost
            if self.spent >= self.max_cost:
                allowed = False
            elif expected is None:
                return in_flight == 0  # no estimate yet: the probe runs alone, the rest wait for it
            else:
                allowed = self.spent + (in_flight + 1) * expected <= self.max_cost
            if allowed:
                return True
            self.reached = True
            if self._hooks is not None:
                self._hooks.budget_reached(self.spent, self.max_cost)
        return False
