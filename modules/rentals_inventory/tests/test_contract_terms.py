"""Rentals' contract terms for consumables: included (default yes) and the assumed coverage (default 5%, above 0),
through the API and the back-office form."""

from __future__ import annotations

from decimal import Decimal

from core.db import db
from modules.rentals.models import Contract
from modules.rentals_inventory.tests import support
from tests.api_support import bearer
from tests.auth_support import login, make_user, post_form


def contract_body(customer_id: int, **terms) -> dict:
    return {"customer_id": customer_id, "start_date": "2026-01-01", "period_months": 1, "fee": "10.00", **terms}


def test_a_new_contract_includes_consumables_at_five_percent_coverage(app, db_session):
    client = app.test_client()
    staff = bearer("dealer_admin")
    partner = support.customer()

    created = client.post("/api/v1/contracts", json=contract_body(partner.id), headers=staff)
    changed = client.patch(
        f"/api/v1/contracts/{created.get_json()['id']}",
        json={"consumables_included": False, "assumed_coverage": "7.5"},
        headers=staff,
    )

    assert created.status_code == 201, created.get_data(as_text=True)
    assert (created.get_json()["consumables_included"], created.get_json()["assumed_coverage"]) == (True, "5.00")
    assert (changed.get_json()["consumables_included"], changed.get_json()["assumed_coverage"]) == (False, "7.50")


def test_a_coverage_of_zero_or_above_100_is_refused_naming_the_field(app, db_session):
    client = app.test_client()
    staff = bearer("dealer_admin")
    partner = support.customer()

    zero = client.post("/api/v1/contracts", json=contract_body(partner.id, assumed_coverage="0"), headers=staff)
    high = client.post("/api/v1/contracts", json=contract_body(partner.id, assumed_coverage="101"), headers=staff)

    for response in (zero, high):
        assert response.status_code == 422
        assert [error["field"] for error in response.get_json()["errors"]] == ["assumed_coverage"]
    assert db.session.query(Contract).count() == 0


def test_the_contract_form_saves_the_consumables_terms(app, db_session):
    partner = support.customer()
    client = app.test_client()
    make_user("admin@dealer.example", role="dealer_admin")
    login(client, "admin@dealer.example")
    form = {
        "customer_id": partner.id,
        "start_date": "2026-01-01",
        "period_months": "1",
        "fee": "10.00",
        "fee_timing": "advance",
        "grace_days": "10",
        "escalation_percent": "0",
        "vat_rate": "22",
        "renewal_months": "12",
        "notice_days": "90",
        "assumed_coverage": "6,5",
    }

    saved = post_form(client, "/admin/rentals_contract/new/", form)

    assert saved.status_code == 302, saved.get_data(as_text=True)[:2000]
    contract = db.session.query(Contract).one()
    assert (contract.consumables_included, contract.assumed_coverage) == (False, Decimal("6.50"))
    page = client.get(f"/admin/rentals_contract/details/?id={contract.id}").get_data(as_text=True)
    assert "invoiced when shipped" in page
