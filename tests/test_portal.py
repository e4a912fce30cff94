"""The customer portal's shell: who gets in, the menu modules fill, languages, and its light pages."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.db import db
from core.extensions import limiter
from core.models import User
from core.portal import LINKS_KEY, register_portal_link
from tests.auth_support import login, make_customer, make_user, post_form


@pytest.fixture(autouse=True)
def _fresh_limits(app):
    limiter.reset()


@pytest.fixture
def module_links(app):
    """Two entries as modules would register them, removed afterwards (the app is shared by the tests)."""
    before = list(app.extensions.get(LINKS_KEY, []))
    register_portal_link(app, "health.healthz", "Fixture invoices", icon="invoice", permission="portal.invoices")
    register_portal_link(
        app, "auth.forgot_password", "Fixture readings", icon="gauge", permission="portal.readings", order=10
    )
    yield
    app.extensions[LINKS_KEY] = before


def _customer_client(app, role: str = "customer_admin", language: str | None = None):
    with app.app_context():
        customer_id = make_customer("Studio Bianchi", language="it")
        make_user(f"{role}@studio.it", role, customer_id=customer_id, name="Anna Bianchi", language=language)
    client = app.test_client()
    assert login(client, f"{role}@studio.it", url="/portal/login").status_code == 302
    return client


def test_anonymous_visitor_is_sent_to_the_portal_login(app, client):
    response = client.get("/portal/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/portal/login?next=/portal/"


def test_staff_visiting_the_portal_go_to_the_back_office(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    login(client, "admin@dealer.it")
    response = client.get("/portal/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


def test_portal_home_greets_the_customer_and_offers_a_logout(app):
    client = _customer_client(app)
    page = client.get("/portal/").get_data(as_text=True)
    assert "Anna Bianchi" in page
    assert "Studio Bianchi" in page
    assert 'action="/logout"' in page
    assert "Cambia password" in page  # in the customer's Italian


def test_portal_lists_the_entries_the_role_may_open(app, module_links):
    admin_page = _customer_client(app, "customer_admin").get("/portal/").get_data(as_text=True)
    assert "Fixture invoices" in admin_page
    assert "Fixture readings" in admin_page
    assert admin_page.index("Fixture readings") < admin_page.index("Fixture invoices")
    user_page = _customer_client(app, "customer_user").get("/portal/").get_data(as_text=True)
    assert "Fixture readings" in user_page
    assert "Fixture invoices" not in user_page


def test_registering_a_link_twice_or_with_an_unknown_icon_fails_loudly(app, module_links):
    with pytest.raises(ValueError, match="registered twice"):
        register_portal_link(app, "health.healthz", "Again")
    with pytest.raises(ValueError, match="unknown icon"):
        register_portal_link(app, "portal.home", "Home", icon="rocket")


def test_portal_pages_are_in_the_customers_language(app):
    client = _customer_client(app)
    page = client.get("/portal/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="it">' in page


def test_language_switcher_saves_the_users_choice(app):
    client = _customer_client(app)
    response = post_form(client, "/account/language", {"language": "es", "next": "/portal/"}, form_url="/portal/")
    assert response.headers["Location"] == "/portal/"
    assert '<html lang="es">' in client.get("/portal/").get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(User.language).where(User.role == "customer_admin")) == "es"


def test_language_switcher_refuses_unknown_languages_and_foreign_next(app):
    client = _customer_client(app)
    response = post_form(
        client, "/account/language", {"language": "de", "next": "https://evil.com/"}, form_url="/portal/"
    )
    assert response.headers["Location"] == "/portal/"
    assert "Lingua de sconosciuta" in client.get("/portal/").get_data(as_text=True)


def test_portal_login_page_is_light_and_phone_friendly(app, client):
    page = client.get("/portal/login").get_data(as_text=True)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "/static/copydesk.css" in page
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page
    assert client.get("/static/copydesk.css").status_code == 200
