"""Dashboard sessions in a real server database: opened with an API token, found by the
cookie's id only (stored hashed), ended by sign-out, idleness, age and token revocation."""

from __future__ import annotations

from pathlib import Path

from conveyor.app.access import create_token, open_server_db, revoke_token
from conveyor.app.web_sessions import close_session, open_session, resume_session
from conveyor.model.web_session import IDLE_SECONDS, TOUCH_EVERY_SECONDS, session_hash


def test_sign_in_resume_sign_out(tmp_path: Path) -> None:
    sdb = open_server_db(tmp_path)
    token = create_token(sdb, "deployer", "alice").token
    assert open_session(sdb, "cvr_not-a-token", now=100.0) is None
    opened = open_session(sdb, token + "\n", now=100.0)  # pasted with a newline
    assert opened is not None
    assert opened.principal.name == "alice" and opened.principal.role == "deployer"
    # only the hash is stored
    rows = sdb.db.all("SELECT hash FROM web_sessions")
    assert [r[0] for r in rows] == [session_hash(opened.session_id)]
    found = resume_session(sdb, opened.session_id, now=200.0)
    assert found is not None and found.name == "alice"
    assert resume_session(sdb, "forged", now=200.0) is None
    assert resume_session(sdb, None, now=200.0) is None
    assert close_session(sdb, opened.session_id)
    assert resume_session(sdb, opened.session_id, now=201.0) is None
    assert not close_session(sdb, opened.session_id)
    actions = [(r.action, r.actor, r.outcome) for r in sdb.audit.latest(10, None)]
    assert ("dashboard.sign_in", "alice", "ok") in actions
    assert ("dashboard.sign_out", "alice", "ok") in actions


def test_sessions_expire_and_follow_their_token(tmp_path: Path) -> None:
    sdb = open_server_db(tmp_path)
    token = create_token(sdb, "viewer", "bob").token
    idle = open_session(sdb, token, now=0.0)
    old = open_session(sdb, token, now=0.0, max_age=3 * TOUCH_EVERY_SECONDS)
    revoked = open_session(sdb, token, now=0.0)
    assert idle is not None and old is not None and revoked is not None
    # activity keeps a session: each resume a minute apart moves last_seen_at
    t = 0.0
    for _ in range(2):
        t += TOUCH_EVERY_SECONDS
        assert resume_session(sdb, old.session_id, now=t) is not None
    assert resume_session(sdb, old.session_id, now=3 * TOUCH_EVERY_SECONDS) is None  # too old
    assert resume_session(sdb, idle.session_id, now=IDLE_SECONDS) is None  # idle
    assert resume_session(sdb, revoked.session_id, now=1.0) is not None
    revoke_token(sdb, "bob")
    assert resume_session(sdb, revoked.session_id, now=2.0) is None


def test_a_sign_in_forgets_ended_sessions(tmp_path: Path) -> None:
    sdb = open_server_db(tmp_path)
    token = create_token(sdb, "viewer").token
    assert open_session(sdb, token, now=0.0) is not None
    assert open_session(sdb, token, now=IDLE_SECONDS + 1) is not None
    assert sdb.db.scalar("SELECT count(*) FROM web_sessions") == 1
