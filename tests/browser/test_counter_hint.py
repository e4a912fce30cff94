"""The portal's hint while a counter is typed reads it as the server will, with the separators Babel gives the page's
language: `12.345` is twelve thousand three hundred forty-five in Italian, `12,345.6` is not a whole number in
English, and over a range of ways to type a counter the hint refuses exactly what the server refuses."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import time_machine
from flask import Flask
from flask_babel import force_locale

from core.db import db
from core.i18n import parse_whole_number
from modules.rentals.contracts import create_contract
from modules.rentals.devices import create_device
from tests.auth_support import PASSWORD, make_customer, make_user
from tests.browser.conftest import BROWSER_NOW, demo_app, serve

pytestmark = pytest.mark.browser

SERIAL = "HNT0012345"
INSTALLED_AT = 12_000  # the black-and-white counter the device was installed with: the last value the form shows
LANGUAGES = {"it": "it-IT", "en": "en-GB", "es": "es-ES"}
LOWER = {"it": "Inferiore all'ultima lettura (12.000)", "en": "Lower than the last reading (12,000)"}
LOWER["es"] = "Inferior a la última lectura (12.000)"
# Ways a customer types a counter near 12,000: digits, grouped in each language, with decimals, badly grouped.
TYPED = [
    "12345", "12.345", "12,345", "12 345", "11.999", "11,999", "12.000", "12,000", "12.000,0", "12,000.0",
    "12.345,6", "12,345.6", "12345,6", "12345.6", "12345,0", "12345.0", "12.34", "12,34", "1.2345", "1,2345",
    "12.345,", "12,345.", "1.23.45", "12.345.678", "12,345,678", "+12345", "-12345", "-0", "12a", "½", "1_2345",
    "012.345", "12.345,000", "12,345.000",
]  # fmt: skip


# A demo of its own: the users and the device added here stay out of the other browser tests' demo.
@pytest.fixture(scope="module")
def live_app(tmp_path_factory) -> Iterator[Flask]:
    for app in demo_app(tmp_path_factory.mktemp("counter_hint")):
        with time_machine.travel(BROWSER_NOW, tick=False), app.app_context():
            customer = make_customer("Ottica Rossi")
            device = create_device({"serial": SERIAL, "manufacturer": "Kyocera", "model": "ECOSYS P2040dn"})
            create_contract(
                {
                    "customer_id": customer,
                    "start_date": "2026-11-02",
                    "fee": "40.00",
                    "devices": [{"device_id": device.id, "counters": {"bw": INSTALLED_AT}}],
                }
            )
            db.session.commit()
            for language in LANGUAGES:
                make_user(f"{language}@otticarossi.it", "customer_user", customer_id=customer, language=language)
        yield app


@pytest.fixture(scope="module")
def live_server(live_app) -> Iterator[str]:
    yield from serve(live_app)


def counter_form(open_page, language: str):
    """The portal's counter form of Ottica Rossi's user who speaks `language`, and its black-and-white input."""
    opened = open_page(locale=LANGUAGES[language])
    page = opened.page
    page.goto("/portal/login")
    page.fill("input[name=email]", f"{language}@otticarossi.it")
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    page.goto("/portal/readings/enter")
    assert page.locator("html").get_attribute("lang") == language
    bw = page.locator("input.counter[name$='-bw']")
    assert bw.get_attribute("data-previous") == str(INSTALLED_AT)
    return opened, bw


def not_whole(page) -> str:
    """The form's "not a whole number" hint, in the page's language."""
    message = page.locator("form.readings-form").get_attribute("data-msg-whole")
    assert message.startswith(("Not a whole number", "Non è un numero intero", "No es un número entero"))
    return message


def hint_of(page, field) -> str:
    return page.locator(f"#{field.get_attribute('id')}-hint").inner_text()


def type_counter(page, field, value: str) -> str:
    field.fill(value)
    return hint_of(page, field)


def test_in_italian_12_345_is_twelve_thousand_three_hundred_forty_five(open_page):
    opened, bw = counter_form(open_page, "it")
    page = opened.page
    assert page.locator("form.readings-form").get_attribute("data-group") == "."
    assert type_counter(page, bw, "12.345") == ""  # above the last reading, 12.000: not 12.345 pages, nor 12
    assert type_counter(page, bw, "11.999").startswith(LOWER["it"])
    assert type_counter(page, bw, "12.345,6") == not_whole(page)
    assert type_counter(page, bw, "12,345") == not_whole(page)  # the English way: 12 and a decimal part

    # The server reads it the same: the review step shows 12.345, 345 pages since the installation.
    type_counter(page, bw, "12.345")
    page.click("button[value=review]")
    assert page.get_by_role("heading", name="Controlla i tuoi numeri").is_visible()
    row = page.locator(".review-table tr", has_text="12.345")
    assert row.locator(".new").inner_text() == "12.345" and "+345" in row.inner_text()
    assert opened.errors == []


def test_in_english_12_345_6_is_flagged_as_not_a_whole_number_as_the_server_says(open_page):
    opened, bw = counter_form(open_page, "en")
    page = opened.page
    assert type_counter(page, bw, "12,345") == ""
    assert type_counter(page, bw, "12.345") == not_whole(page)
    assert type_counter(page, bw, "12,345.6") == not_whole(page)
    assert not_whole(page).startswith("Not a whole number")

    page.click("button[value=review]")
    error = page.locator(f"#{bw.get_attribute('id')}-error")
    assert re.search(r"counter is not a whole number: 12,345\.6$", error.inner_text())
    assert hint_of(page, bw) == ""  # the page came back from the server: its message is the one shown
    # The refused form answered 422, which Chromium logs; nothing else may appear.
    assert [e for e in opened.errors if "status of 422" not in e] == []


@pytest.mark.parametrize("language", ["it", "en", "es"])
def test_the_hint_refuses_exactly_what_the_server_refuses(open_page, live_app, language):
    opened, bw = counter_form(open_page, language)
    page = opened.page
    with live_app.test_request_context(), force_locale(language):
        server = {typed: parse_whole_number(typed) for typed in TYPED}
    disagreements = []
    for typed, number in server.items():
        hint = type_counter(page, bw, typed)
        if number is None:
            ok = hint == not_whole(page)
        elif number < INSTALLED_AT:
            ok = hint.startswith(LOWER[language])
        else:
            ok = hint == ""
        if not ok:
            disagreements.append((typed, number, hint))
    assert disagreements == []
    assert sum(number is None for number in server.values()) >= 10  # the list does try refused ways
    assert opened.errors == []
