"""Server-side logins: a random secret per login in the session and remember cookies, revocable at any time."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import sqlalchemy as sa
from flask import current_app, g, has_request_context, request
from flask_login import login_user

from core.db import db, utcnow
from core.extension_points import LOGIN_GATE, implementations
from core.models import User, UserSession

# last_seen_at is written at most once per session in this interval.
SEEN_INTERVAL = dt.timedelta(minutes=1)
USER_AGENT_LENGTH = 255


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _as_aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes even for timezone-aware columns; every stored timestamp is UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _lifetime(remember: bool) -> dt.timedelta:
    config = current_app.config
    duration = config["REMEMBER_COOKIE_DURATION"] if remember else config["PERMANENT_SESSION_LIFETIME"]
    return duration if isinstance(duration, dt.timedelta) else dt.timedelta(seconds=duration)


def start(user: User, remember: bool = False) -> UserSession:
    """Add a new login of `user` (the caller commits) and attach its secret to the user object, for get_id()."""
    now = utcnow()
    # The user's ended logins are of no further use: forget them as a new one starts.
    db.session.execute(
        sa.delete(UserSession).where(
            UserSession.user_id == user.id,
            sa.or_(UserSession.revoked_at.is_not(None), UserSession.expires_at < now),
        )
    )
    token = secrets.token_urlsafe(32)
    in_request = has_request_context()
    row = UserSession(
        user_id=user.id,
        token_hash=hash_token(token),
        remember=remember,
        created_at=now,
        last_seen_at=now,
        expires_at=now + _lifetime(remember),
        user_agent=(request.user_agent.string[:USER_AGENT_LENGTH] or None) if in_request else None,
        ip_address=request.remote_addr if in_request else None,
    )
    db.session.add(row)
    user.login_token = token
    g.login_session = row
    return row


def log_in(user: User, remember: bool = False) -> UserSession:
    """Start a server-side login and hand it to Flask-Login (the caller commits)."""
    row = start(user, remember)
    login_user(user, remember=remember)
    return row


def load(user_id: str) -> User | None:
    """Flask-Login's user loader: the active user of an unrevoked, unexpired login "<user id>:<secret>"."""
    ident, _, token = user_id.partition(":")
    if not ident.isdigit() or not token:
        return None
    row = db.session.scalars(sa.select(UserSession).where(UserSession.token_hash == hash_token(token))).first()
    if row is None or row.user_id != int(ident) or row.revoked_at is not None:
        return None
    if _as_aware(row.expires_at) <= utcnow():
        return None
    user = db.session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    user.login_token = token
    g.login_session = row
    return user


def current() -> UserSession | None:
    """The login of this request, once Flask-Login has loaded it."""
    return g.get("login_session") if has_request_context() else None


def note_activity() -> str | None:
    """Write the current login's last_seen_at when it is older than SEEN_INTERVAL (committed).

    A LOGIN_GATE may refuse a login coming back (lan_licensing: an idle staff login finding every seat taken): that
    login is then ended (committed) and the refusal returned, for the caller to log out and show.
    """
    row = current()
    if row is None:
        return None
    now = utcnow()
    if now - _as_aware(row.last_seen_at) < SEEN_INTERVAL:
        return None
    row_id, user = row.id, db.session.get(User, row.user_id)
    for gate in implementations(LOGIN_GATE):
        refusal = gate.refuse_resume(user, row)
        if refusal:
            db.session.rollback()
            db.session.execute(sa.update(UserSession).where(UserSession.id == row_id).values(revoked_at=now))
            db.session.commit()
            return refusal
    db.session.execute(sa.update(UserSession).where(UserSession.id == row_id).values(last_seen_at=now))
    db.session.commit()
    return None


def revoke_current() -> None:
    """End this request's login (the caller commits); its cookies, wherever copied, stop working."""
    row = current()
    if row is not None:
        row.revoked_at = utcnow()


def revoke_all(user: User, keep: UserSession | None = None) -> int:
    """End every login of `user` but `keep` (the caller commits); returns how many were ended."""
    if keep is not None:
        db.session.flush()  # `keep` needs its id
    stmt = sa.update(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
    if keep is not None:
        stmt = stmt.where(UserSession.id != keep.id)
    return db.session.execute(stmt.values(revoked_at=utcnow())).rowcount
