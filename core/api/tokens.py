"""API bearer tokens: create (plaintext shown once), authenticate by SHA-256, revoke one or all of a user's."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from flask import has_request_context, request

from core import audit
from core.db import db, utcnow
from core.models import ApiToken, AuditLog, User

TOKEN_PREFIX = "cdk_"
PREFIX_LENGTH = 8
# last_used_at is written, and "token_used" audited, at most once per token in this interval.
USE_RECORD_INTERVAL = dt.timedelta(minutes=1)


def hash_token(plaintext: str) -> str:
    """The stored form of a token: SHA-256 hex of its plaintext."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def create_token(user: User, name: str) -> tuple[ApiToken, str]:
    """Create and commit a token for `user`; returns it with its plaintext, which is not stored and not shown again."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id, name=name, token_hash=hash_token(plaintext), prefix=plaintext[:PREFIX_LENGTH], user=user
    )
    db.session.add(token)
    db.session.flush()
    audit.record(
        "token_created", ApiToken.__tablename__, token.id, {"user": user.email, "name": name, "prefix": token.prefix}
    )
    db.session.commit()
    return token, plaintext


def _as_aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes even for timezone-aware columns; every stored timestamp is UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def authenticate_token(plaintext: str | None) -> User | None:
    """The active user owning this unrevoked token, else None; notes the use (committed) at most once a minute."""
    if not plaintext or not plaintext.startswith(TOKEN_PREFIX):
        return None
    token = db.session.scalars(db.select(ApiToken).where(ApiToken.token_hash == hash_token(plaintext))).first()
    if token is None or token.revoked_at is not None or not token.user.active:
        return None
    now = utcnow()
    if token.last_used_at is None or now - _as_aware(token.last_used_at) >= USE_RECORD_INTERVAL:
        token.last_used_at = now
        # Written directly: the actor is the token's owner, who is not the logged-in user yet.
        db.session.add(
            AuditLog(
                user_id=token.user_id,
                actor=token.user.email,
                action="token_used",
                object_type=ApiToken.__tablename__,
                object_id=str(token.id),
                changes={"name": token.name, "prefix": token.prefix},
                ip_address=request.remote_addr if has_request_context() else None,
            )
        )
        db.session.commit()
    return token.user


def revoke_token(token_id: int) -> bool:
    """Revoke a token (committed); False when there is no such token or it was already revoked."""
    token = db.session.get(ApiToken, token_id)
    if token is None or token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    audit.record(
        "token_revoked",
        ApiToken.__tablename__,
        token.id,
        {"user": token.user.email, "name": token.name, "prefix": token.prefix},
    )
    db.session.commit()
    return True


def revoke_user_tokens(user: User, reason: str) -> int:
    """Revoke every live token of `user` (audited with `reason`; the caller commits); returns how many."""
    tokens = db.session.scalars(
        db.select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).all()
    for token in tokens:
        token.revoked_at = utcnow()
        audit.record(
            "token_revoked",
            ApiToken.__tablename__,
            token.id,
            {"user": user.email, "name": token.name, "prefix": token.prefix, "reason": reason},
        )
    return len(tokens)
