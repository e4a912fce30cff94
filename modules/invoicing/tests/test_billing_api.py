"""Billing runs and invoices through the API: the billing rules' worked examples, posting, cancelling, crediting."""

from __future__ import annotations

import datetime as dt

import pytest

from modules.invoicing.tests.support import (
    add_company,
    billing_customer,
    get_invoice,
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


def amounts(invoice: dict) -> list[str]:
    return [line["amount"] for line in invoice["lines"]]


def test_example_a_fees_run_bills_january_and_february_then_nothing_again(client, staff, customer):
    contract = new_contract(client, staff, customer.id, "A1")

    run = start_run(client, staff, "2026-02-05")
    again = start_run(client, staff, "2026-02-05")

    assert run["status"] == "done" and run["progress"] == {"done": 1, "total": 1}
    assert len(run["invoice_ids"]) == 1
    invoice = get_invoice(client, staff, run["invoice_ids"][0])
    assert invoice["contract_id"] == contract["id"] and invoice["state"] == "draft" and invoice["number"] is None
    assert [(line["period_start"], line["amount"], line["kind"]) for line in invoice["lines"]] == [
        ("2026-01-01", "50.00", "fee"),
        ("2026-02-01", "50.00", "fee"),
    ]
    assert (invoice["net_total"], invoice["vat_total"], invoice["total"]) == ("100.00", "22.00", "122.00")
    assert contract["number"] in invoice["lines"][0]["description"]
    assert again["status"] == "done" and again["invoice_ids"] == [] and again["errors"] == []


def test_example_a_with_usage_lines_totals_to_the_cent(client, staff, customer):
    contract = new_contract(client, staff, customer.id, "A1")
    usage_line(customer.id, "A:bw:jan", 850, "0.012", contract_id=contract["id"])
    usage_line(customer.id, "A:color:jan", 110, "0.09", contract_id=contract["id"], meter="color")

    run = start_run(client, staff, "2026-02-05")

    invoice = get_invoice(client, staff, run["invoice_ids"][0])
    assert amounts(invoice) == ["50.00", "10.20", "9.90", "50.00"]
    assert (invoice["net_total"], invoice["vat_total"], invoice["total"]) == ("120.10", "26.42", "146.52")
    assert start_run(client, staff, "2026-02-05")["invoice_ids"] == []


def test_example_c_june_fee_in_arrears_is_prorated_once_june_has_ended(client, staff, customer):
    new_contract(
        client,
        staff,
        customer.id,
        "C1",
        start_date="2026-03-01",
        end_date="2026-06-15",
        fee="60.00",
        fee_timing="arrears",
    )

    before = start_run(client, staff, "2026-06-15")
    after = start_run(client, staff, "2026-06-16")

    first = get_invoice(client, staff, before["invoice_ids"][0])
    assert [(line["period_start"], line["amount"]) for line in first["lines"]] == [
        ("2026-03-01", "60.00"),
        ("2026-04-01", "60.00"),
        ("2026-05-01", "60.00"),
    ]
    june = get_invoice(client, staff, after["invoice_ids"][0])
    assert [(line["period_start"], line["period_end"], line["amount"]) for line in june["lines"]] == [
        ("2026-06-01", "2026-06-15", "30.00")
    ]


def test_example_e_fee_is_escalated_from_the_first_anniversary(client, staff, customer):
    new_contract(client, staff, customer.id, "E1", start_date="2025-03-01", escalation_percent="3")

    run = start_run(client, staff, "2026-03-01")

    by_start = {
        line["period_start"]: line["amount"] for line in get_invoice(client, staff, run["invoice_ids"][0])["lines"]
    }
    assert by_start["2025-03-01"] == "50.00" and by_start["2026-02-01"] == "50.00"
    assert by_start["2026-03-01"] == "51.50"
    assert len(by_start) == 13


def test_lines_without_contract_go_to_one_invoice_per_customer(client, staff, customer):
    contract = new_contract(client, staff, customer.id, "A1")
    usage_line(customer.id, "loose:1", 10, "1.50")
    usage_line(customer.id, "loose:2", 3, "2.00")

    run = start_run(client, staff, "2026-01-10")

    invoices = [get_invoice(client, staff, invoice_id) for invoice_id in run["invoice_ids"]]
    assert sorted((inv["contract_id"] or 0, inv["net_total"]) for inv in invoices) == [
        (0, "21.00"),
        (contract["id"], "50.00"),
    ]


def test_posting_numbers_documents_gaplessly_with_due_date_from_payment_terms(client, staff, db_session):
    first_customer = billing_customer("Alfa", payment_terms_days=30, payment_end_of_month=True)
    second_customer = billing_customer("Beta", payment_terms_days=60)
    new_contract(client, staff, first_customer.id, "P1")
    new_contract(client, staff, second_customer.id, "P2")
    first_id, second_id = start_run(client, staff, "2026-01-05")["invoice_ids"]

    first = client.post(f"/api/v1/invoices/{first_id}/post", json={"issue_date": "2026-01-20"}, headers=staff)
    second = client.post(f"/api/v1/invoices/{second_id}/post", json={"issue_date": "2026-01-20"}, headers=staff)
    twice = client.post(f"/api/v1/invoices/{first_id}/post", headers=staff)

    assert first.get_json() == {"number": "1/2026"} and second.get_json() == {"number": "2/2026"}
    assert twice.status_code == 409
    posted = get_invoice(client, staff, first_id)
    assert (posted["state"], posted["issue_date"], posted["due_date"]) == ("posted", "2026-01-20", "2026-02-28")
    assert get_invoice(client, staff, second_id)["due_date"] == "2026-03-21"


def test_posting_with_an_issue_date_before_the_last_number_is_refused(client, staff, db_session):
    for name, serial in (("Alfa", "P1"), ("Beta", "P2")):
        new_contract(client, staff, billing_customer(name).id, serial)
    first_id, second_id = start_run(client, staff, "2026-01-05")["invoice_ids"]
    client.post(f"/api/v1/invoices/{first_id}/post", json={"issue_date": "2026-01-20"}, headers=staff)

    response = client.post(f"/api/v1/invoices/{second_id}/post", json={"issue_date": "2026-01-19"}, headers=staff)

    assert response.status_code == 422
    assert [error["field"] for error in response.get_json()["errors"]] == ["issue_date"]
    assert get_invoice(client, staff, second_id)["state"] == "draft"
    assert client.post(f"/api/v1/invoices/{second_id}/post", headers=staff).get_json() == {"number": "2/2026"}


def test_cancelling_a_draft_frees_its_lines_for_the_next_run(client, staff, customer):
    new_contract(client, staff, customer.id, "A1")
    draft_id = start_run(client, staff, "2026-01-05")["invoice_ids"][0]

    cancelled = client.post(f"/api/v1/invoices/{draft_id}/cancel", headers=staff)
    rerun = start_run(client, staff, "2026-01-05")

    assert cancelled.status_code == 200 and cancelled.get_json()["state"] == "cancelled"
    assert len(rerun["invoice_ids"]) == 1 and rerun["invoice_ids"][0] != draft_id
    assert amounts(get_invoice(client, staff, rerun["invoice_ids"][0])) == ["50.00"]


def test_a_posted_invoice_cannot_be_cancelled(client, staff, customer):
    new_contract(client, staff, customer.id, "A1")
    invoice_id = start_run(client, staff, "2026-01-05")["invoice_ids"][0]
    client.post(f"/api/v1/invoices/{invoice_id}/post", headers=staff)

    response = client.post(f"/api/v1/invoices/{invoice_id}/cancel", headers=staff)

    assert response.status_code == 409
    assert get_invoice(client, staff, invoice_id)["state"] == "posted"


def test_credit_note_reverses_chosen_lines_with_positive_amounts_and_frees_them(client, staff, customer):
    contract = new_contract(client, staff, customer.id, "A1")
    usage_line(customer.id, "A:bw:jan", 850, "0.012", contract_id=contract["id"])
    invoice_id = start_run(client, staff, "2026-02-05")["invoice_ids"][0]
    client.post(f"/api/v1/invoices/{invoice_id}/post", json={"issue_date": "2026-02-06"}, headers=staff)
    invoice = get_invoice(client, staff, invoice_id)
    usage = next(line for line in invoice["lines"] if line["kind"] == "overage")

    note = client.post(f"/api/v1/invoices/{invoice_id}/credit-notes", json={"line_ids": [usage["id"]]}, headers=staff)
    before_posting = start_run(client, staff, "2026-02-05")
    posted = client.post(
        f"/api/v1/invoices/{note.get_json()['id']}/post", json={"issue_date": "2026-02-07"}, headers=staff
    )
    rebill = start_run(client, staff, "2026-02-05")
    again = client.post(f"/api/v1/invoices/{invoice_id}/credit-notes", json={"line_ids": [usage["id"]]}, headers=staff)

    assert note.status_code == 201
    credit = note.get_json()
    assert (credit["type"], credit["state"], credit["original_id"]) == ("credit_note", "draft", invoice_id)
    assert [(line["quantity"], line["amount"]) for line in credit["lines"]] == [("850.000", "10.20")]
    assert (credit["net_total"], credit["vat_total"], credit["total"]) == ("10.20", "2.24", "12.44")
    assert before_posting["invoice_ids"] == []
    assert posted.get_json() == {"number": "1/2026"}
    assert [amounts(get_invoice(client, staff, i)) for i in rebill["invoice_ids"]] == [["10.20"]]
    assert again.status_code == 422


def test_credit_note_of_a_draft_is_refused(client, staff, customer):
    new_contract(client, staff, customer.id, "A1")
    invoice_id = start_run(client, staff, "2026-01-05")["invoice_ids"][0]

    response = client.post(f"/api/v1/invoices/{invoice_id}/credit-notes", json={}, headers=staff)

    assert response.status_code == 409


def test_invoice_list_filters_by_customer_contract_run_and_state(client, staff, db_session):
    alfa, beta = billing_customer("Alfa"), billing_customer("Beta")
    contract = new_contract(client, staff, alfa.id, "P1")
    new_contract(client, staff, beta.id, "P2")
    run = start_run(client, staff, "2026-01-05")
    client.post(f"/api/v1/invoices/{run['invoice_ids'][0]}/post", headers=staff)

    def ids(query: str) -> list[int]:
        return [item["id"] for item in client.get(f"/api/v1/invoices?{query}", headers=staff).get_json()["items"]]

    assert ids(f"customer_id={alfa.id}") == [run["invoice_ids"][0]]
    assert ids(f"contract_id={contract['id']}") == [run["invoice_ids"][0]]
    assert sorted(ids(f"billing_run_id={run['id']}")) == sorted(run["invoice_ids"])
    assert ids("state=draft") == [run["invoice_ids"][1]]


def test_customer_token_sees_only_its_own_posted_invoices_and_no_runs(client, staff, db_session):
    alfa, beta = billing_customer("Alfa"), billing_customer("Beta")
    new_contract(client, staff, alfa.id, "P1")
    new_contract(client, staff, beta.id, "P2")
    run = start_run(client, staff, "2026-01-05")
    alfa_invoice, beta_invoice = run["invoice_ids"]
    client.post(f"/api/v1/invoices/{alfa_invoice}/post", headers=staff)
    client.post(f"/api/v1/invoices/{beta_invoice}/post", headers=staff)
    alfa_token = bearer("customer_admin", customer=alfa)

    listed = client.get("/api/v1/invoices", headers=alfa_token).get_json()

    assert [item["id"] for item in listed["items"]] == [alfa_invoice]
    assert client.get(f"/api/v1/invoices/{alfa_invoice}", headers=alfa_token).status_code == 200
    assert client.get(f"/api/v1/invoices/{beta_invoice}", headers=alfa_token).status_code == 404
    assert client.get(f"/api/v1/invoices/{beta_invoice}/pdf", headers=alfa_token).status_code == 404
    assert client.post("/api/v1/billing-runs", json={"as_of": "2026-01-05"}, headers=alfa_token).status_code == 403
    assert client.get(f"/api/v1/billing-runs/{run['id']}", headers=alfa_token).status_code == 403
    assert client.post(f"/api/v1/invoices/{alfa_invoice}/credit-notes", json={}, headers=alfa_token).status_code == 403


def test_run_without_a_date_is_a_422_naming_as_of(client, staff):
    response = client.post("/api/v1/billing-runs", json={"as_of": "yesterday"}, headers=staff)

    assert response.status_code == 422
    assert [error["field"] for error in response.get_json()["errors"]] == ["as_of"]


def test_run_records_missing_readings_and_a_failing_customer_without_stopping(client, staff, db_session):
    from modules.invoicing.tests.fixture_modules.fake_usage import module as fake_usage

    alfa, beta = billing_customer("Alfa"), billing_customer("Beta")
    contract = new_contract(client, staff, alfa.id, "P1")
    new_contract(client, staff, beta.id, "P2")
    fake_usage.FAILING.add(beta.id)
    fake_usage.MISSING[alfa.id] = [
        {
            "contract_id": contract["id"],
            "device_id": 7,
            "meter": "bw",
            "period_start": dt.date(2026, 1, 1),
            "period_end": dt.date(2026, 1, 31),
        }
    ]

    run = start_run(client, staff, "2026-02-05")

    assert run["status"] == "done" and run["progress"] == {"done": 2, "total": 2}
    assert run["missing_readings"] == [
        {
            "contract_id": contract["id"],
            "device_id": 7,
            "meter": "bw",
            "period_start": "2026-01-01",
            "period_end": "2026-01-31",
        }
    ]
    assert [(error["customer_id"], "usage service is down" in error["message"]) for error in run["errors"]] == [
        (beta.id, True)
    ]
    customers = {get_invoice(client, staff, invoice_id)["customer_id"] for invoice_id in run["invoice_ids"]}
    assert customers == {alfa.id, beta.id}


def test_a_bad_line_from_a_source_is_reported_for_its_contract_only(client, staff, customer):
    contract = new_contract(client, staff, customer.id, "A1")
    usage_line(customer.id, "bad", 10, "0.0123456", contract_id=contract["id"])
    usage_line(customer.id, "good", 10, "1.00")

    run = start_run(client, staff, "2026-01-05")

    assert [(error["contract_id"], "unit_price" in error["message"]) for error in run["errors"]] == [
        (contract["id"], True)
    ]
    assert [get_invoice(client, staff, i)["net_total"] for i in run["invoice_ids"]] == ["10.00"]
