"""The dashboard in process: sign-in, sessions, CSRF, roles, the pages and the actions, over
the in-memory backend (the browser tests run the real server)."""

from __future__ import annotations

import re

from conveyor.model.events import Event, EventKind, Subject
from conveyor.model.web_session import SESSION_COOKIE, SIGNIN_COOKIE
from conveyor.server.dashboard.live import changed_message
from tests.unit.server.dashboard.conftest import Dash, csrf


def test_every_page_but_sign_in_redirects_without_a_session(dash: Dash) -> None:
    for path in ("/", "/environments/staging", "/environments/staging/actions/suspend",
                 "/fragments/overview", "/live"):  # fmt: skip
        r = dash.client.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/signin"), path
    r = dash.client.get("/environments/staging", follow_redirects=False)
    assert r.headers["location"] == "/signin?next=/environments/staging"
    # htmx's fragment requests are told to go there as a whole page
    r = dash.client.get(
        "/fragments/environments/qa",
        headers={"HX-Request": "true", "HX-Current-URL": "http://127.0.0.1/environments/qa"},
    )
    assert r.headers["hx-redirect"] == "/signin?next=/environments/qa"
    assert dash.client.get("/signin").status_code == 200
    assert dash.client.get("/static/dashboard.css").status_code == 200


def test_sign_in_sets_a_strict_httponly_session_cookie(dash: Dash) -> None:
    form = dash.client.get("/signin")
    assert "SameSite=strict" in form.headers["set-cookie"]
    r = dash.client.post(
        "/signin",
        data={
            "token": dash.tokens["viewer"],
            "csrf_token": csrf(form.text),
            "next": "/environments/qa",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/environments/qa"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # served over http here; https gets Secure
    assert dash.tokens["viewer"] not in cookie
    page = dash.client.get("/")
    assert page.status_code == 200 and "viewer-token" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_sign_in_over_https_marks_the_cookie_secure(dash: Dash) -> None:
    form = dash.client.get("https://127.0.0.1/signin")
    r = dash.client.post(
        "https://127.0.0.1/signin",
        data={"token": dash.tokens["viewer"], "csrf_token": csrf(form.text)},
        follow_redirects=False,
    )
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "Secure" in cookie


def test_sign_in_refuses_bad_tokens_and_forms_without_their_csrf(dash: Dash) -> None:
    form = dash.client.get("/signin")
    bad = dash.client.post("/signin", data={"token": "cvr_nope", "csrf_token": csrf(form.text)})
    assert bad.status_code == 401 and "not valid" in bad.text
    form = dash.client.get("/signin")
    forged = dash.client.post("/signin", data={"token": dash.tokens["viewer"]})
    assert forged.status_code == 403
    dash.client.cookies.delete(SIGNIN_COOKIE)
    no_cookie = dash.client.post(
        "/signin", data={"token": dash.tokens["viewer"], "csrf_token": csrf(form.text)}
    )
    assert no_cookie.status_code == 403
    assert SESSION_COOKIE not in dash.client.cookies


def test_next_never_leaves_the_server(dash: Dash) -> None:
    form = dash.client.get("/signin")
    r = dash.client.post(
        "/signin",
        data={
            "token": dash.tokens["viewer"],
            "csrf_token": csrf(form.text),
            "next": "//evil.test/",
        },
        follow_redirects=False,
    )
    assert r.headers["location"] == "/"


def test_overview_shows_every_environment(dash: Dash) -> None:
    dash.sign_in("viewer")
    html = dash.client.get("/").text
    for env in ("staging", "qa", "production"):
        assert f'href="/environments/{env}"' in html
    assert "#2" in html  # staging's release
    assert "Faster checkout" in html and "by Dev One" in html  # commit title and author
    assert "in sync" in html
    # the live region listens to the stream from the newest event on
    last = dash.backend.last_event_id()
    assert f'sse-connect="/live?after={last}"' in html
    fragment = dash.client.get("/fragments/overview").text
    assert "<html" not in fragment and 'id="env-staging"' in fragment


def test_a_viewer_sees_no_action_and_its_forged_posts_are_403(dash: Dash) -> None:
    dash.sign_in("viewer")
    page = dash.client.get("/environments/staging").text
    assert "/actions/" not in page and "Actions" not in page
    token = csrf(page)  # the sign-out form's: a valid CSRF token of this session
    assert dash.client.get("/environments/staging/actions/rollback").status_code == 403
    r = dash.client.post("/environments/staging/actions/rollback", data={"csrf_token": token})
    assert r.status_code == 403 and "deployer role" in r.text
    assert dash.backend.envs["staging"].current == 2  # nothing moved
    denied = dash.db.audit.latest(1, None)[0]
    assert (denied.action, denied.actor, denied.outcome) == ("rollback", "viewer-token", "denied")


def test_an_action_without_the_csrf_token_is_403(dash: Dash) -> None:
    dash.sign_in("deployer")
    before = len(dash.db.audit.latest(100, None))
    r = dash.client.post("/environments/staging/actions/suspend", data={})
    assert r.status_code == 403 and "CSRF" in r.text
    r = dash.client.post("/environments/staging/actions/suspend", data={"csrf_token": "x" * 64})
    assert r.status_code == 403
    assert not dash.backend.envs["staging"].suspended
    assert len(dash.db.audit.latest(100, None)) == before  # refused before the action's code


def test_a_deployer_rolls_back_through_the_confirm_step(dash: Dash) -> None:
    dash.sign_in("deployer")
    page = dash.client.get("/environments/staging").text
    assert 'href="/environments/staging/actions/rollback?release=1"' in page
    confirm = dash.client.get("/environments/staging/actions/rollback?release=1")
    assert confirm.status_code == 200 and "Roll staging back to release #1?" in confirm.text
    assert dash.backend.envs["staging"].current == 2  # the confirm page changes nothing
    r = dash.client.post(
        "/environments/staging/actions/rollback",
        data={"csrf_token": csrf(confirm.text), "release": "1"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/environments/staging"
    assert dash.backend.envs["staging"].current == 1
    done = dash.db.audit.latest(1, None)[0]
    assert (done.action, done.actor, done.outcome, done.detail) == (
        "rollback",
        "deployer-token",
        "ok",
        {"to_release": 1},
    )
    shown = dash.client.get("/environments/staging").text
    assert 'class="notice notice-ok"' in shown  # the outcome, once
    assert 'class="notice notice-ok"' not in dash.client.get("/environments/staging").text


def test_a_refused_action_says_why(dash: Dash) -> None:
    dash.sign_in("deployer")
    token = dash.csrf("/environments/production")
    r = dash.client.post(
        "/environments/production/actions/promote", data={"csrf_token": token, "from": "staging"}
    )
    assert r.status_code == 200 and "promote refused" in r.text and "approv" in r.text
    assert dash.db.audit.latest(1, None)[0].outcome == "refused"


def test_unknown_environment_and_action_are_404(dash: Dash) -> None:
    dash.sign_in("deployer")
    assert dash.client.get("/environments/nope").status_code == 404
    assert dash.client.get("/environments/staging/actions/explode").status_code == 404
    assert dash.client.get("/environments/staging/actions/rollback?release=x").status_code == 400


def test_sign_out_ends_the_session(dash: Dash) -> None:
    dash.sign_in("viewer")
    sid = dash.client.cookies[SESSION_COOKIE]
    token = dash.csrf()
    assert dash.client.post("/signout", data={}).status_code == 403  # CSRF here too
    r = dash.client.post("/signout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin"
    dash.client.cookies.set(SESSION_COOKIE, sid)  # a copy of the old cookie opens nothing
    assert dash.client.get("/", follow_redirects=False).status_code == 303


def test_revoking_the_token_ends_its_sessions(dash: Dash) -> None:
    dash.sign_in("admin")
    assert dash.client.get("/", follow_redirects=False).status_code == 200
    dash.client.delete(
        "/api/v1/tokens/admin-token", headers={"Authorization": f"Bearer {dash.tokens['admin']}"}
    )
    assert dash.client.get("/", follow_redirects=False).status_code == 303


def _event(i: int, kind: EventKind, env: str | None = "staging") -> Event:
    subject = Subject(project="shop", environment=env)
    return Event(id=i, kind=kind, message="m", ts=0.0, subject=subject)


def test_live_messages_say_changed_once_per_batch() -> None:
    assert changed_message([]) is None
    quiet = changed_message([_event(5, "job.output")])
    assert quiet == "id: 5\n\n"  # moves the position on, triggers nothing
    said = changed_message(
        [_event(6, "rollout.started"), _event(7, "job.output"), _event(8, "release.created", "qa")]
    )
    assert said is not None
    assert said.startswith("event: changed\nid: 8\n")
    data = re.search(r"data: (.*)\n", said)
    assert data is not None
    assert '"environments": ["qa", "staging"]' in data.group(1)


def test_drift_is_reused_until_an_event_is_recorded(dash: Dash) -> None:
    from conveyor.server.api import state_of
    from conveyor.server.dashboard.cards import DriftCache

    state = state_of(dash.client.app)  # type: ignore[arg-type]
    cache = DriftCache(seconds=3600)
    first = cache.get(state, "staging")
    assert cache.get(state, "staging") is first  # nothing happened: the same answer
    dash.backend.add_pipeline("staging", "c3", "success", {})  # records an event
    assert cache.get(state, "staging") is not first
    expiring = DriftCache(seconds=0)
    kept = expiring.get(state, "staging")
    assert expiring.get(state, "staging") is not kept  # past its time: asked again


def test_the_environment_page_lists_its_latest_backups(dash: Dash) -> None:
    dash.sign_in("viewer")
    assert "No backup yet" in dash.client.get("/environments/staging").text
    b = dash.backend
    b._emit("backup.created", "backed up db", "staging", service="db")
    b.event_log[-1] = b.event_log[-1].model_copy(update={"data": {"id": "20261206T031500Z-a1"}})
    b._emit("backup.failed", "backup of files failed: S3 refused", "staging", service="files")
    b._emit("backup.created", "backed up db", "production", service="db")  # not this one's
    page = dash.client.get("/environments/staging").text
    section = page[page.index('id="backups-h"') :]
    section = section[: section.index("</section>")]
    assert "20261206T031500Z-a1" in section
    assert section.index("files") < section.index("20261206T031500Z-a1")  # newest first
    assert "badge-bad" in section and "backup.failed" in section
    assert section.count("<tr>") == 3  # a header, two rows: production's is on its own page
