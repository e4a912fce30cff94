"""The back office's lists of devices, contracts, readings and invoices cost the same number of queries for 4 rows as
for 12: what a row shows of its relations is loaded with the page, not once per row."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest

from core.db import db
from core.extension_points import BillableLine
from core.extensions import limiter
from modules.invoicing import services as invoicing
from modules.metering.tests import support as s
from tests.api_support import add_customer
from tests.auth_support import login, make_user
from tests.query_counter import Queries, assert_not_growing, count_queries


def add_rows(numbers: list[int]) -> None:
    """For each number a customer with a device of its own model on a contract, a reading and a draft invoice."""
    for number in numbers:
        customer = add_customer(f"Cliente {number}")
        device = s.device(f"KY{number}", model=f"Model {number}")
        contract = s.contract(customer.id, [(device, {"bw": 10_000, "color": 2_000})], start_date="2025-12-01")
        s.read(device, "2026-01-30", bw=11_000 + number, color=2_100 + number)
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
        invoicing.create_draft(customer.id, [line], contract_id=contract.id)
    db.session.commit()


@pytest.fixture
def office(app):
    with app.app_context():
        make_user("admin@rossi.example", "dealer_admin")
    limiter.reset()
    client = app.test_client()
    assert login(client, "admin@rossi.example").status_code == 302
    numbers = itertools.count(1)

    def add(count: int) -> None:
        with app.app_context():
            add_rows([next(numbers) for _ in range(count)])

    return client, add


def listed(app, client, url: str) -> tuple[str, Queries]:
    client.get(url)  # the login's "last seen" is written at most once a minute: not in the measured request
    with count_queries(app) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True), queries


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("/admin/rentals_device/", lambda n: f"Model {n}"),
        ("/admin/rentals_contract/", lambda n: f"Cliente {n}"),
        ("/admin/metering_reading/", lambda n: f"bw {11_000 + n:,}"),
        ("/admin/invoicing_invoices_admin/", lambda n: f"Cliente {n}"),
    ],
)
def test_back_office_list_of_three_times_the_rows_sends_no_more_queries(app, office, url, shown):
    client, add = office
    add(4)
    _page, few = listed(app, client, url)
    add(8)
    page, many = listed(app, client, url)

    assert all(shown(number) in page for number in range(1, 13))
    assert_not_growing(few, many)
