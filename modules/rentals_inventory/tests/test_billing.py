"""Billable shipments reach the next billing run as one consumable line, once; free ones, and those whose stock
came back, never do."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from core import clock
from core.db import db
from core.models import Company
from modules.inventory import stock
from modules.rentals_inventory import shipments
from modules.rentals_inventory.models import Shipment
from modules.rentals_inventory.tests import support
from tests.api_support import bearer


def add_company() -> None:
    db.session.add(
        Company(
            name="Copiatrici Rossi Srl",
            vat_number="00743110157",
            fiscal_code="00743110157",
            street="Via Roma 1",
            postal_code="20121",
            city="Milano",
            province="MI",
            country="IT",
            iban="IT60X0542811101000000123456",
            tax_regime="RF01",
            email="amministrazione@rossi.example",
        )
    )
    db.session.commit()


def run_billing(client, headers, as_of: dt.date) -> dict:
    """POST a billing run (it runs inline without Redis) and read it back."""
    response = client.post("/api/v1/billing-runs", json={"as_of": as_of.isoformat()}, headers=headers)
    assert response.status_code == 202, response.get_data(as_text=True)
    run = client.get(f"/api/v1/billing-runs/{response.get_json()['id']}", headers=headers).get_json()
    assert run["status"] == "done", run
    return run


def consumable_lines(client, headers, customer_id: int) -> list[dict]:
    invoices = client.get(f"/api/v1/invoices?customer_id={customer_id}", headers=headers).get_json()["items"]
    return [line for invoice in invoices for line in invoice["lines"] if line["kind"] == "consumable"]


def test_a_billable_shipment_is_invoiced_by_the_next_run_once(app, db_session):
    client = app.test_client()
    staff = bearer("dealer_admin")
    add_company()
    s = support.standard(consumables_included=False)
    today = clock.today()
    shipment = shipments.ship(s.device.id, s.black.id, 2, s.warehouse.id, ship_date=today - dt.timedelta(days=3))
    db.session.commit()

    first = run_billing(client, staff, today - dt.timedelta(days=1))
    second = run_billing(client, staff, today)

    [line] = consumable_lines(client, staff, s.customer.id)
    assert Decimal(line["quantity"]) == Decimal(2)
    assert Decimal(line["unit_price"]) == Decimal("79.00")
    assert Decimal(line["amount"]) == Decimal("158.00")
    assert line["device_id"] == s.device.id
    assert line["contract_id"] == s.contract_id
    assert "TK-5240K" in line["description"]
    assert len(first["invoice_ids"]) == 1
    assert second["invoice_ids"] == []
    assert db.session.get(Shipment, shipment.id).billed is True


def test_a_shipment_after_the_runs_date_waits_for_a_later_run(app, db_session):
    client = app.test_client()
    staff = bearer("dealer_admin")
    add_company()
    s = support.standard(consumables_included=False)
    today = clock.today()
    shipments.ship(s.device.id, s.black.id, 1, s.warehouse.id, ship_date=today)
    db.session.commit()

    run_billing(client, staff, today - dt.timedelta(days=1))
    assert consumable_lines(client, staff, s.customer.id) == []
    run_billing(client, staff, today)
    assert len(consumable_lines(client, staff, s.customer.id)) == 1


def test_shipments_a_contract_includes_are_never_invoiced(app, db_session):
    client = app.test_client()
    staff = bearer("dealer_admin")
    add_company()
    s = support.standard(consumables_included=True)
    shipments.ship(s.device.id, s.black.id, 2, s.warehouse.id)
    db.session.commit()

    run_billing(client, staff, clock.today())

    assert consumable_lines(client, staff, s.customer.id) == []


def test_a_shipment_whose_stock_move_was_reversed_is_neither_billed_nor_counted_as_shipped(app, db_session):
    client = app.test_client()
    staff = bearer("dealer_admin")
    add_company()
    s = support.standard(consumables_included=False)
    no_yield = support.toner("TK-5240C", "cyan", s.device, yield_pages=None)
    support.receive(no_yield, 1, s.warehouse)
    today = clock.today()
    day = today - dt.timedelta(days=3)
    returned = shipments.ship(s.device.id, s.black.id, 2, s.warehouse.id, ship_date=day)
    shipments.ship(s.device.id, no_yield.id, 1, s.warehouse.id, ship_date=day)
    db.session.commit()
    stock.reverse_move(returned.move_id)
    db.session.commit()

    run_billing(client, staff, today)

    [line] = consumable_lines(client, staff, s.customer.id)
    assert "TK-5240C" in line["description"]  # the cyan one, not the black that came back
    assert db.session.get(Shipment, returned.id).billed is False
    assert shipments.shipped(s.device.id, "black", day, today) == []
    assert shipments.shipped(s.device.id, "cyan", day, today) == [shipments.ShippedCartridge(day, Decimal(1), None)]
