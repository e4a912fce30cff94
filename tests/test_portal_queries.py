"""The customer portal's main pages cost the same number of queries for a customer with 3 devices, readings and
invoices as for one with 9: what each row shows (its model, counters, dates in the dealer's time zone, payment state)
is loaded with the page, not once per row."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa
from babel.numbers import format_decimal

from core.clock import TIMEZONE_SETTING
from core.db import db
from core.extension_points import BillableLine
from core.extensions import limiter
from core.models import User
from core.settings import set_setting
from modules.invoicing import services as invoicing
from modules.invoicing.models import Invoice
from modules.metering.replacements import record_replacement
from modules.metering.tests import support as s
from tests.auth_support import login, make_customer, make_user
from tests.query_counter import Queries, assert_not_growing, count_queries

PAGES = (
    "/portal/",
    "/portal/readings/",
    "/portal/readings/enter",
    "/portal/readings/history",
    "/portal/invoices/",
    "/portal/users/",
    "/portal/toner/",
)


def add_rows(customer_id: int, numbers: list[int]) -> None:
    """For each number a device of its own model on a contract of the customer, two readings and a meter replacement,
    a posted invoice and a colleague with a portal login."""
    for number in numbers:
        device = s.device(f"KY{number:04d}", model=f"Model {number}")
        contract = s.contract(customer_id, [(device, {"bw": 10_000, "color": 2_000})], start_date="2025-12-01")
        s.read(device, "2026-01-30", bw=11_000 + number, color=2_100 + number)
        s.read(device, "2026-02-27", bw=12_000 + number, color=2_200 + number)
        record_replacement(device.id, "2026-02-10", "color", 2_500, 0)
        line = BillableLine(
            source="test",
            source_ref=f"fee:{number}",
            description=f"Fee {number}",
            quantity=Decimal(1),
            unit_price=Decimal("50.00"),
            vat_rate=Decimal("22"),
            kind="fee",
            contract_id=contract.id,
            period_start=dt.date(2026, 1, 1),
            period_end=dt.date(2026, 1, 31),
        )
        invoicing.post(invoicing.create_draft(customer_id, [line], contract_id=contract.id))
        db.session.commit()
        make_user(f"user{number}@studio.example", "customer_user", customer_id=customer_id)


@pytest.fixture
def customer(app):
    """A logged-in customer administrator of a dealer whose time zone is set (as every real dealer's is), and a
    function adding rows to its customer."""
    with app.app_context():
        set_setting(TIMEZONE_SETTING, "Europe/Rome")
        db.session.commit()
        customer_id = make_customer("Studio Bianchi")
        make_user("admin@studio.example", "customer_admin", customer_id=customer_id)
    limiter.reset()
    client = app.test_client()
    assert login(client, "admin@studio.example", url="/portal/login").status_code == 302
    numbers = itertools.count(1)

    def add(count: int) -> None:
        with app.app_context():
            add_rows(customer_id, [next(numbers) for _ in range(count)])

    return client, add


def shown(app, client, url: str) -> tuple[str, Queries]:
    client.get(url)  # the login's "last seen" is written at most once a minute: not in the measured request
    with count_queries(app) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True), queries


def measure(app, client) -> dict[str, tuple[str, Queries]]:
    return {url: shown(app, client, url) for url in PAGES}


def test_portal_pages_of_three_times_the_rows_send_no_more_queries(app, customer):
    client, add = customer
    add(3)
    few = measure(app, client)
    add(6)
    many = measure(app, client)

    pages = {url: page for url, (page, _queries) in many.items()}
    with app.app_context():
        numbers = set(db.session.scalars(sa.select(Invoice.number).where(Invoice.state == "posted")))
        colleagues = set(db.session.scalars(sa.select(User.email).where(User.role == "customer_user")))
    serials = {f"KY{number:04d}" for number in range(1, 10)}
    for url in ("/portal/readings/", "/portal/readings/enter", "/portal/readings/history", "/portal/toner/"):
        assert serials <= set(re.findall(r"KY\d{4}", pages[url])), url
    counters = {format_decimal(12_000 + number, locale="it") for number in range(1, 10)}
    # The newest reading of each of the nine devices, with its counter, is in the history (Italian customer).
    assert all(counter in pages["/portal/readings/history"] for counter in counters)
    assert len(numbers) == 9 and all(number in pages["/portal/invoices/"] for number in numbers)
    assert len(colleagues) == 9 and all(email in pages["/portal/users/"] for email in colleagues)

    for url in PAGES:
        assert_not_growing(few[url][1], many[url][1])
