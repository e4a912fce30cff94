"""The readings API as a client sees it: record, duplicates, 422 naming the meter, customer scoping, replacements."""

from __future__ import annotations

import pytest

from core.db import db
from modules.metering.tests import support as s
from tests.api_support import add_customer, bearer

PROBLEM = "application/problem+json"


def problem_fields(response, status: int = 422) -> dict[str, str]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    return {error["field"]: error["message"] for error in response.get_json()["errors"]}


@pytest.fixture
def setup(db_session):
    customer = add_customer("Studio Bianchi")
    device = s.device("KY1")
    s.contract(customer.id, [(device, {"bw": 10_000, "color": 2_000})])
    db.session.commit()
    return customer, device


def test_posting_a_reading_answers_its_id_status_and_warnings(client, setup):
    _customer, device = setup
    body = {"device_id": device.id, "taken_at": "2026-02-02T09:00:00+01:00", "counters": {"bw": 11_850}}
    response = client.post("/api/v1/readings", json=body, headers=bearer("technician"))
    assert response.status_code == 201, response.get_data(as_text=True)
    data = response.get_json()
    assert data["status"] == "accepted" and data["counters"] == {"bw": 11_850}
    assert any("color" in warning for warning in data["warnings"])
    assert data["taken_at"].startswith("2026-02-02T08:00:00")
    again = client.post("/api/v1/readings", json=body, headers=bearer("back_office"))
    assert again.status_code == 200 and again.get_json()["id"] == data["id"]


def test_counter_going_backwards_is_422_naming_the_meter(client, setup):
    _customer, device = setup
    headers = bearer("technician")
    body = {"device_id": device.id, "taken_at": "2026-02-02T09:00:00Z", "counters": {"bw": 9_000, "color": 2_100}}
    fields = problem_fields(client.post("/api/v1/readings", json=body, headers=headers))
    assert list(fields) == ["counters.bw"] and "10,000" in fields["counters.bw"]


def test_bad_values_are_422_and_nothing_is_written(client, setup):
    _customer, device = setup
    headers = bearer("technician")
    body = {"device_id": device.id, "taken_at": "2026-02-02T09:00:00Z", "counters": {"bw": "lots", "fax": 1}}
    assert set(problem_fields(client.post("/api/v1/readings", json=body, headers=headers))) == {
        "counters.bw",
        "counters.fax",
    }
    listed = client.get(f"/api/v1/readings?device_id={device.id}", headers=headers).get_json()
    assert listed["total"] == 0


def test_readings_list_is_filtered_paginated_and_newest_first(client, setup):
    _customer, device = setup
    for day, value in (("2026-02-01", 11_000), ("2026-03-01", 12_000), ("2026-04-01", 13_000)):
        s.read(device, day, bw=value)
    db.session.commit()
    headers = bearer("back_office")
    page = client.get(
        f"/api/v1/readings?device_id={device.id}&since=2026-02-15T00:00:00Z&per_page=1", headers=headers
    ).get_json()
    assert page["total"] == 2 and page["per_page"] == 1
    assert page["items"][0]["counters"] == {"bw": 13_000}
    until = client.get("/api/v1/readings?until=2026-02-15T00:00:00Z", headers=headers).get_json()
    assert [item["counters"]["bw"] for item in until["items"]] == [11_000]


def test_a_customer_token_sees_and_posts_only_its_own_devices(client, setup):
    customer, device = setup
    other = add_customer("Altro Cliente")
    foreign = s.device("KY2")
    s.contract(other.id, [(foreign, {"bw": 0, "color": 0})])
    s.read(foreign, "2026-02-01", bw=100)
    s.read(device, "2026-02-01", bw=11_000)
    db.session.commit()
    headers = bearer("customer_user", customer=customer)
    listed = client.get("/api/v1/readings", headers=headers).get_json()
    assert [item["serial"] for item in listed["items"]] == ["KY1"]
    body = {"device_id": foreign.id, "taken_at": "2026-03-01T09:00:00Z", "counters": {"bw": 200}}
    assert "device_id" in problem_fields(client.post("/api/v1/readings", json=body, headers=headers))
    own = {"device_id": device.id, "taken_at": "2026-03-01T09:00:00Z", "counters": {"bw": 12_000}, "source": "staff"}
    assert "source" in problem_fields(client.post("/api/v1/readings", json=own, headers=headers))
    own["source"] = "portal"
    assert client.post("/api/v1/readings", json=own, headers=headers).status_code == 201


def test_reading_api_needs_a_token_and_the_permission(client, setup):
    assert client.get("/api/v1/readings").status_code == 401


def test_meter_replacement_lets_a_lower_counter_in(client, setup):
    _customer, device = setup
    headers = bearer("technician")
    s.read(device, "2026-02-01", bw=11_000)
    db.session.commit()
    replacement = {"date": "2026-02-10", "meter": "bw", "old_final": 11_200, "new_start": 0}
    response = client.post(f"/api/v1/devices/{device.id}/meter-replacements", json=replacement, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["old_final"] == 11_200
    body = {"device_id": device.id, "taken_at": "2026-03-01T09:00:00Z", "counters": {"bw": 300}}
    assert client.post("/api/v1/readings", json=body, headers=headers).status_code == 201
    listed = client.get(f"/api/v1/devices/{device.id}/meter-replacements", headers=headers).get_json()
    assert [event["meter"] for event in listed] == ["bw"]


def test_meter_replacement_with_a_final_below_the_last_reading_is_422(client, setup):
    _customer, device = setup
    s.read(device, "2026-02-01", bw=11_000)
    db.session.commit()
    replacement = {"date": "2026-02-10", "meter": "bw", "old_final": 10_500, "new_start": 0}
    response = client.post(
        f"/api/v1/devices/{device.id}/meter-replacements", json=replacement, headers=bearer("technician")
    )
    assert "11000" in problem_fields(response)["old_final"]


def test_customers_cannot_record_replacements(client, setup):
    customer, device = setup
    replacement = {"date": "2026-02-10", "meter": "bw", "old_final": 10_500, "new_start": 0}
    response = client.post(
        f"/api/v1/devices/{device.id}/meter-replacements",
        json=replacement,
        headers=bearer("customer_admin", customer=customer),
    )
    assert response.status_code == 403
