"""A customer admin's print users in the portal: created with a card and a PIN, a rollover quota typed in Italian,
cards disabled when lost, PINs set, regenerated and removed, passwords; every refusal beside its field, nothing
written."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db
from modules.device_accounting import operations, users
from modules.device_accounting.models import Balance, Card, PrintUser, Quota
from modules.device_accounting.tests import portal_support as p

NEW = "/portal/print/users/new"


pytestmark = pytest.mark.usefixtures("portal_now")


def new_user(portal_admin, portal_companies, **fields):
    ours = portal_companies[0]
    data = {
        "username": "gbianchi",
        "full_name": "Giulia Bianchi",
        "email": "giulia@bianchi.it",
        "language": "it",
        "active": "1",
        "default_cost_center_id": str(ours.cost_center),
        "cost_center_ids": [str(ours.cost_center)],
        **fields,
    }
    return p.post(portal_admin, NEW, data, form_url=NEW)


def user_id_of(response) -> int:
    return int(response.location.rstrip("/").rsplit("/", 1)[-1])


def test_admin_adds_a_user_with_card_0004521_and_a_monthly_rollover_quota(app, portal_companies, portal_admin):
    ours = portal_companies[0]
    created = new_user(portal_admin, portal_companies, card="0004521", pin="2468")
    assert created.status_code == 302
    user_id = user_id_of(created)
    page = p.text(portal_admin.get(created.location))
    assert "Giulia Bianchi" in page and 'data-card="0004521"' in page

    quota_url = f"/portal/print/users/{user_id}/quota"
    saved = p.post(
        portal_admin,
        quota_url,
        {
            "period": "monthly",
            "amount": "20,00",
            "mode": "rollover",
            "rollover_cap": "30,00",
            "overdraft": "0",
            "warning_percent": "80",
        },
        form_url=quota_url,
    )
    assert saved.status_code == 302
    page = p.text(portal_admin.get(f"/portal/print/users/{user_id}"))
    assert "20,00\xa0€" in page and "30,00\xa0€" in page  # Italian money, the balance and the cap

    with app.app_context():
        quota = db.session.scalar(sa.select(Quota).where(Quota.user_id == user_id))
        assert (quota.period, quota.amount, quota.mode, quota.rollover_cap) == (
            "monthly",
            Decimal("20"),
            "rollover",
            Decimal("30"),
        )
        assert db.session.scalar(sa.select(Balance.balance).where(Balance.quota_id == quota.id)) == Decimal("20")
        # The card is the string typed: 0004521 identifies Giulia at the customer's device, 4521 nobody.
        identity = operations.identify(ours.device, card="0004521")
        assert identity.user.id == user_id and identity.balance == Decimal("20")
        with pytest.raises(operations.IdentifyRefused) as refused:
            operations.identify(ours.device, card="4521")
        assert refused.value.status == 401
        assert operations.identify(ours.device, pin="2468").user.id == user_id


def test_card_4521_is_another_card_than_0004521(app, portal_companies, portal_admin):
    assert new_user(portal_admin, portal_companies, card="0004521").status_code == 302
    other = new_user(portal_admin, portal_companies, username="altro", email="", card="4521")
    assert other.status_code == 302
    with app.app_context():
        cards = {card.number: card.user.username for card in db.session.scalars(sa.select(Card))}
    assert cards["0004521"] == "gbianchi" and cards["4521"] == "altro"


def test_a_three_digit_pin_is_refused_beside_its_field_and_nothing_is_written(app, portal_companies, portal_admin):
    with app.app_context():
        before = p.counts()
    response = new_user(portal_admin, portal_companies, card="0004521", pin="123")
    page = p.text(response)
    assert response.status_code == 422
    assert p.field_error(page, "f-pin") == p.translated(app, "it", "A PIN is 4 to 8 digits.")
    with app.app_context():
        assert p.counts() == before  # neither the user nor the card
    assert 'value="gbianchi"' in page and 'value="0004521"' in page  # what was typed is kept...
    assert 'value="123"' not in page  # ...but a PIN is never written back into the page

    ours = portal_companies[0]
    url = f"/portal/print/users/{ours.print_user}/pin"
    with app.app_context():
        digest = db.session.get(PrintUser, ours.print_user).pin_digest
    response = p.post(portal_admin, url, {"pin": "123"}, form_url=f"/portal/print/users/{ours.print_user}")
    assert response.status_code == 422 and p.field_error(p.text(response), "pin-pin")
    with app.app_context():
        assert db.session.get(PrintUser, ours.print_user).pin_digest == digest


def test_a_card_another_user_has_is_refused_naming_that_user(app, portal_companies, portal_admin):
    ours = portal_companies[0]
    with app.app_context():
        before = p.counts()
    response = new_user(portal_admin, portal_companies, card="0001234")  # Mario Rossi's card
    assert response.status_code == 422
    assert "Mario Rossi" in p.field_error(p.text(response), "f-card")
    with app.app_context():
        assert p.counts() == before

    url = f"/portal/print/users/{ours.other_print_user}/cards"
    response = p.post(portal_admin, url, {"number": "0001234"}, form_url=f"/portal/print/users/{ours.other_print_user}")
    assert response.status_code == 422
    assert "Mario Rossi" in p.field_error(p.text(response), "card-number")
    with app.app_context():
        assert p.counts() == before
        # The other customer may use the same number: cards are unique per customer.
        assert users.find_by_card(portal_companies[1].customer, "0001234") is not None


def test_a_lost_card_is_disabled_and_no_longer_identifies(app, portal_companies, portal_admin):
    ours = portal_companies[0]
    page_url = f"/portal/print/users/{ours.print_user}"
    added = p.post(portal_admin, f"{page_url}/cards", {"number": "0009999"}, form_url=page_url)
    assert added.status_code == 302
    disabled = p.post(portal_admin, f"{page_url}/cards/{ours.card}/disable", {}, form_url=page_url)
    assert disabled.status_code == 302
    page = p.text(portal_admin.get(page_url))
    assert "0001234" in page and 'data-card="0009999"' in page
    with app.app_context():
        with pytest.raises(operations.IdentifyRefused) as refused:
            operations.identify(ours.device, card="0001234")
        assert refused.value.reason == "card_disabled"
        assert operations.identify(ours.device, card="0009999").user.id == ours.print_user
        assert db.session.get(Card, ours.card).disabled_at is not None


def test_pin_set_regenerated_shown_once_and_removed(app, portal_companies, portal_admin):
    ours = portal_companies[0]
    page_url = f"/portal/print/users/{ours.print_user}"
    assert p.post(portal_admin, f"{page_url}/pin", {"pin": "13579"}, form_url=page_url).status_code == 302
    with app.app_context():
        assert operations.identify(ours.device, pin="13579").user.id == ours.print_user

    generated = p.post(portal_admin, f"{page_url}/pin/new", {}, form_url=page_url)
    assert generated.status_code == 200 and generated.headers["Cache-Control"] == "no-store"
    pin = p.re.search(r"data-new-pin>(\d+)<", p.text(generated)).group(1)
    assert "data-new-pin" not in p.text(portal_admin.get(page_url))  # shown once
    with app.app_context():
        assert operations.identify(ours.device, pin=pin).user.id == ours.print_user
        with pytest.raises(operations.IdentifyRefused):
            operations.identify(ours.device, pin="13579")

    assert p.post(portal_admin, f"{page_url}/pin/clear", {}, form_url=page_url).status_code == 302
    with app.app_context():
        assert db.session.get(PrintUser, ours.print_user).pin_digest is None


def test_password_is_set_when_both_match_and_directory_users_keep_theirs(app, portal_companies, portal_admin):
    ours = portal_companies[0]
    page_url = f"/portal/print/users/{ours.print_user}"
    url = f"{page_url}/password"
    differ = p.post(
        portal_admin, url, {"password": "a long password", "password_again": "another one"}, form_url=page_url
    )
    assert differ.status_code == 422 and p.field_error(p.text(differ), "pw-password_again")
    short = p.post(portal_admin, url, {"password": "short", "password_again": "short"}, form_url=page_url)
    assert short.status_code == 422 and p.field_error(p.text(short), "pw-password")
    with app.app_context():
        assert db.session.get(PrintUser, ours.print_user).password_hash is None
    good = p.post(
        portal_admin, url, {"password": "a long password", "password_again": "a long password"}, form_url=page_url
    )
    assert good.status_code == 302
    with app.app_context():
        assert users.check_password(db.session.get(PrintUser, ours.print_user), "a long password")
        db.session.get(PrintUser, ours.other_print_user).directory_user = True
        db.session.commit()
    other_url = f"/portal/print/users/{ours.other_print_user}"
    assert 'name="password_again"' not in p.text(portal_admin.get(other_url))
    data = {"password": "x" * 12, "password_again": "x" * 12}
    refused = p.post(portal_admin, f"{other_url}/password", data, form_url=other_url)
    assert refused.status_code == 422
    with app.app_context():
        assert db.session.get(PrintUser, ours.other_print_user).password_hash is None


def test_details_are_edited_and_a_taken_username_is_refused_ignoring_case(app, portal_companies, portal_admin):
    ours = portal_companies[0]
    url = f"/portal/print/users/{ours.other_print_user}"
    taken = p.post(portal_admin, url, {"username": "MRossi", "full_name": "Luisa Verdi", "active": "1"}, form_url=url)
    assert taken.status_code == 422 and "MRossi" in p.field_error(p.text(taken), "f-username")
    saved = p.post(
        portal_admin,
        url,
        {
            "username": "lverdi",
            "full_name": "Luisa Verdi Neri",
            "email": "luisa@bianchi.it",
            "language": "es",
            "cost_center_ids": [str(ours.cost_center)],
        },
        form_url=url,
    )
    assert saved.status_code == 302
    with app.app_context():
        luisa = db.session.get(PrintUser, ours.other_print_user)
        assert (luisa.full_name, luisa.email, luisa.language, luisa.active) == (
            "Luisa Verdi Neri",
            "luisa@bianchi.it",
            "es",
            False,  # the box was left unticked
        )
        assert [center.id for center in luisa.cost_centers] == [ours.cost_center]


def test_quota_errors_are_shown_beside_their_fields_and_nothing_is_written(app, portal_companies, portal_admin):
    ours = portal_companies[0]
    url = f"/portal/print/users/{ours.other_print_user}/quota"
    with app.app_context():
        before = p.counts()
    response = p.post(
        portal_admin,
        url,
        {
            "period": "monthly",
            "amount": "20,00",
            "mode": "rollover",
            "rollover_cap": "10",
            "overdraft": "-1",
            "warning_percent": "120",
        },
        form_url=url,
    )
    page = p.text(response)
    assert response.status_code == 422
    assert p.field_error(page, "f-rollover_cap") and p.field_error(page, "f-overdraft")
    assert p.field_error(page, "f-warning_percent")
    with app.app_context():
        assert p.counts() == before
    thousands = p.post(
        portal_admin,
        url,
        {"period": "weekly", "amount": "1.234,50", "mode": "reset", "overdraft": "", "warning_percent": ""},
        form_url=url,
    )
    assert thousands.status_code == 302
    with app.app_context():
        quota = db.session.scalar(sa.select(Quota).where(Quota.user_id == ours.other_print_user))
        assert (quota.period, quota.amount, quota.overdraft, quota.warning_percent) == (
            "weekly",
            Decimal("1234.5"),
            Decimal("0"),
            80,
        )


def test_search_finds_users_by_name_and_by_card(app, portal_companies, portal_admin):
    by_card = p.text(portal_admin.get("/portal/print/users/?q=0001"))
    assert 'data-user="mrossi"' in by_card and 'data-user="lverdi"' not in by_card
    by_name = p.text(portal_admin.get("/portal/print/users/?q=verdi"))
    assert 'data-user="lverdi"' in by_name and 'data-user="mrossi"' not in by_name
    literal = p.text(portal_admin.get("/portal/print/users/?q=%25"))
    assert "data-user=" not in literal


def test_every_mistake_of_the_new_user_form_shows_at_once(app, portal_companies, portal_admin):
    with app.app_context():
        before = p.counts()
    response = new_user(portal_admin, portal_companies, username="MROSSI", card="00 45", pin="12a4")
    page = p.text(response)
    assert response.status_code == 422
    assert "MROSSI" in p.field_error(page, "f-username")
    assert p.field_error(page, "f-card") and p.field_error(page, "f-pin")
    with app.app_context():
        assert p.counts() == before
