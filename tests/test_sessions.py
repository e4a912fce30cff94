"""Server-side sessions: logout ends a login everywhere its cookies were copied; resets end sessions and API tokens."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from core.api.tokens import create_token
from core.auth import services
from core.db import db
from core.extensions import limiter
from core.models import ApiToken, UserSession
from tests.auth_support import PASSWORD, login, logout, make_user, post_form

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(autouse=True)
def _fresh_limits(app):
    limiter.reset()
    yield
    limiter.reset()


@pytest.fixture
def admin(app):
    with app.app_context():
        return make_user("admin@dealer.it", "dealer_admin").id


def _thief_with(app, **cookies):
    """Another browser on the same address, holding copies of the victim's cookies."""
    thief = app.test_client()
    for name, value in cookies.items():
        thief.set_cookie(name, value)
    return thief


def test_a_session_cookie_copied_before_logout_no_longer_opens_the_back_office(app, client, admin):
    login(client, "admin@dealer.it")
    copied = client.get_cookie("session").value
    assert _thief_with(app, session=copied).get("/admin/").status_code == 200
    logout(client)
    assert _thief_with(app, session=copied).get("/admin/").status_code == 302


def test_a_remember_cookie_copied_before_logout_no_longer_logs_in(app, client, admin):
    login(client, "admin@dealer.it", remember="y")
    copied = client.get_cookie("remember_token").value
    assert _thief_with(app, remember_token=copied).get("/admin/").status_code == 200
    logout(client)
    assert _thief_with(app, remember_token=copied).get("/admin/").status_code == 302


def test_two_logins_get_different_remember_values(app, client, admin):
    login(client, "admin@dealer.it", remember="y")
    first = client.get_cookie("remember_token").value
    logout(client)
    login(client, "admin@dealer.it", remember="y")
    second = client.get_cookie("remember_token").value
    assert first != second


def test_logging_out_ends_only_that_login(app, admin):
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, "admin@dealer.it")
    login(phone, "admin@dealer.it")
    logout(laptop)
    assert laptop.get("/admin/").status_code == 302
    assert phone.get("/admin/").status_code == 200


def test_sessions_store_only_a_hash_of_their_id(app, client, admin):
    client.environ_base["HTTP_USER_AGENT"] = "Firefox/140"
    login(client, "admin@dealer.it", remember="y")
    cookie = client.get_cookie("remember_token").value
    with app.app_context():
        row = db.session.scalars(sa.select(UserSession)).one()
        assert row.user_id == admin
        assert row.user_agent == "Firefox/140"
        assert row.token_hash not in cookie
        assert row.revoked_at is None
    logout(client)
    with app.app_context():
        assert db.session.scalars(sa.select(UserSession)).one().revoked_at is not None


def test_a_remembered_login_ends_when_its_time_is_up_even_with_a_copied_cookie(app, client, admin):
    login(client, "admin@dealer.it", remember="y")
    copied = client.get_cookie("remember_token").value
    with app.app_context():
        db.session.execute(sa.update(UserSession).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
        db.session.commit()
    assert _thief_with(app, remember_token=copied).get("/admin/").status_code == 302


def test_activity_is_noted_at_most_once_a_minute(app, client, admin):
    login(client, "admin@dealer.it")
    long_ago = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    with app.app_context():
        db.session.execute(sa.update(UserSession).values(last_seen_at=long_ago))
        db.session.commit()
    assert client.get("/admin/").status_code == 200
    with app.app_context():
        seen = db.session.scalars(sa.select(UserSession.last_seen_at)).one()
        assert seen.replace(tzinfo=dt.UTC) > long_ago + dt.timedelta(days=365)


@pytest.mark.parametrize("purpose", [services.RESET, services.SET_PASSWORD], ids=["reset", "set-password"])
def test_a_password_link_ends_every_session_and_revokes_every_api_token(app, admin, purpose):
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, "admin@dealer.it")
    login(phone, "admin@dealer.it", remember="y")
    with app.app_context():
        user = db.session.get(services.User, admin)
        _token, plaintext = create_token(user, "erp")
        link = f"/{'reset' if purpose is services.RESET else 'set'}-password/{services.password_token(user, purpose)}"
    api = {"Authorization": f"Bearer {plaintext}"}
    assert laptop.get("/api/v1/customers", headers=api).status_code == 200

    stranger = app.test_client()
    response = post_form(stranger, link, {"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302
    assert stranger.get("/admin/").status_code == 200  # the link's own browser is logged in afresh

    assert laptop.get("/admin/").status_code == 302
    phone.delete_cookie("session")
    assert phone.get("/admin/").status_code == 302
    assert laptop.get("/api/v1/customers", headers=api).status_code == 401
    with app.app_context():
        assert db.session.scalars(sa.select(ApiToken.revoked_at)).one() is not None


def test_changing_the_password_keeps_this_session_and_the_api_tokens(app, admin):
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, "admin@dealer.it", remember="y")
    login(phone, "admin@dealer.it")
    with app.app_context():
        _token, plaintext = create_token(db.session.get(services.User, admin), "erp")
    response = post_form(
        laptop,
        "/account/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert phone.get("/admin/").status_code == 302
    laptop.delete_cookie("session")
    assert laptop.get("/admin/").status_code == 200  # its remember cookie is this same login
    assert laptop.get("/api/v1/customers", headers={"Authorization": f"Bearer {plaintext}"}).status_code == 200


def test_a_deactivated_account_reactivated_later_does_not_revive_its_old_logins(app, admin):
    with app.app_context():
        make_user("tech@dealer.it", "technician")
    tech = app.test_client()
    login(tech, "tech@dealer.it", remember="y")
    copied = tech.get_cookie("remember_token").value
    manager = app.test_client()
    login(manager, "admin@dealer.it")
    with app.app_context():
        tech_id = db.session.scalar(sa.select(services.User.id).where(services.User.email == "tech@dealer.it"))
    url = f"/admin/core_user/edit/?id={tech_id}"
    fields = {"email": "tech@dealer.it", "name": "Tech", "role": "technician", "language": "", "customer": "__None"}
    assert post_form(manager, url, {**fields, "active": ""}).status_code == 302
    assert post_form(manager, url, {**fields, "active": "y"}).status_code == 302
    with app.app_context():
        assert db.session.get(services.User, tech_id).active is True
    assert _thief_with(app, remember_token=copied).get("/admin/").status_code == 302
