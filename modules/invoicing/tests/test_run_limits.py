"""What one billing run may start: an as_of date inside the dealer's window, a bounded number of lines per draft."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from core import clock
from core.db import db
from core.settings import set_setting
from modules.invoicing.models import BillingRun, Invoice
from modules.invoicing.tests.support import add_company, billing_customer, get_invoice, new_contract, start_run
from tests.api_support import bearer
from tests.auth_support import login, make_user, post_form

RUNS_PAGE = "/admin/invoicing_runs_admin/"


@pytest.fixture
def staff(db_session):
    add_company()
    return bearer("dealer_admin")


def run_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(BillingRun))


def as_of_error(response) -> str:
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    errors = {error["field"]: error["message"] for error in response.get_json()["errors"]}
    assert list(errors) == ["as_of"]
    return errors["as_of"]


def test_as_of_in_year_9999_is_422_naming_as_of_and_creates_no_run(client, staff):
    billing_customer()

    for as_of in ("9999-12-31", "2100-01-01", (clock.today() + dt.timedelta(days=32)).isoformat()):
        message = as_of_error(client.post("/api/v1/billing-runs", json={"as_of": as_of}, headers=staff))
        assert "31 days ahead" in message

    assert run_count() == 0 and db.session.scalar(sa.select(sa.func.count()).select_from(Invoice)) == 0


def test_as_of_up_to_31_days_ahead_is_accepted(client, staff):
    billing_customer()

    run = start_run(client, staff, (clock.today() + dt.timedelta(days=31)).isoformat())

    assert run["status"] == "done"


def test_the_dealer_setting_widens_the_window_ahead(client, staff):
    set_setting("invoicing.max_as_of_days_ahead", 90)
    db.session.commit()
    later = clock.today() + dt.timedelta(days=90)

    assert start_run(client, staff, later.isoformat())["status"] == "done"
    message = as_of_error(
        client.post("/api/v1/billing-runs", json={"as_of": (later + dt.timedelta(days=1)).isoformat()}, headers=staff)
    )
    assert "90 days ahead" in message


def test_as_of_more_than_ten_years_back_is_422_naming_as_of(client, staff):
    for as_of in ("0001-01-01", "1999-12-31", (clock.today() - dt.timedelta(days=3700)).isoformat()):
        message = as_of_error(client.post("/api/v1/billing-runs", json={"as_of": as_of}, headers=staff))
        assert "10 years" in message
    assert run_count() == 0


def test_back_office_form_refuses_a_date_outside_the_window_and_says_why(app):
    with app.app_context():
        add_company()
        billing_customer()
        make_user("office@rossi.example", "back_office")
    office = app.test_client()
    login(office, "office@rossi.example")

    response = post_form(office, RUNS_PAGE + "start", {"as_of": "2100-01-01"}, form_url=RUNS_PAGE)
    page = office.get(RUNS_PAGE).get_data(as_text=True)

    assert response.status_code == 302 and response.headers["Location"].endswith(RUNS_PAGE)
    assert "31 days ahead" in page
    with app.app_context():
        latest = (clock.today() + dt.timedelta(days=31)).isoformat()
        assert run_count() == 0
    assert f'max="{latest}"' in page


def test_a_draft_holds_at_most_the_setting_lines_and_the_run_says_how_many_wait(client, staff):
    set_setting("invoicing.max_lines_per_draft", 4)
    db.session.commit()
    customer = billing_customer()
    today = clock.today()
    start = (today.replace(day=1) - dt.timedelta(days=300)).replace(day=1)  # ten or eleven monthly fees are due
    new_contract(client, staff, customer.id, "A1", start_date=start.isoformat())

    first = start_run(client, staff, today.isoformat())
    second = start_run(client, staff, today.isoformat())

    drafts = [get_invoice(client, staff, first["invoice_ids"][0]), get_invoice(client, staff, second["invoice_ids"][0])]
    assert [len(draft["lines"]) for draft in drafts] == [4, 4]
    periods = [line["period_start"] for draft in drafts for line in draft["lines"]]
    assert periods == sorted(periods) and periods[0] == start.isoformat() and len(set(periods)) == 8
    message = first["errors"][0]["message"]
    assert "first 4" in message and "run again" in message
    assert first["errors"][0]["contract_id"] == drafts[0]["contract_id"]
