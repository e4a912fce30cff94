"""The back office's lists of devices, contracts, readings, replacements, schedules and invoices cost the same number of
queries for 4 rows as for 12, and the audit log for 5 entries as for 40: what a row shows of its relations, each a link
to its record, is loaded with the page, not once per row."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db
from core.extension_points import BillableLine
from core.extensions import limiter
from core.models import AuditLog, Partner, User
from modules.invoicing import services as invoicing
from modules.invoicing.models import Invoice
from modules.metering.models import ReadingSchedule
from modules.metering.replacements import record_replacement
from modules.metering.tests import support as s
from modules.rentals.models import Contract, Device, DeviceModel, Manufacturer
from tests.api_support import add_customer
from tests.auth_support import login, make_user
from tests.query_counter import Queries, assert_not_growing, count_queries


def add_rows(numbers: list[int]) -> None:
    """For each number a customer with a device of its own model on a contract with a reading schedule, a reading, a
    meter replacement and a draft invoice."""
    for number in numbers:
        customer = add_customer(f"Cliente {number}")
        device = s.device(f"KY{number}", model=f"Model {number}")
        contract = s.contract(customer.id, [(device, {"bw": 10_000, "color": 2_000})], start_date="2025-12-01")
        s.read(device, "2026-01-30", bw=11_000 + number, color=2_100 + number)
        record_replacement(device.id, "2026-02-10", "color", 2_500, 0)
        db.session.add(ReadingSchedule(contract_id=contract.id, rule="period_end", days=0))
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


def links(page: str, endpoint: str) -> set[int]:
    """The ids of the records of admin view `endpoint` the page links to."""
    return {int(ident) for ident in re.findall(rf'href="/admin/{endpoint}/details/\?id=(\d+)"', page)}


def all_ids(app, column) -> set[int]:
    with app.app_context():
        return set(db.session.scalars(sa.select(column)))


# Each list and the related records every row of it names, as links to their pages.
RELATED = {
    "/admin/rentals_contract/": {"core_partner": Partner.id},
    "/admin/rentals_device/": {
        "core_partner": Partner.id,
        "rentals_model": DeviceModel.id,
        "rentals_manufacturer": Manufacturer.id,
    },
    "/admin/rentals_model/": {"rentals_manufacturer": Manufacturer.id},
    "/admin/metering_reading/": {"rentals_device": Device.id, "core_partner": Partner.id},
    "/admin/metering_replacement/": {"rentals_device": Device.id},
    "/admin/metering_schedule/": {"rentals_contract": Contract.id, "core_partner": Partner.id},
    "/admin/core_user/": {"core_partner": Partner.id},
}


@pytest.mark.parametrize("url", sorted(RELATED))
def test_back_office_list_links_every_related_record_without_a_query_per_row(app, office, url):
    client, add = office

    def add_users() -> None:
        """A portal user for each customer that has none (the users list names their customers)."""
        with app.app_context():
            known = set(db.session.scalars(sa.select(User.customer_id).where(User.customer_id.is_not(None))))
            for partner in db.session.scalars(sa.select(Partner).where(Partner.id.not_in(known))).all():
                make_user(f"user{partner.id}@example.com", "customer_user", customer_id=partner.id)

    add(4)
    add_users()
    _page, few = listed(app, client, url)
    add(8)
    add_users()
    page, many = listed(app, client, url)

    for endpoint, column in RELATED[url].items():
        assert links(page, endpoint) == all_ids(app, column), endpoint
    assert_not_growing(few, many)


def add_entries(app, count: int, first: int) -> None:
    """`count` audit entries by the office's admin, naming in turn a customer, a contract, a device, an invoice and a
    device since deleted."""
    with app.app_context():
        admin = db.session.scalar(sa.select(User).where(User.email == "admin@rossi.example"))
        named = [
            ("core_partner", sorted(db.session.scalars(sa.select(Partner.id)))),
            ("rentals_contract", sorted(db.session.scalars(sa.select(Contract.id)))),
            ("rentals_device", sorted(db.session.scalars(sa.select(Device.id)))),
            ("invoicing_invoice", sorted(db.session.scalars(sa.select(Invoice.id)))),
            ("rentals_device", [900_000 + number for number in range(100)]),  # no longer there
        ]
        for number in range(first, first + count):
            table, ids = named[number % len(named)]
            db.session.add(
                AuditLog(
                    user_id=admin.id,
                    actor=admin.email,
                    action="update",
                    object_type=table,
                    object_id=str(ids[number // len(named) % len(ids)]),
                    changes={"notes": [None, f"note {number}"]},
                )
            )
        db.session.commit()


def test_audit_log_of_forty_entries_sends_as_many_queries_as_of_five(app, office):
    client, add = office
    add(12)
    with app.app_context():
        db.session.execute(sa.delete(AuditLog))
        db.session.commit()
    add_entries(app, 5, 0)
    _page, few = listed(app, client, "/admin/core_audit/")
    add_entries(app, 35, 5)
    page, many = listed(app, client, "/admin/core_audit/")

    assert page.count("note ") == 40
    assert len(links(page, "core_partner")) == 8 and len(links(page, "rentals_device")) == 8
    assert len(links(page, "rentals_contract")) == 8
    assert len(re.findall(r'href="/admin/invoicing_invoices_admin/\d+"', page)) == 8
    assert_not_growing(few, many)
