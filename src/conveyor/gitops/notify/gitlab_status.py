"""GitLab commit statuses through python-gitlab: a commit's page (and its merge request) shows
Conveyor's pipeline and each environment's deploy as external statuses.

One status per name: `conveyor/<env>` for what happened to the environment (rollouts,
rollbacks, promotion, a rejected signature) and `conveyor/<env>/pipeline` for the pipeline
Conveyor ran for it (`conveyor` and `conveyor/pipeline` when no environment is named). The call is
GitLab's documented `POST /projects/:id/statuses/:sha` (`state`, `name`, `target_url`,
`description`), authenticated with a token from an environment variable.

Tested against a small HTTP server that follows that documented API, not against a real GitLab
(none can run here): see docs/notifications.md.
"""

from __future__ import annotations

import gitlab
import gitlab.exceptions
import requests

from conveyor.errors import NotifyError
from conveyor.model.notifications import Notification

# GitLab keeps a status's description in a 255-character column.
DESCRIPTION_MAX = 255
_TRANSIENT = {408, 425, 429, 500, 502, 503, 504}


def status_name(n: Notification) -> str:
    """The status's name (GitLab's `name`, also called context) for `n` (pure)."""
    base = f"conveyor/{n.environment}" if n.environment else "conveyor"
    return f"{base}/pipeline" if n.topic.startswith("pipeline.") else base


def status_body(n: Notification) -> dict[str, str]:
    """The POST parameters for `n` (pure)."""
    body = {
        "state": n.state,
        "name": status_name(n),
        "description": _clip(n.title, DESCRIPTION_MAX),
    }
    if n.url:
        body["target_url"] = n.url
    return body


class GitLabStatusNotifier:
    def __init__(self, url: str, project: str, token: str, timeout: float = 10.0) -> None:
        self._url = url.rstrip("/")
        self._project = project
        # No retries inside python-gitlab: the channel retries with its own bounded backoff,
        # and a 429's Retry-After must not stall the channel's thread for minutes.
        self._gl = gitlab.Gitlab(
            self._url, private_token=token, timeout=timeout, retry_transient_errors=False
        )

    @property
    def name(self) -> str:
        return f"gitlab {self._url} project {self._project}"

    def send(self, notification: Notification) -> None:
        """Set the commit's status. A notification about no commit (files deployed from a
        directory) has nothing to attach to and is skipped."""
        if not notification.commit:
            return
        body = status_body(notification)
        try:
            project = self._gl.projects.get(self._project, lazy=True)
            commit = project.commits.get(notification.commit, lazy=True)
            commit.statuses.create(body, obey_rate_limit=False, max_retries=0)
        except gitlab.exceptions.GitlabError as e:
            # GitLab refuses to set the state a status already has: nothing left to do.
            if e.response_code == 400 and "Cannot transition status" in str(e.error_message):
                return
            raise _error(self.name, e) from None
        except requests.RequestException as e:
            raise NotifyError(
                f"{self.name}: cannot reach GitLab ({type(e).__name__})", True
            ) from None

    def check(self) -> None:
        """Read the project once (`GET /projects/:id`): the token works and names a project
        it may see. For a server to say so at start rather than at the first deploy."""
        try:
            self._gl.projects.get(self._project)
        except gitlab.exceptions.GitlabError as e:
            raise _error(self.name, e) from None
        except requests.RequestException as e:
            raise NotifyError(
                f"{self.name}: cannot reach GitLab ({type(e).__name__})", True
            ) from None


def _error(name: str, e: gitlab.exceptions.GitlabError) -> NotifyError:
    code = e.response_code
    said = str(e.error_message or "").strip()
    hint = {
        401: " (the token is wrong, expired or revoked)",
        403: " (the token's user may not set statuses: it needs the Developer role and `api` "
        "scope)",
        404: " (no such project, or the token cannot see it)",
    }.get(code or 0, "")
    return NotifyError(
        f"{name}: GitLab answered {code}: {said}{hint}", retry=code is None or code in _TRANSIENT
    )


def _unreachable(name: str, e: requests.RequestException) -> NotifyError:
    # The exception's kind only: requests' messages carry the whole URL.
    return NotifyError(f"{name}: cannot reach GitLab ({type(e).__name__})", retry=True)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
