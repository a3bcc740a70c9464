"""The Secrets of a `target: kubernetes` delivery (issue 13; docs/gitops.md): filled with the
values the server has for the environment and encrypted with sops to conveyor.yaml's
`kubernetes.age_recipients`, the way `conveyor render kubernetes --encrypt-secrets` does.
Plaintext lives only in memory and on sops's stdin.

sops output differs on every run, and the server cannot decrypt what it committed (it holds
the recipients, not an age identity). So each encrypted Secret carries, in a clear-text
annotation, an HMAC-SHA256 of its plaintext and recipients keyed with a random key kept in
the server's data directory (not a bare hash: a short password's hash in git could be
guessed). A Secret whose HMAC equals the committed one keeps the committed bytes: a release
that changes no value changes no Secret file. Losing the key costs one re-encryption.

    key = digest_key(data_dir / "environments" / env / SECRETS_KEY)
    sealed = seal(plain, recipients, key, committed)   # path -> YAML to write
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from conveyor.host.sops import encrypt_yaml
from conveyor.render.kubernetes.layout import dump

DIGEST_ANNOTATION = "conveyor.dev/plaintext-hmac"
SECRETS_KEY = "secrets-hmac.key"  # in the environment's directory of the server's data
_KEY_BYTES = 32

Encrypt = Callable[[str, Sequence[str]], str]


@dataclass(frozen=True)
class Sealed:
    files: dict[str, str]  # path -> encrypted YAML to write (new or kept)
    encrypted: tuple[str, ...]  # paths encrypted anew (a value or a recipient changed)
    kept: tuple[str, ...]  # paths whose committed encryption was kept


def plaintext_digest(key: bytes, recipients: Sequence[str], text: str) -> str:
    """HMAC of the Secret's plaintext and its recipients (new recipients: a new file)."""
    message = "\n".join(sorted(recipients)).encode() + b"\0" + text.encode()
    return "hmac-sha256:" + hmac.new(key, message, hashlib.sha256).hexdigest()


def committed_digest(text: str) -> str | None:
    """The digest annotation of an encrypted Secret file; None for anything else (a
    placeholder, a Secret someone encrypted by hand, unreadable YAML)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(doc, dict) or "sops" not in doc:
        return None
    annotations = (doc.get("metadata") or {}).get("annotations") or {}
    found = annotations.get(DIGEST_ANNOTATION) if isinstance(annotations, dict) else None
    return found if isinstance(found, str) else None


def _annotated(text: str, digest: str) -> str:
    doc = yaml.safe_load(text)
    metadata = doc.setdefault("metadata", {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), DIGEST_ANNOTATION: digest}
    return dump(doc)


def seal(
    plain: Mapping[str, str],
    recipients: Sequence[str],
    key: bytes,
    committed: Mapping[str, str],
    encrypt: Encrypt = encrypt_yaml,
) -> Sealed:
    """Each filled Secret of `plain` (path -> YAML) encrypted to `recipients`, or the
    `committed` file at that path (path -> what the deploy branch holds) when its digest says
    the plaintext and recipients are the same. Raises SopsError, CommandError."""
    files: dict[str, str] = {}
    encrypted: list[str] = []
    kept: list[str] = []
    for path, text in sorted(plain.items()):
        digest = plaintext_digest(key, recipients, text)
        before = committed.get(path)
        if before is not None and committed_digest(before) == digest:
            files[path] = before
            kept.append(path)
            continue
        files[path] = encrypt(_annotated(text, digest), recipients)
        encrypted.append(path)
    return Sealed(files, tuple(encrypted), tuple(kept))


def empty_secrets(rendered: Mapping[str, str], plain: Mapping[str, str]) -> list[str]:
    """What a delivery leaves without a value, for its warning: `name` for a Secret it has
    no value for at all, `name (KEY, …)` for one with some keys empty. `rendered`: the
    rendering's files; `plain`: the filled ones (path -> YAML)."""
    out: list[str] = []
    for path, text in sorted(rendered.items()):
        if "/secrets/" not in path:
            continue
        doc = yaml.safe_load(plain.get(path, text))
        if not isinstance(doc, dict) or doc.get("kind") != "Secret":
            continue
        name = str((doc.get("metadata") or {}).get("name", path))
        values = doc.get("stringData") or {}
        missing = sorted(k for k, v in values.items() if v in ("", None))
        if path not in plain:
            out.append(name)
        elif missing:
            out.append(f"{name} ({', '.join(missing)})")
    return out


def digest_key(path: Path) -> bytes:
    """The server's HMAC key for an environment's Secrets, made (mode 0600) on first use."""
    try:
        found = path.read_bytes()
        if len(found) == _KEY_BYTES:
            return found
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(_KEY_BYTES)
    partial = path.with_name(path.name + ".new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    partial.replace(path)
    return key
