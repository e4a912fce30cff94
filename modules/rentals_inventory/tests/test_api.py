"""/api/v1/devices/{id}/shipments: list and ship, 422 naming the body's fields and writing nothing, customer scope."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from core.db import db
from modules.inventory.models import StockMove
from modules.rentals_inventory.models import Shipment
from modules.rentals_inventory.tests import support
from tests.api_support import bearer

PROBLEM = "application/problem+json"


def problem_fields(response, status: int = 422) -> dict[str, str]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    return {error["field"]: error["message"] for error in response.get_json()["errors"]}


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_staff_ship_through_the_api_and_list_the_devices_shipments(app, db_session):
    client = app.test_client()
    staff = bearer("back_office")
    s = support.standard()
    url = f"/api/v1/devices/{s.device.id}/shipments"

    created = client.post(
        url, json={"product_id": s.black.id, "quantity": "2", "from_location_id": s.warehouse.id}, headers=staff
    )
    listed = client.get(url, headers=staff)

    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    assert (body["state"], body["quantity"], body["billable"]) == ("shipped", "2.000", False)
    assert (body["product_code"], body["from_location"]) == ("TK-5240K", "Magazzino centrale")
    assert [item["id"] for item in listed.get_json()["items"]] == [body["id"]]
    assert support.on_hand(s.black, s.warehouse) == Decimal(3)


def test_bad_input_gets_a_422_naming_each_field_and_writes_nothing(app, db_session):
    client = app.test_client()
    staff = bearer("back_office")
    s = support.standard()
    other = support.device("VBB7654321", support.MONO_MODEL)
    mono_toner = support.toner("TK-1160", "black", other)
    moves = count(StockMove)
    url = f"/api/v1/devices/{s.device.id}/shipments"

    refused = client.post(
        url, json={"product_id": mono_toner.id, "quantity": "0", "from_location_id": 999999}, headers=staff
    )
    negative = client.post(
        url, json={"product_id": s.black.id, "quantity": "-1", "from_location_id": s.warehouse.id}, headers=staff
    )
    too_many = client.post(
        url, json={"product_id": s.black.id, "quantity": "9", "from_location_id": s.warehouse.id}, headers=staff
    )
    missing = client.post(url, json={"quantity": "1"}, headers=staff)

    assert set(problem_fields(refused)) == {"product_id", "quantity", "from_location_id"}
    assert "quantity" in problem_fields(negative)
    assert "quantity" in problem_fields(too_many)
    assert {"product_id", "from_location_id"} <= set(problem_fields(missing))
    assert count(Shipment) == 0
    assert count(StockMove) == moves


def test_a_customer_sees_its_own_devices_shipments_only_and_cannot_ship(app, db_session):
    client = app.test_client()
    s = support.standard()
    own = bearer("customer_user", customer=s.customer, email="anna@bianchi.example")
    other = bearer("customer_user", customer=support.customer("Farmacia San Marco Srl"), email="luca@farmacia.example")
    url = f"/api/v1/devices/{s.device.id}/shipments"
    client.post(
        url,
        json={"product_id": s.black.id, "quantity": "1", "from_location_id": s.warehouse.id},
        headers=bearer("dealer_admin"),
    )

    assert client.get(url, headers=own).get_json()["total"] == 1
    assert client.get(url, headers=other).status_code == 404
    assert client.post(url, json={"product_id": s.black.id, "quantity": "1"}, headers=own).status_code == 403


def test_a_customer_token_sees_no_staff_note_nor_the_location_it_shipped_from(app, db_session):
    client = app.test_client()
    s = support.standard()
    url = f"/api/v1/devices/{s.device.id}/shipments"
    body = {"product_id": s.black.id, "quantity": "1", "from_location_id": s.warehouse.id, "note": "Scaffale B3"}
    assert client.post(url, json=body, headers=bearer("dealer_admin")).status_code == 201
    own = bearer("customer_user", customer=s.customer, email="anna@bianchi.example")

    [staff_sees] = client.get(url, headers=bearer("back_office")).get_json()["items"]
    [customer_sees] = client.get(url, headers=own).get_json()["items"]

    fields = ("note", "from_location", "from_location_id")
    assert [staff_sees[f] for f in fields] == ["Scaffale B3", "Magazzino centrale", s.warehouse.id]
    assert [customer_sees[f] for f in fields] == [None, None, None]
    assert customer_sees["product_code"] == "TK-5240K"


def test_a_technician_ships_from_their_own_van_only(app, db_session):
    client = app.test_client()
    s = support.standard()
    headers = bearer("technician", email="marco@dealer.example")
    technician = db.session.scalar(sa.select(support.User).where(support.User.email == "marco@dealer.example"))
    van = support.locations.save_location(None, name="Furgone Marco", kind="van", technician_id=technician.id)
    db.session.commit()
    support.receive(s.black, 1, van)
    url = f"/api/v1/devices/{s.device.id}/shipments"

    from_warehouse = client.post(
        url, json={"product_id": s.black.id, "quantity": "1", "from_location_id": s.warehouse.id}, headers=headers
    )
    from_van = client.post(
        url, json={"product_id": s.black.id, "quantity": "1", "from_location_id": van.id}, headers=headers
    )

    assert "from_location_id" in problem_fields(from_warehouse)
    assert from_van.status_code == 201, from_van.get_data(as_text=True)
