"""The releases of a `target: kubernetes` environment, read from its deploy repository
(pure). A release is a commit there: Conveyor writes trailers into each message, so the
history of the environment's directory is its release history, whoever cloned it.

    staging: release 3 of shop at 1a2b3c4d5e6f

    Rendered by Conveyor from commit 1a2b3c4d5e6f… of shop; Flux applies it.

    Conveyor-Environment: staging
    Conveyor-Release: 3
    Conveyor-Source-Commit: 1a2b3c4d5e6f…
    Conveyor-Image: web=registry.example.com/shop/web:1a2b3c4d5e6f@sha256:…

A rollback is a revert commit (`Conveyor-Reverts: <release commits>`); a reverted release no
longer counts, so the next rollback goes one release further back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ENVIRONMENT = "Conveyor-Environment"
RELEASE = "Conveyor-Release"
SOURCE = "Conveyor-Source-Commit"
REVERTS = "Conveyor-Reverts"
IMAGE = "Conveyor-Image"  # one per pinned service: `<service>=<reference>`
_TRAILER = re.compile(r"^(Conveyor-[A-Za-z-]+): *(\S.*)$", re.MULTILINE)
_IMAGE = re.compile(rf"^{IMAGE}: *([^=\s]+)=(\S+)$", re.MULTILINE)
_ASKED_BY = re.compile(r"Asked by (\S+) through the Conveyor server")


@dataclass(frozen=True)
class DeliveryCommit:
    """One commit of the deploy repository Conveyor made for an environment."""

    commit: str  # in the deploy repository
    environment: str
    release: int
    source: str  # the source repository's commit it renders
    reverts: tuple[str, ...] = ()  # a rollback: the release commits it undoes
    title: str = ""
    images: tuple[tuple[str, str], ...] = ()  # (service, reference) the overlay pins
    by: str = ""  # who asked for a rollback (its message says), "" for a delivery


def trailers(message: str) -> dict[str, str]:
    return {key: value.strip() for key, value in _TRAILER.findall(message)}


def parse(commit: str, message: str) -> DeliveryCommit | None:
    """The delivery a commit's message describes; None for another commit (a person's)."""
    found = trailers(message)
    try:
        release = int(found.get(RELEASE, ""))
    except ValueError:
        return None
    env, source = found.get(ENVIRONMENT), found.get(SOURCE)
    if not env or not source:
        return None
    return DeliveryCommit(
        commit=commit,
        environment=env,
        release=release,
        source=source,
        reverts=tuple(found.get(REVERTS, "").split()),
        title=message.split("\n", 1)[0],
        images=tuple(sorted(_IMAGE.findall(message))),
        by=found_by.group(1) if (found_by := _ASKED_BY.search(message)) else "",
    )


@dataclass(frozen=True)
class History:
    """An environment's deliveries, newest first (as `git log` lists them)."""

    commits: tuple[DeliveryCommit, ...]

    @classmethod
    def of(cls, env: str, log: Sequence[tuple[str, str]]) -> History:
        parsed = (parse(sha, message) for sha, message in log)
        return cls(tuple(d for d in parsed if d is not None and d.environment == env))

    def releases(self) -> list[DeliveryCommit]:
        """The releases in force, newest first: release commits not reverted since."""
        undone = {sha for d in self.commits for sha in d.reverts}
        return [d for d in self.commits if not d.reverts and d.commit not in undone]

    def current(self) -> DeliveryCommit | None:
        """What the directory holds now: the newest commit (a release or a rollback)."""
        return self.commits[0] if self.commits else None

    def next_number(self) -> int:
        return max((d.release for d in self.commits if not d.reverts), default=0) + 1


def release_message(
    env: str, release: int, source: str, project: str, images: Mapping[str, str]
) -> str:
    return (
        f"{env}: release {release} of {project} at {source[:12]}\n\n"
        f"Rendered by Conveyor from commit {source} of {project}; Flux applies it.\n\n"
        f"{ENVIRONMENT}: {env}\n{RELEASE}: {release}\n{SOURCE}: {source}\n" + _images(images)
    )


def _images(images: Mapping[str, str] | Sequence[tuple[str, str]]) -> str:
    pairs = sorted(images.items()) if isinstance(images, Mapping) else sorted(images)
    return "".join(f"{IMAGE}: {service}={ref}\n" for service, ref in pairs)


def rollback_message(
    env: str, undone: Sequence[DeliveryCommit], target: DeliveryCommit, by: str
) -> str:
    first = undone[0]
    return (
        f"{env}: roll back release {first.release} to release {target.release} "
        f"({target.source[:12]})\n\n"
        f"Reverts {', '.join(d.commit for d in undone)}. Asked by {by} through the "
        f"Conveyor server.\n\n"
        f"{ENVIRONMENT}: {env}\n{RELEASE}: {target.release}\n{SOURCE}: {target.source}\n"
        f"{REVERTS}: {' '.join(d.commit for d in undone)}\n" + _images(target.images)
    )


def rollback_plan(
    history: History, to_release: int | None
) -> tuple[list[DeliveryCommit], DeliveryCommit]:
    """The release commits to revert (newest first) and the release that then serves.
    Raises ValueError saying why there is none."""
    releases = history.releases()
    if len(releases) < 2 and to_release is None:
        raise ValueError("no previous release to roll back to")
    if to_release is None:
        return releases[:1], releases[1]
    for index, found in enumerate(releases):
        if found.release == to_release:
            if index == 0:
                raise ValueError(f"release {to_release} is the one delivered now")
            return releases[:index], found
    raise LookupError(f"no release {to_release} in force (releases: {_numbers(releases)})")


def _numbers(releases: Sequence[DeliveryCommit]) -> str:
    return ", ".join(str(d.release) for d in releases) or "none"
