"""Helpers for the portal tests: two customers with admins, users, cost centers, print users, devices and jobs."""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa
from flask_babel import force_locale, gettext

from core.db import db
from core.extensions import limiter
from modules.device_accounting import cost_centers, quotas, users
from modules.device_accounting.models import Card, CostCenter, PrintUser, Quota, Transaction
from modules.device_accounting.tests import reports_support as s
from tests.auth_support import CSRF_RE, login, make_user

# A moment in the middle of a month, in the dealer's day (Europe/Rome): pages and jobs are dated from it.
NOW = dt.datetime(2026, 3, 18, 9, 30, tzinfo=dt.UTC)


@dataclass
class Company:
    """One customer's records, by name, as the tests use them (ids only: objects die with their session)."""

    customer: int
    admin: str
    colleague: str
    print_user: int
    other_print_user: int
    card: int
    cost_center: int
    shared_center: int
    device: int
    jobs: list[int] = field(default_factory=list)


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def build_company(name: str, domain: str, language: str, serial: str) -> Company:
    """A customer with an admin, a colleague (customer_user) who is also a print user, a cost-center tree with a
    shared account, a device, and three jobs of the colleague and one of someone else this month."""
    customer = s.customer(name)
    customer.language = language
    admin = make_user(f"admin@{domain}", "customer_admin", customer_id=customer.id, name=f"Admin {name}")
    colleague = make_user(f"mario@{domain}", "customer_user", customer_id=customer.id, name="Mario Rossi")
    top = cost_centers.save_cost_center(customer.id, {"name": "Amministrazione"})
    accounts = cost_centers.save_cost_center(customer.id, {"name": "Contabilità", "parent_id": top.id})
    shared = cost_centers.save_cost_center(customer.id, {"name": "Progetti", "shared": True})
    mario = users.save_user(
        customer.id,
        {
            "username": "mrossi",
            "full_name": "Mario Rossi",
            "email": colleague.email.upper(),  # emails match ignoring case
            "default_cost_center_id": accounts.id,
            "cost_center_ids": [accounts.id],
        },
    )
    card = users.add_card(mario, "0001234")
    other = users.save_user(customer.id, {"username": "lverdi", "full_name": "Luisa Verdi"})
    quotas.save_quota(
        customer.id,
        {"user_id": mario.id, "period": "monthly", "amount": Decimal("20"), "mode": "reset"},
    )
    device = s.device(serial, customer.id)
    jobs = [
        s.job(
            customer.id,
            device.id,
            s.at("2026-03-16", 8, 15),
            user_id=mario.id,
            cost_center_id=accounts.id,
            sides_bw=10,
            cost="0.35",
        ),
        s.job(
            customer.id,
            device.id,
            s.at("2026-03-17", 23, 30),
            user_id=mario.id,
            cost_center_id=accounts.id,
            function="copy",
            sides_color=4,
            cost="0.6000",
        ),
        s.job(
            customer.id,
            device.id,
            s.at("2026-03-02"),
            user_id=mario.id,
            cost_center_id=accounts.id,
            sides_bw=2,
            cost="0.0350",
        ),
        s.job(customer.id, device.id, s.at("2026-03-10"), user_id=other.id, sides_bw=100, cost="3.50"),
    ]
    db.session.commit()
    return Company(
        customer=customer.id,
        admin=admin.email,
        colleague=colleague.email,
        print_user=mario.id,
        other_print_user=other.id,
        card=card.id,
        cost_center=accounts.id,
        shared_center=shared.id,
        device=device.id,
        jobs=[job.id for job in jobs],
    )


def portal_client(app, email: str):
    """A test client logged in to the portal as `email`."""
    limiter.reset()
    client = app.test_client()
    response = login(client, email, url="/portal/login")
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def csrf(client, url: str = "/portal/") -> str:
    return CSRF_RE.search(client.get(url).get_data(as_text=True)).group(1)


def post(client, url: str, data: dict, form_url: str = "/portal/", **kwargs):
    """POST a form with a CSRF token, as the page at `form_url` would."""
    return client.post(url, data={"csrf_token": csrf(client, form_url), **data}, **kwargs)


def print_users(customer_id: int) -> list[tuple]:
    query = sa.select(PrintUser).where(PrintUser.customer_id == customer_id).order_by(PrintUser.username_key)
    return [(user.username, sorted(card.number for card in user.cards)) for user in db.session.scalars(query)]


def counts() -> dict[str, int]:
    """How many rows of each kind there are: a refused form must change none."""
    return {
        model.__name__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
        for model in (PrintUser, Card, CostCenter, Quota, Transaction)
    }


def translated(app, language: str, message: str, **values) -> str:
    """`message` as the pages say it in `language` (whatever the catalogues hold when the test runs)."""
    with app.test_request_context(), force_locale(language):
        return gettext(message, **values)


def field_error(page: str, field_id: str) -> str:
    """The message shown under the field with this id."""
    match = re.search(rf'<p class="error" id="{re.escape(field_id)}-error">([^<]*)</p>', page)
    return match.group(1) if match else ""
