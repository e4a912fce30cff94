"""The dashboard's "readings missing for billing" costs the same number of queries for 2 customers as for 8, with more
contracts and devices, and says what a billing run would find missing: a reading that arrives takes its periods off."""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pytest
import sqlalchemy as sa
import time_machine

from core import clock
from core.db import db
from core.extensions import limiter
from modules.metering.billing import missing_readings
from modules.metering.tests import support as s
from modules.rentals.models import Contract, Device
from tests.api_support import add_customer
from tests.auth_support import login, make_user
from tests.query_counter import Queries, assert_not_growing, count_queries

# Mid-March in the dealer's time zone: January's and February's periods have ended, their grace too.
NOW = dt.datetime(2026, 3, 20, 10, 0, tzinfo=dt.UTC)
CARD = re.compile(
    r'<div class="text-muted small">Readings missing for billing</div>\s*<div class="h4 mb-0"><a [^>]*>([^<]+)</a>'
)


def add_customers(numbers: list[int]) -> None:
    """For each number a customer with a contract since January on two devices, one of them read in January."""
    for number in numbers:
        customer = add_customer(f"Cliente {number}")
        first, second = s.device(f"KA{number}"), s.device(f"KB{number}")
        counters = {"bw": 10_000, "color": 2_000}
        s.contract(customer.id, [(first, counters), (second, counters)])
        s.read(first, "2026-01-31", bw=10_500 + number, color=2_050)
    db.session.commit()


def expected_missing() -> int:
    """What billing runs would report, customer by customer (invoicing asks metering one customer at a time)."""
    customers = db.session.scalars(sa.select(Contract.customer_id).distinct()).all()
    return sum(len(missing_readings(customer_id, clock.today())) for customer_id in customers)


@pytest.fixture
def dashboard(app):
    with time_machine.travel(NOW, tick=False):
        with app.app_context():
            make_user("admin@rossi.example", "dealer_admin", language="en")
        limiter.reset()
        client = app.test_client()
        assert login(client, "admin@rossi.example").status_code == 302
        numbers = itertools.count(1)

        def add(count: int) -> None:
            with app.app_context():
                add_customers([next(numbers) for _ in range(count)])

        yield client, add


def missing_figure(app, client) -> tuple[int, Queries]:
    client.get("/admin/")  # the login's "last seen" is written at most once a minute: not in the measured request
    with count_queries(app) as queries:
        response = client.get("/admin/")
    assert response.status_code == 200
    figure = CARD.search(response.get_data(as_text=True))
    assert figure is not None, "no card for the readings missing for billing"
    return int(figure.group(1).replace(",", "")), queries


def test_missing_readings_figure_costs_the_same_queries_for_four_times_the_customers(app, dashboard):
    client, add = dashboard
    add(2)
    few_figure, few = missing_figure(app, client)
    add(6)
    many_figure, many = missing_figure(app, client)

    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Device)) == 16
        assert many_figure == expected_missing()
    assert many_figure == 4 * few_figure > 0
    assert_not_growing(few, many)


def test_a_reading_that_arrives_takes_its_periods_off_the_missing_figure(app, dashboard):
    client, add = dashboard
    add(3)
    before, _queries = missing_figure(app, client)
    with app.app_context():
        assert before == expected_missing()
        device = db.session.scalar(sa.select(Device).where(Device.serial == "KB2"))
        # The last day of February closes February for both its meters (January still waits for its own reading).
        s.read(device, "2026-02-28", bw=11_000, color=2_100)
        db.session.commit()
    after, _queries = missing_figure(app, client)

    with app.app_context():
        assert after == expected_missing()
    assert after < before
