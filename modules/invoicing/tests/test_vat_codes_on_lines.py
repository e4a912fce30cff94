"""Invoice lines carry a VAT code with its Natura and legal reference; a 0% line without one is refused."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db
from core.extension_points import BillableLine
from core.validation import ValidationError
from modules.invoicing import services
from modules.invoicing.models import Invoice
from modules.invoicing.tests.support import (
    add_company,
    billing_customer,
    error_fields,
    get_invoice,
    manual_invoice,
    manual_line,
    new_contract,
    start_run,
    usage_line,
)
from tests.api_support import bearer


@pytest.fixture
def staff(db_session):
    add_company()
    return bearer("dealer_admin")


@pytest.fixture
def customer(db_session):
    return billing_customer()


def test_a_line_with_code_n4_gets_its_natura_and_legal_reference(client, staff, customer):
    invoice = manual_invoice(client, staff, customer.id, [manual_line("100.00", "N4")])

    line = invoice["lines"][0]
    assert (line["vat_code"], line["vat_rate"], line["vat_nature"]) == ("N4", "0.00", "N4")
    assert line["vat_reference"] == "Art. 10 DPR 633/72"
    assert (invoice["net_total"], invoice["vat_total"], invoice["total"]) == ("100.00", "0.00", "100.00")


def test_a_zero_rate_line_without_a_code_is_refused_naming_its_vat_code_and_nothing_is_written(client, staff, customer):
    problem = manual_invoice(
        client, staff, customer.id, [manual_line("10.00"), manual_line("5.00", None, vat_rate="0")], status=422
    )

    assert error_fields(problem) == ["lines.1.vat_code"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Invoice)) == 0


def test_a_rate_alone_takes_its_default_code_and_a_code_wins_over_a_different_rate(client, staff, customer):
    lines = [manual_line("10.00", None, vat_rate="22"), manual_line("10.00", "N4", vat_rate="10")]

    invoice = manual_invoice(client, staff, customer.id, lines)

    assert [(line["vat_code"], line["vat_rate"], line["vat_nature"]) for line in invoice["lines"]] == [
        ("22", "22.00", None),
        ("N4", "0.00", "N4"),
    ]
    assert invoice["vat_total"] == "2.20"


def test_an_unknown_vat_code_is_refused_naming_the_line(client, staff, customer):
    problem = manual_invoice(client, staff, customer.id, [manual_line("10.00", "N9")], status=422)

    assert error_fields(problem) == ["lines.0.vat_code"]


def test_a_billing_run_keeps_the_code_of_a_source_line(client, staff, customer):
    usage_line(customer.id, "U:bw:jan", 1000, "0.10", vat_rate="0", vat_code="N2.1")

    run = start_run(client, staff, "2026-02-05")

    assert run["errors"] == []
    line = get_invoice(client, staff, run["invoice_ids"][0])["lines"][0]
    assert (line["vat_code"], line["vat_nature"], line["amount"]) == ("N2.1", "N2.1", "100.00")


def test_a_source_line_at_zero_percent_without_a_code_is_an_error_of_its_run(client, staff, customer):
    usage_line(customer.id, "U:bw:jan", 1000, "0.10", vat_rate="0")

    run = start_run(client, staff, "2026-02-05")

    assert run["invoice_ids"] == []
    assert [error["customer_id"] for error in run["errors"]] == [customer.id]
    assert "vat_code" in run["errors"][0]["message"]


def test_vat_rows_have_one_row_per_rate_and_natura_by_rate_then_natura(app, db_session, customer):
    lines = [
        BillableLine("t", ref, "x", Decimal(1), Decimal(price), Decimal(0), "fee", vat_code=code)
        for ref, price, code in (
            ("a", "100.00", "22"),
            ("b", "33.33", "N4"),
            ("c", "10.00", "10"),
            ("d", "20.00", "N2.2"),
            ("e", "0.05", "22"),
            ("f", "16.67", "N4"),
        )
    ]
    draft = services.create_draft(customer.id, lines)

    rows = services.vat_rows(draft.lines)

    assert [(row.rate, row.nature, row.base, row.vat) for row in rows] == [
        (Decimal("0.00"), "N2.2", Decimal("20.00"), Decimal("0.00")),
        (Decimal("0.00"), "N4", Decimal("50.00"), Decimal("0.00")),
        (Decimal("10.00"), None, Decimal("10.00"), Decimal("1.00")),
        (Decimal("22.00"), None, Decimal("100.05"), Decimal("22.01")),
    ]
    assert [row.reference for row in rows[:2]] == ["Art. 2 DPR 633/72", "Art. 10 DPR 633/72"]
    assert draft.vat_total == sum(row.vat for row in rows)


def test_a_draft_of_a_contract_without_references_has_none(client, staff, customer):
    contract = new_contract(client, staff, customer.id, "R1")

    invoice = get_invoice(client, staff, start_run(client, staff, "2026-01-05")["invoice_ids"][0])

    assert invoice["contract_id"] == contract["id"]
    assert (invoice["cig"], invoice["cup"], invoice["order_reference"]) == (None, None, None)


@pytest.mark.parametrize(
    ("field", "value"),
    [("cig", "ABC123"), ("cig", "ABCDE-1234"), ("cup", "J11B2200001000"), ("order_kind", "tender")],
)
def test_manual_references_are_checked_naming_the_field(client, staff, customer, field, value):
    fields = {"order_reference": "ORD-7", field: value}

    problem = manual_invoice(client, staff, customer.id, [manual_line("10.00")], status=422, **fields)

    assert field in error_fields(problem)


def test_a_manual_invoice_keeps_its_cig_cup_and_order(client, staff, customer):
    invoice = manual_invoice(
        client,
        staff,
        customer.id,
        [manual_line("10.00")],
        cig="z1a2b3c4d5",
        cup="J11B22000010005",
        order_kind="order",
        order_reference="ORD-7",
        order_date="2026-01-10",
    )

    assert (invoice["cig"], invoice["cup"]) == ("Z1A2B3C4D5", "J11B22000010005")
    order = (invoice["order_kind"], invoice["order_reference"], invoice["order_date"])
    assert order == ("order", "ORD-7", "2026-01-10")


def test_a_date_without_the_order_number_is_refused(client, staff, customer):
    problem = manual_invoice(client, staff, customer.id, [manual_line("10.00")], status=422, order_date="2026-01-10")

    assert error_fields(problem) == ["order_reference"]


def test_references_checked_by_the_service_name_each_bad_field_at_once(app, db_session):
    with pytest.raises(ValidationError) as raised:
        services.check_references({"cig": "1234", "cup": "X" * 16})

    assert set(raised.value.errors) == {"cig", "cup"}
