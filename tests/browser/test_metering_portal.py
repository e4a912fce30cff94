"""The reading cycle in Chromium, in Italian: the dealer's emailed request link, counters typed by the customer, the
review step, the confirmation, a lower counter refused, and the reading accepted in the back office."""

from __future__ import annotations

import re

import pytest
from babel.numbers import format_decimal

from core.demo import DEMO_LOGINS, DEMO_PASSWORD

pytestmark = pytest.mark.browser

OFFICE = next(email for email, _name, role, _customer in DEMO_LOGINS if role == "back_office")
LINK_RE = re.compile(r"https?://[^/\s]+(/portal/readings/link/[A-Za-z0-9._-]+)")


def log_in(page, email: str) -> None:
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("main form button[type=submit]")


def emailed_link(page, live_app) -> str:
    """The link in Studio Legale Bianchi's reading request: the dealer's outbox shows it redacted; the customer's
    copy (here printed by the operator's `flask outbox show`) carries the working one."""
    page.goto("/admin/outbox/?q=studiobianchi")
    page.locator("table.outbox-list a", has_text="Letture contatori").first.click()
    assert "/portal/readings/link/" in page.content() and not LINK_RE.search(page.content())
    message_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    shown = live_app.test_cli_runner().invoke(args=["outbox", "show", message_id])
    match = LINK_RE.search(shown.output)
    assert shown.exit_code == 0 and match, shown.output
    return match.group(1)


def test_customer_sends_counters_from_the_emailed_link_and_the_dealer_sees_them_accepted(open_page, live_app):
    staff = open_page(locale="it-IT").page
    log_in(staff, OFFICE)
    link = emailed_link(staff, live_app)

    opened = open_page(locale="it-IT")
    page = opened.page
    page.goto(link)
    assert page.locator("html").get_attribute("lang") == "it"
    assert page.get_by_text("VCF1234567", exact=True).is_visible()
    bw = page.locator("input.counter[name$='-bw']")
    color = page.locator("input.counter[name$='-color']")
    last_bw, last_color = int(bw.get_attribute("data-previous")), int(color.get_attribute("data-previous"))

    # A counter lower than the last one: a hint while typing, then the server refuses it in Italian.
    bw.fill(str(last_bw - 100))
    assert "Inferiore all'ultima lettura" in page.locator(f"#{bw.get_attribute('id')}-hint").inner_text()
    color.fill(str(last_color + 80))
    page.click("button[value=review]")
    error = page.locator(f"#{bw.get_attribute('id')}-error")
    assert "è inferiore all'ultimo" in error.inner_text() and format_decimal(last_bw, locale="it") in error.inner_text()

    # The right numbers (a rise below metering.jump_min_pages, so never held for review): review, then confirm.
    bw.fill(str(last_bw + 321))
    assert page.locator(f"#{bw.get_attribute('id')}-hint").inner_text() == ""
    page.click("button[value=review]")
    assert page.get_by_role("heading", name="Controlla i tuoi numeri").is_visible()
    assert page.locator(".review-table .new").first.inner_text().replace(".", "") == str(last_bw + 321)
    with page.expect_navigation():
        page.click("button[value=confirm]")
    assert page.locator(".confirmation h1").is_visible()
    assert "VCF1234567" in page.content()
    # The refused form answered 422, which Chromium logs; nothing else may appear (no CSP or script error).
    assert [e for e in opened.errors if "status of 422" not in e] == []

    staff.goto("/admin/metering_campaigns/?q=bianchi")
    row = staff.locator("tr", has_text="Studio Legale Bianchi").first
    assert row.locator("[data-status]").get_attribute("data-status") == "completed"
    assert row.locator("[data-reading-status]").get_attribute("data-reading-status") == "accepted"
