"""Which commit a branch-fed environment runs when its branch carries a pin file
(gitops.pins.desired_commit), read from a real bare repository: the server's own pin commit,
one a person pushed, one deleted, one broken, and pins in an environment that verifies
signatures (a signed pin, an unsigned one, a signing server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.gitops.pins import desired_commit
from conveyor.gitops.source import Source
from conveyor.model.environments import EnvironmentSpec, SshVerify
from conveyor.model.pins import Pin, pin_path
from conveyor.spec.pin_file import render_pin

from .conftest import Upstream, ssh_key

STAGING = EnvironmentSpec(name="staging", branch="main")
PIN = pin_path("staging")
AUTHOR = "deployer-1 <deployer-1@conveyor.invalid>"


def fetched(upstream: Upstream, tmp_path: Path) -> Source:
    upstream.work.push("main")
    source = Source(str(upstream.bare), tmp_path / "cache")
    source.fetch()
    return source


def pin(source: Source, commit: str, signing_key: Path | None = None) -> str:
    text = render_pin(Pin(commit=commit, release=1, by="deployer-1", at=1.0))
    return source.commit_pin("main", PIN, text, "pin", AUTHOR, signing_key=signing_key)


def test_a_head_without_a_pin_is_desired(upstream: Upstream, tmp_path: Path) -> None:
    source = fetched(upstream, tmp_path)
    found = desired_commit(source, STAGING, upstream.first)
    assert (found.commit, found.pinned, found.refused) == (upstream.first, None, "")
    assert desired_commit(source, STAGING, None).commit is None


def test_the_pin_holds_the_environment_until_a_push_deletes_it(
    upstream: Upstream, tmp_path: Path
) -> None:
    work = upstream.work
    newer = work.commit({"compose.yaml": "services:\n  web:\n    image: shop:2\n"}, "Two")
    source = fetched(upstream, tmp_path)
    pinned = pin(source, upstream.first)
    assert source.heads()["main"] == pinned
    found = desired_commit(source, STAGING, pinned, [pinned])
    assert (found.commit, found.pinned) == (upstream.first, upstream.first)
    # a person pulls, pushes on top and keeps the file: still held
    work.git("pull", "-q", "--ff-only", "origin", "main")
    on_top = work.commit({"README": "notes\n"}, "Docs")
    source = fetched(upstream, tmp_path)
    assert desired_commit(source, STAGING, on_top).commit == upstream.first
    # another environment's pin says nothing about this one
    other = EnvironmentSpec(name="qa", branch="main")
    assert desired_commit(source, other, on_top).commit == on_top
    # the file deleted: the branch's head again
    work.git("rm", "-q", PIN)
    freed = work.commit({}, "Follow main again")
    source = fetched(upstream, tmp_path)
    assert desired_commit(source, STAGING, freed).commit == freed
    assert newer != freed


def test_a_changed_pin_moves_the_environment(upstream: Upstream, tmp_path: Path) -> None:
    work = upstream.work
    two = work.commit({"compose.yaml": "services:\n  web:\n    image: shop:2\n"}, "Two")
    short = upstream.first[:10]  # a person may write a short id
    by_hand = work.commit({PIN: f'{{"commit": "{short}"}}\n'}, "Pin by hand")
    head = work.commit({PIN: f'{{"commit": "{two}"}}\n'}, "Move the pin")
    source = fetched(upstream, tmp_path)
    assert desired_commit(source, STAGING, by_hand).commit == upstream.first
    found = desired_commit(source, STAGING, head)
    assert found.commit == two and found.pinned == two


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"commit": "main"}', f"pin file: {PIN}:1: commit: must be a commit id"),
        ('{"commit": "' + "ab" * 20 + '"}', "pin file: "),
        ("not json {", f"pin file: {PIN}:1"),
    ],
)
def test_a_broken_pin_is_refused_with_its_reason(
    upstream: Upstream, tmp_path: Path, text: str, reason: str
) -> None:
    head = upstream.work.commit({PIN: text}, "A broken pin")
    source = fetched(upstream, tmp_path)
    found = desired_commit(source, STAGING, head)
    assert found.commit == head and found.pinned is None
    assert found.refused.startswith(reason), found.refused


def test_in_a_signed_environment_only_trusted_pins_count(
    upstream: Upstream, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    server_key = ssh_key(keys / "server", "server")
    signers = keys / "allowed_signers"
    signers.write_text(f"conveyor@example.test {(keys / 'server.pub').read_text()}")
    signed = STAGING.model_copy(update={"verify": SshVerify(allowed_signers=str(signers))})
    source = fetched(upstream, tmp_path)
    # someone who can push pins an old commit without a signature: refused
    work = upstream.work
    forged = work.commit({PIN: f'{{"commit": "{upstream.first}"}}\n'}, "Sneaky rollback")
    source = fetched(upstream, tmp_path)
    refused = desired_commit(source, signed, forged)
    assert refused.commit == forged and refused.pinned is None
    assert refused.refused == f"the pin's commit: commit {forged[:12]} is not signed"
    # the server's own unsigned pin is trusted because it remembers making it
    own = pin(source, upstream.first)
    assert desired_commit(source, signed, own, [own]).pinned == upstream.first
    assert desired_commit(source, signed, own).refused  # not remembered: not trusted
    # a pin signed with an allowed key (CONVEYOR_PIN_SIGNING_KEY) is trusted by anyone
    again = pin(source, forged, signing_key=server_key)
    assert desired_commit(source, signed, again).pinned == forged


def test_a_tag_pattern_follows_the_newest_tagged_commit(upstream: Upstream, tmp_path: Path) -> None:
    work = upstream.work
    releases = EnvironmentSpec(name="production", branch="main", tag_pattern="v*")
    source = fetched(upstream, tmp_path)
    assert desired_commit(source, releases, upstream.first).commit is None  # no tag yet
    work.git("tag", "-a", "v1.0", "-m", "first release")  # annotated: peeled to its commit
    work.git("push", "-q", "origin", "v1.0")
    after = work.commit({"README": "two\n"}, "Untagged on top")
    work.git("tag", "docs-1")  # a tag the pattern does not match
    work.git("push", "-q", "origin", "docs-1")
    source = fetched(upstream, tmp_path)
    assert desired_commit(source, releases, after).commit == upstream.first
    work.git("tag", "v1.1")
    work.git("push", "-q", "origin", "v1.1")
    source = fetched(upstream, tmp_path)
    assert desired_commit(source, releases, after).commit == after
    assert desired_commit(source, STAGING, after).commit == after  # no pattern: the head
