"""What a branch-fed environment should run, given the pin file its branch's head may carry
(`.conveyor/pins/<env>.json`, written by a rollback through the server; model.pins).

A pin on the head wins over the head, until a push deletes or changes it. Without one, an
environment with `tag_pattern` follows the newest commit up to the head that carries a
matching tag. A pin is refused,
with the reason, when its file cannot be read, when it names a commit the source does not
have, or, for an environment that verifies signatures, when the commit carrying it is neither
one this server pushed itself nor signed by an allowed key: else anyone who can push could
roll a signed environment back to an old commit.
"""

from __future__ import annotations

from collections.abc import Collection

from conveyor.errors import ConveyorError
from conveyor.gitops.source import Source
from conveyor.gitops.sync import newest_tagged
from conveyor.model.environments import EnvironmentSpec
from conveyor.model.frozen import Frozen
from conveyor.model.pins import pin_path
from conveyor.spec.pin_file import parse_pin


class Desired(Frozen):
    commit: str | None  # the commit to run (None: the branch does not exist yet)
    pinned: str | None = None  # set when a pin decided it
    refused: str = ""  # why the head cannot be followed (then `commit` is the head)


# How far back from the head a commit carrying a matching tag is looked for.
TAG_DEPTH = 1000


def followed(source: Source, spec: EnvironmentSpec, head: str) -> str | None:
    """The commit the branch at `head` asks for: the head, or with `tag_pattern` the newest
    commit up to it carrying a matching tag (None: none yet)."""
    if spec.tag_pattern is None:
        return head
    return newest_tagged(spec, source.history(head, TAG_DEPTH), source.tags())


def desired_commit(
    source: Source, spec: EnvironmentSpec, head: str | None, own_pins: Collection[str] = ()
) -> Desired:
    """What `spec` should run when its branch is at `head` (read from the fetched mirror).
    `own_pins` are the pin commits this server pushed (trusted without a signature)."""
    if head is None:
        return Desired(commit=None)
    path = pin_path(spec.name)
    try:
        text = source.read_file(head, path)
        if text is None:
            return Desired(commit=followed(source, spec, head))
        pin = parse_pin(text, path)
        if spec.verify is not None and head not in own_pins:
            verdict = source.verify(head, spec.verify)
            if not verdict.ok:
                return Desired(commit=head, refused=f"the pin's commit: {verdict.reason}")
        pinned = source.commit(pin.commit).sha
    except ConveyorError as e:
        return Desired(commit=head, refused=f"pin file: {e}")
    return Desired(commit=pinned, pinned=pinned)
