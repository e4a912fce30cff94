"""Passwords: emailed set-password and reset links (once, with an expiry), and changing one's own password."""

from __future__ import annotations

import re
import time

import pytest
import sqlalchemy as sa

from core.db import db
from core.extensions import limiter
from core.models import AuditLog, OutboxMessage, User
from core.outbox import as_sent
from tests.auth_support import CSRF_RE, PASSWORD, login, make_customer, make_user, post_form

NEW_PASSWORD = "a brand new passphrase"
LINK_RE = re.compile(r"(https?://\S+?)(/(?:reset|set)-password/\S+)")


@pytest.fixture(autouse=True)
def _fresh_limits(app):
    limiter.reset()
    yield
    limiter.reset()


def _emails(app) -> list[OutboxMessage]:
    with app.app_context():
        messages = db.session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id)).all()
        db.session.expunge_all()
        for message in messages:  # as delivered: the outbox itself keeps the links redacted
            message.subject, message.body_text, message.body_html = as_sent(message)
        return messages


def _link_path(message: OutboxMessage) -> str:
    match = LINK_RE.search(message.body_text)
    assert match, message.body_text
    return match.group(2)


def _request_reset(client, email: str):
    return post_form(client, "/forgot-password", {"email": email})


def test_forgot_password_answers_the_same_whether_or_not_the_account_exists(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    known = _request_reset(client, "admin@dealer.it").get_data(as_text=True)
    unknown = _request_reset(client, "nobody@dealer.it").get_data(as_text=True)
    strip = re.compile(r'value="[^"]*"')
    assert strip.sub("", known) == strip.sub("", unknown)
    assert "If an account uses this address" in known
    emails = _emails(app)
    assert [message.recipients for message in emails] == [["admin@dealer.it"]]
    assert emails[0].template == "auth/reset_password"


def test_reset_link_sets_a_new_password_and_works_only_once(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    _request_reset(client, "ADMIN@dealer.it")
    path = _link_path(_emails(app)[0])
    form = client.get(path)
    assert form.status_code == 200
    assert "Choose a new password" in form.get_data(as_text=True)
    response = post_form(client, path, {"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"
    other = app.test_client()
    assert login(other, "admin@dealer.it", PASSWORD).status_code == 200
    assert login(other, "admin@dealer.it", NEW_PASSWORD).status_code == 302
    again = client.get(path)
    assert again.status_code == 400
    assert "expired or was already used" in again.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).where(AuditLog.action == "password_reset")) == 1


def test_reset_link_expires_after_two_hours(app, client, monkeypatch):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    _request_reset(client, "admin@dealer.it")
    path = _link_path(_emails(app)[0])
    now = time.time()
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: now + 2 * 3600 - 60)
    assert client.get(path).status_code == 200
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: now + 2 * 3600 + 60)
    response = client.get(path)
    assert response.status_code == 400
    assert "expired or was already used" in response.get_data(as_text=True)


def test_reset_link_with_a_tampered_token_is_refused(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    _request_reset(client, "admin@dealer.it")
    path = _link_path(_emails(app)[0])
    assert client.get(path[:-3] + "abc").status_code == 400


def test_reset_link_points_at_the_configured_site_not_the_requested_host(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    form = client.get("/forgot-password", base_url="http://evil.example").get_data(as_text=True)
    token = CSRF_RE.search(form).group(1)
    response = client.post(
        "/forgot-password", base_url="http://evil.example", data={"csrf_token": token, "email": "admin@dealer.it"}
    )
    assert response.status_code == 200
    message = _emails(app)[0]
    assert "evil.example" not in message.body_text
    assert LINK_RE.search(message.body_text).group(1) == app.config["BASE_URL"]


def test_reset_requests_for_one_account_are_limited(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    for _attempt in range(3):
        assert _request_reset(client, "admin@dealer.it").status_code == 200
    response = _request_reset(client, "admin@dealer.it")
    assert response.status_code == 429
    assert "Too many attempts" in response.get_data(as_text=True)
    assert len(_emails(app)) == 3


def test_new_customer_user_is_emailed_a_set_password_link_in_their_language(app, client):
    with app.app_context():
        customer_id = make_customer("Studio Bianchi", language="it")
        user = make_user("anna@studio.it", "customer_user", customer_id=customer_id, password=None, name="Anna")
        assert user.password_hash is None
    [message] = _emails(app)
    assert message.recipients == ["anna@studio.it"]
    assert message.template == "auth/set_password"
    assert message.language == "it"
    path = _link_path(message)
    assert path.startswith("/set-password/")
    assert login(client, "anna@studio.it", "").status_code == 200
    page = client.get(path)
    assert "anna@studio.it" in page.get_data(as_text=True)
    response = post_form(client, path, {"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.headers["Location"] == "/portal/"
    assert client.get("/portal/").status_code == 200
    assert client.get(path).status_code == 400


def test_set_password_link_lasts_a_week(app, client, monkeypatch):
    with app.app_context():
        make_user("tech@dealer.it", "technician", password=None)
    path = _link_path(_emails(app)[0])
    now = time.time()
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: now + 6 * 86400)
    assert client.get(path).status_code == 200
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: now + 8 * 86400)
    assert client.get(path).status_code == 400


def test_a_reset_link_is_not_a_set_password_link(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    _request_reset(client, "admin@dealer.it")
    path = _link_path(_emails(app)[0])
    assert client.get(path.replace("/reset-password/", "/set-password/")).status_code == 400


def test_new_password_must_be_long_enough_and_confirmed(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    _request_reset(client, "admin@dealer.it")
    path = _link_path(_emails(app)[0])
    short = post_form(client, path, {"new_password": "short", "confirm": "short"})
    assert "at least 10 characters" in short.get_data(as_text=True)
    mismatch = post_form(client, path, {"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD + "x"})
    assert "The two passwords are not the same" in mismatch.get_data(as_text=True)
    assert client.get(path).status_code == 200


def test_changing_the_password_logs_out_other_sessions_but_not_this_one(app):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, "admin@dealer.it")
    login(phone, "admin@dealer.it", remember="y")
    assert phone.get("/admin/").status_code == 200
    response = post_form(
        laptop,
        "/account/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert laptop.get("/admin/").status_code == 200
    assert phone.get("/admin/").status_code == 302
    # The phone's remember-me cookie carried the old session version too.
    phone.delete_cookie("session")
    assert phone.get("/admin/").status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).where(AuditLog.action == "password_changed")) == 1
        entry = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "password_changed")).one()
        assert NEW_PASSWORD not in str(entry.changes)


def test_changing_the_password_needs_the_current_one(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    login(client, "admin@dealer.it")
    response = post_form(
        client,
        "/account/password",
        {"current_password": "not my password", "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert response.status_code == 200
    assert "The current password is not correct" in response.get_data(as_text=True)
    with app.app_context():
        user = db.session.scalars(sa.select(User)).one()
        assert user.session_version == 2  # set once at creation, unchanged since


def test_change_password_page_needs_a_login(app, client):
    response = client.get("/account/password")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_customer_changes_password_inside_the_portal(app, client):
    with app.app_context():
        make_user("anna@studio.it", "customer_user", customer_id=make_customer())
    login(client, "anna@studio.it", url="/portal/login")
    page = client.get("/account/password").get_data(as_text=True)
    assert "Portale clienti" in page  # the customer (make_customer) is Italian
    response = post_form(
        client,
        "/account/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert response.headers["Location"] == "/portal/"
    assert "Gli altri dispositivi sono stati disconnessi" in client.get("/portal/").get_data(as_text=True)
