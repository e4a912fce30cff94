"""/api/v1 reports, VAT register, supplier bills and VAT settlements: the figures as JSON, CSV and PDF; bad input a
422 naming the field with nothing written; staff only."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
import sqlalchemy as sa

from core.api.tokens import create_token
from core.db import db
from core.models import User
from modules.accounting.models import Entry, SupplierBill, VatSettlement
from modules.accounting.tests.support import make_credit_note, make_customer, make_posted_invoice, make_supplier


def token_for(role: str, email: str, customer_id: int | None = None) -> dict[str, str]:
    user = User(email=email, name=role, role=role, customer_id=customer_id, language="en")
    db.session.add(user)
    db.session.commit()
    _token, plaintext = create_token(user, "tests")
    db.session.commit()
    return {"Authorization": f"Bearer {plaintext}", "Accept-Language": "en"}


@pytest.fixture
def office(app, db_session) -> dict[str, str]:
    return token_for("back_office", "office@example.com")


@pytest.fixture
def november(db_session):
    customer = make_customer()
    invoice = make_posted_invoice(customer, [("fee", "100.00", "22"), ("other", "10.00", "10")], dt.date(2026, 11, 3))
    make_posted_invoice(customer, [("overage", "45.50", "22")], dt.date(2026, 11, 9))
    make_credit_note(invoice, [invoice.lines[1].id], dt.date(2026, 11, 20))
    return customer


def problem_fields(response) -> dict[str, str]:
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    return {error["field"]: error["message"] for error in response.get_json()["errors"]}


def bill_body(supplier_id: int, **changes) -> dict:
    return {
        "partner_id": supplier_id,
        "number": "FT 77",
        "date": "2026-11-04",
        "registered_on": "2026-11-06",
        "due_date": "2026-12-31",
        "lines": [
            {"description": "Toner", "account": "4101", "net": "200.00", "vat_rate": "22"},
            {"description": "Trasporto", "account": "4201", "net": "15.00", "vat_rate": "22", "deductible": False},
        ],
        **changes,
    }


def counts() -> tuple[int, int]:
    return (
        db.session.scalar(sa.select(sa.func.count()).select_from(SupplierBill)),
        db.session.scalar(sa.select(sa.func.count()).select_from(Entry)),
    )


def test_the_sales_register_as_json_has_its_documents_and_totals_per_rate(client, office, november):
    response = client.get("/api/v1/vat-register?month=2026-11&kind=sales", headers=office)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["kind"], body["month"], body["start"], body["end"]) == ("sales", "2026-11", "2026-11-01", "2026-11-30")
    assert [(row["number"], row["type"], row["total"]) for row in body["rows"]] == [
        ("1/2026", "invoice", "133.00"),
        ("2/2026", "invoice", "55.51"),
        ("1/2026", "credit_note", "-11.00"),
    ]
    assert body["rows"][0]["partner_name"] == "Studio Legale Bianchi"
    assert body["rows"][0]["vat_number"] == "IT01234567897"
    assert body["totals"] == [
        {"rate": "10.00", "taxable": "0.00", "vat": "0.00"},
        {"rate": "22.00", "taxable": "145.50", "vat": "32.01"},
    ]
    assert (body["vat"], body["split_payment_vat"]) == ("32.01", "0.00")


def test_the_register_as_csv_and_pdf(client, office, november):
    as_csv = client.get("/api/v1/vat-register?month=2026-11&format=csv", headers=office)
    as_pdf = client.get("/api/v1/vat-register?month=2026-11&format=pdf", headers=office)

    assert as_csv.status_code == 200 and as_csv.mimetype == "text/csv"
    assert 'filename="Sales_VAT_register_2026-11.csv"' in as_csv.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(as_csv.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][0] == "Number" and len(rows) == 1 + 4 + 2  # header, 4 document-rate lines, 2 rates
    assert as_pdf.status_code == 200 and as_pdf.mimetype == "application/pdf"
    assert as_pdf.data.startswith(b"%PDF")


@pytest.mark.parametrize(
    ("query", "field"),
    [("month=2026-13", "month"), ("month=novembre", "month"), ("", "month"), ("month=2026-11&kind=iva", "kind")],
)
def test_a_bad_register_question_is_a_422_naming_the_field(client, office, query, field):
    assert field in problem_fields(client.get(f"/api/v1/vat-register?{query}", headers=office))


def test_a_supplier_bill_is_registered_with_its_protocol_and_entry(client, office, db_session):
    supplier = make_supplier()

    response = client.post("/api/v1/supplier-bills", json=bill_body(supplier.id), headers=office)

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["protocol"], body["entry_number"], body["total"]) == ("1/2026", "ACQ/2026/0001", "262.30")
    assert [line["vat"] for line in body["lines"]] == ["44.00", "3.30"]
    read = client.get(f"/api/v1/supplier-bills/{body['id']}", headers=office).get_json()
    assert read == body
    listed = client.get(f"/api/v1/supplier-bills?partner_id={supplier.id}", headers=office).get_json()
    assert [item["number"] for item in listed["items"]] == ["FT 77"]
    purchases = client.get("/api/v1/vat-register?month=2026-11&kind=purchases", headers=office).get_json()
    assert [(row["protocol"], row["number"]) for row in purchases["rows"]] == [("1/2026", "FT 77")]
    assert purchases["deductible"] == "44.00"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lines": [{"description": "Toner", "account": "5801", "net": "10.00", "vat_rate": "22"}]}, "lines.0.account"),
        ({"lines": [{"description": "Toner", "account": "4101", "net": "10.001", "vat_rate": "22"}]}, "lines.0.net"),
        ({"registered_on": "2026-11-01"}, "registered_on"),
        ({"number": ""}, "number"),
        ({"lines": []}, "lines"),
    ],
)
def test_a_bad_bill_is_a_422_naming_the_field_and_writes_nothing(client, office, db_session, changes, field):
    supplier = make_supplier()
    before = counts()

    response = client.post("/api/v1/supplier-bills", json=bill_body(supplier.id, **changes), headers=office)

    assert field in problem_fields(response)
    assert counts() == before


def test_the_same_bill_twice_is_a_422_on_its_number(client, office, db_session):
    supplier = make_supplier()
    assert client.post("/api/v1/supplier-bills", json=bill_body(supplier.id), headers=office).status_code == 201

    again = client.post("/api/v1/supplier-bills", json=bill_body(supplier.id), headers=office)

    assert "number" in problem_fields(again)
    assert counts() == (1, 1)


def test_an_unknown_bill_is_a_404(client, office):
    assert client.get("/api/v1/supplier-bills/999999", headers=office).status_code == 404


def test_a_vat_settlement_is_made_once_per_period(client, office, november):
    preview = client.get("/api/v1/vat-settlements/preview?date=2026-11-15", headers=office).get_json()
    assert (preview["id"], preview["sales_vat"], preview["balance"]) == (None, "32.01", "32.01")

    made = client.post("/api/v1/vat-settlements", json={"date": "2026-11-15"}, headers=office)
    again = client.post("/api/v1/vat-settlements", json={"date": "2026-11-30"}, headers=office)

    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert (body["period_start"], body["period_end"], body["balance"]) == ("2026-11-01", "2026-11-30", "32.01")
    assert body["entry_number"] == "VAR/2026/0001"
    assert "period" in problem_fields(again)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(VatSettlement)) == 1
    listed = client.get("/api/v1/vat-settlements", headers=office).get_json()
    assert [item["period_end"] for item in listed["items"]] == ["2026-11-30"]


def test_the_trial_balance_balances_and_comes_as_csv(client, office, november):
    body = client.get("/api/v1/reports/trial-balance?date=2026-11-30", headers=office).get_json()

    assert (
        body["balanced"] is True and body["total_debit"] == body["total_credit"] == "199.51"
    )  # with the credit note's debits
    receivable = next(row for row in body["rows"] if row["code"] == "1501")
    assert (receivable["debit"], receivable["credit"], receivable["balance"]) == ("188.51", "11.00", "177.51")
    as_csv = client.get("/api/v1/reports/trial-balance?date=2026-11-30&format=csv", headers=office)
    assert as_csv.mimetype == "text/csv"
    assert as_csv.get_data(as_text=True).splitlines()[-1] == "Total,,199.51,199.51,0.00"


def test_general_ledger_balance_sheet_and_income_statement(client, office, november):
    ledger = client.get("/api/v1/reports/general-ledger?account=1501&from=2026-11-01&to=2026-11-30", headers=office)
    sheet = client.get("/api/v1/reports/balance-sheet?date=2026-11-30", headers=office).get_json()
    income = client.get("/api/v1/reports/income-statement?date=2026-11-30", headers=office).get_json()
    pdf = client.get("/api/v1/reports/income-statement?date=2026-11-30&format=pdf", headers=office)

    assert ledger.status_code == 200
    rows = ledger.get_json()["rows"]
    assert [(row["reference"], row["balance"]) for row in rows] == [
        ("1/2026", "133.00"),
        ("2/2026", "188.51"),
        ("1/2026", "177.51"),
    ]
    assert ledger.get_json()["closing_balance"] == "177.51"
    assert sheet["balanced"] is True and sheet["total_assets"] == "177.51"
    assert income["result"] == "145.50" and income["from"] == "2026-01-01"
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")


def test_an_unknown_account_or_a_backwards_period_is_a_422(client, office):
    assert "account" in problem_fields(client.get("/api/v1/reports/general-ledger?account=9999", headers=office))
    backwards = client.get("/api/v1/reports/income-statement?date=2026-01-31&from=2026-03-01", headers=office)
    assert "from" in problem_fields(backwards)


def test_a_customers_token_reads_no_books(client, db_session):
    customer = make_customer()
    headers = token_for("customer_admin", "anna@bianchi.example", customer.id)

    for path in ("/api/v1/reports/trial-balance", "/api/v1/vat-register?month=2026-11", "/api/v1/supplier-bills"):
        assert client.get(path, headers=headers).status_code == 403, path
