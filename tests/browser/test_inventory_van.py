"""The technician's van page on a phone (375 px, Italian), in Chromium: every control a finger-sized target, nothing
to scroll sideways; typing a drum's serial (as a barcode scanner types it) and delivering it takes it out of the van."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.db import db
from core.demo import DEMO_PASSWORD

pytestmark = pytest.mark.browser

TECHNICIAN = "tech@copydesk.local"  # Tecnico Rossi, whose van the demo loaded with two drums
SERIAL = "LVX3Z00101"
DEVICE = "VBB7654321"  # a Kyocera ECOSYS P2040dn, which the DK-1150 drum fits
PHONE = {"viewport": {"width": 375, "height": 667}, "is_mobile": True, "has_touch": True, "locale": "it-IT"}


def test_a_technician_delivers_a_scanned_serial_from_the_van_on_a_phone(open_page, live_app, tmp_path):
    opened = open_page(**PHONE)
    page = opened.page
    page.goto("/login")
    page.fill("input[name=email]", TECHNICIAN)
    page.fill("input[name=password]", DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    page.goto("/inventory/van/")
    assert page.locator("#van-stock").inner_text().count(SERIAL) == 1
    page.screenshot(path=str(tmp_path / "van.png"), full_page=True)

    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scroll
    controls = page.locator("main input:visible, main select:visible, main button:visible, main textarea:visible")
    assert controls.count() >= 6
    for i in range(controls.count()):
        box = controls.nth(i).bounding_box()
        name = controls.nth(i).evaluate("e => e.id || e.name || e.textContent")
        assert box["height"] >= 44, (name, box)
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375, (name, box)

    page.fill("#deliver-item", SERIAL)
    if page.locator("#deliver-device").count():  # the rentals_inventory bridge delivers into a device
        page.fill("#deliver-device", DEVICE)
    else:
        page.select_option("#deliver-customer", label="Studio Legale Bianchi")
    with page.expect_navigation():
        page.click("#deliver-button")
    refusals = page.locator("p.error, .notice.error").all_inner_texts()
    assert not refusals, refusals
    assert SERIAL in page.locator(".notice.success").inner_text()
    assert SERIAL not in page.locator("#van-stock").inner_text()
    assert opened.errors == []

    from modules.inventory.models import Location, SerialNumber

    with live_app.app_context():
        unit = db.session.scalar(sa.select(SerialNumber).where(SerialNumber.serial == SERIAL))
        assert db.session.get(Location, unit.location_id).kind == "customer"
