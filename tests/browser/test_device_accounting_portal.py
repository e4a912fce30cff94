"""Print accounting in the portal, on a phone in Italian: the customer admin adds a print user with card 0004521 and a
monthly quota of 20,00 € rolling over up to 30,00 €; the device API then knows card 0004521 and not 4521."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from babel.numbers import format_currency
from flask_babel import force_locale, gettext

from core.api.tokens import create_token
from core.db import db
from core.demo import DEMO_LOGINS, DEMO_PASSWORD
from core.models import Partner, User

pytestmark = pytest.mark.browser

CUSTOMER_ADMIN, CUSTOMER = next(
    (email, customer) for email, _name, role, customer in DEMO_LOGINS if role == "customer_admin"
)
OFFICE = next(email for email, _name, role, _customer in DEMO_LOGINS if role == "back_office")
PHONE = {"viewport": {"width": 375, "height": 667}, "is_mobile": True, "has_touch": True, "locale": "it-IT"}


def portal_login(page) -> None:
    page.goto("/portal/login")
    page.fill("input[name=email]", CUSTOMER_ADMIN)
    page.fill("input[name=password]", DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("main form button[type=submit]")


def fits_the_phone(page) -> None:
    """Nothing scrolls sideways, and the page speaks Italian."""
    wide = page.evaluate(
        """() => [...document.querySelectorAll('main *')]
            .filter(e => e.getBoundingClientRect().right > 375.5)
            .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))
            .slice(0, 5)"""
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 375 and not wide, (page.url, wide)
    assert page.locator("html").get_attribute("lang") == "it"


def identify(live_app, card: str):
    """POST /api/v1/device-accounting/identify as an integrator would, for a device installed at the customer."""
    from modules.rentals.models import Installation

    with live_app.app_context():
        office = db.session.scalar(sa.select(User).where(User.email == OFFICE))
        _token, secret = create_token(office, "browser test")
        device_id = db.session.scalar(
            sa.select(Installation.device_id)
            .join(Partner, Partner.id == Installation.customer_id)
            .where(Partner.name == CUSTOMER, Installation.end_date.is_(None))
            .order_by(Installation.device_id)
            .limit(1)
        )
        db.session.commit()
    assert device_id is not None, f"the demo has no device installed at {CUSTOMER}"
    return live_app.test_client().post(
        "/api/v1/device-accounting/identify",
        json={"device_id": device_id, "card": card},
        headers={"Authorization": f"Bearer {secret}"},
    )


def test_customer_admin_adds_a_print_user_with_a_card_and_a_rollover_quota_on_a_phone(open_page, live_app):
    opened = open_page(**PHONE)
    page = opened.page
    portal_login(page)

    # From the portal's home to the print users, by the menu.
    with page.expect_navigation():
        page.click("nav.menu a[href='/portal/print/']")
    fits_the_phone(page)
    with page.expect_navigation():
        page.click("a.tile[href='/portal/print/users/']")
    fits_the_phone(page)
    with page.expect_navigation():
        page.click("a[href='/portal/print/users/new']")
    fits_the_phone(page)

    page.fill("#f-username", "grusso")
    page.fill("#f-full_name", "Giulia Russo")
    page.fill("#f-email", "giulia.russo@studiobianchi.it")
    page.select_option("#f-language", "it")
    page.fill("#f-card", "0004521")
    page.fill("#f-pin", "123")  # three digits: refused beside the field, in Italian, nothing saved
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    with live_app.test_request_context(), force_locale("it"):
        refused = gettext("A PIN is 4 to 8 digits.")
    assert page.locator("#f-pin-error").inner_text() == refused
    assert page.locator("#f-card").input_value() == "0004521"
    fits_the_phone(page)
    page.fill("#f-pin", "")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert page.locator("[data-card='0004521']").is_visible()
    fits_the_phone(page)

    with page.expect_navigation():
        page.click("#quota a.button")
    page.check("input[name=period][value=monthly]")
    page.fill("#f-amount", "20,00")
    page.check("input[name=mode][value=rollover]")
    page.fill("#f-rollover_cap", "30,00")
    fits_the_phone(page)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    quota = page.locator("#quota").inner_text()
    assert format_currency(20, "EUR", locale="it") in quota and format_currency(30, "EUR", locale="it") in quota
    fits_the_phone(page)
    # The refused PIN answered 422, which Chromium logs; nothing else may appear (no CSP or script error).
    assert [e for e in opened.errors if "status of 422" not in e] == []

    known = identify(live_app, "0004521")
    assert known.status_code == 200, known.get_data(as_text=True)
    assert known.json["user"]["username"] == "grusso" and Decimal(str(known.json["balance"])) == 20
    unknown = identify(live_app, "4521")
    assert unknown.status_code == 401 and unknown.json["reason"] == "unknown_card"
