"""Early heals (gitops.wakeups): a burst of events is one heal, due `debounce` seconds after
its first event; a full heal pass covers what was noted before it began."""

from __future__ import annotations

from conveyor.gitops.wakeups import Wakeups


def test_a_burst_is_one_heal_due_after_its_first_event() -> None:
    w = Wakeups(debounce=0.25)
    assert w.next_due() is None and w.take_due(100.0) == {}
    w.note("staging", "kill of web-2-1", 10.0)
    w.note("staging", "die of web-2-1", 10.05)
    w.note("staging", "destroy of web-2-1", 10.1)
    assert w.next_due() == 10.25
    assert w.take_due(10.2) == {}  # the burst may not be whole yet
    assert w.take_due(10.25) == {"staging": "kill of web-2-1, die of web-2-1, destroy of web-2-1"}
    assert w.take_due(99.0) == {} and w.next_due() is None  # taken once


def test_environments_are_due_each_on_its_own() -> None:
    w = Wakeups(debounce=1.0)
    w.note("staging", "destroy of web-2-1", 10.0)
    w.note("production", "die of api-4-2", 10.5)
    assert w.take_due(11.0) == {"staging": "destroy of web-2-1"}
    assert w.next_due() == 11.5
    assert w.take_due(11.5) == {"production": "die of api-4-2"}


def test_the_same_thing_noticed_again_is_told_once_and_a_long_list_is_cut() -> None:
    w = Wakeups(debounce=0.0)
    for n in (1, 1, 2, 3, 4, 5, 6):
        w.note("staging", f"die of web-2-{n}", 1.0)
    assert w.take_due(1.0) == {
        "staging": "die of web-2-1, die of web-2-2, die of web-2-3, die of web-2-4 and 2 more"
    }


def test_a_heal_covers_what_was_noted_before_it_began_only() -> None:
    w = Wakeups(debounce=0.25)
    w.note("staging", "kill of web-2-1", 10.0)
    w.note("staging", "destroy of web-2-1", 10.2)
    w.note("production", "die of api-4-2", 10.0)
    w.covered(10.1, {"staging"})  # an early heal of staging began at 10.1
    assert w.next_due() == 10.25  # production's note stays
    assert w.take_due(10.3) == {"production": "die of api-4-2"}
    assert w.next_due() == 10.45  # staging's destroy came after the heal looked
    w.covered(11.0)  # a full pass
    assert w.next_due() is None
