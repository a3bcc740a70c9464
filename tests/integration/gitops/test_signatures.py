"""Commit signature verification with real keys: SSH signatures against an allowed-signers
file, OpenPGP signatures against a GnuPG keyring. Only a commit the policy accepts is ok;
every refusal says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.gitops.source import Source
from conveyor.model.environments import GpgVerify, SshVerify

from .conftest import GpgSigner, Upstream, sh, ssh_key


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """Alice's key is allowed; Mallory's is not."""
    directory = tmp_path / "keys"
    directory.mkdir()
    alice = ssh_key(directory / "alice", "alice")
    mallory = ssh_key(directory / "mallory", "mallory")
    signers = directory / "allowed_signers"
    signers.write_text(f"alice@example.test {(directory / 'alice.pub').read_text()}")
    return {"alice": alice, "mallory": mallory, "allowed_signers": signers}


def ssh_signed(key: Path) -> list[str]:
    return ["gpg.format=ssh", f"user.signingKey={key}"]


def fetched(upstream: Upstream, tmp_path: Path) -> Source:
    upstream.work.push("main")
    source = Source(str(upstream.bare), tmp_path / "cache")
    source.fetch()
    return source


def test_ssh_signatures(upstream: Upstream, tmp_path: Path, keys: dict[str, Path]) -> None:
    work = upstream.work
    by_alice = work.commit({"a": "1"}, "By Alice", sign=ssh_signed(keys["alice"]))
    by_mallory = work.commit({"a": "2"}, "By Mallory", sign=ssh_signed(keys["mallory"]))
    unsigned = work.commit({"a": "3"}, "Unsigned")
    source = fetched(upstream, tmp_path)
    policy = SshVerify(allowed_signers=str(keys["allowed_signers"]))

    good = source.verify(by_alice, policy)
    stranger = source.verify(by_mallory, policy)
    none = source.verify(unsigned, policy)

    assert good.ok and good.signer == "alice@example.test"
    assert good.key is not None and good.key.startswith("SHA256:")
    assert (
        good.reason
        == f"commit {by_alice[:12]} is signed by alice@example.test (SSH key {good.key})"
    )
    assert not stranger.ok
    assert stranger.reason == (
        f"commit {by_mallory[:12]} is signed with SSH key {stranger.key}, which "
        f"{keys['allowed_signers']} does not allow"
    )
    assert stranger.key != good.key
    assert not none.ok and none.reason == f"commit {unsigned[:12]} is not signed"


def test_a_signed_commit_changed_afterwards_is_bad(
    upstream: Upstream, tmp_path: Path, keys: dict[str, Path]
) -> None:
    work = upstream.work
    signed = work.commit({"a": "1"}, "Deploy v1", sign=ssh_signed(keys["alice"]))
    # The same commit object with its message edited: the signature no longer matches.
    raw = sh("git", "cat-file", "commit", signed, cwd=work.path) + "\n"
    forged_object = raw.replace("Deploy v1", "Deploy v2")
    forged_file = tmp_path / "forged"
    forged_file.write_text(forged_object)
    forged = sh("git", "hash-object", "-t", "commit", "-w", str(forged_file), cwd=work.path)
    work.git("update-ref", "refs/heads/forged", forged)
    work.push("main", "forged")
    source = Source(str(upstream.bare), tmp_path / "cache")
    source.fetch()

    verdict = source.verify(forged, SshVerify(allowed_signers=str(keys["allowed_signers"])))

    assert source.verify(signed, SshVerify(allowed_signers=str(keys["allowed_signers"]))).ok
    assert not verdict.ok
    assert verdict.reason == (
        f"commit {forged[:12]}: the signature is bad (the commit changed after it was signed)"
    )


def test_a_missing_allowed_signers_file_refuses_everything(
    upstream: Upstream, tmp_path: Path, keys: dict[str, Path]
) -> None:
    signed = upstream.work.commit({"a": "1"}, "Signed", sign=ssh_signed(keys["alice"]))
    source = fetched(upstream, tmp_path)

    verdict = source.verify(signed, SshVerify(allowed_signers=str(tmp_path / "gone")))

    assert not verdict.ok
    assert verdict.reason == f"the allowed signers file {tmp_path / 'gone'} does not exist"


def test_gpg_signatures(
    upstream: Upstream, tmp_path: Path, gpg_signer: GpgSigner, keys: dict[str, Path]
) -> None:
    work = upstream.work
    gpg_env = {"GNUPGHOME": str(gpg_signer.home)}
    signed = work.commit({"a": "1"}, "GPG signed", sign=gpg_signer.sign_options(), env=gpg_env)
    ssh_signed_commit = work.commit({"a": "2"}, "SSH signed", sign=ssh_signed(keys["alice"]))
    unsigned = work.commit({"a": "3"}, "Unsigned")
    source = fetched(upstream, tmp_path)
    trusted = str(gpg_signer.trusted)
    empty = tmp_path / "empty-gnupg"
    empty.mkdir(mode=0o700)

    good = source.verify(signed, GpgVerify(keyring=trusted))
    pinned_good = source.verify(
        signed, GpgVerify(keyring=trusted, fingerprints=(gpg_signer.fingerprint,))
    )
    other_fingerprint = source.verify(signed, GpgVerify(keyring=trusted, fingerprints=("A" * 40,)))
    unknown_key = source.verify(signed, GpgVerify(keyring=str(empty)))
    wrong_kind = source.verify(ssh_signed_commit, GpgVerify(keyring=trusted))
    none = source.verify(unsigned, GpgVerify(keyring=trusted))

    assert good.ok and pinned_good.ok
    assert good.signer == "Rel Eng <releng@example.test>"
    assert good.key == gpg_signer.fingerprint
    assert not other_fingerprint.ok
    assert other_fingerprint.reason.endswith("which is not one of the allowed fingerprints")
    assert not unknown_key.ok
    assert unknown_key.reason == (
        f"commit {signed[:12]} is signed with key {gpg_signer.fingerprint[-16:]}, "
        f"which is not in {empty}"
    )
    assert not wrong_kind.ok
    assert wrong_kind.reason == (
        f"commit {ssh_signed_commit[:12]} has an SSH signature; this environment accepts "
        "OpenPGP (GPG) signatures only"
    )
    assert not none.ok and none.reason == f"commit {unsigned[:12]} is not signed"


def test_a_gpg_signature_under_an_ssh_policy_is_refused(
    upstream: Upstream, tmp_path: Path, gpg_signer: GpgSigner, keys: dict[str, Path]
) -> None:
    env = {"GNUPGHOME": str(gpg_signer.home)}
    signed = upstream.work.commit({"a": "1"}, "GPG", sign=gpg_signer.sign_options(), env=env)
    source = fetched(upstream, tmp_path)

    verdict = source.verify(signed, SshVerify(allowed_signers=str(keys["allowed_signers"])))

    assert not verdict.ok
    assert "has an OpenPGP (GPG) signature" in verdict.reason


def test_a_pin_signed_with_an_allowed_key_passes_the_environment_policy(
    upstream: Upstream, tmp_path: Path, keys: dict[str, Path]
) -> None:
    source = Source(str(upstream.bare), tmp_path / "cache")
    policy = SshVerify(allowed_signers=str(keys["allowed_signers"]))

    signed_pin = source.commit_pin(
        "main", "pin.json", "{}\n", "Pin", "Alice <alice@example.test>", signing_key=keys["alice"]
    )
    unsigned_pin = source.commit_pin("main", "pin.json", "[]\n", "Pin", "Conveyor <c@example.test>")

    assert source.verify(signed_pin, policy).ok
    assert source.verify(unsigned_pin, policy).reason == f"commit {unsigned_pin[:12]} is not signed"
