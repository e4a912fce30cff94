"""Receivables: aging buckets at any date, the partner ledger's running balance, the aging API and the back-office
pages (aging with its chart, partner ledger, SEPA mandates and collections)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import lxml.html
import pytest

from core import clock
from core.db import db
from core.extensions import limiter
from modules.accounting import payments, receivables, sepa
from modules.accounting.tests import support
from tests.api_support import bearer
from tests.auth_support import login, make_user, post_form

D = Decimal


@pytest.mark.parametrize(
    ("late", "bucket"),
    [(-5, "not_due"), (0, "not_due"), (1, "1_30"), (30, "1_30"), (31, "31_60"), (60, "31_60"), (61, "61_90"),
     (90, "61_90"), (91, "over_90"), (400, "over_90")],
)  # fmt: skip
def test_an_item_falls_in_the_bucket_of_its_days_past_due(late, bucket):
    due = dt.date(2026, 6, 30)
    assert receivables.bucket_for(due, due + dt.timedelta(days=late)) == bucket


def _books():
    """Two customers: Rossi with three invoices (one paid in part), Verdi paid in advance more than it owes."""
    rossi = support.make_customer("Rossi Srl")
    verdi = support.make_customer("Verdi Spa")
    old = support.make_posted_invoice(rossi, [("fee", "100.00", "22")], issue_date=dt.date(2026, 7, 1))  # due 31/7
    mid = support.make_posted_invoice(rossi, [("fee", "200.00", "22")], issue_date=dt.date(2026, 9, 15))  # due 15/10
    new = support.make_posted_invoice(rossi, [("fee", "50.00", "22")], issue_date=dt.date(2026, 11, 10))  # due 10/12
    payments.record_payment(rossi.id, D("44.00"), dt.date(2026, 10, 1), invoice_id=mid.id)
    verdi_invoice = support.make_posted_invoice(verdi, [("fee", "10.00", "22")], issue_date=dt.date(2026, 11, 11))
    payments.record_payment(verdi.id, D("20.00"), dt.date(2026, 11, 12), advance=True)
    db.session.commit()
    return rossi, verdi, old, mid, new, verdi_invoice


def test_the_aging_puts_each_open_amount_in_its_bucket_at_the_date(db_session):
    rossi, _verdi, *_ = _books()

    report = receivables.aging(dt.date(2026, 11, 20))

    assert [row.partner.name for row in report.rows] == ["Rossi Srl", "Verdi Spa"]
    first = report.rows[0]
    # 122 due 31/7 is 112 days late; 244 - 44 = 200 due 15/10 is 36 days late; 61 due 10/12 not yet due.
    assert first.buckets == {"not_due": D("61.00"), "1_30": 0, "31_60": D("200.00"), "61_90": 0, "over_90": D("122")}
    assert first.total == D("383.00") == support.account_balance(_receivable_code(), rossi.id)
    assert first.overdue == D("322.00")
    second = report.rows[1]
    assert second.buckets["1_30"] == 0 and second.buckets["not_due"] == D("12.20")
    assert second.credits == D("-20.00") and second.total == D("-7.80")
    assert report.total == D("375.20")


def test_the_aging_at_an_earlier_date_ignores_what_came_later(db_session):
    _books()

    report = receivables.aging(dt.date(2026, 9, 30))

    (row,) = report.rows
    # The October payment is not yet there, the November invoice not yet posted; 122 due 31/7 is 61 days late.
    assert row.buckets == {"not_due": D("244.00"), "1_30": 0, "31_60": 0, "61_90": D("122.00"), "over_90": 0}


def test_the_partner_ledger_runs_the_balance_from_the_opening(db_session):
    rossi, _verdi, _old, mid, new, _ = _books()

    ledger = receivables.partner_ledger(rossi, dt.date(2026, 9, 1), dt.date(2026, 12, 31))

    assert ledger.opening == D("122.00")  # the July invoice
    assert [(row.line.debit, row.line.credit, row.balance) for row in ledger.rows] == [
        (D("244.00"), 0, D("366.00")),
        (0, D("44.00"), D("322.00")),
        (D("61.00"), 0, D("383.00")),
    ]
    assert [row.line.invoice_id for row in ledger.rows][::2] == [mid.id, new.id]
    assert ledger.closing == D("383.00")


def _receivable_code() -> str:
    from modules.accounting import settings

    return settings.receivable_account().code


def test_the_aging_api_answers_per_customer_and_bucket(app, client):
    with app.app_context():
        _books()
        headers = bearer("back_office")
    answer = client.get("/api/v1/reports/aging?date=2026-11-20", headers=headers)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["date"] == "2026-11-20"
    assert [row["partner"] for row in body["rows"]] == ["Rossi Srl", "Verdi Spa"]
    assert body["rows"][0]["buckets"] == {
        "not_due": "61.00",
        "1_30": "0.00",
        "31_60": "200.00",
        "61_90": "0.00",
        "over_90": "122.00",
    }
    assert body["total"] == "375.20"
    assert client.get("/api/v1/reports/aging?date=20-11-2026", headers=headers).status_code == 422
    with app.app_context():
        customer_headers = bearer("customer_admin", customer=support.make_customer("Altro"), email="c@x.example")
    assert client.get("/api/v1/reports/aging", headers=customer_headers).status_code == 403


def _fields(answer) -> set[str]:
    return {error["field"] for error in answer.get_json()["errors"]}


def test_the_mandate_and_collection_api(app, client):
    with app.app_context():
        support.make_company()
        sepa.set_creditor_id("IT66ZZZA1B2C3D4E5F6G7H8")
        db.session.commit()
        customer = support.make_customer()
        invoice = support.make_posted_invoice(customer)
        headers = bearer("back_office")
        customer_id, invoice_id, number = customer.id, invoice.id, invoice.number
        collection = (clock.today() + dt.timedelta(days=5)).isoformat()
    bad = client.post(
        "/api/v1/sepa-mandates",
        json={"partner_id": customer_id, "reference": "MND-1", "signed_on": "2025-01-01", "iban": "IT00X0542811101"},
        headers=headers,
    )
    assert bad.status_code == 422 and _fields(bad) == {"iban"}
    made = client.post(
        "/api/v1/sepa-mandates",
        json={
            "partner_id": customer_id,
            "reference": "MND-1",
            "signed_on": "2025-01-01",
            "iban": "DE89370400440532013000",
        },
        headers=headers,
    )
    assert made.status_code == 201, made.get_json()
    batch = client.post(
        "/api/v1/sepa-batches",
        json={"due_from": "2026-12-01", "due_to": "2026-12-31", "collection_date": collection},
        headers=headers,
    )
    assert batch.status_code == 201, batch.get_json()
    body = batch.get_json()
    assert [(i["invoice_number"], i["amount"], i["state"]) for i in body["items"]] == [(number, "122.00", "collecting")]
    xml = client.get(f"/api/v1/sepa-batches/{body['id']}/xml", headers=headers)
    assert xml.status_code == 200 and xml.mimetype == "application/xml"
    assert b"MND-1" in xml.data
    invoice_state = client.get(f"/api/v1/invoices/{invoice_id}", headers=headers).get_json()
    assert invoice_state.get("payment_state") == "collecting"
    again = client.post(
        "/api/v1/sepa-batches",
        json={"due_from": "2026-12-01", "due_to": "2026-12-31", "collection_date": collection},
        headers=headers,
    )
    assert again.status_code == 422 and "due_to" in _fields(again)
    returned = client.post(
        f"/api/v1/sepa-batches/{body['id']}/returns",
        json={"end_to_end_id": body["items"][0]["end_to_end_id"], "reason": "AM04"},
        headers=headers,
    )
    assert returned.status_code == 200 and returned.get_json()["state"] == "returned"
    unknown = client.post(
        f"/api/v1/sepa-batches/{body['id']}/returns", json={"end_to_end_id": "NOPE", "reason": "AM04"}, headers=headers
    )
    assert unknown.status_code == 422 and _fields(unknown) == {"end_to_end_id"}


def _text(html: str, xpath: str) -> str:
    return " ".join(" ".join(node.text_content().split()) for node in lxml.html.fromstring(html).xpath(xpath))


def test_the_back_office_pages_show_the_aging_the_ledger_and_the_collections(app):
    with app.app_context():
        support.make_company()
        sepa.set_creditor_id("IT66ZZZA1B2C3D4E5F6G7H8")
        rossi, *_ = _books()
        sepa.save_mandate(
            None, partner_id=rossi.id, reference="MND-R", signed_on="2025-01-01", iban="DE89370400440532013000"
        )
        db.session.commit()
        make_user("office@dealer.example", "back_office", name="Back Office", language="it")
        make_user("anna@rossi.example", "customer_admin", customer_id=rossi.id, name="Anna")
        rossi_id = rossi.id
        collection = (clock.today() + dt.timedelta(days=5)).isoformat()
    limiter.reset()
    client = app.test_client()
    assert login(client, "office@dealer.example").status_code == 302
    page = client.get("/admin/accounting_aging/?date=2026-11-20")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Rossi Srl" in _text(html, "//table[@id='aging-table']")
    assert "383,00" in _text(html, "//table[@id='aging-table']")  # in Italian
    assert len(lxml.html.fromstring(html).xpath("//div[@id='aging-chart']/div")) == 5  # a bar per bucket
    ledger = client.get(f"/admin/accounting_partner_ledger/?partner_id={rossi_id}&date_to=2026-12-31")
    assert ledger.status_code == 200
    assert "383,00" in _text(ledger.get_data(as_text=True), "//th[@id='closing-balance']")
    assert client.get("/admin/accounting_sepa_mandate/").status_code == 200
    new_page = "/admin/accounting_sepa_batch/collect/?due_from=2026-12-01&due_to=2026-12-31"
    assert "MND-R" in _text(client.get(new_page).get_data(as_text=True), "//table[@id='sepa-candidates']")
    made = post_form(
        client,
        "/admin/accounting_sepa_batch/collect/",
        {"due_from": "2026-12-01", "due_to": "2026-12-31", "collection_date": collection},
        form_url=new_page,
    )
    assert made.status_code == 302
    detail = client.get(made.headers["Location"])
    assert detail.status_code == 200
    assert "MND-R" in _text(detail.get_data(as_text=True), "//table[@id='sepa-items']")
    download = client.get(made.headers["Location"].replace("/details/", "/download/"))
    assert download.status_code == 200 and download.data.startswith(b"<?xml")
    assert client.get("/admin/accounting_sepa_batch/").status_code == 200
    assert client.get("/admin/accounting_dunning_letter/").status_code == 200
    limiter.reset()
    outsider = app.test_client()
    assert login(outsider, "anna@rossi.example", url="/portal/login").status_code in (302, 200)
    assert outsider.get("/admin/accounting_aging/").status_code in (302, 403)
    limiter.reset()
