"""The device-accounting lists of the back office cost the same number of queries for a few rows as for three times
as many: what a row shows of other records (customer, cost-center path, cards, device, quota holder, balance) is
loaded with the page."""

from __future__ import annotations

import itertools

import pytest

from core.db import db
from core.models import Partner
from modules.device_accounting import operations, quotas
from modules.device_accounting.cost_centers import save_cost_center
from modules.device_accounting.tests import admin_support as s
from modules.device_accounting.tests import core_support
from modules.device_accounting.users import add_card, save_user
from tests.query_counter import assert_not_growing, count_queries


def add_rows(numbers: list[int]) -> None:
    """For each number a customer with a device, a two-level cost-center tree, a shared account with its quota, a
    print user with a card and a quota, a job refunded in part and an adjustment."""
    for number in numbers:
        customer = Partner(name=f"Cliente {number}", is_customer=True)
        db.session.add(customer)
        db.session.flush()
        device = core_support.device(f"SN{number:04d}", at=customer)
        root = save_cost_center(customer.id, {"name": f"Sede {number}"})
        center = save_cost_center(customer.id, {"name": f"Ufficio {number}", "parent_id": root.id, "shared": True})
        user = save_user(
            customer.id,
            {"username": f"utente{number}", "default_cost_center_id": center.id, "cost_center_ids": [root.id]},
        )
        add_card(user, f"000{number}")
        own = quotas.save_quota(customer.id, {"user_id": user.id, "amount": "10"})
        quotas.save_quota(customer.id, {"cost_center_id": center.id, "amount": "30"})
        tx = s.record_job(device.id, user.id, sides_bw=5, sides_color=1, cost_center_id=root.id)
        operations.refund(tx, "0.01", f"Rimborso {number}", None)
        quotas.adjust(own, "1", f"Ricarica {number}", None)
    db.session.commit()


@pytest.fixture
def listed(app):
    with app.app_context():
        s.office()  # the dealer's prices
    client = s.staff(app, "back_office")
    numbers = itertools.count(1)

    def add_and_count(count: int, url: str):
        with app.app_context():
            add_rows([next(numbers) for _ in range(count)])
        client.get(url)  # the login's "last seen" is written at most once a minute: not in the measured request
        with count_queries(app) as queries:
            response = client.get(url)
        assert response.status_code == 200
        return response.get_data(as_text=True), queries

    return add_and_count


@pytest.mark.parametrize(
    "url",
    [
        "/admin/device_accounting_user/",
        "/admin/device_accounting_cost_center/",
        "/admin/device_accounting_quota/",
        "/admin/device_accounting_ledger/",
        "/admin/device_accounting_transaction/",
        "/admin/device_accounting_refund/",
    ],
)
def test_a_list_of_three_times_the_rows_sends_no_more_queries(app, listed, url):
    _page, few = listed(4, url)
    page, many = listed(8, url)
    assert "Cliente 12" in s.text_of(page)
    assert_not_growing(few, many)


def test_the_lists_name_paths_holders_and_balances(app, listed):
    users, _queries = listed(3, "/admin/device_accounting_user/")
    assert all(f"Sede {n} / Ufficio {n}" in s.text_of(users) for n in (1, 2, 3))
    quotas_page, _queries = listed(0, "/admin/device_accounting_quota/")
    text = s.text_of(quotas_page)
    assert all(f"utente{n}" in text and f"Sede {n} / Ufficio {n}" in text for n in (1, 2, 3))
    # 10.00 opened, less the job (5 x 0.01 + 0.05, charged to the root: not shared, so the user paid), plus the
    # refund of 0.01 and the top-up of 1.00.
    assert "10,91" in text
