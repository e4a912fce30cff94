"""The portal on a phone (375 px, Italian): every tab of the bar in sight and readable, the lists as cards."""

from __future__ import annotations

import pytest

from core.demo import DEMO_LOGINS, DEMO_PASSWORD

pytestmark = pytest.mark.browser

CUSTOMER_ADMIN = next(email for email, _name, role, _customer in DEMO_LOGINS if role == "customer_admin")
PHONE = {"viewport": {"width": 375, "height": 667}, "is_mobile": True, "has_touch": True, "locale": "it-IT"}


def portal_login(page, email: str = CUSTOMER_ADMIN) -> None:
    page.goto("/portal/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("main form button[type=submit]")


@pytest.mark.parametrize("path", ["/portal/", "/portal/invoices/", "/portal/users/", "/portal/print/users/"])
def test_every_portal_tab_is_in_sight_and_readable_on_a_phone(open_page, path, tmp_path):
    opened = open_page(**PHONE)
    page = opened.page
    portal_login(page)
    page.goto(path)
    page.screenshot(path=str(tmp_path / f"{path.strip('/').replace('/', '-')}.png"), full_page=True)

    tabs = page.locator("nav.menu a")
    labels = [tabs.nth(i).inner_text().strip() for i in range(tabs.count())]
    assert labels == [
        "Home",
        "Letture contatori",
        "Toner",
        "Fatture",
        "Contabilità stampe",
        "Le mie stampe",
        "Utenti",
        "Cambia password",
    ]
    for i in range(tabs.count()):
        tab = tabs.nth(i)
        box = tab.bounding_box()
        # Within the screen without scrolling sideways, tall enough for a finger, text not shrunk or cut.
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375, (labels[i], box)
        assert box["height"] >= 40, (labels[i], box)
        assert tab.evaluate("a => parseFloat(getComputedStyle(a).fontSize)") >= 14
        assert tab.evaluate("a => a.scrollWidth <= a.clientWidth"), labels[i]
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scroll of the page
    assert opened.errors == []
