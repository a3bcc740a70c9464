"""From conveyor.yaml to three real receivers: the `notifications:` section parsed, the
dispatcher built with secrets from the environment, subscribed to a project's timeline, and a
deploy (the real engine on the in-memory runtime) told to a webhook, a mailbox and GitLab."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

from conveyor.gitops.notify import Delivery, build_dispatcher
from conveyor.spec.context import Context
from conveyor.spec.notifications import notifications
from conveyor.spec.yamlpos import load_yaml
from conveyor.testing.fake_gitlab import FakeGitLab
from tests.integration.notify.conftest import SHA, TOKEN, Mailbox, Receiver
from tests.unit.gitops.engine_world import World

GUARD = 30.0

CONFIG = """\
environments:
  production: {{branch: main}}
notifications:
  webhook:
    url_env: CHAT_WEBHOOK
  email:
    host: 127.0.0.1
    port: {smtp_port}
    from: conveyor@example.com
    to: ops@example.com
    events: [rollout.rolled_back]
  gitlab:
    url: {gitlab_url}
    project: group/app
    token_env: GITLAB_TOKEN
"""


def test_a_deploy_and_a_rolled_back_one_reach_everyone_who_asked(
    tmp_path: Path, receiver: Receiver, smtp: Mailbox, gitlab_api: FakeGitLab
) -> None:
    text = CONFIG.format(smtp_port=smtp.port, gitlab_url=gitlab_api.url)
    doc = load_yaml(text, "conveyor.yaml", version="1.2")
    ctx = Context(doc=doc, file="conveyor.yaml", base=tmp_path, environ={})
    spec = notifications(ctx, ("notifications",), doc.data["notifications"])
    assert ctx.errors == []
    environ = {"CHAT_WEBHOOK": receiver.url, "GITLAB_TOKEN": TOKEN}
    deliveries: list[Delivery] = []
    dispatcher = build_dispatcher(spec, environ, on_delivery=deliveries.append)

    world = World(tmp_path, environment="production")
    world.timeline.subscribe(dispatcher)
    assert world.deploy("1", commit=SHA).status == "succeeded"
    world.bad.add("2")
    assert world.deploy("2", commit="f" * 40).status == "rolled_back"
    assert dispatcher.close(GUARD)

    # chat: every outcome, no progress
    assert [p["json"]["text"].split("\n")[0] for p in receiver.posts] == [
        "*production: release 1 is live*",
        "*production: release 2 failed and was rolled back to release 1*",
    ]
    # mail: only what was asked for
    (mail,) = smtp.messages
    subject = email.message_from_bytes(mail.original_content or b"", policy=policy.default)
    # a long subject is folded onto its own line: unfolded, it keeps the fold's space
    assert subject["Subject"].strip() == (
        "[conveyor] production: release 2 failed and was rolled back to release 1"
    )
    # GitLab: the first commit's status went running -> success; the second commit is
    # unknown to this GitLab, so its statuses were refused (and not retried)
    assert [(s["name"], s["status"]) for s in gitlab_api.of(SHA)] == [
        ("conveyor/production", "success")
    ]
    refused = [d for d in deliveries if d.channel.startswith("gitlab") and not d.ok]
    assert refused and all(d.attempts == 1 and "404" in (d.error or "") for d in refused)
    assert all(d.ok for d in deliveries if not d.channel.startswith("gitlab"))
