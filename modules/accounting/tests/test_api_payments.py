"""/api/v1/payments and /api/v1/reconciliations: record, list, read, cancel; match and undo; 422s name the field and
write nothing; only staff with billing rights get in; invoices answer with their payment state."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db
from modules.accounting.models import Entry, Match, Payment
from modules.accounting.tests.support import make_company, make_customer, make_posted_invoice
from tests.api_support import bearer


@pytest.fixture
def api(app, db_session):
    make_company()
    customer = make_customer()
    invoice = make_posted_invoice(customer)  # 122.00, due 2026-12-10
    return {"client": app.test_client(), "staff": bearer("back_office"), "customer": customer, "invoice": invoice}


def problem_fields(response) -> dict[str, str]:
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    return {error["field"]: error["message"] for error in response.get_json()["errors"]}


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_record_a_payment_for_an_invoice_and_read_it_back(api):
    client, staff = api["client"], api["staff"]
    body = {
        "partner_id": api["customer"].id,
        "amount": "122.00",
        "date": "2026-11-20",
        "method": "bank_transfer",
        "invoice_id": api["invoice"].id,
    }
    created = client.post("/api/v1/payments", json=body, headers=staff)

    assert created.status_code == 201, created.get_json()
    payment = created.get_json()
    assert payment["amount"] == "122.00" and payment["unmatched"] == "0.00"
    assert payment["invoice_number"] == api["invoice"].number
    assert payment["entry_number"] == "BNK/2026/0001" and payment["journal"] == "BNK"
    assert payment["partner_name"] == "Studio Legale Bianchi" and payment["cancelled"] is False
    assert client.get(created.headers["Location"], headers=staff).get_json() == payment
    listed = client.get(f"/api/v1/payments?partner_id={api['customer'].id}", headers=staff).get_json()
    assert [item["id"] for item in listed["items"]] == [payment["id"]] and listed["total"] == 1

    invoice = client.get(f"/api/v1/invoices/{api['invoice'].id}", headers=staff).get_json()
    assert (invoice["payment_state"], invoice["amount_due"]) == ("paid", "0.00")


def test_payment_larger_than_due_without_advance_is_a_422_naming_amount_and_writes_nothing(api):
    client, staff = api["client"], api["staff"]
    entries = count(Entry)
    body = {"partner_id": api["customer"].id, "amount": "500.00", "date": "2026-11-20", "invoice_id": api["invoice"].id}

    refused = client.post("/api/v1/payments", json=body, headers=staff)

    assert list(problem_fields(refused)) == ["amount"]
    assert count(Payment) == 0 and count(Entry) == entries
    accepted = client.post("/api/v1/payments", json={**body, "advance": True}, headers=staff)
    assert accepted.status_code == 201
    assert accepted.get_json()["unmatched"] == "378.00"


def test_bad_payment_input_names_its_fields(api):
    client, staff = api["client"], api["staff"]
    refused = client.post(
        "/api/v1/payments",
        json={"partner_id": api["customer"].id, "amount": "1.001", "date": "2026-11-20", "journal": "VEN"},
        headers=staff,
    )
    assert set(problem_fields(refused)) == {"amount", "journal"}
    missing = client.post("/api/v1/payments", json={"amount": "10"}, headers=staff)
    assert {"partner_id", "date"} <= set(problem_fields(missing))
    assert count(Payment) == 0


def test_cancel_reopens_the_invoice_and_a_second_cancel_is_a_conflict(api):
    client, staff = api["client"], api["staff"]
    body = {"partner_id": api["customer"].id, "amount": "122.00", "date": "2026-11-20", "invoice_id": api["invoice"].id}
    payment = client.post("/api/v1/payments", json=body, headers=staff).get_json()

    cancelled = client.post(f"/api/v1/payments/{payment['id']}/cancel", headers=staff)

    assert cancelled.status_code == 200 and cancelled.get_json()["cancelled"] is True
    invoice = client.get(f"/api/v1/invoices/{api['invoice'].id}", headers=staff).get_json()
    assert invoice["amount_due"] == "122.00" and invoice["payment_state"] in ("open", "overdue")
    again = client.post(f"/api/v1/payments/{payment['id']}/cancel", headers=staff)
    assert again.status_code == 409
    # The cancellation's own match (the payment against its reversal) stays: undoing it is a 422 naming `match`.
    match_ids = list(db.session.scalars(sa.select(Match.id)))
    assert match_ids
    for match_id in match_ids:
        assert "match" in problem_fields(client.delete(f"/api/v1/reconciliations/{match_id}", headers=staff))
    assert count(Match) == len(match_ids)


def test_match_by_hand_then_undo(api):
    client, staff = api["client"], api["staff"]
    body = {"partner_id": api["customer"].id, "amount": "100.00", "date": "2026-11-20", "reference": "acconto"}
    payment = client.post("/api/v1/payments", json=body, headers=staff).get_json()
    assert payment["unmatched"] == "100.00"
    entry = db.session.get(Entry, payment["entry_id"])
    credit_line = next(line for line in entry.lines if line.credit > 0)
    invoice_entry = db.session.scalar(sa.select(Entry).where(Entry.source == "invoice"))
    debit_line = next(line for line in invoice_entry.lines if line.invoice_id and line.debit > 0)

    too_much = client.post(
        "/api/v1/reconciliations",
        json={"debit_line_id": debit_line.id, "credit_line_id": credit_line.id, "amount": "100.01"},
        headers=staff,
    )
    assert list(problem_fields(too_much)) == ["amount"] and count(Match) == 0
    matched = client.post(
        "/api/v1/reconciliations",
        json={"debit_line_id": debit_line.id, "credit_line_id": credit_line.id, "amount": "60.00"},
        headers=staff,
    )
    assert matched.status_code == 201, matched.get_json()
    match = matched.get_json()
    assert match["amount"] == "60.00" and match["auto"] is False
    assert match["debit_reference"] == api["invoice"].number
    invoice = client.get(f"/api/v1/invoices/{api['invoice'].id}", headers=staff).get_json()
    assert invoice["amount_due"] == "62.00"
    listed = client.get(f"/api/v1/reconciliations?invoice_id={api['invoice'].id}", headers=staff).get_json()
    assert [item["id"] for item in listed["items"]] == [match["id"]]

    undone = client.delete(f"/api/v1/reconciliations/{match['id']}", headers=staff)

    assert undone.status_code == 204
    assert client.get(f"/api/v1/reconciliations/{match['id']}", headers=staff).status_code == 404
    invoice = client.get(f"/api/v1/invoices/{api['invoice'].id}", headers=staff).get_json()
    assert invoice["amount_due"] == "122.00"


def test_unknown_lines_are_422s_naming_them(api):
    refused = api["client"].post(
        "/api/v1/reconciliations", json={"debit_line_id": 999999, "credit_line_id": 999998}, headers=api["staff"]
    )
    assert set(problem_fields(refused)) == {"debit_line_id", "credit_line_id"}


def test_invoice_list_carries_each_payment_state(api):
    client, staff = api["client"], api["staff"]
    second = make_posted_invoice(api["customer"], [("consumable", "50.00", "22")])
    body = {"partner_id": api["customer"].id, "amount": "20.00", "date": "2026-11-20", "invoice_id": second.id}
    assert client.post("/api/v1/payments", json=body, headers=staff).status_code == 201

    listed = client.get("/api/v1/invoices", headers=staff).get_json()["items"]

    due = {item["number"]: (item["payment_state"], item["amount_due"]) for item in listed}
    assert due[second.number][1] == "41.00" and due[second.number][0] in ("partial", "overdue")
    assert due[api["invoice"].number][1] == "122.00"


def test_customers_and_technicians_are_kept_out(api):
    client = api["client"]
    for headers in (bearer("technician"), bearer("customer_admin", customer=api["customer"])):
        assert client.get("/api/v1/payments", headers=headers).status_code == 403
        assert client.get("/api/v1/reconciliations", headers=headers).status_code == 403
    assert client.get("/api/v1/payments").status_code == 401
    assert Decimal(api["invoice"].total) == Decimal("122.00")
