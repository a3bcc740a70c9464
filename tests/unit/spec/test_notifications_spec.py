"""The `notifications:` section of conveyor.yaml: what it accepts, its defaults, and errors
that name the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.model.notifications import COMMIT_TOPICS, OUTCOMES, NotificationsSpec
from conveyor.spec.context import Context
from conveyor.spec.notifications import notifications, topics
from conveyor.spec.yamlpos import load_yaml


def load(text: str) -> tuple[NotificationsSpec, list[str]]:
    doc = load_yaml(text, "conveyor.yaml", version="1.2")
    ctx = Context(doc=doc, file="conveyor.yaml", base=Path("/repo"), environ={})
    spec = notifications(ctx, ("notifications",), (doc.data or {}).get("notifications"))
    return spec, [e.render() for e in ctx.errors]


def test_every_channel_with_its_keys() -> None:
    spec, errors = load(
        """\
notifications:
  webhook:
    url_env: SLACK_WEBHOOK_URL
    events: [rollout.*, pipeline.failed]
    timeout: 3s
  email:
    host: smtp.example.com
    starttls: true
    from: conveyor@example.com
    to: [ops@example.com, dev@example.com]
    username_env: SMTP_USER
    password_env: SMTP_PASSWORD
  gitlab:
    url: https://gitlab.example.com
    project: group/app
    token_env: GITLAB_TOKEN
"""
    )
    assert errors == []
    assert spec.webhook is not None and spec.email is not None and spec.gitlab is not None
    assert spec.webhook.url is None and spec.webhook.url_env == "SLACK_WEBHOOK_URL"
    assert spec.webhook.timeout == 3.0
    assert spec.webhook.events == {
        "rollout.started",
        "rollout.succeeded",
        "rollout.failed",
        "rollout.rolled_back",
        "rollout.paused",
        "pipeline.failed",
    }
    assert spec.email.port == 587  # submission port when STARTTLS is on
    assert spec.email.to == ("ops@example.com", "dev@example.com")
    assert spec.email.sender == "conveyor@example.com"
    assert (spec.email.username_env, spec.email.password_env) == ("SMTP_USER", "SMTP_PASSWORD")
    assert spec.email.events == OUTCOMES
    assert spec.gitlab.project == "group/app"
    assert spec.gitlab.events == COMMIT_TOPICS


def test_defaults_and_an_absent_section() -> None:
    spec, errors = load(
        "notifications:\n  email: {host: mail, from: a@b.c, to: x@y.z}\n"
        "  gitlab: {url: 'http://127.0.0.1:8080', project: 42, token_env: T}\n"
    )
    assert errors == []
    assert spec.email is not None and spec.email.port == 25 and not spec.email.starttls
    assert spec.email.to == ("x@y.z",)
    assert spec.gitlab is not None and spec.gitlab.project == "42"
    assert spec.webhook is None
    empty, errors = load("environments: {}\n")
    assert errors == [] and empty.empty


def test_progress_topics_are_not_sent_to_people_by_default() -> None:
    spec, _ = load("notifications:\n  webhook: {url: 'https://hooks.example.com/x'}\n")
    assert spec.webhook is not None
    assert "rollout.failed" in spec.webhook.events
    assert "rollout.started" not in spec.webhook.events
    assert "drift.corrected" in spec.webhook.events


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "notifications:\n  webhook: {url: 'https://h/x', secret: s}\n",
            "conveyor.yaml:2: notifications.webhook.secret: unknown key (known: url, url_env, "
            "events, timeout)",
        ),
        (
            "notifications:\n  emial: {}\n",
            "conveyor.yaml:2: notifications.emial: unknown key (known: webhook, email, gitlab) "
            "(did you mean 'email'?)",
        ),
        (
            "notifications:\n  gitlab:\n    url: https://g\n    project: 1\n    token: glpat-x\n"
            "    token_env: T\n",
            "conveyor.yaml:5: notifications.gitlab.token: secrets do not belong in git: put the "
            "value in an environment variable and name it with 'token_env'",
        ),
        (
            "notifications:\n  webhook:\n    url: ftp://h/x\n",
            "conveyor.yaml:3: notifications.webhook.url: must be an http:// or https:// URL, "
            "got 'ftp://h/x'",
        ),
        (
            "notifications:\n  webhook: {url: 'https://h', url_env: U}\n",
            "conveyor.yaml:2: notifications.webhook.url_env: give 'url' or 'url_env', not both",
        ),
        (
            "notifications:\n  webhook: {events: []}\n",
            "conveyor.yaml:2: notifications.webhook: needs 'url' or 'url_env' (the variable "
            "holding the URL)",
        ),
        (
            "notifications:\n  webhook:\n    url_env: my-url\n",
            "conveyor.yaml:3: notifications.webhook.url_env: must name an environment variable "
            "(letters, digits, _), got 'my-url'",
        ),
        (
            "notifications:\n  webhook:\n    url: https://h\n    events:\n      - rollout.faild\n",
            "conveyor.yaml:5: notifications.webhook.events[0]: must be one of",
        ),
        (
            "notifications:\n  webhook:\n    url: https://h\n    events: [rolout.*]\n",
            "conveyor.yaml:4: notifications.webhook.events[0]: no events match 'rolout.*' "
            "(did you mean 'rollout.*'?)",
        ),
        (
            "notifications:\n  email:\n    host: m\n    from: a@b\n    to: [ops]\n",
            "conveyor.yaml:5: notifications.email.to[0]: not an email address: 'ops'",
        ),
        (
            "notifications:\n  email:\n    host: m\n    to: a@b\n",
            "conveyor.yaml:2: notifications.email.from: missing 'from'",
        ),
        (
            "notifications:\n  email:\n    host: m\n    from: a@b\n    to: c@d\n    port: 70000\n",
            "conveyor.yaml:6: notifications.email.port: must be a port between 1 and 65535, "
            "got 70000",
        ),
        (
            "notifications:\n  email:\n    host: m\n    from: a@b\n    to: c@d\n"
            "    username_env: U\n",
            "conveyor.yaml:2: notifications.email.password_env: a login needs both "
            "username_env and password_env",
        ),
        (
            "notifications:\n  gitlab:\n    url: https://g\n    project: a/b\n",
            "conveyor.yaml:2: notifications.gitlab.token_env: missing 'token_env' (the variable "
            "holding the access token)",
        ),
        (
            "notifications:\n  gitlab: [https://g]\n",
            "conveyor.yaml:2: notifications.gitlab: must be a mapping, got a list",
        ),
        (
            "notifications:\n  webhook:\n    url: https://h\n    timeout: 0s\n",
            "conveyor.yaml:4: notifications.webhook.timeout: must be longer than 0s",
        ),
    ],
)
def test_errors_name_file_line_and_field(text: str, expected: str) -> None:
    _, errors = load(text)
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected), errors[0]


def test_every_problem_is_reported_at_once() -> None:
    _, errors = load(
        "notifications:\n"
        "  webhook: {url: 'ftp://x'}\n"
        "  email: {host: m, from: nobody, to: []}\n"
        "  gitlab: {url: https://g, project: 1, token_env: 'bad name'}\n"
    )
    assert [e.split(": ")[0] + ": " + e.split(": ")[1] for e in errors] == [
        "conveyor.yaml:2: notifications.webhook.url",
        "conveyor.yaml:3: notifications.email.from",
        "conveyor.yaml:3: notifications.email.to",
        "conveyor.yaml:4: notifications.gitlab.token_env",
    ]


def test_topic_patterns() -> None:
    assert topics("pipeline.*") == {
        "pipeline.started",
        "pipeline.succeeded",
        "pipeline.failed",
        "pipeline.canceled",
    }
    assert len(topics("*")) == 22
    assert topics("check.*") == {"check.problem", "check.recovered"}
    assert topics("alert.*") == {"alert.firing", "alert.resolved"}
    assert topics("signature.rejected") == {"signature.rejected"}
    with pytest.raises(ValueError, match=r"did you mean 'drift\.corrected'"):
        topics("drift.corected")
