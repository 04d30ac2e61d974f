"""The shared concurrency budget, the same from every job store (memory, SQLite, DynamoDB)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from framefarm.concurrency import SlotAsk, live, queue_places
from framefarm.repositories.base import JobRepository

NOW = 1_000.0


def ask(owner: str, job: str | None = None, *, wants: int = 10, priority: float = 1.0,
        until: float = NOW + 15) -> SlotAsk:
    return SlotAsk(owner=owner, job_id=job or f"job-{owner}", wants=wants, priority=priority, lease_until=until)


def take(repo: JobRepository, asking: SlotAsk, *, limit: int, now: float) -> bool:
    """Ask for one slot; whether it was given."""
    return repo.take_slots(asking, count=1, limit=limit, now=now) == 1


def in_use(repo: JobRepository, now: float = NOW) -> int:
    return sum(holder.held for holder in live(repo.slot_holders(), now))


def test_slots_are_taken_up_to_the_limit_and_given_back(repo):
    # GIVEN a budget of 2
    # WHEN one runner asks three times
    taken = [take(repo, ask("a"), limit=2, now=NOW) for _ in range(3)]
    # THEN it gets two, and the third waits
    assert taken == [True, True, False]
    assert in_use(repo) == 2
    # WHEN an attempt ends and gives its slot back
    repo.give_slot("a", wants=2)
    # THEN the next ask gets it
    assert in_use(repo) == 1
    assert take(repo, ask("a"), limit=2, now=NOW) is True


def test_several_slots_are_taken_in_one_step_never_past_the_limit(repo):
    # GIVEN a budget of 5, one slot held by job b
    assert take(repo, ask("b", wants=1), limit=5, now=NOW)
    # WHEN job a, alone in wanting more, asks for 6 at once
    # THEN it gets the 4 that are free; asked again, none
    assert repo.take_slots(ask("a", wants=6), count=6, limit=5, now=NOW) == 4
    assert repo.take_slots(ask("a", wants=6), count=2, limit=5, now=NOW) == 0
    assert in_use(repo) == 5


def test_a_refused_runner_keeps_its_place_in_the_queue(repo):
    # GIVEN a budget of 1 held by job a, then b and c asking in that order (c with the same priority)
    assert take(repo, ask("a", wants=1), limit=1, now=NOW) is True
    assert take(repo, ask("b", wants=3), limit=1, now=NOW + 1) is False
    assert take(repo, ask("c", wants=3), limit=1, now=NOW + 2) is False
    # THEN both are recorded as waiting with no slot, b first; a higher priority goes first
    assert queue_places(repo.slot_holders(), NOW + 3) == {"job-b": 1, "job-c": 2}
    assert take(repo, ask("c", wants=3, priority=5), limit=1, now=NOW + 3) is False
    assert queue_places(repo.slot_holders(), NOW + 3) == {"job-c": 1, "job-b": 2}


def test_a_slot_held_by_a_runner_whose_lease_ran_out_is_reclaimed(repo):
    # GIVEN a runner holding the whole budget of 2 until NOW + 15, then dying (no more renewals)
    assert take(repo, ask("dead"), limit=2, now=NOW) and take(repo, ask("dead"), limit=2, now=NOW)
    # WHEN another runner asks before the lease runs out
    # THEN it waits
    assert take(repo, ask("alive", until=NOW + 30), limit=2, now=NOW + 14) is False
    # WHEN it asks after
    # THEN the dead runner's slots are back in the budget
    assert take(repo, ask("alive", until=NOW + 30), limit=2, now=NOW + 16) is True
    assert take(repo, ask("alive", until=NOW + 30), limit=2, now=NOW + 16) is True
    assert [holder.owner for holder in live(repo.slot_holders(), NOW + 16)] == ["alive"]
    assert in_use(repo, NOW + 16) == 2


def test_renewed_slots_stay_held(repo):
    # GIVEN a runner holding the budget of 1, its heartbeat renewing the lease
    assert take(repo, ask("a"), limit=1, now=NOW) is True
    repo.renew_slots("a", NOW + 60)
    # WHEN another asks after the first lease would have run out
    # THEN the slot is still a's
    assert take(repo, ask("b"), limit=1, now=NOW + 30) is False
    # WHEN a's run ends
    repo.leave_slots("a")
    # THEN every slot it held is back
    assert take(repo, ask("b"), limit=1, now=NOW + 30) is True
    assert [holder.owner for holder in repo.slot_holders()] == ["b"]


def test_a_job_over_its_share_yields_free_slots_to_one_below_it(repo):
    # GIVEN a budget of 4, job a holding 3 of them and wanting more, job b wanting 4 and holding none
    for _ in range(3):
        assert take(repo, ask("a", wants=4), limit=4, now=NOW) is True
    assert take(repo, ask("b", wants=4), limit=4, now=NOW) is True  # below its share (2): the free slot
    repo.give_slot("a", wants=4)  # one of a's attempts ends
    # WHEN both ask for the freed slot
    # THEN a (at its share of 2 once b wants 2) is refused and b gets it
    assert take(repo, ask("a", wants=4), limit=4, now=NOW) is False
    assert take(repo, ask("b", wants=4), limit=4, now=NOW) is True
    assert {h.job_id: h.held for h in repo.slot_holders()} == {"job-a": 2, "job-b": 2}


def test_idle_slots_go_to_a_job_over_its_share(repo):
    # GIVEN a budget of 4; job b holds 1 and wants no more, job a holds 2
    assert take(repo, ask("b", wants=1), limit=4, now=NOW) is True
    assert take(repo, ask("a", wants=3), limit=4, now=NOW) and take(repo, ask("a", wants=3), limit=4, now=NOW)
    # WHEN a asks for a third slot (over an even split, but nobody else wants it)
    # THEN it gets it
    assert take(repo, ask("a", wants=3), limit=4, now=NOW) is True


def test_racing_takes_never_exceed_the_limit(repo):
    # GIVEN a budget of 5 and 6 runners asking 4 times each for 2 slots, all at once
    def greedy(owner: str) -> int:
        return sum(repo.take_slots(ask(owner, "one-job", wants=20), count=2, limit=5, now=NOW) for _ in range(4))

    with ThreadPoolExecutor(6) as pool:
        taken = sum(pool.map(greedy, "abcdef"))
    # THEN exactly 5 were given, and the store counts 5 in use
    assert taken == 5
    assert in_use(repo) == 5
