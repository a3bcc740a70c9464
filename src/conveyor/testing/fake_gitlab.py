"""A small HTTP server answering the part of GitLab's REST API (v4) that commit statuses use,
as GitLab documents it, on a loopback port. No GitLab can run here; this stands in for one in
the tests of the GitLab notifier (and of whatever wires it).

- `GET /api/v4/projects/:id` — `:id` is the numeric id or the URL-encoded path (`group%2Fapp`).
- `POST /api/v4/projects/:id/statuses/:sha` — `state` (required: pending, running, success,
  failed, canceled), `name` (default `default`), `ref`, `target_url`, `description`,
  `coverage`; JSON, form or query parameters. 201 with the status.
- `GET /api/v4/projects/:id/repository/commits/:sha/statuses` — the commit's statuses.

Authentication: `PRIVATE-TOKEN: <token>` or `Authorization: Bearer <token>`; otherwise 401
`{"message": "401 Unauthorized"}`. An unknown project is 404 `{"message": "404 Project Not
Found"}`, an unknown commit 404 `{"message": "404 Commit Not Found"}`, a bad state 400
`{"error": "state does not have a valid value"}`. Posting the state a status (same name and
ref) already has while it is not finished is refused as GitLab refuses it, 400 `{"message":
"Cannot transition status via :run from :running ..."}`; after a finished state a new status
is created. `fail_next` makes the next requests answer a given status (a GitLab outage).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

STATES = ("pending", "running", "success", "failed", "canceled")
FINISHED = ("success", "failed", "canceled")
# GitLab's state machine names each transition by its event.
_EVENTS = {
    "pending": "enqueue",
    "running": "run",
    "success": "succeed",
    "failed": "drop",
    "canceled": "cancel",
}


@dataclass
class Project:
    id: int
    path: str  # group/app
    commits: set[str] = field(default_factory=set)


@dataclass
class Request:
    method: str
    path: str  # as sent, still URL-encoded
    headers: dict[str, str]
    params: dict[str, str]


@dataclass
class FakeGitLab:
    token: str
    projects: list[Project] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # statuses to answer, in order
    url: str = ""
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_project(self, pid: int, path: str, *commits: str) -> Project:
        p = Project(pid, path, set(commits))
        self.projects.append(p)
        return p

    def of(self, sha: str) -> list[dict[str, Any]]:
        with self._lock:
            return [s for s in self.statuses if s["sha"] == sha]

    # --- the API ---------------------------------------------------------------------------

    def handle(self, req: Request) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(req)
            if self.fail_next:
                code = self.fail_next.pop(0)
                return code, {"message": f"{code} injected"}
        if not self._authorized(req.headers):
            return 401, {"message": "401 Unauthorized"}
        parts = [unquote(p) for p in urlsplit(req.path).path.split("/") if p]
        if parts[:3] != ["api", "v4", "projects"] or len(parts) < 4:
            return 404, {"error": "404 Not Found"}
        project = self._project(parts[3])
        if project is None:
            return 404, {"message": "404 Project Not Found"}
        rest = parts[4:]
        if req.method == "GET" and not rest:
            return 200, self._project_json(project)
        if req.method == "POST" and len(rest) == 2 and rest[0] == "statuses":
            return self._post_status(project, rest[1], req.params)
        if (
            req.method == "GET"
            and len(rest) == 4
            and rest[:2] == ["repository", "commits"]
            and rest[3] == "statuses"
        ):
            if rest[2] not in project.commits:
                return 404, {"message": "404 Commit Not Found"}
            return 200, [s for s in self.of(rest[2]) if s["project_id"] == project.id]
        return 404, {"error": "404 Not Found"}

    def _authorized(self, headers: dict[str, str]) -> bool:
        given = headers.get("private-token") or ""
        bearer = headers.get("authorization") or ""
        if bearer.lower().startswith("bearer "):
            given = given or bearer[7:]
        return given == self.token

    def _project(self, ref: str) -> Project | None:
        for p in self.projects:
            if ref == str(p.id) or ref == p.path:
                return p
        return None

    def _project_json(self, p: Project) -> dict[str, Any]:
        name = p.path.rsplit("/", 1)[-1]
        return {
            "id": p.id,
            "name": name,
            "path": name,
            "path_with_namespace": p.path,
            "default_branch": "main",
            "web_url": f"{self.url}/{p.path}",
        }

    def _post_status(self, p: Project, sha: str, params: dict[str, str]) -> tuple[int, Any]:
        state = params.get("state")
        if state is None:
            return 400, {"error": "state is missing"}
        if state not in STATES:
            return 400, {"error": "state does not have a valid value"}
        if sha not in p.commits:
            return 404, {"message": "404 Commit Not Found"}
        name = params.get("name") or params.get("context") or "default"
        ref = params.get("ref") or "main"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with self._lock:
            current = next(
                (
                    s
                    for s in reversed(self.statuses)
                    if (s["project_id"], s["sha"], s["name"], s["ref"]) == (p.id, sha, name, ref)
                ),
                None,
            )
            if current is not None and current["status"] not in FINISHED:
                if current["status"] == state:
                    event = _EVENTS[state]
                    return 400, {
                        "message": f"Cannot transition status via :{event} from :{state} "
                        f'(Reason(s): Status cannot transition via "{event}")'
                    }
                current.update(
                    status=state,
                    description=params.get("description", current["description"]),
                    target_url=params.get("target_url", current["target_url"]),
                    finished_at=now if state in FINISHED else None,
                )
                return 201, dict(current)
            status = {
                "id": next(self._ids),
                "project_id": p.id,
                "sha": sha,
                "ref": ref,
                "status": state,
                "name": name,
                "target_url": params.get("target_url"),
                "description": params.get("description"),
                "coverage": params.get("coverage"),
                "created_at": now,
                "started_at": now if state == "running" else None,
                "finished_at": now if state in FINISHED else None,
                "allow_failure": False,
                "author": {"id": 1, "username": "conveyor", "name": "Conveyor"},
            }
            self.statuses.append(status)
            return 201, dict(status)


def _handler(api: FakeGitLab) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            params = dict(parse_qsl(urlsplit(self.path).query))
            kind = self.headers.get("Content-Type") or ""
            if body and kind.startswith("application/json"):
                params |= {k: str(v) for k, v in json.loads(body).items() if v is not None}
            elif body:
                params |= dict(parse_qsl(body.decode()))
            headers = {k.lower(): v for k, v in self.headers.items()}
            code, payload = api.handle(Request(method, self.path, headers, params))
            out = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:  # quiet under pytest
            return

    return Handler


@contextmanager
def serve(api: FakeGitLab) -> Iterator[FakeGitLab]:
    """Serve `api` on a free 127.0.0.1 port (its `url` is set) until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll interval: shutdown() returns within it.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="fake-gitlab", daemon=True
    )
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
