"""Issue 11's walk from a reading request to a posted invoice, in Italian, the portal on a phone: the emailed link,
a lower counter refused in plain words, the counters accepted, the request completed on the board and gone from the
portal, the billing run with contract numbers, serials and meter labels as links, posting confirmed, the PDF."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pytest
from babel.numbers import format_decimal
from flask import Flask
from pypdf import PdfReader

from tests.browser.conftest import demo_app, serve
from tests.browser.test_metering_portal import OFFICE, emailed_link, log_in
from tests.browser.test_portal_phone import CUSTOMER_ADMIN, PHONE, portal_login

pytestmark = pytest.mark.browser

DESK = {"viewport": {"width": 1280, "height": 900}, "locale": "it-IT"}
CUSTOMER = "Studio Legale Bianchi"
SERIAL = "VCF1234567"


# A demo of its own: this walk completes Bianchi's request and posts the demo's invoices, which the other browser
# tests (sharing the session's live app) must not find done.
@pytest.fixture(scope="module")
def live_app(tmp_path_factory) -> Iterator[Flask]:
    yield from demo_app(tmp_path_factory.mktemp("reading_to_invoice"))


@pytest.fixture(scope="module")
def live_server(live_app) -> Iterator[str]:
    yield from serve(live_app)


def it_number(value: int) -> str:
    return format_decimal(value, locale="it")


def test_a_reading_request_walks_to_a_posted_invoice_and_its_pdf(open_page, live_app):
    staff = open_page(**DESK).page
    log_in(staff, OFFICE)
    link = emailed_link(staff, live_app)

    # The customer, on a phone, opens the emailed link.
    phone = open_page(**PHONE)
    page = phone.page
    page.goto(link)
    assert page.locator("html").get_attribute("lang") == "it"
    assert page.get_by_text(SERIAL, exact=True).is_visible()
    bw = page.locator("input.counter[name$='-bw']")
    color = page.locator("input.counter[name$='-color']")
    last_bw, last_color = int(bw.get_attribute("data-previous")), int(color.get_attribute("data-previous"))

    # A lower counter: refused in the customer's words (the meter's label, Italian numbers, what they can do).
    bw.fill(str(last_bw - 100))
    color.fill(str(last_color + 80))
    page.click("button[value=review]")
    error = page.locator(f"#{bw.get_attribute('id')}-error").inner_text()
    assert "Bianco e nero" in error and it_number(last_bw) in error and it_number(last_bw - 100) in error, error
    assert not re.search(r"\bbw\b", error) and "registra" not in error.lower(), error
    assert "è inferiore all'ultimo" in error and "avvisaci" in error, error  # check the number, or tell the dealer

    # The right counters: reviewed, confirmed.
    bw.fill(str(last_bw + 321))
    page.click("button[value=review]")
    with page.expect_navigation():
        page.click("button[value=confirm]")
    assert page.locator(".confirmation h1").is_visible()

    # The board: the request completed, its reading accepted.
    staff.goto("/admin/metering_campaigns/?q=bianchi")
    row = staff.locator("tr", has_text=CUSTOMER).first
    assert row.locator("[data-status]").get_attribute("data-status") == "completed"
    assert row.locator("[data-reading-status]").get_attribute("data-reading-status") == "accepted"

    # The portal no longer asks for those counters.
    portal = open_page(**PHONE).page
    portal_login(portal, CUSTOMER_ADMIN)
    portal.goto("/portal/readings/")
    assert portal.locator("a[href*='/portal/readings/request/']").count() == 0
    assert "chiede i contatori" not in portal.content()

    # A billing run as of today: contracts by number, devices by serial, meters by label, each a link.
    staff.goto("/admin/invoicing_runs_admin/")
    with staff.expect_navigation():
        staff.click("form[action$='/start'] button[type=submit]")
    review = staff.locator("#review tr", has_text=CUSTOMER).first
    assert re.fullmatch(r"\d+/2026", review.locator("a[href*='rentals_contract']").inner_text().strip())
    # The demo leaves Academia Cervantes' October and November black-and-white counters of the HP unread.
    missing = staff.locator("#missing tbody tr", has_text="Academia Cervantes SL").first
    assert re.fullmatch(r"\d+/2026", missing.locator("a[href*='rentals_contract']").inner_text().strip())
    assert missing.locator("a[href*='rentals_device']", has_text="PHBLR01234").count() == 1
    assert missing.locator("a", has_text="Bianco e nero").count() == 1
    assert not re.search(r"\b(bw|color|scan)\b", staff.locator("#missing").inner_text())

    # Posting asks first; confirmed, the drafts get numbers and the post buttons go.
    with staff.expect_navigation():
        staff.click("button[name=all][value='1']")
    assert staff.locator("#planned").is_visible()
    staff.check("#confirm")
    with staff.expect_navigation():
        staff.click("form[action$='/post'] button[type=submit]")
    assert staff.locator("button[name=all]").count() == 0
    invoice_link = staff.locator("#review tr", has_text=CUSTOMER).first.locator("a[href*='invoicing_invoices_admin']")
    number = invoice_link.inner_text().strip()
    assert re.fullmatch(r"\d+/2026", number), number

    # The PDF, downloaded as the dealer would, says what the customer must read.
    with staff.expect_navigation():
        invoice_link.click()
    with staff.expect_download() as download:
        staff.click("a[href$='/pdf']")
    with open(download.value.path(), "rb") as stored:
        text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(stored.read())).pages)
    assert number in text and CUSTOMER in text
    assert "22%" in text.replace(" %", "%")
    assert "Contratto costo copia: canone mensile anticipato." in text  # the contract's invoice notes

    # And the customer finds it in the portal, on the phone, with its PDF and XML.
    portal.goto("/portal/invoices/")
    assert number in portal.content()
    assert portal.locator("a[href$='.xml']").count() >= 1
    assert [e for e in phone.errors if "status of 422" not in e] == []
