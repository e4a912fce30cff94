"""The device and contract lists cost the same number of queries for 5 rows as for 15: nothing is looked up per row."""

from __future__ import annotations

import itertools

import pytest

from core.db import db
from modules.rentals.contracts import create_contract
from modules.rentals.devices import create_device
from tests.api_support import add_customer, bearer
from tests.query_counter import Queries, assert_not_growing, count_queries

serials = itertools.count(1)


def add_contracted_devices(customer_id: int, count: int) -> None:
    """`count` devices, each of its own model and on its own contract with an allowance, plus one in stock."""
    for _ in range(count):
        number = next(serials)
        maker = ("Kyocera", "Ricoh")[number % 2]
        device = create_device(
            {"serial": f"SN{number}", "manufacturer": maker, "model": f"Model {number}", "meters": ["bw", "color"]}
        )
        create_contract(
            {
                "customer_id": customer_id,
                "start_date": "2026-01-01",
                "fee": "50.00",
                "allowances": [{"meter": "bw", "included": 1000, "bands": [{"up_to": None, "price": "0.012"}]}],
                "devices": [{"device_id": device.id, "counters": {"bw": 1000 * number, "color": 10 * number}}],
            }
        )
    create_device({"serial": f"STOCK{next(serials)}", "manufacturer": "Kyocera", "model": "Stock", "meters": ["bw"]})
    db.session.commit()


@pytest.fixture
def client_and_rows(app, db_session):
    customer = add_customer("Studio Legale Bianchi")
    headers = {"staff": bearer("dealer_admin"), "customer": bearer("customer_admin", customer=customer)}
    return app.test_client(), headers, lambda count: add_contracted_devices(customer.id, count)


def listed(app, client, url: str, headers: dict) -> tuple[list, Queries]:
    client.get(url, headers=headers)  # the token's first use of the minute is written down; later ones are not
    with count_queries(app) as queries:
        response = client.get(url, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["items"], queries


@pytest.mark.parametrize("role", ["staff", "customer"])
def test_listing_three_times_the_devices_sends_no_more_queries(app, client_and_rows, role):
    client, headers, add_rows = client_and_rows
    add_rows(5)
    _items, few = listed(app, client, "/api/v1/devices?per_page=200", headers[role])
    add_rows(10)
    many_items, many = listed(app, client, "/api/v1/devices?per_page=200", headers[role])

    on_contract = [item for item in many_items if item["contract_id"] is not None]
    assert len(on_contract) == 15 and {item["meters"][0] for item in on_contract} == {"bw"}
    assert_not_growing(few, many)


@pytest.mark.parametrize("role", ["staff", "customer"])
def test_listing_three_times_the_contracts_sends_no_more_queries(app, client_and_rows, role):
    client, headers, add_rows = client_and_rows
    add_rows(5)
    few_items, few = listed(app, client, "/api/v1/contracts?per_page=200", headers[role])
    add_rows(10)
    many_items, many = listed(app, client, "/api/v1/contracts?per_page=200", headers[role])

    assert len(few_items) == 5 and len(many_items) == 15
    assert all(len(item["devices"]) == 1 and item["devices"][0]["serial"].startswith("SN") for item in many_items)
    assert all(item["allowances"][0]["bands"][0]["price"] == "0.012000" for item in many_items)
    assert_not_growing(few, many)
