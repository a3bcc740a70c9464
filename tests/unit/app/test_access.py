from __future__ import annotations

import re
from pathlib import Path

import pytest

from conveyor.app.access import (
    authenticate,
    create_token,
    list_tokens,
    open_server_db,
    revoke_token,
    token_hash,
)
from conveyor.errors import ServerError, UnknownToken
from conveyor.model.access import Principal, role_allows


def test_a_token_is_shown_once_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    sdb = open_server_db(tmp_path)
    made = create_token(sdb, "deployer", "ci")
    assert re.fullmatch(r"cvr_[A-Za-z0-9_-]{43}", made.token)  # 32 bytes, URL-safe base64
    assert (made.name, made.role) == ("ci", "deployer")
    sdb.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert made.token.encode() not in stored
    assert token_hash(made.token).encode() in stored
    assert "token" not in list_tokens(open_server_db(tmp_path)).tokens[0].model_dump()


def test_tokens_differ_and_default_names_count_per_role(tmp_path: Path) -> None:
    sdb = open_server_db(tmp_path)
    a, b = create_token(sdb, "viewer"), create_token(sdb, "viewer")
    c = create_token(sdb, "admin")
    assert a.token != b.token
    assert [a.name, b.name, c.name] == ["viewer-1", "viewer-2", "admin-1"]
    revoke_token(sdb, "viewer-2")
    assert create_token(sdb, "viewer").name == "viewer-3"  # a revoked name is not reused


def test_authenticate_finds_the_active_token_and_records_its_use(tmp_path: Path) -> None:
    sdb = open_server_db(tmp_path)
    made = create_token(sdb, "admin", "root")
    create_token(sdb, "viewer", "v")
    assert authenticate(sdb, made.token) == Principal(name="root", role="admin")
    assert sdb.tokens.active()[0].last_used_at is not None
    assert authenticate(sdb, made.token + "x") is None
    assert authenticate(sdb, "") is None
    revoke_token(sdb, "root")
    assert authenticate(sdb, made.token) is None


def test_revoking_an_unknown_token_says_so_and_is_audited(tmp_path: Path) -> None:
    sdb = open_server_db(tmp_path)
    with pytest.raises(UnknownToken, match="'ghost'"):
        revoke_token(sdb, "ghost")
    (rec,) = sdb.audit.latest()
    assert (rec.actor, rec.action, rec.target, rec.outcome) == (
        "cli",
        "token.revoke",
        "ghost",
        "refused",
    )


def test_token_creation_is_audited_without_the_token(tmp_path: Path) -> None:
    sdb = open_server_db(tmp_path)
    made = create_token(sdb, "viewer", "v")
    (rec,) = sdb.audit.latest()
    assert (rec.action, rec.target, rec.outcome, rec.detail) == (
        "token.create",
        "v",
        "ok",
        {"role": "viewer"},
    )
    assert made.token not in rec.model_dump_json()


@pytest.mark.parametrize("name", ["", "-x", "a b", "x/y", "ü", "n" * 65])
def test_token_names_that_cannot_be_a_url_segment_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ServerError, match="token name"):
        create_token(open_server_db(tmp_path), "viewer", name)


def test_roles_are_ordered() -> None:
    assert role_allows("admin", "deployer") and role_allows("deployer", "deployer")
    assert not role_allows("viewer", "deployer") and not role_allows("deployer", "admin")
