"""Helpers for tests that need users and logged-in clients: real forms, real CSRF tokens, real password hashes."""

from __future__ import annotations

import re

from core.auth import services
from core.db import db
from core.models import Partner, User

PASSWORD = "correct horse battery"
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def make_customer(name: str = "Studio Bianchi", language: str = "it") -> int:
    partner = Partner(name=name, is_customer=True, language=language)
    db.session.add(partner)
    db.session.commit()
    return partner.id


def make_user(
    email: str,
    role: str = "dealer_admin",
    customer_id: int | None = None,
    password: str | None = PASSWORD,
    **fields,
) -> User:
    """A committed user with `password` (None: no password, a set-password email is queued instead)."""
    user = services.create_user(email, role, customer_id=customer_id, password=password, **fields)
    db.session.commit()
    return user


def csrf_token(client, url: str) -> str:
    """The CSRF token of the form on `url`, as a browser would read it."""
    page = client.get(url)
    match = CSRF_RE.search(page.get_data(as_text=True))
    assert match, f"no CSRF token in the page at {url} (status {page.status_code})"
    return match.group(1)


def post_form(client, url: str, data: dict, form_url: str | None = None, **kwargs):
    """POST `data` to `url` with the CSRF token of the form at `form_url` (default: `url` itself)."""
    token = csrf_token(client, form_url or url)
    return client.post(url, data={"csrf_token": token, **data}, **kwargs)


def login(client, email: str, password: str = PASSWORD, url: str = "/login", **extra):
    return post_form(client, url, {"email": email, "password": password, **extra})


def logout(client, form_url: str = "/account/password"):
    return post_form(client, "/logout", {}, form_url=form_url)
