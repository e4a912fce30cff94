"""Logging in through the real forms in Chromium: staff reach the back office, customers the portal, each in Italian."""

from __future__ import annotations

import pytest

from core.demo import DEMO_LOGINS, DEMO_PASSWORD

pytestmark = pytest.mark.browser

STAFF = next(email for email, _name, role, _customer in DEMO_LOGINS if role == "dealer_admin")
CUSTOMER, CUSTOMER_NAME = next((email, name) for email, name, role, _c in DEMO_LOGINS if role == "customer_admin")


def log_in(page, path: str, email: str) -> None:
    page.goto(path)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("main form button[type=submit]")


def test_staff_login_through_the_form_reaches_the_admin_dashboard(open_page):
    opened = open_page()
    page = opened.page

    log_in(page, "/login", STAFF)

    assert page.url.endswith("/admin/")
    assert page.title().startswith("Cruscotto")  # the demo staff write Italian
    assert page.locator("nav").get_by_role("button", name="Esci").is_visible()
    page.click("text=Anagrafiche")
    page.click("text=Clienti e fornitori")
    assert page.locator(".nav-tabs .active").inner_text().startswith("Elenco")  # Flask-Admin's own label, in Italian
    assert page.get_by_text("Studio Legale Bianchi").is_visible()
    assert opened.errors == []


def test_customer_login_reaches_the_portal_and_is_refused_the_admin(open_page):
    opened = open_page()
    page = opened.page

    log_in(page, "/portal/login", CUSTOMER)

    assert page.url.endswith("/portal/")
    assert page.get_by_role("heading", name=f"Ciao, {CUSTOMER_NAME}").is_visible()
    assert opened.errors == []
    refused = page.goto("/admin/")
    assert refused.status == 403
    assert "Studio Legale Bianchi" not in page.content()
    assert page.locator("nav").get_by_role("button", name="Esci").count() == 0


@pytest.mark.parametrize(
    ("locale", "html_lang", "texts"),
    [
        ("it-IT", "it", ["Accedi", "Password dimenticata?", "Ricordami su questo dispositivo", "Portale clienti"]),
        ("es-ES", "es", ["Iniciar sesión", "¿Has olvidado tu contraseña?", "Recordarme en este dispositivo"]),
    ],
)
def test_login_page_speaks_the_browser_language(open_page, locale, html_lang, texts):
    opened = open_page(locale=locale)
    page = opened.page

    page.goto("/login")

    assert page.locator("html").get_attribute("lang") == html_lang
    for text in texts:
        assert page.get_by_text(text, exact=True).first.is_visible()
    assert opened.errors == []


def test_language_link_switches_the_login_page(open_page):
    opened = open_page(locale="it-IT")
    page = opened.page
    page.goto("/login")

    page.click("a[hreflang=es]")

    assert page.get_by_role("heading", name="Iniciar sesión").is_visible()
    assert opened.errors == []
