"""CancelToken: two strengths, callbacks, linked children."""

from __future__ import annotations

from framefarm import CancelToken


def test_cancel_runs_callbacks_once_and_sets_both_flags():
    token, calls = CancelToken(), []
    token.on_cancel(lambda: calls.append("a"))
    remove = token.on_cancel(lambda: calls.append("b"))
    remove()
    token.cancel("stop")
    token.cancel("again")
    assert calls == ["a"] and token.cancelled and token.stopping and token.reason == "stop"


def test_callback_registered_after_cancel_runs_at_once():
    token, calls = CancelToken(), []
    token.cancel()
    token.on_cancel(lambda: calls.append(1))
    assert calls == [1]


def test_drain_stops_dispatch_without_killing():
    token, calls = CancelToken(), []
    token.on_cancel(lambda: calls.append(1))
    token.drain()
    assert token.stopping and not token.cancelled and token.reason == "paused" and calls == []
    assert token.wait(0) is True


def test_children_follow_their_parent_but_not_the_other_way():
    parent = CancelToken()
    child = parent.child()
    child.drain("failed")
    assert not parent.stopping
    parent.cancel()
    assert child.cancelled and child.reason == "failed"
    late = parent.child()
    assert late.cancelled and late.reason == "cancelled"


def test_a_released_child_no_longer_follows_its_parent():
    parent = CancelToken()
    kept, released = parent.child(), parent.child()
    parent.release(released)
    parent.cancel()
    assert kept.cancelled and not released.stopping
