"""/api/v1 accounts, journals and entries: the chart read, extended and renamed; a manual entry posted, listed by
journal, date, account and partner, and reversed; an unbalanced entry, one in a locked period or on a group account
answered 422 naming the problem, with nothing written."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from core.api.tokens import create_token
from core.db import db
from core.models import User
from modules.accounting import chart, settings
from modules.accounting.models import Entry, EntryLine
from modules.accounting.tests.support import make_customer, make_posted_invoice

DAY = dt.date(2026, 11, 20)


def token_for(role: str, email: str, customer_id: int | None = None) -> dict[str, str]:
    user = User(email=email, name=role, role=role, customer_id=customer_id, language="en")
    db.session.add(user)
    db.session.commit()
    _token, plaintext = create_token(user, "tests")
    db.session.commit()
    return {"Authorization": f"Bearer {plaintext}"}


@pytest.fixture
def office(app, db_session) -> dict[str, str]:
    return token_for("back_office", "office@example.com")


def problem_fields(response) -> dict[str, str]:
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    return {error["field"]: error["message"] for error in response.get_json()["errors"]}


def entries_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Entry))


def rent_paid_in_cash(**changes):
    """A manual entry: the office rent (an expense) paid from the cash box."""
    body = {
        "journal": "VAR",
        "date": DAY.isoformat(),
        "reference": "Ricevuta 45/2026",
        "memo": "Affitto novembre",
        "lines": [
            {"account": "4202", "debit": "500.00", "label": "Affitto ufficio"},
            {"account": chart.CASH, "credit": "500.00", "label": "Pagato in contanti"},
        ],
    }
    return {**body, **changes}


def test_the_chart_lists_groups_and_accounts_by_code_in_the_callers_language(client, office):
    listed = client.get("/api/v1/accounts?per_page=200", headers=office).get_json()
    codes = [item["code"] for item in listed["items"]]
    assert codes == sorted(codes) and listed["total"] == len(codes)
    receivable = next(item for item in listed["items"] if item["code"] == chart.RECEIVABLE)
    assert receivable["name"] == receivable["name_en"] == "Customer receivables"
    assert receivable["name_it"] == "Crediti verso clienti"
    assert receivable["parent"] == "1500" and receivable["reconcilable"] and receivable["needs_partner"]
    groups = client.get("/api/v1/accounts?postable=false&per_page=200", headers=office).get_json()["items"]
    assert {"1500", "1800"} <= {item["code"] for item in groups}
    assert all(not item["postable"] and item["parent"] is None for item in groups)
    found = client.get("/api/v1/accounts?q=cassa", headers=office).get_json()["items"]
    assert [item["code"] for item in found] == [chart.CASH]


def test_an_account_is_added_renamed_and_keeps_its_code_once_it_has_entries(client, office):
    created = client.post(
        "/api/v1/accounts",
        json={"code": "5806", "name_it": "Ricavi assistenza tecnica", "type": "income", "parent": "5800"},
        headers=office,
    )
    assert created.status_code == 201, created.get_json()
    account = created.get_json()
    assert account["name_en"] == account["name_es"] == "Ricavi assistenza tecnica" and account["postable"]
    assert created.headers["Location"].endswith(f"/api/v1/accounts/{account['id']}")
    again = client.post(
        "/api/v1/accounts", json={"code": "5806", "name_it": "Doppio", "type": "income"}, headers=office
    )
    assert problem_fields(again) == {"code": "Another account already has the code 5806."}
    under_an_account = client.post(
        "/api/v1/accounts", json={"code": "5807", "name_it": "X", "type": "income", "parent": "5801"}, headers=office
    )
    assert problem_fields(under_an_account) == {"parent": "5801 is posted to: choose a group."}

    renamed = client.patch(
        f"/api/v1/accounts/{account['id']}", json={"name_en": "Service revenue"}, headers=office
    ).get_json()
    assert renamed["name_en"] == "Service revenue" and renamed["name_it"] == "Ricavi assistenza tecnica"
    body = rent_paid_in_cash(
        lines=[
            {"account": chart.CASH, "debit": "80.00"},
            {"account": "5806", "credit": "80.00", "label": "Intervento"},
        ]
    )
    assert client.post("/api/v1/entries", json=body, headers=office).status_code == 201
    recoded = client.patch(f"/api/v1/accounts/{account['id']}", json={"code": "5899"}, headers=office)
    assert problem_fields(recoded) == {
        "code": "The account has entries: its code, type and whether it is posted to stay."
    }
    assert client.get(f"/api/v1/accounts/{account['id']}", headers=office).get_json()["code"] == "5806"


def test_journals_are_listed_with_their_kind_and_account(client, office):
    listed = client.get("/api/v1/journals", headers=office).get_json()["items"]
    by_code = {item["code"]: item for item in listed}
    assert {"VEN", "ACQ", "BNK", "CAS", "VAR"} <= set(by_code)
    assert by_code["BNK"]["kind"] == "bank" and by_code["BNK"]["account"] == chart.BANK
    assert by_code["CAS"]["account"] == chart.CASH and by_code["VEN"]["kind"] == "sales"
    one = client.get(f"/api/v1/journals/{by_code['VEN']['id']}", headers=office).get_json()
    assert one["code"] == "VEN"
    assert client.get("/api/v1/journals/999999", headers=office).status_code == 404


def test_a_manual_entry_is_posted_numbered_in_its_journal_and_read_back(client, office):
    created = client.post("/api/v1/entries", json=rent_paid_in_cash(), headers=office)
    assert created.status_code == 201, created.get_json()
    entry = created.get_json()
    assert entry["number"] == "VAR/2026/0001" and entry["source"] == "manual" and entry["journal"] == "VAR"
    assert entry["debit_total"] == entry["credit_total"] == "500.00"
    assert [(line["account"], line["debit"], line["credit"]) for line in entry["lines"]] == [
        ("4202", "500.00", "0.00"),
        (chart.CASH, "0.00", "500.00"),
    ]
    read = client.get(created.headers["Location"], headers=office).get_json()
    assert read["reference"] == "Ricevuta 45/2026" and read["memo"] == "Affitto novembre"
    second = client.post("/api/v1/entries", json=rent_paid_in_cash(date="2026-11-21"), headers=office).get_json()
    assert second["number"] == "VAR/2026/0002"


def test_an_unbalanced_entry_is_refused_naming_the_lines_and_nothing_is_written(client, office):
    before = entries_count()
    body = rent_paid_in_cash(
        lines=[{"account": "4202", "debit": "500.00"}, {"account": chart.CASH, "credit": "499.99"}]
    )
    assert problem_fields(client.post("/api/v1/entries", json=body, headers=office)) == {
        "lines": "Debits (500.00) and credits (499.99) differ."
    }
    both = rent_paid_in_cash(
        lines=[{"account": "4202", "debit": "5.00", "credit": "5.00"}, {"account": chart.CASH, "credit": "0.00"}]
    )
    assert (
        "debit or a credit, not both"
        in problem_fields(client.post("/api/v1/entries", json=both, headers=office))["lines"]
    )
    group = rent_paid_in_cash(lines=[{"account": "1800", "debit": "5.00"}, {"account": chart.CASH, "credit": "5.00"}])
    assert "is a group" in problem_fields(client.post("/api/v1/entries", json=group, headers=office))["lines"]
    float_amount = rent_paid_in_cash(lines=[{"account": "4202", "debit": 5.0}, {"account": chart.CASH, "credit": "5"}])
    assert "lines.0.debit" in problem_fields(client.post("/api/v1/entries", json=float_amount, headers=office))
    huge = rent_paid_in_cash(lines=[{"account": "4202", "debit": "9" * 40}, {"account": chart.CASH, "credit": "5"}])
    assert "lines.0.debit" in problem_fields(client.post("/api/v1/entries", json=huge, headers=office))
    assert "date" in problem_fields(
        client.post("/api/v1/entries", json=rent_paid_in_cash(date="0540-10-24"), headers=office)
    )
    assert entries_count() == before
    # The number refused entries would have taken is still free.
    made = client.post("/api/v1/entries", json=rent_paid_in_cash(), headers=office).get_json()
    assert made["number"] == "VAR/2026/0001"


def test_a_receivable_line_without_its_customer_is_refused(client, office):
    body = rent_paid_in_cash(
        lines=[{"account": chart.RECEIVABLE, "debit": "10.00"}, {"account": "5805", "credit": "10.00"}]
    )
    assert (
        "needs a customer or supplier"
        in problem_fields(client.post("/api/v1/entries", json=body, headers=office))["lines"]
    )
    assert entries_count() == 0


def test_an_entry_in_a_locked_period_is_refused_naming_the_date(client, office):
    settings.set_lock_date(dt.date(2026, 11, 30))
    db.session.commit()
    before = entries_count()
    fields = problem_fields(client.post("/api/v1/entries", json=rent_paid_in_cash(), headers=office))
    assert list(fields) == ["date"] and "closed up to" in fields["date"]
    assert entries_count() == before
    assert client.post("/api/v1/entries", json=rent_paid_in_cash(date="2026-12-01"), headers=office).status_code == 201


def test_a_manual_entry_is_reversed_once_and_a_documents_entry_is_not(client, office):
    created = client.post("/api/v1/entries", json=rent_paid_in_cash(), headers=office).get_json()
    reversed_ = client.post(f"/api/v1/entries/{created['id']}/reverse", json={"date": "2026-11-25"}, headers=office)
    assert reversed_.status_code == 201, reversed_.get_json()
    reversal = reversed_.get_json()
    assert reversal["source"] == "reversal" and reversal["reversed_entry_id"] == created["id"]
    assert reversal["number"] == "VAR/2026/0002" and reversal["date"] == "2026-11-25"
    assert [(line["account"], line["debit"], line["credit"]) for line in reversal["lines"]] == [
        ("4202", "0.00", "500.00"),
        (chart.CASH, "500.00", "0.00"),
    ]
    original = client.get(f"/api/v1/entries/{created['id']}", headers=office).get_json()
    assert original["reversed_by_id"] == reversal["id"]
    twice = client.post(f"/api/v1/entries/{created['id']}/reverse", json={}, headers=office)
    assert problem_fields(twice) == {"entry": "VAR/2026/0001 is already reversed."}

    customer = make_customer()
    invoice = make_posted_invoice(customer)
    sales = db.session.scalar(sa.select(Entry).where(Entry.source == "invoice", Entry.source_id == invoice.id))
    refused = problem_fields(client.post(f"/api/v1/entries/{sales.id}/reverse", json={}, headers=office))
    assert "undo it from the document" in refused["entry"]
    assert client.post("/api/v1/entries/999999/reverse", json={}, headers=office).status_code == 404


def test_entries_are_listed_by_journal_dates_account_and_partner(client, office):
    customer = make_customer()
    invoice = make_posted_invoice(customer, [("fee", "100.00", "22")], issue_date=dt.date(2026, 11, 10))
    client.post("/api/v1/entries", json=rent_paid_in_cash(), headers=office)
    client.post("/api/v1/entries", json=rent_paid_in_cash(date="2026-12-02"), headers=office)

    def numbers(query: str) -> list[str]:
        response = client.get(f"/api/v1/entries{query}", headers=office)
        assert response.status_code == 200, response.get_json()
        return [item["number"] for item in response.get_json()["items"]]

    assert numbers("") == ["VEN/2026/0001", "VAR/2026/0001", "VAR/2026/0002"]
    assert numbers("?journal=VAR") == ["VAR/2026/0001", "VAR/2026/0002"]
    assert numbers("?from=2026-11-15&to=2026-11-30") == ["VAR/2026/0001"]
    assert numbers(f"?account={chart.RECEIVABLE}") == ["VEN/2026/0001"]
    assert numbers(f"?partner_id={customer.id}") == ["VEN/2026/0001"]
    assert numbers("?source=manual&per_page=1") == ["VAR/2026/0001"]
    sales = client.get("/api/v1/entries?journal=VEN", headers=office).get_json()["items"][0]
    receivable = next(line for line in sales["lines"] if line["account"] == chart.RECEIVABLE)
    assert receivable["invoice_id"] == invoice.id and receivable["debit"] == "122.00"
    assert receivable["partner_id"] == customer.id and receivable["due_date"] == "2026-12-10"
    assert problem_fields(client.get("/api/v1/entries?color=red", headers=office)).keys() == {"color"}


def test_customers_and_technicians_may_not_read_or_post_the_books(client, app, db_session):
    customer = make_customer()
    portal = token_for("customer_admin", "anna@bianchi.example", customer_id=customer.id)
    technician = token_for("technician", "tech@example.com")
    for headers in (portal, technician):
        assert client.get("/api/v1/entries", headers=headers).status_code == 403
        assert client.get("/api/v1/accounts", headers=headers).status_code == 403
        assert client.post("/api/v1/entries", json=rent_paid_in_cash(), headers=headers).status_code == 403
    assert client.get("/api/v1/journals").status_code == 401
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EntryLine)) == 0
