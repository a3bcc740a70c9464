"""The controller's deferred syncs (gitops.deferrals): a sync the fleet refused because no app
host takes replicas is tried again by the worker's own loop after a backoff, and at once when
a host is up again, and is not marked failed; a failure that is the user's is not tried
again. Without git or Docker: the source is a stand-in, and bringing a commit in is a
stand-in that refuses or succeeds as told."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conveyor.app.controller import Controller
from conveyor.errors import SpecError
from conveyor.gitops.deferrals import Deferrals
from conveyor.model.environments import EnvironmentSpec
from conveyor.model.events import Event, Subject
from conveyor.plan.placement import NoAppHostUp
from conveyor.spec.conveyor_file import FILE_NAME

HEAD = "c0ffee" + "0" * 34
# An hour between polls: only a retry of the deferral can bring the commit in within a test.
CONFIG = "environments:\n  staging:\n    branch: main\n    poll_interval: 1h\n"
WAIT = 30.0  # seconds a test waits for an event before it fails


@dataclass
class Fetched:
    changed: tuple[str, ...] = ()


class StandInSource:
    """The fetched mirror: branch main at HEAD, conveyor.yaml at its root, no pin file."""

    shown = "stand-in"

    def fetch(self) -> Fetched:
        return Fetched()

    def default_branch_head(self) -> str:
        return HEAD

    def heads(self) -> dict[str, str]:
        return {"main": HEAD}

    def read_file(self, commit: str, path: str) -> str | None:
        return CONFIG if path == FILE_NAME else None


class Controlled:
    """A controller whose sync passes bring HEAD in with `outcomes` in turn (an exception
    is raised, a string is returned as `_bring_in`'s reason), recording every event."""

    def __init__(self, tmp_path: Path, outcomes: list[BaseException | str], first: float) -> None:
        self.events: list[Event] = []
        self.seen = threading.Condition()
        self.c = Controller(str(tmp_path / "app.git"), tmp_path / "data", {}, on_event=self._seen)
        self.c.source = StandInSource()  # type: ignore[assignment]
        self.c.heal_all = lambda only=None: None  # type: ignore[method-assign]  # syncs only
        self.c._deferrals = Deferrals(first=first, longest=first * 2)
        self.outcomes = outcomes

        def bring_in(spec: EnvironmentSpec, head: str) -> str:
            outcome = self.outcomes.pop(0)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome

        self.c._bring_in = bring_in  # type: ignore[method-assign]

    def _seen(self, event: Event) -> None:
        with self.seen:
            self.events.append(event)
            self.seen.notify_all()

    def wait_for(self, kind: str, count: int = 1) -> None:
        with self.seen:
            found = self.seen.wait_for(lambda: self.kinds().count(kind) >= count, WAIT)
        assert found, f"no {count} {kind} event(s) in {WAIT}s: {self.kinds()}"

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events if e.kind.startswith("sync.")]

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """The worker's loop, in a thread, while inside."""
        stopping = threading.Event()
        loop = threading.Thread(target=self.c._loop, args=(stopping,), daemon=True)
        loop.start()
        try:
            yield
        finally:
            stopping.set()
            self.c._stir.set()
            loop.join(10)


@pytest.fixture
def refused() -> NoAppHostUp:
    return NoAppHostUp("service web: no app host can take a new replica (hosts that only "
                       "hold theirs: h1, h2)")  # fmt: skip


def test_a_sync_refused_for_want_of_a_host_is_retried_with_backoff_until_it_serves(
    tmp_path: Path, refused: NoAppHostUp
) -> None:
    world = Controlled(tmp_path, [refused, refused, ""], first=0.05)
    with world.running():
        world.wait_for("sync.succeeded")
    assert world.kinds() == [
        "sync.started", "sync.deferred",
        "sync.started", "sync.deferred",
        "sync.started", "sync.succeeded",
    ]  # fmt: skip
    deferred = [e for e in world.events if e.kind == "sync.deferred"]
    assert [e.data["attempt"] for e in deferred] == ["1", "2"]
    assert [e.data["retry_in"] for e in deferred] == ["0.05", "0.1"]  # doubled
    assert deferred[0].level == "warning"
    assert deferred[0].message == (
        f"staging: sync of {HEAD[:12]} deferred: {refused}; retrying in 0.05s "
        "(or when a host is up again)"
    )
    progress = world.c._progress("staging")
    assert progress.deployed == HEAD and progress.failed is None and progress.syncing is None
    assert world.c._deferrals.get("staging") is None


def test_a_host_up_again_retries_the_deferred_sync_at_once(
    tmp_path: Path, refused: NoAppHostUp
) -> None:
    world = Controlled(tmp_path, [refused, ""], first=3600.0)  # the backoff alone: an hour
    with world.running():
        world.wait_for("sync.deferred")
        assert world.c._progress("staging").failed is None  # not failed meanwhile
        # What a heal pass's host probe reports (app.project._host_changed):
        world.c._collect(
            Event(
                kind="host.changed",
                message="host h1: suspect -> up (answered)",
                subject=Subject(project="app-staging", environment="staging"),
                data={"host": "h1", "before": "suspect", "after": "up"},
            )
        )
        world.wait_for("sync.succeeded")
    assert world.c._progress("staging").deployed == HEAD


@pytest.mark.parametrize(
    "failure",
    [
        SpecError("compose.yaml", 3, "services.web.image", "must be a string"),
        "rollout 1 rolled_back: web: probe failed",  # a failed health check: rolled back
    ],
)
def test_a_failure_that_is_the_users_is_not_retried(
    tmp_path: Path, failure: BaseException | str
) -> None:
    world = Controlled(tmp_path, [failure], first=0.01)
    world.c.sync_all()
    assert world.kinds() == ["sync.started", "sync.failed"]
    assert world.c._deferrals.next_due() is None
    assert world.c._progress("staging").failed == HEAD
    world.c.sync_all()  # the poll: a failed commit waits for the branch to move
    assert world.kinds() == ["sync.started", "sync.failed"]
