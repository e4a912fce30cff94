"""Logging in and out: where each role lands, what is refused, what is recorded, and the attempt limits."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from core import signals
from core.db import db
from core.extensions import limiter
from core.models import AuditLog, User
from tests.auth_support import PASSWORD, csrf_token, login, make_customer, make_user, post_form


@pytest.fixture(autouse=True)
def _fresh_limits(app):
    limiter.reset()
    yield
    limiter.reset()


def _location(response) -> str:
    parts = urlsplit(response.headers["Location"])
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_staff_login_lands_on_the_back_office_and_is_recorded(app, client):
    with app.app_context():
        make_user("Admin@Dealer.it", "dealer_admin")
    response = login(client, "admin@dealer.it")
    assert response.status_code == 302
    assert _location(response) == "/admin/"
    assert client.get("/admin/").status_code == 200
    with app.app_context():
        user = db.session.scalars(sa.select(User)).one()
        assert user.email == "admin@dealer.it"
        assert user.last_login_at is not None
        entry = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "login")).one()
        assert entry.actor == "admin@dealer.it"
        assert entry.user_id == user.id


def test_email_case_does_not_matter_when_logging_in(app, client):
    with app.app_context():
        make_user("office@dealer.it", "back_office")
    assert _location(login(client, "  OFFICE@Dealer.IT ")) == "/admin/"


def test_wrong_password_is_refused_and_audited_without_the_password(app, client):
    with app.app_context():
        make_user("tech@dealer.it", "technician")
    response = login(client, "tech@dealer.it", "not-the-password-123")
    assert response.status_code == 200
    assert "Wrong email or password." in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302
    with app.app_context():
        entry = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "login_failed")).one()
        assert entry.changes["email"] == "tech@dealer.it"
        everything = " ".join(str(row.changes) for row in db.session.scalars(sa.select(AuditLog)))
        assert "not-the-password-123" not in everything


def test_unknown_email_gets_the_same_answer_as_a_wrong_password(app, client):
    response = login(client, "nobody@dealer.it", "whatever-password")
    assert response.status_code == 200
    assert "Wrong email or password." in response.get_data(as_text=True)
    with app.app_context():
        entry = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "login_failed")).one()
        assert entry.changes["email"] == "nobody@dealer.it"


def test_inactive_user_cannot_log_in(app, client):
    with app.app_context():
        user = make_user("gone@dealer.it", "technician")
        user.active = False
        db.session.commit()
    response = login(client, "gone@dealer.it")
    assert response.status_code == 200
    assert "This account is disabled" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_deactivating_a_user_ends_their_open_session(app, client):
    with app.app_context():
        make_user("tech@dealer.it", "technician")
    login(client, "tech@dealer.it")
    assert client.get("/admin/").status_code == 200
    with app.app_context():
        db.session.execute(sa.update(User).values(active=False))
        db.session.commit()
    assert client.get("/admin/").status_code == 302


def test_customer_using_the_staff_login_lands_on_the_portal(app, client):
    with app.app_context():
        make_user("anna@studio.it", "customer_admin", customer_id=make_customer())
    assert _location(login(client, "anna@studio.it")) == "/portal/"
    assert client.get("/portal/").status_code == 200


def test_staff_using_the_portal_login_lands_on_the_back_office(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    assert _location(login(client, "admin@dealer.it", url="/portal/login")) == "/admin/"


def test_safe_next_path_is_followed(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    response = login(client, "admin@dealer.it", url="/login?next=/admin/core_user/")
    assert _location(response) == "/admin/core_user/"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "https://evil.com",
        "https://evil.com/admin/",
        "/\\evil.com",
        "\\\\evil.com",
        "/\t/evil.com",
        "evil",
    ],
)
def test_next_pointing_elsewhere_is_ignored(app, client, target):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    token = csrf_token(client, "/login")
    response = client.post(
        "/login",
        query_string={"next": target},
        data={"csrf_token": token, "email": "admin@dealer.it", "password": PASSWORD, "next": target},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


def test_customer_is_not_sent_to_a_back_office_next(app, client):
    with app.app_context():
        make_user("anna@studio.it", "customer_user", customer_id=make_customer())
    assert _location(login(client, "anna@studio.it", url="/login?next=/admin/core_user/")) == "/portal/"


def test_login_without_csrf_token_is_refused(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    response = client.post("/login", data={"email": "admin@dealer.it", "password": PASSWORD})
    assert response.status_code == 400
    assert "The form expired" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_logout_needs_a_post_with_csrf_token_and_is_recorded(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    login(client, "admin@dealer.it")
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/admin/").status_code == 200
    token = csrf_token(client, "/account/password")
    response = client.post("/logout", data={"csrf_token": token})
    assert _location(response) == "/login"
    assert client.get("/admin/").status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).where(AuditLog.action == "logout")) == 1


def test_customer_logout_returns_to_the_portal_login(app, client):
    with app.app_context():
        make_user("anna@studio.it", "customer_user", customer_id=make_customer())
    login(client, "anna@studio.it", url="/portal/login")
    response = post_form(client, "/logout", {}, form_url="/portal/")
    assert _location(response) == "/portal/login"


def test_remember_me_cookie_lasts_fourteen_days(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    response = login(client, "admin@dealer.it", remember="y")
    cookie = client.get_cookie("remember_token")
    assert cookie is not None, response.headers
    lifetime = cookie.expires - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=13, hours=23) < lifetime <= dt.timedelta(days=14)
    assert cookie.http_only


def test_remember_me_keeps_the_user_logged_in_after_the_browser_session(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    login(client, "admin@dealer.it", remember="y")
    client.delete_cookie("session")
    assert client.get("/admin/").status_code == 200


def test_without_remember_me_closing_the_browser_logs_out(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    login(client, "admin@dealer.it")
    assert client.get_cookie("remember_token") is None
    client.delete_cookie("session")
    assert client.get("/admin/").status_code == 302


def test_login_sends_the_user_logged_in_signal(app, client):
    with app.app_context():
        user_id = make_user("admin@dealer.it", "dealer_admin").id
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    with signals.user_logged_in.connected_to(receiver):
        login(client, "admin@dealer.it")
    assert received == [{"user_id": user_id}]


def test_eleventh_wrong_password_for_one_account_gets_429(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    for _attempt in range(10):
        assert login(client, "admin@dealer.it", "wrong-password-00").status_code == 200
    response = login(client, "admin@dealer.it", "wrong-password-00")
    assert response.status_code == 429
    body = response.get_data(as_text=True)
    assert "Too many attempts" in body
    assert "Traceback" not in body
    assert 'name="email"' in body
    # Even the right password waits now, from either login page.
    assert login(client, "admin@dealer.it").status_code == 429
    assert login(client, "admin@dealer.it", url="/portal/login").status_code == 429
    # Another account from the same address is not locked by this one.
    with app.app_context():
        make_user("office@dealer.it", "back_office")
    assert login(client, "office@dealer.it").status_code == 302


def test_successful_logins_do_not_count_against_the_limit(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    for _attempt in range(12):
        assert login(client, "admin@dealer.it").status_code == 302
        post_form(client, "/logout", {}, form_url="/account/password")


def test_thirty_failures_from_one_address_block_that_address(app, client):
    for number in range(30):
        assert login(client, f"guess{number}@dealer.it", "wrong-password-00").status_code == 200
    response = login(client, "guess-new@dealer.it", "wrong-password-00")
    assert response.status_code == 429
    other_address = app.test_client()
    other_address.environ_base["REMOTE_ADDR"] = "10.1.2.3"
    assert login(other_address, "guess-new@dealer.it", "wrong-password-00").status_code == 200


def test_attempt_limits_are_kept_in_redis(app, client, redis_url):
    import redis

    app.config["RATELIMIT_STORAGE_URI"] = redis_url
    limiter.init_app(app)
    try:
        with app.app_context():
            make_user("admin@dealer.it", "dealer_admin")
        for _attempt in range(10):
            login(client, "admin@dealer.it", "wrong-password-00")
        assert login(client, "admin@dealer.it", "wrong-password-00").status_code == 429
        assert any(b"login-account" in key for key in redis.Redis.from_url(redis_url).keys("*"))
    finally:
        app.config["RATELIMIT_STORAGE_URI"] = "memory://"
        limiter.init_app(app)


def test_login_page_declares_the_language_it_is_written_in(app, client):
    page = client.get("/login", headers={"Accept-Language": "it-IT,it;q=0.9"}).get_data(as_text=True)
    assert '<html lang="it">' in page
    page = client.get("/portal/login?lang=es").get_data(as_text=True)
    assert '<html lang="es">' in page


def test_login_page_offers_the_other_languages(app, client):
    page = client.get("/portal/login?next=/portal/").get_data(as_text=True)
    assert "lang=it" in page
    assert "Español" in page
