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
from core.db import db, utcnow
from core.extension_points import BillableLine
from core.extensions import limiter
from core.models import User
from core.settings import set_setting
from modules.invoicing import services as invoicing
from modules.invoicing.models import Invoice
from modules.metering.models import Reading, ReadingRequest, ReadingRequestItem
from modules.metering.portal import CONFIRMED_KEY
from modules.metering.replacements import record_replacement
from modules.metering.tests import support as s
from modules.rentals.models import Contract, ContractLine, Device
from tests.auth_support import CSRF_RE, login, make_customer, make_user
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
    client, customer_id = _logged_in_customer(app)
    numbers = itertools.count(1)

    def add(count: int) -> None:
        with app.app_context():
            add_rows(customer_id, [next(numbers) for _ in range(count)])

    return client, add


def _logged_in_customer(app):
    """The dealer's time zone set (as every real dealer's is), a customer "Studio Bianchi" and the portal client of
    its administrator, logged in; the client and the customer's id."""
    with app.app_context():
        set_setting(TIMEZONE_SETTING, "Europe/Rome")
        db.session.commit()
        customer_id = make_customer("Studio Bianchi")
        make_user("admin@studio.example", "customer_admin", customer_id=customer_id)
    limiter.reset()
    client = app.test_client()
    assert login(client, "admin@studio.example", url="/portal/login").status_code == 302
    return client, customer_id


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


# The metering pages, with what each device brings: its model and meters, several readings, a meter replacement, a
# reading request; from 2 devices to 8. Another customer's devices are on the same dealer's books and never shown.

READING_DAYS = ("2026-01-30", "2026-02-27", "2026-03-31", "2026-04-30")


def add_devices(customer_id: int, numbers: list[int], prefix: str = "KY") -> None:
    """For each number a device of its own model on a contract of the customer, four monthly readings and a meter
    replacement."""
    for number in numbers:
        device = s.device(f"{prefix}{number:04d}", model=f"{prefix} Model {number}")
        s.contract(customer_id, [(device, {"bw": 10_000, "color": 2_000})], start_date="2025-12-01")
        for month, day in enumerate(READING_DAYS, start=1):
            s.read(device, day, bw=10_000 + 1_000 * month + number, color=2_000 + 100 * month + number)
        record_replacement(device.id, "2026-02-10", "color", 2_250, 0)
    db.session.commit()


def ask_counters(customer_id: int, due_date: dt.date) -> int:
    """A pending reading request of the customer for every device it has now; its id."""
    lines = db.session.scalars(
        sa.select(ContractLine)
        .join(Contract, Contract.id == ContractLine.contract_id)
        .where(Contract.customer_id == customer_id, ContractLine.end_date.is_(None))
    ).all()
    asked = ReadingRequest(
        customer_id=customer_id,
        due_date=due_date,
        deadline=due_date,
        status="pending",
        reminders=0,
        created_at=utcnow(),
    )
    asked.items = [
        ReadingRequestItem(device_id=line.device_id, contract_id=line.contract_id, period_end=due_date, since=due_date)
        for line in lines
    ]
    db.session.add(asked)
    db.session.commit()
    return asked.id


@pytest.fixture
def metering(app):
    """A logged-in customer administrator, a function adding devices to its customer, and another customer of the
    dealer with two devices of its own."""
    with app.app_context():
        add_devices(make_customer("Farmacia Verdi"), [1, 2], prefix="OT")
    client, customer_id = _logged_in_customer(app)
    numbers = itertools.count(1)

    def add(count: int) -> None:
        with app.app_context():
            add_devices(customer_id, [next(numbers) for _ in range(count)])

    return client, customer_id, add


def sent(app, client, url: str, data: dict) -> tuple[str, Queries]:
    """POST a form of the page at `url` with its CSRF token; the page answered and the statements of the POST."""
    token = CSRF_RE.search(client.get(url).get_data(as_text=True)).group(1)
    with count_queries(app) as queries:
        response = client.post(url, data={"csrf_token": token, **data})
    assert response.status_code in (200, 302), response.get_data(as_text=True)
    return response.get_data(as_text=True), queries


def measure_metering(app, client, customer_id: int, size: int) -> dict[str, tuple[str, Queries]]:
    """Every reading page, a request's page, the form's review and confirm steps for one device and the confirmation
    page; `size` keeps each round's device, counters and due date apart."""
    with app.app_context():
        first = db.session.scalar(sa.select(Device.id).where(Device.serial == f"KY{size // 4 + 1:04d}"))
        request_id = ask_counters(customer_id, dt.date(2026, 5, 20 + size))
    pages = {
        name: shown(app, client, url)
        for name, url in (
            ("/portal/readings/", "/portal/readings/"),
            ("/portal/readings/enter", "/portal/readings/enter"),
            ("one device's form", f"/portal/readings/enter?device={first}"),
            ("/portal/readings/history", "/portal/readings/history"),
            ("one device's history", f"/portal/readings/history?device={first}"),
        )
    }
    pages["request"] = shown(app, client, f"/portal/readings/request/{request_id}")
    counters = {f"d{first}-bw": str(20_000 + size), f"d{first}-color": str(3_000 + size)}
    pages["review"] = sent(app, client, "/portal/readings/enter", {**counters, "step": "review"})
    pages["confirm"] = sent(app, client, "/portal/readings/enter", {**counters, "step": "confirm"})
    pages["done"] = shown(app, client, "/portal/readings/done")
    with app.app_context():
        every = db.session.scalars(sa.select(Reading.id)).all()
    with client.session_transaction() as browser:
        browser[CONFIRMED_KEY] = every  # every reading of the dealer's books: the page shows only the customer's
    pages["done, every reading"] = shown(app, client, "/portal/readings/done")
    return pages


def test_metering_portal_pages_of_four_times_the_devices_send_no_more_queries(app, metering):
    client, customer_id, add = metering
    add(2)
    few = measure_metering(app, client, customer_id, 2)
    add(6)
    many = measure_metering(app, client, customer_id, 8)

    pages = {url: page for url, (page, _queries) in many.items()}
    serials = {f"KY{number:04d}" for number in range(1, 9)}
    for url in ("/portal/readings/", "/portal/readings/enter", "/portal/readings/history"):
        found = set(re.findall(r"(?:KY|OT)\d{4}", pages[url]))
        assert found == serials, url  # all of the customer's devices, none of the other customer's
    assert set(re.findall(r"(?:KY|OT)\d{4}", pages["request"])) == serials
    assert set(re.findall(r"(?:KY|OT)\d{4}", pages["review"])) == {"KY0003"}
    assert set(re.findall(r"(?:KY|OT)\d{4}", pages["done"])) == {"KY0003"}
    assert set(re.findall(r"(?:KY|OT)\d{4}", pages["done, every reading"])) == serials
    # The history: every reading of the eight devices (four each, and the first round's from the form), newest first.
    history = pages["/portal/readings/history"]
    assert all(format_decimal(14_000 + number, locale="it") in history for number in range(1, 9))
    assert all(format_decimal(11_000 + number, locale="it") in history for number in range(1, 9))
    assert history.index(format_decimal(20_002, locale="it")) < history.index(format_decimal(14_001, locale="it"))
    assert history.index(format_decimal(14_001, locale="it")) < history.index(format_decimal(11_001, locale="it"))
    with app.app_context():
        readings = db.session.scalars(sa.select(Reading).where(Reading.source == "portal").order_by(Reading.id))
        assert [(reading.device.serial, reading.counters) for reading in readings] == [
            ("KY0001", {"bw": 20_002, "color": 3_002}),
            ("KY0003", {"bw": 20_008, "color": 3_008}),
        ]

    for name in many:
        if name != "confirm":
            assert_not_growing(few[name][1], many[name][1])


def test_sending_readings_for_more_requested_devices_sends_no_more_queries(app, metering):
    client, customer_id, add = metering
    add(2)
    few = measure_metering(app, client, customer_id, 2)
    add(6)
    many = measure_metering(app, client, customer_id, 8)
    assert_not_growing(few["confirm"][1], many["confirm"][1])
