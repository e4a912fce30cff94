"""The shipments list of the back office and a device's shipments in the API cost the same number of queries for 4
shipments as for 12: what a row shows (device, customer, product, location, who asked) loads with the page."""

from __future__ import annotations

import itertools

from core.db import db
from modules.rentals_inventory import shipments
from modules.rentals_inventory.tests import support
from tests.api_support import bearer
from tests.auth_support import login, make_user
from tests.query_counter import assert_not_growing, count_queries

serials = itertools.count(1)


def add_shipments(s: support.Setup, count: int) -> list[str]:
    """`count` shipments, each to a device of its own on the same contract, and a portal request for each."""
    added = []
    for _ in range(count):
        number = next(serials)
        added.append(f"VCF{number:07d}")
        unit = support.device(added[-1])
        support.contract(s.customer, [unit], start_date="2026-02-01")
        support.receive(s.black, 1, s.warehouse)
        shipments.ship(unit.id, s.black.id, 1, s.warehouse.id)
        shipments.request_toner(unit.id, "black", 10, support.contact(s.customer, f"user{number}@bianchi.example"))
    db.session.commit()
    return added


def test_the_shipments_list_sends_no_more_queries_for_three_times_the_rows(app, db_session):
    s = support.standard()
    client = app.test_client()
    make_user("office@dealer.example", role="back_office")
    login(client, "office@dealer.example")

    def listed():
        client.get("/admin/rentals_inventory_shipment/")
        with count_queries(app) as queries:
            page = client.get("/admin/rentals_inventory_shipment/")
        assert page.status_code == 200
        return page.get_data(as_text=True), queries

    added = add_shipments(s, 2)
    _page, few = listed()
    added += add_shipments(s, 4)
    page, many = listed()

    assert all(serial in page for serial in added)
    assert_not_growing(few, many)


def test_a_devices_shipments_in_the_api_send_no_more_queries_for_three_times_the_rows(app, db_session):
    s = support.standard()
    client = app.test_client()
    staff = bearer("dealer_admin")
    url = f"/api/v1/devices/{s.device.id}/shipments?per_page=200"

    def listed():
        client.get(url, headers=staff)
        with count_queries(app) as queries:
            response = client.get(url, headers=staff)
        return response.get_json()["items"], queries

    for _ in range(4):
        shipments.ship(s.device.id, s.black.id, 1, s.warehouse.id)
    db.session.commit()
    _items, few = listed()
    support.receive(s.black, 8, s.warehouse)
    for _ in range(8):
        shipments.ship(s.device.id, s.black.id, 1, s.warehouse.id)
    db.session.commit()
    items, many = listed()

    assert len(items) == 12
    assert_not_growing(few, many)
