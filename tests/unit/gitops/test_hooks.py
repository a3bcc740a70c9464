"""Webhook deliveries: the secret first (401 and nothing read), then the payload (400), then
whether the event is one we deploy on (202 ignored). Payloads follow the shapes GitLab's and
GitHub's webhook documentation give, written here by hand."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import pytest

from conveyor.errors import HookRejected
from conveyor.gitops.hooks import (
    MAX_BODY,
    HookDelivery,
    parse_generic,
    parse_github,
    parse_gitlab,
    same_repository,
    sign,
)

SECRET = "s3cret-for-tests"
BEFORE = "95790bf891e76fee5e1747ab589903a6a1f80f22"
AFTER = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
Parser = Callable[[Mapping[str, str], bytes, str], HookDelivery]


def body(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def gitlab_push(ref: str = "refs/heads/main", kind: str = "push") -> dict[str, Any]:
    return {
        "object_kind": kind,
        "event_name": kind,
        "before": BEFORE,
        "after": AFTER,
        "ref": ref,
        "checkout_sha": AFTER,
        "user_username": "dev",
        "project_id": 7,
        "project": {
            "name": "shop",
            "web_url": "https://gitlab.example.test/team/shop",
            "git_ssh_url": "git@gitlab.example.test:team/shop.git",
            "git_http_url": "https://gitlab.example.test/team/shop.git",
            "path_with_namespace": "team/shop",
            "default_branch": "main",
        },
        "commits": [{"id": AFTER, "message": "Change the banner\n"}],
        "total_commits_count": 1,
        "repository": {
            "name": "shop",
            "url": "git@gitlab.example.test:team/shop.git",
            "git_http_url": "https://gitlab.example.test/team/shop.git",
            "git_ssh_url": "git@gitlab.example.test:team/shop.git",
        },
    }


def gitlab_headers(token: str = SECRET, event: str = "Push Hook") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": token,
        "X-Gitlab-Event-UUID": "4b8ad2f5-5d0a-4c31-9b59-4c1e2f8e7a10",
    }


def github_push(ref: str = "refs/heads/main") -> dict[str, Any]:
    return {
        "ref": ref,
        "before": BEFORE,
        "after": AFTER,
        "created": False,
        "deleted": False,
        "forced": False,
        "repository": {
            "full_name": "team/shop",
            "html_url": "https://github.com/team/shop",
            "clone_url": "https://github.com/team/shop.git",
            "ssh_url": "git@github.com:team/shop.git",
            "git_url": "git://github.com/team/shop.git",
        },
        "pusher": {"name": "dev"},
        "head_commit": {"id": AFTER, "message": "Change the banner"},
    }


def github_headers(raw: bytes, event: str = "push", secret: str = SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature-256": sign(raw, secret),
    }


def generic(raw: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Conveyor-Signature": sign(raw, secret), "X-Conveyor-Delivery": "deploy-42"}


# --- GitLab --------------------------------------------------------------------------------


def test_gitlab_push_hook_reads_ref_commits_and_clone_urls() -> None:
    raw = body(gitlab_push())

    delivery = parse_gitlab(gitlab_headers(), raw, SECRET)

    assert delivery.source == "gitlab"
    assert (delivery.event, delivery.ref, delivery.branch, delivery.tag) == (
        "push",
        "refs/heads/main",
        "main",
        None,
    )
    assert (delivery.after_sha, delivery.before_sha) == (AFTER, BEFORE)
    assert delivery.repository_urls == (
        "https://gitlab.example.test/team/shop.git",
        "git@gitlab.example.test:team/shop.git",
    )
    assert delivery.delivery_id == "4b8ad2f5-5d0a-4c31-9b59-4c1e2f8e7a10"
    assert delivery.key == "gitlab:4b8ad2f5-5d0a-4c31-9b59-4c1e2f8e7a10"
    assert not delivery.deleted


def test_gitlab_tag_push_hook() -> None:
    raw = body(gitlab_push("refs/tags/v1.4.0", kind="tag_push"))

    delivery = parse_gitlab(gitlab_headers(event="Tag Push Hook"), raw, SECRET)

    assert (delivery.event, delivery.tag, delivery.branch) == ("tag_push", "v1.4.0", None)


def test_gitlab_idempotency_key_wins_over_the_event_uuid() -> None:
    headers = {**gitlab_headers(), "Idempotency-Key": "retry-stable-key"}

    assert parse_gitlab(headers, body(gitlab_push()), SECRET).delivery_id == "retry-stable-key"


@pytest.mark.parametrize(
    ("token", "reason"),
    [("", "missing X-Gitlab-Token header"), ("s3cret-for-test", "wrong X-Gitlab-Token")],
)
def test_gitlab_wrong_or_missing_token_is_401(token: str, reason: str) -> None:
    headers = gitlab_headers(token=token)

    with pytest.raises(HookRejected) as caught:
        parse_gitlab(headers, b"not even json", SECRET)

    assert (caught.value.status, caught.value.reason) == (401, reason)


def test_gitlab_events_we_do_not_deploy_on_are_ignored_with_202() -> None:
    raw = body({"object_kind": "merge_request", "object_attributes": {"iid": 3}})

    with pytest.raises(HookRejected) as by_header:
        parse_gitlab(gitlab_headers(event="Merge Request Hook"), raw, SECRET)
    with pytest.raises(HookRejected) as by_kind:
        parse_gitlab(gitlab_headers(event="System Hook"), raw, SECRET)

    assert by_header.value.status == 202
    assert "Merge Request Hook" in by_header.value.reason
    assert by_kind.value.status == 202
    assert '"merge_request"' in by_kind.value.reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"after": "da15608"}, "'after' must be a full commit id (hex), got \"da15608\""),
        ({"after": None}, "'after' must be a full commit id (hex), got null"),
        ({"ref": "main"}, "'ref' must be refs/heads/<branch> or refs/tags/<tag>, got \"main\""),
        ({"before": 5}, "'before' must be a full commit id (hex), got 5"),
    ],
)
def test_gitlab_malformed_payload_is_400(change: dict[str, Any], reason: str) -> None:
    raw = body({**gitlab_push(), **change})

    with pytest.raises(HookRejected) as caught:
        parse_gitlab(gitlab_headers(), raw, SECRET)

    assert (caught.value.status, caught.value.reason) == (400, reason)


def test_a_branch_deletion_is_a_delivery_with_zero_after() -> None:
    raw = body({**gitlab_push("refs/heads/feature"), "after": "0" * 40})

    delivery = parse_gitlab(gitlab_headers(), raw, SECRET)

    assert delivery.deleted and delivery.branch == "feature"


# --- GitHub --------------------------------------------------------------------------------


def test_github_push_is_verified_over_the_raw_body() -> None:
    raw = body(github_push())

    delivery = parse_github(github_headers(raw), raw, SECRET)

    assert (delivery.source, delivery.event, delivery.branch) == ("github", "push", "main")
    assert delivery.delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert delivery.after_sha == AFTER
    assert "git@github.com:team/shop.git" in delivery.repository_urls


def test_github_tag_push_is_a_push_event_on_a_tag_ref() -> None:
    raw = body(github_push("refs/tags/v2.0.0"))

    delivery = parse_github(github_headers(raw), raw, SECRET)

    assert (delivery.event, delivery.tag) == ("tag_push", "v2.0.0")


def test_github_form_encoded_delivery_is_signed_over_the_form_body() -> None:
    raw = urlencode({"payload": json.dumps(github_push())}).encode()
    headers = {**github_headers(raw), "Content-Type": "application/x-www-form-urlencoded"}

    assert parse_github(headers, raw, SECRET).after_sha == AFTER


def test_github_tampered_body_is_401() -> None:
    raw = body(github_push())
    headers = github_headers(raw)
    tampered = raw.replace(AFTER.encode(), BEFORE.encode())

    with pytest.raises(HookRejected) as caught:
        parse_github(headers, tampered, SECRET)

    assert caught.value.status == 401
    assert caught.value.reason == "wrong X-Hub-Signature-256: the body or the secret differs"


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (None, "missing X-Hub-Signature-256 header"),
        ("sha1=" + "0" * 40, "malformed X-Hub-Signature-256 (expected sha256=<hex>)"),
        ("sha256=" + "0" * 64, "wrong X-Hub-Signature-256: the body or the secret differs"),
    ],
)
def test_github_missing_malformed_or_wrong_signature_is_401(
    signature: str | None, reason: str
) -> None:
    raw = body(github_push())
    headers = {k: v for k, v in github_headers(raw).items() if k != "X-Hub-Signature-256"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature

    with pytest.raises(HookRejected) as caught:
        parse_github(headers, raw, SECRET)

    assert (caught.value.status, caught.value.reason) == (401, reason)


def test_github_signature_made_with_another_secret_is_401() -> None:
    raw = body(github_push())

    with pytest.raises(HookRejected) as caught:
        parse_github(github_headers(raw, secret="other"), raw, SECRET)

    assert caught.value.status == 401


def test_github_ping_and_other_events_are_202_once_authenticated() -> None:
    raw = body({"zen": "Keep it logically awesome.", "hook_id": 1})

    with pytest.raises(HookRejected) as ping:
        parse_github(github_headers(raw, event="ping"), raw, SECRET)
    with pytest.raises(HookRejected) as issue:
        parse_github(github_headers(raw, event="issues"), raw, SECRET)
    with pytest.raises(HookRejected) as unsigned_ping:
        parse_github({"X-GitHub-Event": "ping"}, raw, SECRET)

    assert (ping.value.status, issue.value.status) == (202, 202)
    assert unsigned_ping.value.status == 401


# --- generic -------------------------------------------------------------------------------


def test_generic_hook_with_our_signature() -> None:
    raw = body({"ref": "refs/heads/main", "after": AFTER, "repository": "ssh://git@host/app.git"})

    delivery = parse_generic(generic(raw), raw, SECRET)

    assert (delivery.source, delivery.branch, delivery.after_sha) == ("generic", "main", AFTER)
    assert delivery.before_sha is None
    assert delivery.delivery_id == "deploy-42"
    assert delivery.repository_urls == ("ssh://git@host/app.git",)


def test_generic_hook_without_delivery_header_is_keyed_by_its_body() -> None:
    raw = body({"ref": "refs/heads/main", "after": AFTER})
    headers = {"X-Conveyor-Signature": sign(raw, SECRET)}

    first = parse_generic(headers, raw, SECRET)
    replay = parse_generic(headers, raw, SECRET)
    other_raw = body({"ref": "refs/heads/main", "after": BEFORE})
    other = parse_generic({"X-Conveyor-Signature": sign(other_raw, SECRET)}, other_raw, SECRET)

    assert first.key == replay.key == f"generic:sha256:{first.body_sha256}"
    assert other.key != first.key


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[1, 2]", "body must be a JSON object"),
        (b"{not json", "body is not JSON"),
        (b'{"ref": "refs/heads/main"}', "'after' must be a full commit id (hex), got null"),
        (
            body({"ref": "refs/heads/main", "after": AFTER, "repository": ["a"]}),
            "'repository' must be the repository's URL (a string)",
        ),
    ],
)
def test_generic_malformed_payload_is_400(data: bytes, reason: str) -> None:
    with pytest.raises(HookRejected) as caught:
        parse_generic(generic(data), data, SECRET)

    assert (caught.value.status, caught.value.reason) == (400, reason)


# --- all senders ---------------------------------------------------------------------------


def _signed(parser: Parser, raw: bytes, secret: str) -> dict[str, str]:
    if parser is parse_gitlab:
        return gitlab_headers(token=secret)
    if parser is parse_github:
        return github_headers(raw, secret=secret)
    return generic(raw, secret)


@pytest.mark.parametrize("parser", [parse_gitlab, parse_github, parse_generic])
def test_no_configured_secret_refuses_everything(parser: Parser) -> None:
    raw = body({**gitlab_push()})

    with pytest.raises(HookRejected) as caught:
        parser(_signed(parser, raw, ""), raw, "")

    assert caught.value.status == 401
    assert "no webhook secret is configured" in caught.value.reason


@pytest.mark.parametrize("parser", [parse_gitlab, parse_github, parse_generic])
def test_replayed_delivery_has_the_same_key(parser: Parser) -> None:
    payloads = {
        parse_gitlab: gitlab_push(),
        parse_github: github_push(),
        parse_generic: {"ref": "refs/heads/main", "after": AFTER},
    }
    raw = body(payloads[parser])
    headers = _signed(parser, raw, SECRET)

    assert parser(headers, raw, SECRET).key == parser(dict(headers), raw, SECRET).key


@pytest.mark.parametrize("parser", [parse_gitlab, parse_github, parse_generic])
def test_oversized_body_is_413_before_anything_else(parser: Parser) -> None:
    raw = b" " * (MAX_BODY + 1)

    with pytest.raises(HookRejected) as caught:
        parser({}, raw, SECRET)

    assert caught.value.status == 413


def test_header_names_are_case_insensitive() -> None:
    raw = body(github_push())
    headers = {k.lower(): v for k, v in github_headers(raw).items()}

    assert parse_github(headers, raw, SECRET).branch == "main"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("git@gitlab.example.test:team/shop.git", "https://gitlab.example.test/team/shop", True),
        ("ssh://git@Host.test:2222/team/shop.git", "https://host.test/team/shop.git/", True),
        ("git://host.test/team/shop.git", "https://host.test/team/shop", True),
        ("https://host.test/team/shop.git", "https://host.test/team/shop-api.git", False),
        ("https://host.test/team/shop.git", "https://other.test/team/shop.git", False),
    ],
)
def test_same_repository_compares_clone_urls(a: str, b: str, same: bool) -> None:
    assert same_repository(a, b) is same
