"""Security headers on every response, and pages that really run under the Content-Security-Policy in Chromium."""

from __future__ import annotations

import logging
import re
import threading

import pytest
from flask import Response
from werkzeug.serving import make_server

from core.extensions import limiter
from core.security import set_security_headers
from tests.auth_support import login, make_customer, make_user

NONCE_RE = re.compile(r"script-src 'self' 'nonce-([^']+)'")


@pytest.fixture(autouse=True)
def _fresh_limits(app):
    limiter.reset()


def _assert_security_headers(response) -> None:
    headers = response.headers
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    policy = headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "object-src 'none'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]


def test_every_kind_of_response_carries_the_security_headers(app, client):
    for url in ("/login", "/portal/login", "/forgot-password", "/admin/", "/no-such-page", "/static/copydesk.css"):
        _assert_security_headers(client.get(url))
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    login(client, "admin@dealer.it")
    _assert_security_headers(client.get("/admin/"))
    _assert_security_headers(client.get("/admin/core_user/"))


def test_each_response_gets_its_own_nonce_and_admin_scripts_carry_it(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    login(client, "admin@dealer.it")
    first, second = client.get("/admin/core_user/"), client.get("/admin/core_user/")
    nonce = NONCE_RE.search(first.headers["Content-Security-Policy"]).group(1)
    assert nonce != NONCE_RE.search(second.headers["Content-Security-Policy"]).group(1)
    scripts = re.findall(r"<script\b[^>]*>", first.get_data(as_text=True))
    assert scripts
    for tag in scripts:
        assert f'nonce="{nonce}"' in tag, tag


def test_admin_pages_carry_no_inline_event_handlers(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    login(client, "admin@dealer.it")
    for url in ("/admin/core_user/", "/admin/core_user/new/", "/admin/core_partner/new/", "/admin/core_audit/"):
        html = client.get(url).get_data(as_text=True)
        assert not re.search(r"\son[a-z]+=\"", html), url
        assert "javascript:" not in html, url


def test_a_page_may_allow_framing_by_its_own_site(app):
    with app.test_request_context("/admin/outbox/preview"):
        response = set_security_headers(Response("<p>preview</p>", headers={"X-Frame-Options": "SAMEORIGIN"}))
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]


def test_https_sites_get_strict_transport_security(app):
    with app.test_request_context("/login"):
        assert "Strict-Transport-Security" not in set_security_headers(Response("x")).headers
    app.config["BASE_URL"] = "https://copydesk.example.it"
    try:
        with app.test_request_context("/login"):
            assert set_security_headers(Response("x")).headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        app.config["BASE_URL"] = "http://127.0.0.1:5000"


def test_session_and_remember_cookies_are_http_only_and_same_site(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    response = login(client, "admin@dealer.it", remember="y")
    cookies = response.headers.getlist("Set-Cookie")
    session = next(cookie for cookie in cookies if cookie.startswith("session="))
    remember = next(cookie for cookie in cookies if cookie.startswith("remember_token="))
    assert "HttpOnly" in session and "SameSite=Lax" in session
    assert "HttpOnly" in remember and "SameSite=Lax" in remember


# Pages looked at in Chromium: none may trip the policy, log an error or fail to load a resource.
STAFF_PAGES = (
    "/admin/",
    "/admin/core_user/",
    "/admin/core_user/new/",
    "/admin/core_audit/",
    "/admin/core_partner/",
    "/admin/core_partner/new/",
    "/account/password",
)
CSP_LISTENER = (
    "window.__violations = [];"
    "document.addEventListener('securitypolicyviolation', e => window.__violations.push("
    "e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber));"
)


@pytest.fixture
def live_server(app):
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _watched_page(browser, **context_options):
    context = browser.new_context(**context_options)
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    page.problems = []
    # A failed load shows up as a response below; the browser's own favicon guess is no page's business.
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and not message.text.startswith("Failed to load resource")
            and page.problems.append(message.text)
        ),
    )
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on(
        "response",
        lambda response: (
            response.status >= 400
            and not response.url.endswith("/favicon.ico")
            and page.problems.append(f"{response.status} {response.url}")
        ),
    )
    return page


def _visit(page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__violations") == [], url
    assert page.problems == [], url


@pytest.mark.browser
def test_back_office_pages_work_under_the_policy_in_chromium(app, live_server, browser):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin", name="Dealer Admin")
    page = _watched_page(browser)
    _visit(page, f"{live_server}/login")
    page.fill("#email", "admin@dealer.it")
    page.fill("#password", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/admin/")
    for path in STAFF_PAGES:
        _visit(page, live_server + path)

    # Flask-Admin's inline handlers, moved out of the markup, still work: adding an inline contact row ...
    _visit(page, f"{live_server}/admin/core_partner/new/")
    page.click("#contacts-button")
    assert page.locator("[name='contacts-0-email']").count() == 1
    # ... and the confirmation of a list action.
    _visit(page, f"{live_server}/admin/core_user/")
    page.check("input.action-checkbox >> nth=0")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.locator("li:has([data-csp-onclick*=send_set_password]) > a.dropdown-toggle").click()
    page.click("[data-csp-onclick*=send_set_password]")
    page.wait_for_timeout(300)
    assert dialogs == ["Email the selected users a link to choose a new password?"]
    assert page.evaluate("window.__violations") == []
    assert page.problems == []


@pytest.mark.browser
def test_portal_pages_work_under_the_policy_on_a_phone(app, live_server, browser):
    with app.app_context():
        make_user("anna@studio.it", "customer_admin", customer_id=make_customer(), name="Anna Bianchi")
    page = _watched_page(browser, viewport={"width": 390, "height": 800})
    _visit(page, f"{live_server}/portal/login")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.fill("#email", "anna@studio.it")
    page.fill("#password", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/portal/")
    assert page.evaluate("window.__violations") == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("h1").inner_text() == "Ciao, Anna Bianchi"  # the customer (make_customer) is Italian
    _visit(page, f"{live_server}/account/password")
    page.click("button:has-text('Esci')")
    page.wait_for_url(f"{live_server}/portal/login")
    _visit(page, f"{live_server}/forgot-password")
