"""Posting: announced and delivered only once committed; dated and numbered by the dealer's calendar."""

from __future__ import annotations

import datetime as dt

import time_machine

from core import jobs, signals
from core.db import db
from core.settings import set_setting
from modules.invoicing import services
from modules.invoicing.models import Invoice
from modules.invoicing.tests.support import add_company, billing_customer, new_contract, start_run, usage_line
from tests.api_support import bearer


def draft_id(app) -> int:
    client = app.test_client()
    add_company()
    staff = bearer("dealer_admin")
    customer = billing_customer()
    contract = new_contract(client, staff, customer.id, "P1")
    usage_line(customer.id, "P:bw:jan", 850, "0.012", contract_id=contract["id"])
    return start_run(client, staff, "2026-02-05")["invoice_ids"][0]


def test_posting_in_a_released_savepoint_of_a_rolled_back_transaction_announces_and_delivers_nothing(app, db_session):
    invoice_id = draft_id(app)
    announced = []
    with signals.invoice_posted.connected_to(lambda sender, invoice_id, customer_id: announced.append(invoice_id)):
        invoice = db.session.get(Invoice, invoice_id)  # only read before the savepoint: it opens the transaction
        savepoint = db.session.begin_nested()
        services.post(invoice)
        savepoint.commit()
        db.session.rollback()

        assert announced == []
        assert jobs.job_status(f"invoice-deliver:{invoice_id}") is None
        invoice = db.session.get(Invoice, invoice_id)
        assert (invoice.state, invoice.number) == ("draft", None)

        services.post(invoice)
        db.session.commit()

    assert announced == [invoice_id]
    assert jobs.job_status(f"invoice-deliver:{invoice_id}") == "done"
    assert db.session.get(Invoice, invoice_id).state == "posted"


def test_posting_in_a_savepoint_that_opens_the_transaction_is_announced_once_at_the_commit(app, db_session):
    invoice_id = draft_id(app)
    announced = []
    with signals.invoice_posted.connected_to(lambda sender, invoice_id, customer_id: announced.append(invoice_id)):
        invoice = db.session.get(Invoice, invoice_id)
        with db.session.begin_nested():
            services.post(invoice)
        assert announced == []
        db.session.commit()

    assert announced == [invoice_id]
    assert jobs.job_status(f"invoice-deliver:{invoice_id}") == "done"
    db.session.expire_all()
    assert db.session.get(Invoice, invoice_id).state == "posted"


def test_posting_at_half_past_eleven_utc_on_new_years_eve_is_dated_and_numbered_in_rome_new_year(app, db_session):
    invoice_id = draft_id(app)
    set_setting("core.timezone", "Europe/Rome")
    db.session.commit()
    client, staff = app.test_client(), bearer("back_office")

    with time_machine.travel(dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC), tick=False):
        response = client.post(f"/api/v1/invoices/{invoice_id}/post", json={}, headers=staff)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["number"] == "1/2027"
    invoice = db.session.get(Invoice, invoice_id)
    assert (invoice.issue_date, invoice.year) == (dt.date(2027, 1, 1), 2027)
