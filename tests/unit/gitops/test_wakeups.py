"""Early heals (gitops.wakeups): a burst of events is one heal, due once it has been quiet for
`debounce` seconds (at the latest `longest` after it began); a heal asked for at a time is due
then; a heal that begins covers what was noticed before it."""

from __future__ import annotations

from conveyor.gitops.wakeups import Wakeups


def test_a_burst_is_one_heal_due_once_it_is_quiet() -> None:
    w = Wakeups(debounce=0.25, longest=1.0)
    assert w.next_due() is None and w.take_due(100.0) == {}
    w.note("staging", "kill of web-2-1", 10.0)
    w.note("staging", "die of web-2-1", 10.05)
    w.note("staging", "destroy of web-2-1", 10.5)  # a slow removal: still the same burst
    assert w.next_due() == 10.75
    assert w.take_due(10.7) == {}  # the burst may not be whole yet
    assert w.take_due(10.75) == {"staging": "kill of web-2-1, die of web-2-1, destroy of web-2-1"}
    assert w.take_due(99.0) == {} and w.next_due() is None  # taken once


def test_a_stream_of_events_does_not_put_the_heal_off_for_ever() -> None:
    w = Wakeups(debounce=0.25, longest=1.0)
    for n in range(10):
        w.note("staging", f"die of web-2-{n}", 10.0 + n * 0.2)
    assert w.next_due() == 11.0


def test_environments_are_due_each_on_its_own() -> None:
    w = Wakeups(debounce=1.0, longest=5.0)
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


def test_a_heal_asked_for_at_a_time_is_due_then_and_not_covered_before() -> None:
    w = Wakeups(debounce=0.25)
    w.at("staging", "destroy of web-2-1 (once its heal backoff was over)", 20.0)
    w.note("staging", "die of web-2-2", 10.0)
    assert w.next_due() == 10.25
    w.covered(15.0)  # a full pass at 15 cannot heal what is held back until 20
    assert w.next_due() == 20.0
    assert w.take_due(19.9) == {}
    assert w.take_due(20.0) == {"staging": "destroy of web-2-1 (once its heal backoff was over)"}


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
