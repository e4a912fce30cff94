"""A customer administrator manages their own company's portal users: invite, disable and enable, change role."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from core.auth import portal_users
from core.auth.services import UserError
from core.db import db
from core.extensions import limiter
from core.models import OutboxMessage, User
from core.outbox import as_sent
from tests.auth_support import PASSWORD, csrf_token, login, make_customer, make_user, post_form

USERS = "/portal/users/"


@pytest.fixture(autouse=True)
def _fresh_limits(app):
    limiter.reset()


@pytest.fixture
def company(app):
    """Studio Bianchi with Anna (administrator, logged in, English) and Luca (user); Rossi Srl with Marta; a dealer."""
    with app.app_context():
        bianchi, rossi = make_customer("Studio Bianchi"), make_customer("Rossi Srl")
        ids = {
            "anna": make_user("anna@bianchi.it", "customer_admin", customer_id=bianchi, name="Anna", language="en").id,
            "luca": make_user("luca@bianchi.it", "customer_user", customer_id=bianchi, name="Luca").id,
            "marta": make_user("marta@rossi.it", "customer_user", customer_id=rossi, name="Marta").id,
            "staff": make_user("office@dealer.it", "back_office", name="Office").id,
        }
    client = app.test_client()
    assert login(client, "anna@bianchi.it", url="/portal/login").status_code == 302
    return client, ids


def _user(app, user_id: int) -> User:
    with app.app_context():
        user = db.session.get(User, user_id)
        db.session.expunge(user)
        return user


def test_customer_admin_sees_only_their_own_company_users_and_a_link_to_the_page(app, company):
    client, _ids = company

    page = client.get(USERS).get_data(as_text=True)
    home = client.get("/portal/").get_data(as_text=True)

    assert "anna@bianchi.it" in page and "luca@bianchi.it" in page
    assert "marta@rossi.it" not in page and "office@dealer.it" not in page
    assert "Customer user" in page and "Customer administrator" in page  # roles by their names
    assert f'href="{USERS}"' in home


def test_customer_user_may_not_manage_users(app, company):
    with app.app_context():
        make_user("piero@bianchi.it", "customer_user", customer_id=db.session.get(User, company[1]["anna"]).customer_id)
    client = app.test_client()
    login(client, "piero@bianchi.it", url="/portal/login")

    assert client.get(USERS).status_code == 403
    assert f'href="{USERS}"' not in client.get("/portal/").get_data(as_text=True)


def test_invited_colleague_gets_a_set_password_link_that_lets_them_into_the_portal(app, company):
    client, ids = company

    response = post_form(client, USERS, {"email": "Giulia@Bianchi.it", "name": "Giulia", "role": "customer_user"})

    assert response.status_code == 302
    with app.app_context():
        giulia = db.session.scalar(sa.select(User).where(User.email == "giulia@bianchi.it"))
        assert (giulia.role, giulia.customer_id) == ("customer_user", db.session.get(User, ids["anna"]).customer_id)
        message = db.session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
        assert message.recipients == ["giulia@bianchi.it"]
        _subject, text, _html = as_sent(message)
    link = re.search(r"https?://[^/\s]+(/set-password/\S+)", text).group(1)
    newcomer = app.test_client()
    chosen = post_form(newcomer, link, {"new_password": PASSWORD, "confirm": PASSWORD})
    assert chosen.status_code == 302
    assert login(app.test_client(), "giulia@bianchi.it", url="/portal/login").status_code == 302


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "not-an-address", "role": "customer_user"}, "not-an-address is not a valid email address"),
        ({"email": "marta@rossi.it", "role": "customer_user"}, "A user with the email marta@rossi.it already exists"),
        ({"email": "new@bianchi.it", "role": "dealer_admin"}, "Choose whether the person is an administrator"),
    ],
)
def test_bad_invitation_is_refused_with_the_field_named_and_nothing_written(app, company, data, message):
    client, _ids = company
    with app.app_context():
        before = db.session.scalar(sa.select(sa.func.count(User.id)))

    response = post_form(client, USERS, data)

    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(User.id))) == before


def test_disabled_colleague_is_logged_out_and_can_be_enabled_again(app, company):
    client, ids = company
    luca = app.test_client()
    assert login(luca, "luca@bianchi.it", url="/portal/login").status_code == 302

    post_form(client, f"{USERS}{ids['luca']}/active", {"active": "0"}, form_url=USERS)

    assert _user(app, ids["luca"]).active is False
    assert luca.get("/portal/").status_code == 302  # the open login ended
    assert login(app.test_client(), "luca@bianchi.it", url="/portal/login").status_code != 302
    post_form(client, f"{USERS}{ids['luca']}/active", {"active": "1"}, form_url=USERS)
    assert _user(app, ids["luca"]).active is True
    assert login(app.test_client(), "luca@bianchi.it", url="/portal/login").status_code == 302


def test_customer_admin_changes_a_colleague_role_both_ways(app, company):
    client, ids = company

    post_form(client, f"{USERS}{ids['luca']}/role", {"role": "customer_admin"}, form_url=USERS)
    assert _user(app, ids["luca"]).role == "customer_admin"
    post_form(client, f"{USERS}{ids['luca']}/role", {"role": "customer_user"}, form_url=USERS)
    assert _user(app, ids["luca"]).role == "customer_user"
    refused = post_form(client, f"{USERS}{ids['luca']}/role", {"role": "dealer_admin"}, form_url=USERS)
    assert "Choose whether the person is an administrator" in client.get(refused.headers["Location"]).get_data(
        as_text=True
    )
    assert _user(app, ids["luca"]).role == "customer_user"


def test_another_company_users_and_staff_answer_404_and_stay_unchanged(app, company):
    client, ids = company

    for target in ("marta", "staff"):
        disabled = post_form(client, f"{USERS}{ids[target]}/active", {"active": "0"}, form_url=USERS)
        promoted = post_form(client, f"{USERS}{ids[target]}/role", {"role": "customer_admin"}, form_url=USERS)
        assert (disabled.status_code, promoted.status_code) == (404, 404)
        assert _user(app, ids[target]).active is True
    assert _user(app, ids["marta"]).role == "customer_user" and _user(app, ids["staff"]).role == "back_office"


def test_customer_admin_cannot_disable_or_demote_themselves(app, company):
    client, ids = company

    disabled = post_form(client, f"{USERS}{ids['anna']}/active", {"active": "0"}, form_url=USERS)
    demoted = post_form(client, f"{USERS}{ids['anna']}/role", {"role": "customer_user"}, form_url=USERS)

    assert "You cannot disable yourself" in client.get(disabled.headers["Location"]).get_data(as_text=True)
    assert demoted.status_code == 302
    anna = _user(app, ids["anna"])
    assert (anna.active, anna.role) == (True, "customer_admin")


def test_the_last_active_customer_admin_cannot_be_disabled_or_demoted(app, company):
    _client, ids = company
    with app.app_context():
        anna = db.session.get(User, ids["anna"])
        for change in (
            lambda: portal_users.set_active(None, anna, False),
            lambda: portal_users.set_role(None, anna, "customer_user"),
        ):
            with pytest.raises(UserError, match="last active administrator"):
                change()
        luca = db.session.get(User, ids["luca"])
        portal_users.set_role(None, luca, "customer_admin")
        portal_users.set_active(None, anna, False)  # another administrator remains: allowed
        assert (anna.active, luca.role) == (False, "customer_admin")
        db.session.rollback()


def test_changes_without_a_csrf_token_are_refused(app, company):
    client, ids = company
    csrf_token(client, USERS)

    response = client.post(f"{USERS}{ids['luca']}/active", data={"active": "0"})

    assert response.status_code == 400
    assert _user(app, ids["luca"]).active is True
