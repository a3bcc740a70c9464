"""Webhook deliveries: verified with the secret, persisted before the answer, idempotent."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from conveyor.app.access import open_server_db
from conveyor.app.hooks import pending_deliveries
from conveyor.server.api import create_app
from tests.unit.server.conftest import SECRET, TestClient, World, make_backend

SHA = "1f0c5d0a4c0d7c9e8b7a6f5e4d3c2b1a09876543"


def gitlab_push(ref: str = "refs/heads/main", after: str = SHA) -> bytes:
    return json.dumps(
        {
            "object_kind": "push",
            "ref": ref,
            "before": "0" * 40,
            "after": after,
            "project": {"git_http_url": "http://127.0.0.1/shop.git"},
            "commits": [],
        }
    ).encode()


def github_push(after: str = SHA) -> bytes:
    return json.dumps(
        {"ref": "refs/heads/main", "before": "0" * 40, "after": after, "repository": {}}
    ).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def rows(w: World) -> int:
    return w.db.deliveries.count()


def test_gitlab_with_the_right_token_is_persisted_then_handed_over(world: World) -> None:
    r = world.client.post(
        "/hooks/gitlab",
        content=gitlab_push(),
        headers={
            "X-Gitlab-Token": SECRET,
            "X-Gitlab-Event": "Push Hook",
            "X-Gitlab-Event-UUID": "u-1",
        },
    )
    assert r.status_code == 202
    assert r.json() == {
        "source": "gitlab",
        "delivery_id": "u-1",
        "duplicate": False,
        "handed_over": True,
    }
    stored = world.db.deliveries.get("gitlab", "u-1")
    assert stored is not None and (stored.ref, stored.after_sha) == ("refs/heads/main", SHA)
    assert stored.payload["object_kind"] == "push"
    assert [(d.delivery_id, d.after_sha) for d in world.backend.delivered] == [("u-1", SHA)]


def test_gitlab_with_a_wrong_or_missing_token_is_401_and_persists_nothing(world: World) -> None:
    for headers in ({"X-Gitlab-Token": SECRET + "x"}, {"X-Gitlab-Token": ""}, {}):
        r = world.client.post("/hooks/gitlab", content=gitlab_push(), headers=headers)
        assert r.status_code == 401
        assert "X-Gitlab-Token" in r.json()["detail"]
    assert rows(world) == 0
    assert world.backend.delivered == []


def test_github_with_the_right_signature_is_accepted(world: World) -> None:
    body = github_push()
    r = world.client.post(
        "/hooks/github",
        content=body,
        headers={
            "X-Hub-Signature-256": sign(body),
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "g-1",
        },
    )
    assert r.status_code == 202
    assert world.db.deliveries.get("github", "g-1") is not None
    assert world.backend.delivered[0].after_sha == SHA


def test_github_with_a_wrong_signature_or_a_tampered_body_is_401(world: World) -> None:
    body = github_push()
    cases = [
        (body, sign(body, "another secret")),
        (github_push(after="f" * 40), sign(body)),  # signed one body, sent another
        (body, ""),
        (body, sign(body).replace("sha256=", "sha1=")),
    ]
    for sent, signature in cases:
        r = world.client.post(
            "/hooks/github",
            content=sent,
            headers={
                "X-Hub-Signature-256": signature,
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": "g",
            },
        )
        assert r.status_code == 401
    assert rows(world) == 0 and world.backend.delivered == []


def test_the_generic_hook_is_signed_like_github(world: World) -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": SHA}).encode()
    good = {"X-Conveyor-Signature": sign(body), "X-Conveyor-Delivery": "x-1"}
    assert world.client.post("/hooks/generic", content=body, headers=good).status_code == 202
    bad = {"X-Conveyor-Signature": sign(body, "nope"), "X-Conveyor-Delivery": "x-2"}
    assert world.client.post("/hooks/generic", content=body, headers=bad).status_code == 401
    assert [d.delivery_id for d in world.db.deliveries.with_status("pending")] == ["x-1"]


def test_a_duplicate_delivery_is_200_and_changes_nothing(world: World) -> None:
    body = github_push()
    headers = {
        "X-Hub-Signature-256": sign(body),
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "g-9",
    }
    first = world.client.post("/hooks/github", content=body, headers=headers)
    world.db.deliveries.mark("github", "g-9", "done")
    again = world.client.post("/hooks/github", content=body, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["duplicate"] is True
    assert rows(world) == 1
    assert len(world.backend.delivered) == 1  # the backend saw it once
    stored = world.db.deliveries.get("github", "g-9")
    assert stored is not None and stored.status == "done"


def test_a_gitlab_delivery_without_an_id_is_known_by_its_body(world: World) -> None:
    headers = {"X-Gitlab-Token": SECRET}
    codes = [
        world.client.post("/hooks/gitlab", content=gitlab_push(), headers=headers).status_code
        for _ in range(2)
    ]
    assert codes == [202, 200]
    other = world.client.post("/hooks/gitlab", content=gitlab_push(after="e" * 40), headers=headers)
    assert other.status_code == 202
    assert rows(world) == 2


def test_a_delivery_is_persisted_before_the_backend_is_called(world: World) -> None:
    world.backend.fail_hooks = True
    r = world.client.post(
        "/hooks/gitlab",
        content=gitlab_push(),
        headers={"X-Gitlab-Token": SECRET, "X-Gitlab-Event-UUID": "u-7"},
    )
    # answered 2xx: GitLab will not send it again, so it must be in the database, pending
    assert r.status_code == 202
    assert r.json()["handed_over"] is False
    assert [d.delivery_id for d in pending_deliveries(world.db)] == ["u-7"]


def test_events_that_are_not_pushes_are_ignored_without_being_persisted(world: World) -> None:
    ping = json.dumps({"zen": "Keep it logically awesome."}).encode()
    r = world.client.post(
        "/hooks/github",
        content=ping,
        headers={
            "X-Hub-Signature-256": sign(ping),
            "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": "p",
        },
    )
    assert r.status_code == 202, r.text  # received (the secret matches), nothing to deploy
    mr = json.dumps({"object_kind": "merge_request"}).encode()
    r = world.client.post("/hooks/gitlab", content=mr, headers={"X-Gitlab-Token": SECRET})
    assert r.status_code == 202
    assert rows(world) == 0


def test_a_body_that_is_not_json_is_400(world: World) -> None:
    body = b"ref=refs/heads/main"
    r = world.client.post(
        "/hooks/generic", content=body, headers={"X-Conveyor-Signature": sign(body)}
    )
    assert r.status_code == 400
    assert rows(world) == 0


def test_without_a_secret_every_delivery_is_401(tmp_path: Path) -> None:
    backend, _, _ = make_backend()
    db = open_server_db(tmp_path)
    client = TestClient(create_app(backend, db, hook_secret=None))
    r = client.post("/hooks/gitlab", content=gitlab_push(), headers={"X-Gitlab-Token": ""})
    assert r.status_code == 401 and "no webhook secret" in r.json()["detail"]
    assert db.deliveries.count() == 0
