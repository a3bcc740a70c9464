"""What the controller's watcher and worker share about a running pipeline a newer commit may
supersede, and what people are told about it."""

from __future__ import annotations

from pathlib import Path

from conveyor.app.superseding import Running, notice
from conveyor.ci.run.records import Redundant
from conveyor.model.environments import EnvironmentSpec

OLD, MIDDLE, NEW = "a" * 40, "b" * 40, "c" * 40


def running() -> Running:
    return Running(EnvironmentSpec(name="staging", branch="main"), OLD, Path(".gitlab-ci.yml"))


def test_a_newer_commit_is_applied_once_and_a_kept_pipeline_is_asked_again() -> None:
    r = running()
    assert r.to_apply() is None  # nothing newer yet
    r.saw(MIDDLE)
    assert r.to_apply() == MIDDLE
    r.applied(MIDDLE, [Redundant(4, "kept", ("test",))])
    assert r.to_apply() is None  # applied for this commit
    r.saw(NEW)
    assert r.to_apply() == NEW  # kept: a later commit is another chance to cancel
    r.applied(NEW, [Redundant(4, "canceled")])
    r.saw("d" * 40)
    assert r.to_apply() is None  # canceled already: nothing more to ask
    assert r.newer == "d" * 40  # but the worker brings the newest in


def test_what_people_are_told() -> None:
    r = running()
    head = f"staging: {OLD[:12]} is superseded by {NEW[:12]}, newer on main: "
    after = f"; {NEW[:12]} is brought in after it"
    assert notice("staging", r, NEW, Redundant(4, "canceled")) == head + "pipeline #4 is canceled"
    assert notice("staging", r, NEW, Redundant(4, "interruptible", ("deploy",))) == (
        head + "the interruptible jobs of pipeline #4 are canceled (job deploy is not "
        "interruptible: it runs on)" + after
    )
    assert notice("staging", r, NEW, Redundant(4, "kept", ("migrate",))) == (
        head + "pipeline #4 runs to the end (job migrate started and is not interruptible)" + after
    )
    assert notice("staging", r, NEW, Redundant(4, "kept", ("a", "b"))) == (
        head + "pipeline #4 runs to the end (jobs a, b started and are not interruptible)" + after
    )
    assert notice("staging", r, NEW, Redundant(4, "kept")) == (
        head + "pipeline #4 runs to the end (workflow:auto_cancel:on_new_commit: none)" + after
    )
