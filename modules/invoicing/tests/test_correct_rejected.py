"""An invoice the exchange system rejected is corrected by a posted credit note and a new draft of the same lines;
a contract's procurement references (CIG, CUP, contract or order) travel onto its invoices."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db
from core.validation import ValidationError
from modules.invoicing import services
from modules.invoicing.models import BilledRef, Invoice, InvoiceLine
from modules.invoicing.tests.support import (
    add_company,
    billing_customer,
    error_fields,
    get_invoice,
    new_contract,
    post_invoice,
    start_run,
    usage_line,
)
from tests.api_support import bearer


@pytest.fixture
def staff(db_session):
    add_company()
    return bearer("dealer_admin")


@pytest.fixture
def school(db_session):
    return billing_customer("Istituto Comprensivo Verdi", public_administration=True, sdi_code="UFABCD")


def tender_contract(client, staff, customer_id: int) -> dict:
    return new_contract(
        client,
        staff,
        customer_id,
        "S1",
        cig="Z1A2B3C4D5",
        cup="J11B22000010005",
        order_kind="order",
        order_reference="ORD-2026-7",
        order_date="2025-12-20",
    )


def billed_line_ids(refs: list[tuple[str, str]]) -> set[int]:
    rows = db.session.scalars(
        sa.select(BilledRef.line_id).where(sa.tuple_(BilledRef.source, BilledRef.source_ref).in_(refs))
    )
    return set(rows)


def rejected_invoice(client, staff, customer) -> dict:
    contract = tender_contract(client, staff, customer.id)
    usage_line(customer.id, "S:bw:jan", 850, "0.012", contract_id=contract["id"])
    invoice_id = start_run(client, staff, "2026-02-05")["invoice_ids"][0]
    post_invoice(client, staff, invoice_id)
    db.session.get(Invoice, invoice_id).einvoice_state = "rejected"
    db.session.commit()
    return get_invoice(client, staff, invoice_id)


def test_a_draft_of_a_contract_with_a_cig_carries_its_references(client, staff, school):
    contract = tender_contract(client, staff, school.id)

    invoice = get_invoice(client, staff, start_run(client, staff, "2026-01-05")["invoice_ids"][0])

    assert invoice["contract_id"] == contract["id"]
    assert (invoice["cig"], invoice["cup"]) == ("Z1A2B3C4D5", "J11B22000010005")
    assert (invoice["order_kind"], invoice["order_reference"], invoice["order_date"]) == (
        "order",
        "ORD-2026-7",
        "2025-12-20",
    )


def test_correcting_a_rejected_invoice_posts_a_credit_note_and_drafts_the_same_lines_again(client, staff, school):
    invoice = rejected_invoice(client, staff, school)
    refs = [(line.source, line.source_ref) for line in db.session.get(Invoice, invoice["id"]).lines]

    response = client.post(f"/api/v1/invoices/{invoice['id']}/correct", headers=staff)

    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    note = get_invoice(client, staff, body["credit_note_id"])
    draft = get_invoice(client, staff, body["invoice_id"])
    assert (note["type"], note["state"], note["number"], note["original_id"]) == (
        "credit_note",
        "posted",
        "1/2026",
        invoice["id"],
    )
    assert body["credit_note_number"] == "1/2026" and body["invoice_number"] is None
    assert note["total"] == invoice["total"] and note["cig"] == "Z1A2B3C4D5"
    assert (draft["type"], draft["state"], draft["total"]) == ("invoice", "draft", invoice["total"])
    assert [(ln["description"], ln["amount"], ln["vat_code"]) for ln in draft["lines"]] == [
        (ln["description"], ln["amount"], ln["vat_code"]) for ln in invoice["lines"]
    ]
    assert (draft["cig"], draft["cup"], draft["order_reference"]) == ("Z1A2B3C4D5", "J11B22000010005", "ORD-2026-7")
    draft_lines = set(db.session.scalars(sa.select(InvoiceLine.id).where(InvoiceLine.invoice_id == draft["id"])))
    assert billed_line_ids(refs) == draft_lines and len(draft_lines) == len(refs)
    assert start_run(client, staff, "2026-02-05")["invoice_ids"] == []


def test_the_corrected_draft_posts_with_the_next_number(client, staff, school):
    invoice = rejected_invoice(client, staff, school)
    body = client.post(f"/api/v1/invoices/{invoice['id']}/correct", headers=staff).get_json()

    posted = post_invoice(client, staff, body["invoice_id"])

    assert (invoice["number"], posted["number"]) == ("1/2026", "2/2026")


def test_an_invoice_that_is_not_rejected_cannot_be_corrected_and_nothing_is_written(client, staff, school):
    contract = tender_contract(client, staff, school.id)
    invoice_id = start_run(client, staff, "2026-01-05")["invoice_ids"][0]
    post_invoice(client, staff, invoice_id)
    db.session.get(Invoice, invoice_id).einvoice_state = "delivered"
    db.session.commit()

    assert not services.can_correct(db.session.get(Invoice, invoice_id))
    response = client.post(f"/api/v1/invoices/{invoice_id}/correct", headers=staff)

    assert response.status_code == 409
    assert error_fields(response.get_json()) == ["state"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Invoice)) == 1
    assert contract["id"] == get_invoice(client, staff, invoice_id)["contract_id"]


def test_a_draft_cannot_be_corrected(app, db_session, school):
    contract_less = services.create_manual_draft(
        school.id, [{"description": "Assistenza", "quantity": Decimal(1), "unit_price": Decimal(10), "vat_code": "22"}]
    )

    with pytest.raises(ValidationError) as raised:
        services.correct_rejected(contract_less)

    assert list(raised.value.errors) == ["state"]


def test_a_rejected_invoice_is_corrected_once(client, staff, school):
    invoice = rejected_invoice(client, staff, school)
    assert services.can_correct(db.session.get(Invoice, invoice["id"]))

    first = client.post(f"/api/v1/invoices/{invoice['id']}/correct", headers=staff)
    again = client.post(f"/api/v1/invoices/{invoice['id']}/correct", headers=staff)

    assert first.status_code == 201 and again.status_code == 409
    assert error_fields(again.get_json()) == ["state"]
    assert not services.can_correct(db.session.get(Invoice, invoice["id"]))
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Invoice)) == 3


def test_a_rejected_invoice_with_a_draft_credit_note_cannot_be_corrected(client, staff, school):
    invoice = rejected_invoice(client, staff, school)
    client.post(f"/api/v1/invoices/{invoice['id']}/credit-notes", json={}, headers=staff)

    response = client.post(f"/api/v1/invoices/{invoice['id']}/correct", headers=staff)

    assert response.status_code == 409 and error_fields(response.get_json()) == ["state"]
    assert not services.can_correct(db.session.get(Invoice, invoice["id"]))
