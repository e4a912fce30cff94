"""API tokens: shown once, stored as a hash, refused once revoked or when their user is disabled."""

from __future__ import annotations

import datetime as dt
import hashlib

from core.api.tokens import authenticate_token, create_token, revoke_token
from core.db import db
from core.models import ApiToken, AuditLog
from tests.api_support import add_user


def test_created_token_authenticates_its_user_and_only_its_hash_is_stored(db_session):
    user = add_user("back_office")
    token, plaintext = create_token(user, "ERP sync")

    assert plaintext.startswith("cdk_") and len(plaintext) > 40
    stored = db.session.get(ApiToken, token.id)
    assert stored.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext not in (stored.token_hash, stored.prefix, stored.name)
    assert stored.prefix == plaintext[:8]
    assert authenticate_token(plaintext) == user
    assert authenticate_token(plaintext + "x") is None
    assert authenticate_token("") is None


def test_two_tokens_of_one_user_differ(db_session):
    user = add_user("back_office")
    assert create_token(user, "a")[1] != create_token(user, "b")[1]


def test_revoked_token_no_longer_authenticates(db_session):
    token, plaintext = create_token(add_user("dealer_admin"), "laptop")

    assert revoke_token(token.id) is True
    assert authenticate_token(plaintext) is None
    assert revoke_token(token.id) is False
    assert revoke_token(999_999) is False
    actions = db.select(AuditLog.action).where(
        AuditLog.object_type == "core_api_token", AuditLog.object_id == str(token.id)
    )
    assert db.session.scalars(actions.order_by(AuditLog.id)).all() == ["token_created", "token_revoked"]


def test_token_of_disabled_user_is_refused(db_session):
    user = add_user("dealer_admin")
    _token, plaintext = create_token(user, "laptop")
    user.active = False
    db.session.commit()

    assert authenticate_token(plaintext) is None


def test_token_use_sets_last_used_and_is_audited_once_a_minute(db_session):
    token, plaintext = create_token(add_user("technician"), "van")
    for _ in range(3):
        authenticate_token(plaintext)

    def uses():
        return db.session.scalars(
            db.select(AuditLog).where(AuditLog.action == "token_used", AuditLog.object_id == str(token.id))
        ).all()

    assert len(uses()) == 1
    assert uses()[0].actor == "technician@example.com"
    first_use = db.session.get(ApiToken, token.id).last_used_at
    assert first_use is not None

    # A use more than a minute after the last recorded one is recorded again.
    token.last_used_at = first_use - dt.timedelta(minutes=2)
    db.session.commit()
    authenticate_token(plaintext)
    assert len(uses()) == 2


def test_api_requests_with_a_revoked_token_get_401(client, db_session):
    token, plaintext = create_token(add_user("dealer_admin"), "laptop")
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert client.get("/api/v1/customers", headers=headers).status_code == 200

    revoke_token(token.id)
    response = client.get("/api/v1/customers", headers=headers)

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
