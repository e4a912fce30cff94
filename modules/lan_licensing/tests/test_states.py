"""Expiry: a banner before, a grace during which everything works, then read-only for staff; a clock set back too."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from core.db import db
from core.models import Partner
from modules.lan_licensing import installation, state
from modules.lan_licensing.tests.conftest import dealer_today, install, licence_text
from tests.auth_support import login, make_customer, make_user, post_form

TODAY = dealer_today()


def _admin(app):
    with app.app_context():
        make_user("anna@dealer.it", name="Anna Rossi")
    client = app.test_client()
    assert login(client, "anna@dealer.it").status_code == 302
    return client


def _add_partner(client, name: str):
    return post_form(client, "/admin/core_partner/new/", {"name": name, "is_customer": "y", "language": "it"})


def _partners(app, name: str) -> int:
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(Partner).where(Partner.name == name))


def test_the_evaluation_shows_a_banner_and_limits_nothing(start):
    app = start()
    client = _admin(app)
    page = client.get("/admin/").get_data(as_text=True)
    assert "Evaluation copy" in page and "29 more days" in page
    _add_partner(client, "Ottica Rossi")
    assert _partners(app, "Ottica Rossi") == 1


def test_a_banner_from_thirty_days_before_expiry(start):
    app = start()
    install(app, licence_text(expires_at=TODAY + dt.timedelta(days=10)))
    assert "in 10 days" in _admin(app).get("/admin/").get_data(as_text=True)


def test_in_the_grace_period_everything_works_with_a_banner(start):
    app = start()
    install(app, licence_text(expires_at=TODAY - dt.timedelta(days=5)))
    client = _admin(app)
    assert "Everything keeps working until" in client.get("/admin/").get_data(as_text=True)
    _add_partner(client, "Ottica Rossi")
    assert _partners(app, "Ottica Rossi") == 1


def test_past_the_grace_staff_read_everything_but_change_nothing_and_may_install_a_licence(start):
    app = start()
    install(app, licence_text(valid_from=TODAY - dt.timedelta(days=400), expires_at=TODAY - dt.timedelta(days=31)))
    with app.app_context():
        customer = make_customer("Studio Bianchi")
        make_user("cliente@studio.it", role="customer_admin", customer_id=customer, name="Cliente")
    client = _admin(app)
    assert "read-only" in client.get("/admin/").get_data(as_text=True)
    assert client.get("/admin/core_partner/").status_code == 200
    refused = _add_partner(client, "Ottica Rossi")
    assert refused.status_code == 303 and refused.location.endswith("/admin/licence/")
    assert _partners(app, "Ottica Rossi") == 0
    assert "not change data" in client.get("/admin/licence/").get_data(as_text=True)
    # The customer portal keeps working: a customer is never refused because of the dealer's licence.
    portal = app.test_client()
    assert login(portal, "cliente@studio.it", url="/portal/login").status_code == 302
    assert portal.get("/portal/").status_code == 200
    # Installing a renewed licence ends read-only at once.
    renewed = post_form(
        client, "/admin/licence/install", {"text": licence_text(licence_id="L-RENEWED")}, form_url="/admin/licence/"
    )
    assert renewed.status_code == 302
    _add_partner(client, "Ottica Rossi")
    assert _partners(app, "Ottica Rossi") == 1


def test_an_expired_licence_refuses_staff_writes_through_the_api_too(start):
    app = start()
    install(app, licence_text(valid_from=TODAY - dt.timedelta(days=400), expires_at=TODAY - dt.timedelta(days=31)))
    with app.app_context():
        from core.api.tokens import create_token

        user = make_user("robot@dealer.it", name="Robot")
        token = create_token(user, "sync")[1]
        db.session.commit()
    answer = app.test_client().post(
        "/api/v1/customers", json={"name": "Ottica Rossi"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 403 and answer.mimetype == "application/problem+json"
    assert "expired" in answer.get_json()["detail"]


def test_a_clock_set_back_is_treated_as_expired(start):
    app = start()
    install(app, licence_text())
    # The worker's hourly job ran while the clock said two days later; now the clock is back at today.
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=2), tick=False):
        app.test_cli_runner().invoke(args=["jobs", "run-periodic", "lan_licensing.watch_licence"])
    client = _admin(app)
    page = client.get("/admin/").get_data(as_text=True)
    assert "clock is behind" in page
    _add_partner(client, "Ottica Rossi")
    assert _partners(app, "Ottica Rossi") == 0


EXPIRES = TODAY + dt.timedelta(days=40)


@pytest.mark.parametrize(
    ("days_after_today", "phase"),
    [
        (9, "valid"),  # 31 days before expiry
        (10, "expiring"),  # 30 days before: the banner starts
        (40, "expiring"),  # the expiry day itself is still licensed
        (41, "grace"),
        (70, "grace"),  # the grace's 30th day
        (71, "expired"),
    ],
)
def test_the_phases_around_expiry_day_by_day(start, days_after_today, phase):
    app = start()
    install(app, licence_text(expires_at=EXPIRES))
    later = dt.datetime.combine(TODAY + dt.timedelta(days=days_after_today), dt.time(12), dt.UTC)
    with app.app_context():
        now_state = state.compute(later)
        assert now_state.phase == phase
        assert now_state.read_only is (phase == "expired")
        assert now_state.features == set(now_state.licence.modules)  # grace and read-only keep the modules


@pytest.mark.parametrize(("days", "phase"), [(29, "evaluation"), (30, "evaluation_over")])
def test_the_evaluation_lasts_thirty_days(start, days, phase):
    app = start()
    with app.app_context():
        installation.get()
        db.session.commit()
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
        now_state = state.compute(later)
    assert now_state.phase == phase
    assert now_state.features == (None if phase == "evaluation" else set())


def test_after_the_evaluation_the_back_office_says_so_and_offers_the_licence_page(start):
    app = start()
    with app.app_context():
        installation.get()
        db.session.commit()
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=31), tick=False):
        later = start()
        client = _admin(later)
        page = client.get("/admin/").get_data(as_text=True)
        assert "The evaluation period is over: only the core works." in page
        licence_page = client.get("/admin/licence/").get_data(as_text=True)
        assert 'data-phase="evaluation_over"' in licence_page and 'id="install-licence"' in licence_page
        # A licence installed now ends it: every licensed module is back at the next start.
        installed = post_form(
            client, "/admin/licence/install", {"text": licence_text(licence_id="L-LATE")}, form_url="/admin/licence/"
        )
        assert installed.status_code == 302
        assert start().extensions["copydesk"].enabled("rentals")
