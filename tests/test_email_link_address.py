"""Emailed links point where the site is: BASE_URL when set; left at its default (a developer's machine), the address
being served, but never a public name a client put in its Host header."""

from __future__ import annotations

import re

import sqlalchemy as sa

from core.db import db
from core.extensions import limiter
from core.models import OutboxMessage
from core.outbox import as_sent
from tests.auth_support import CSRF_RE, make_user

LINK_RE = re.compile(r"(https?://[^/\s]+)/reset-password/\S+")


def reset_link_base(app, base_url: str) -> str:
    """Ask for a password reset on a site served at `base_url`; the address the emailed link points at."""
    limiter.reset()
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    client = app.test_client()
    form = client.get("/forgot-password", base_url=base_url).get_data(as_text=True)
    response = client.post(
        "/forgot-password",
        base_url=base_url,
        data={"csrf_token": CSRF_RE.search(form).group(1), "email": "admin@dealer.it"},
    )
    assert response.status_code == 200
    with app.app_context():
        message = db.session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
        return LINK_RE.search(as_sent(message)[1]).group(1)


def test_without_base_url_links_follow_the_port_being_served(app):
    # `make run PORT=5101`: the links must not point at port 5000.
    assert reset_link_base(app, "http://127.0.0.1:5101") == "http://127.0.0.1:5101"


def test_without_base_url_a_lan_address_being_served_is_used(app):
    assert reset_link_base(app, "http://192.168.1.20:5000") == "http://192.168.1.20:5000"


def test_without_base_url_a_public_host_header_is_never_trusted(app):
    assert reset_link_base(app, "http://evil.example:5101") == "http://127.0.0.1:5000"


def test_a_configured_base_url_wins_over_the_address_being_served(app):
    app.config["BASE_URL"] = "https://copydesk.example.it"
    try:
        assert reset_link_base(app, "http://127.0.0.1:5101") == "https://copydesk.example.it"
    finally:
        app.config["BASE_URL"] = "http://127.0.0.1:5000"
