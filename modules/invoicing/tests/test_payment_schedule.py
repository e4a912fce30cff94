"""Instalments with due dates from the customer's terms, fixed when posting; split payment asks only the net."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.models import Partner
from modules.invoicing import services
from modules.invoicing.tests.support import add_company, billing_customer, manual_invoice, manual_line, post_invoice
from tests.api_support import bearer


@pytest.fixture
def staff(db_session):
    add_company()
    return bearer("dealer_admin")


def test_three_instalments_of_100_are_33_33_33_33_33_34_due_at_30_60_90_days():
    customer = Partner(payment_instalments=3, payment_terms_days=30, payment_end_of_month=False)

    schedule = services.payment_schedule(dt.date(2026, 1, 15), Decimal("100.00"), customer)

    assert schedule == [
        (dt.date(2026, 2, 14), Decimal("33.33")),
        (dt.date(2026, 3, 16), Decimal("33.33")),
        (dt.date(2026, 4, 15), Decimal("33.34")),
    ]


def test_end_of_month_instalments_fall_on_the_last_day_of_each_month():
    customer = Partner(payment_instalments=3, payment_terms_days=30, payment_end_of_month=True)

    schedule = services.payment_schedule(dt.date(2026, 1, 15), Decimal("100.00"), customer)

    assert [due for due, _amount in schedule] == [dt.date(2026, 2, 28), dt.date(2026, 3, 31), dt.date(2026, 4, 30)]


def test_one_instalment_is_due_on_the_due_date():
    customer = Partner(payment_instalments=1, payment_terms_days=60, payment_end_of_month=True)

    schedule = services.payment_schedule(dt.date(2026, 1, 15), Decimal("122.00"), customer)

    assert schedule == [(services.due_date(dt.date(2026, 1, 15), customer), Decimal("122.00"))]
    assert schedule[0][0] == dt.date(2026, 3, 31)


@given(
    amount=st.decimals(min_value=Decimal("0.00"), max_value=Decimal("99999999.99"), places=2),
    count=st.integers(min_value=1, max_value=12),
)
def test_instalments_always_sum_to_the_amount_and_differ_by_less_than_the_number_of_cents(amount, count):
    customer = Partner(payment_instalments=count, payment_terms_days=30, payment_end_of_month=False)

    amounts = [share for _due, share in services.payment_schedule(dt.date(2026, 1, 31), amount, customer)]

    assert len(amounts) == count and sum(amounts) == amount
    assert all(share == amounts[0] for share in amounts[:-1])
    assert Decimal(0) <= amounts[-1] - amounts[0] < Decimal("0.01") * count


def test_posting_fixes_the_instalments_the_method_and_the_first_due_date(client, staff, db_session):
    customer = billing_customer(payment_instalments=3, payment_terms_days=30, payment_method="riba")
    draft = manual_invoice(client, staff, customer.id, [manual_line("100.00", "N3.2")])

    invoice = post_invoice(client, staff, draft["id"], "2026-01-15")

    assert invoice["payment_schedule"] == [
        {"due_date": "2026-02-14", "amount": "33.33"},
        {"due_date": "2026-03-16", "amount": "33.33"},
        {"due_date": "2026-04-15", "amount": "33.34"},
    ]
    assert invoice["due_date"] == "2026-02-14"
    assert (invoice["payment_method"], invoice["split_payment"], invoice["amount_due"]) == ("riba", False, "100.00")


def test_a_later_change_of_the_customers_terms_does_not_change_a_posted_invoice(client, staff, db_session):
    customer = billing_customer(payment_instalments=2, payment_terms_days=30)
    invoice = post_invoice(client, staff, manual_invoice(client, staff, customer.id, [manual_line("50.00")])["id"])

    customer.payment_instalments, customer.payment_method = 1, "cash"
    db_session.commit()

    again = client.get(f"/api/v1/invoices/{invoice['id']}", headers=staff).get_json()
    assert again["payment_schedule"] == invoice["payment_schedule"] and len(again["payment_schedule"]) == 2
    assert again["payment_method"] == "bank_transfer"


def test_split_payment_instalments_sum_to_the_net(client, staff, db_session):
    school = billing_customer("Istituto Comprensivo Verdi", split_payment=True, payment_instalments=3)
    draft = manual_invoice(client, staff, school.id, [manual_line("100.00", "22")])

    invoice = post_invoice(client, staff, draft["id"])

    assert (invoice["total"], invoice["vat_total"], invoice["split_payment"]) == ("122.00", "22.00", True)
    assert invoice["amount_due"] == "100.00"
    assert [item["amount"] for item in invoice["payment_schedule"]] == ["33.33", "33.33", "33.34"]
    assert sum(Decimal(item["amount"]) for item in invoice["payment_schedule"]) == Decimal("100.00")


def test_a_draft_has_no_schedule_and_no_amount_due_yet(client, staff, db_session):
    customer = billing_customer(payment_instalments=3)

    draft = manual_invoice(client, staff, customer.id, [manual_line("100.00")])

    assert (draft["payment_schedule"], draft["amount_due"], draft["payment_method"]) == (None, None, None)
