"""The fair-share rule of the shared concurrency budget (framefarm.concurrency)."""

from __future__ import annotations

import pytest

from framefarm.concurrency import SlotAsk, SlotHolder, fair_shares, grantable, queue_places


def holder(job: str, held: int, wants: int, *, priority: float = 1.0, since: float = 0.0,
           until: float = 100.0) -> SlotHolder:
    return SlotHolder(f"run-{job}", job, held, wants, priority, since, until)


def asking(job: str, wants: int, priority: float = 1.0) -> SlotAsk:
    return SlotAsk(f"run-{job}", job, wants, priority, 100.0)


def test_equal_jobs_share_evenly():
    assert fair_shares({"a": (1, 200), "b": (1, 200)}, 250) == {"a": 125.0, "b": 125.0}


def test_priority_weights_the_share():
    shares = fair_shares({"a": (3, 100), "b": (1, 100)}, 8)
    assert shares == {"a": 6.0, "b": 2.0}


def test_a_job_wanting_less_than_its_share_leaves_the_rest_to_others():
    # GIVEN three jobs, one of which wants only 5 of a budget of 100
    shares = fair_shares({"small": (1, 5), "a": (1, 500), "b": (1, 500)}, 100)
    # THEN it gets 5 and the others split the remaining 95
    assert shares == {"small": 5, "a": 47.5, "b": 47.5}
    assert sum(shares.values()) == pytest.approx(100)


def test_a_job_below_its_share_may_take_a_free_slot():
    holders = [holder("a", 7, 10), holder("b", 1, 10)]
    assert grantable(asking("b", 10), holders, 10, now=50.0) == 1


def test_a_job_over_its_share_waits_while_another_is_below_its_share():
    # GIVEN a budget of 10: a holds 8, b holds 1 and wants 10; one slot free
    holders = [holder("a", 8, 10), holder("b", 1, 10)]
    # THEN a may not take it, since b still lacks 4 of its 5
    assert grantable(asking("a", 10), holders, 10, now=50.0) == 0


def test_no_slot_is_taken_beyond_the_limit_whoever_asks():
    holders = [holder("a", 5, 10), holder("b", 5, 10)]
    assert grantable(asking("c", 10, priority=100), holders, 10, now=50.0) == 0


def test_holders_whose_lease_ran_out_do_not_count():
    holders = [holder("dead", 10, 10, until=40.0)]
    assert grantable(asking("c", 1), holders, 10, now=50.0) == 1


def test_queue_places_order_by_priority_then_arrival():
    holders = [holder("running", 3, 3), holder("late", 0, 5, since=20.0), holder("early", 0, 5, since=10.0),
               holder("urgent", 0, 5, since=30.0, priority=2.0), holder("idle", 0, 0, since=5.0)]
    assert queue_places(holders, now=50.0) == {"urgent": 1, "early": 2, "late": 3}


def test_jobs_with_no_slot_yet_are_served_in_queue_order():
    # GIVEN one free slot and two jobs waiting for their first, "early" since 10 s, "late" since 20 s
    holders = [holder("running", 9, 9), holder("late", 0, 5, since=20.0), holder("early", 0, 5, since=10.0)]
    # THEN only the first in the queue may take it
    assert grantable(asking("late", 5), holders, 10, now=50.0) == 0
    assert grantable(asking("early", 5), holders, 10, now=50.0) == 1
    # AND with two free slots both may
    assert grantable(asking("late", 5), holders, 11, now=50.0) == 1


def test_a_job_asking_for_several_slots_gets_its_share_and_what_nobody_else_lacks():
    # GIVEN a budget of 10 with 6 free: b holds 4 of its share 5, a holds none and asks for 8
    holders = [holder("b", 4, 10)]
    # THEN a gets its share (5), leaving the one slot b lacks
    assert grantable(asking("a", 8), holders, 10, now=50.0, count=8) == 5
    # AND when b wants only what it holds, a gets every free slot
    assert grantable(asking("a", 8), [holder("b", 4, 4)], 10, now=50.0, count=8) == 6
