"""The pure rules of the dashboard's sessions and CSRF tokens."""

from __future__ import annotations

from conveyor.model.web_session import (
    IDLE_SECONDS,
    TOUCH_EVERY_SECONDS,
    WebSession,
    cookie_attributes,
    csrf_ok,
    csrf_token,
    live,
    needs_touch,
    new_secret,
    session_hash,
)


def _session(created: float = 1000.0, seen: float = 1000.0, expires: float = 5000.0) -> WebSession:
    return WebSession(
        id=1,
        token_id=1,
        name="alice",
        role="viewer",
        created_at=created,
        last_seen_at=seen,
        expires_at=expires,
    )


def test_secrets_are_random_and_stored_hashed() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and len(a) >= 43  # 32 bytes of base64
    assert session_hash(a) != a and len(session_hash(a)) == 64
    assert session_hash(a) == session_hash(a)


def test_csrf_token_is_per_session_and_does_not_reveal_the_id() -> None:
    sid, other = new_secret(), new_secret()
    token = csrf_token(sid)
    assert token == csrf_token(sid)  # stable for the session's life
    assert token != csrf_token(other)
    assert sid not in token and token != session_hash(sid)


def test_csrf_check() -> None:
    token = csrf_token("s1")
    assert csrf_ok(token, token)
    assert not csrf_ok(token, None)
    assert not csrf_ok(token, "")
    assert not csrf_ok(token, csrf_token("s2"))
    assert not csrf_ok(token, token[:-1])
    assert not csrf_ok("", "")  # no expected value: nothing matches


def test_a_session_ends_when_idle_or_too_old() -> None:
    s = _session(seen=1000.0, expires=1000.0 + 2 * IDLE_SECONDS)
    assert live(s, 1000.0 + IDLE_SECONDS - 1)
    assert not live(s, 1000.0 + IDLE_SECONDS)  # idle too long
    recent = _session(seen=4900.0, expires=5000.0)
    assert live(recent, 4999.0)
    assert not live(recent, 5000.0)  # past its absolute end, however active


def test_activity_is_written_at_most_once_a_minute() -> None:
    s = _session(seen=1000.0)
    assert not needs_touch(s, 1000.0 + TOUCH_EVERY_SECONDS - 1)
    assert needs_touch(s, 1000.0 + TOUCH_EVERY_SECONDS)


def test_cookie_attributes() -> None:
    plain = cookie_attributes(secure=False, max_age=60.5)
    assert plain == {
        "httponly": True,
        "samesite": "strict",
        "secure": False,
        "path": "/",
        "max_age": 60,
    }
    assert cookie_attributes(secure=True, max_age=None)["secure"] is True
    assert cookie_attributes(secure=True, max_age=None)["max_age"] is None
