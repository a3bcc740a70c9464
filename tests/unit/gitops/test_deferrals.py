"""Syncs deferred for want of an app host (gitops.deferrals): tried again after a delay that
doubles with each refusal of the same commit up to a bound, at once when a host is up again,
and counted afresh for another commit."""

from __future__ import annotations

from conveyor.gitops.deferrals import Deferrals, retry_delay


def test_the_delay_doubles_and_stops_at_its_bound() -> None:
    assert [retry_delay(n, first=5, longest=60) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert retry_delay(10_000, first=5, longest=300) == 300  # no overflow however long


def test_a_refused_commit_is_due_after_its_delay_and_taken_once() -> None:
    d = Deferrals(first=5, longest=60)
    assert d.next_due() is None and d.take_due(1e9) == []
    first = d.defer("staging", "c1", 100.0)
    assert (first.attempts, first.delay, first.due) == (1, 5, 105.0)
    assert d.take_due(104.9) == []
    assert d.take_due(105.0) == ["staging"]
    # being tried now: not due again until refused again (a pass that never reached it
    # does not make the loop spin)
    assert d.next_due() is None and d.take_due(1e9) == []
    again = d.defer("staging", "c1", 106.0)
    assert (again.attempts, again.delay, again.due) == (2, 10, 116.0)


def test_another_commit_counts_from_one_and_a_drop_forgets() -> None:
    d = Deferrals(first=5, longest=60)
    d.defer("staging", "c1", 0.0)
    d.defer("staging", "c1", 10.0)
    assert d.defer("staging", "c2", 20.0).attempts == 1
    d.drop("staging")
    assert d.get("staging") is None and d.next_due() is None


def test_a_host_up_again_makes_every_waiting_sync_due_now() -> None:
    d = Deferrals(first=300, longest=300)
    assert not d.hurry(10.0)  # nothing waits
    d.defer("staging", "c1", 0.0)
    d.defer("production", "p1", 0.0)
    d.take_due(300.0)  # both being tried...
    d.defer("production", "p1", 300.0)  # ...production refused again
    assert d.hurry(301.0)
    assert d.next_due() == 301.0
    assert d.take_due(301.0) == ["production"]  # staging is still being tried: left alone
