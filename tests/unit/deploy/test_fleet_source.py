"""deploy.fleet_source: a learned fleet (hosts_from: aws) is asked at most once a period, keeps
the hosts it knows when asking fails (and waits a period before asking again), and raises
when it knows none yet."""

from __future__ import annotations

import pytest

from conveyor.deploy.fleet_source import LearnedFleet, StaticFleet
from conveyor.errors import AwsError
from conveyor.model.fleet import Fleet, FleetHost

ONE = Fleet(hosts=(FleetHost(name="i-1", address="10.0.0.1"),), hosts_from="aws")
TWO = Fleet(hosts=(*ONE.hosts, FleetHost(name="i-2", address="10.0.0.2")), hosts_from="aws")


class Source:
    """What AWS answers, in turn; counts the questions."""

    def __init__(self, *answers: Fleet | Exception) -> None:
        self.answers = list(answers)
        self.asked = 0

    def __call__(self) -> Fleet:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_asked_at_most_once_a_period() -> None:
    source, clock = Source(ONE, TWO), Clock()
    learned = LearnedFleet(source, ttl=30.0, clock=clock)
    assert learned.current() == ONE and source.asked == 1
    assert learned.refresh() is None and learned.current() == ONE and source.asked == 1
    clock.now += 29.9
    assert learned.refresh() is None and source.asked == 1
    clock.now += 0.1
    assert learned.refresh() is None
    assert learned.current() == TWO and source.asked == 2


def test_a_failure_keeps_the_known_hosts_for_another_period() -> None:
    failure = AwsError("Auto Scaling group g: Rate exceeded")
    source, clock = Source(TWO, failure, ONE), Clock()
    learned = LearnedFleet(source, ttl=30.0, clock=clock)
    learned.current()
    clock.now += 30
    assert learned.refresh() == (
        "Auto Scaling group g: Rate exceeded (keeping the 2 host(s) known)"
    )
    assert learned.current() == TWO
    clock.now += 10  # not asked again at every look while AWS refuses
    assert learned.refresh() is None and source.asked == 2
    clock.now += 20
    assert learned.refresh() is None and learned.current() == ONE and source.asked == 3


def test_with_no_hosts_known_the_failure_is_raised() -> None:
    source = Source(AwsError("stack s does not exist in us-east-1"), ONE)
    learned = LearnedFleet(source, ttl=30.0, clock=Clock())
    with pytest.raises(AwsError, match="stack s does not exist"):
        learned.current()
    assert learned.current() == ONE  # asked again: nothing was known to keep


def test_a_written_fleet_never_changes() -> None:
    written = StaticFleet(ONE)
    assert written.refresh() is None and written.current() == ONE
