"""The devices and contracts API as a client sees it: the issue's calls, the billing examples' periods, bad terms."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from core import clock
from core.db import db
from modules.rentals.models import Contract, ContractLine, Device, DeviceModel, Installation
from tests.api_support import add_customer, bearer

PROBLEM = "application/problem+json"


def problem_fields(response, status: int = 422) -> dict[str, str]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    return {error["field"]: error["message"] for error in response.get_json()["errors"]}


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


@pytest.fixture
def staff(db_session):
    return bearer("dealer_admin")


@pytest.fixture
def customer(db_session):
    return add_customer("Studio Legale Bianchi")


def new_device(client, headers, serial: str, meters=("bw", "color"), model="ECOSYS M5526cdw", **fields) -> int:
    body = {"serial": serial, "manufacturer": "Kyocera", "model": model, "meters": list(meters), **fields}
    response = client.post("/api/v1/devices", json=body, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["id"]


def example_a(customer_id: int, device_id: int, **overrides) -> dict:
    return {
        "customer_id": customer_id,
        "start_date": "2026-01-01",
        "period_months": 1,
        "fee": "50.00",
        "fee_timing": "advance",
        "grace_days": 10,
        "allowances": [
            {"meter": "bw", "included": 1000, "pooled": False, "bands": [{"up_to": None, "price": "0.012"}]},
            {"meter": "color", "included": 200, "pooled": False, "bands": [{"up_to": None, "price": "0.09"}]},
        ],
        "devices": [{"device_id": device_id, "counters": {"bw": 10000, "color": 2000}}],
        **overrides,
    }


def create_contract(client, headers, body: dict) -> dict:
    response = client.post("/api/v1/contracts", json=body, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


# Devices


def test_posting_a_device_creates_its_catalogue_entry_once(client, staff):
    first = client.post(
        "/api/v1/devices",
        json={"serial": "vcf 123", "manufacturer": "Kyocera", "model": "ECOSYS M5526cdw", "meters": ["bw", "color"]},
        headers=staff,
    )
    second = client.post(
        "/api/v1/devices",
        json={"serial": "VCF124", "manufacturer": "kyocera", "model": "ecosys m5526cdw", "ip_address": "10.0.0.5"},
        headers=staff,
    )

    assert first.status_code == 201 and second.status_code == 201
    assert first.headers["Location"].endswith(f"/api/v1/devices/{first.get_json()['id']}")
    assert first.get_json()["serial"] == "VCF123"
    assert second.get_json()["meters"] == ["bw", "color"]
    assert second.get_json()["model"] == "ECOSYS M5526cdw"
    assert count(DeviceModel) == 1


def test_serial_is_unique_per_manufacturer_only(client, staff):
    new_device(client, staff, "SN1")

    again = client.post(
        "/api/v1/devices", json={"serial": "sn1", "manufacturer": "Kyocera", "model": "ECOSYS M5526cdw"}, headers=staff
    )
    other_maker = client.post(
        "/api/v1/devices",
        json={"serial": "SN1", "manufacturer": "Canon", "model": "iR C3826i", "meters": ["bw"]},
        headers=staff,
    )

    assert "SN1" in problem_fields(again)["serial"]
    assert other_maker.status_code == 201


def test_new_model_without_meters_is_rejected_naming_meters(client, staff):
    response = client.post(
        "/api/v1/devices", json={"serial": "X1", "manufacturer": "Ricoh", "model": "IM C3000"}, headers=staff
    )

    assert "meters" in problem_fields(response)
    assert count(Device) == 0


def test_device_list_filters_by_customer_and_serial(client, staff, customer):
    mine = new_device(client, staff, "ABC100", customer_id=customer.id, status="installed")
    new_device(client, staff, "ABC200")
    new_device(client, staff, "XYZ300", customer_id=customer.id)

    by_customer = client.get(f"/api/v1/devices?customer_id={customer.id}", headers=staff).get_json()
    by_both = client.get(f"/api/v1/devices?customer_id={customer.id}&serial=abc", headers=staff).get_json()

    assert by_customer["total"] == 2
    assert [item["id"] for item in by_both["items"]] == [mine]


def test_patching_a_device_changes_only_what_is_sent_and_records_its_move(client, staff, customer):
    device_id = new_device(client, staff, "ABC100", asset_tag="T-1")

    response = client.patch(
        f"/api/v1/devices/{device_id}", json={"customer_id": customer.id, "site": "Reception"}, headers=staff
    )
    bad_ip = client.patch(f"/api/v1/devices/{device_id}", json={"ip_address": "300.1.1.1"}, headers=staff)

    assert response.status_code == 200
    assert response.get_json()["asset_tag"] == "T-1"
    assert response.get_json()["customer_id"] == customer.id
    assert db.session.scalar(sa.select(Installation.customer_id)) == customer.id
    assert "300.1.1.1" in problem_fields(bad_ip)["ip_address"]


# Contracts


def test_contract_with_a_device_is_created_active_with_a_sequence_number(client, staff, customer):
    device_id = new_device(client, staff, "VCF1")

    contract = create_contract(client, staff, example_a(customer.id, device_id))
    second = create_contract(client, staff, example_a(customer.id, new_device(client, staff, "VCF2")))

    year = clock.today().year
    assert contract["number"] == f"1/{year}" and second["number"] == f"2/{year}"
    assert contract["state"] == "active"
    assert contract["devices"][0]["counters"] == {"bw": 10000, "color": 2000}
    assert contract["allowances"][0]["bands"] == [{"up_to": None, "price": "0.012000"}]
    device = client.get(f"/api/v1/devices/{device_id}", headers=staff).get_json()
    assert device["contract_id"] == contract["id"] and device["customer_id"] == customer.id
    assert device["status"] == "installed"


def test_contract_without_devices_is_a_draft(client, staff, customer):
    contract = create_contract(client, staff, example_a(customer.id, 1, devices=[]))

    assert contract["state"] == "draft"


def test_example_a_periods_are_monthly_with_the_full_fee(client, staff, customer):
    contract = create_contract(client, staff, example_a(customer.id, new_device(client, staff, "VCF1")))

    periods = client.get(f"/api/v1/contracts/{contract['id']}/periods?until=2026-02-05", headers=staff).get_json()

    assert [(p["start"], p["end"], p["fee"]) for p in periods] == [
        ("2026-01-01", "2026-01-31", "50.00"),
        ("2026-02-01", "2026-02-28", "50.00"),
    ]
    assert periods[0]["prices"] == {
        "bw": [{"up_to": None, "price": "0.012000"}],
        "color": [{"up_to": None, "price": "0.090000"}],
    }
    assert periods[1]["devices"][0]["active_days"] == 28


def test_example_c_last_period_is_clipped_and_its_fee_prorated(client, staff, customer):
    device_id = new_device(client, staff, "KY1", meters=["bw"], model="ECOSYS P2040dn")
    body = example_a(
        customer.id,
        device_id,
        start_date="2026-03-01",
        end_date="2026-06-15",
        fee="60.00",
        fee_timing="arrears",
        allowances=[{"meter": "bw", "included": 1000, "pooled": False, "bands": [{"price": "0.012"}]}],
        devices=[{"device_id": device_id, "counters": {"bw": 5000}}],
    )
    contract = create_contract(client, staff, body)

    periods = client.get(f"/api/v1/contracts/{contract['id']}/periods", headers=staff).get_json()

    june = periods[-1]
    assert len(periods) == 4
    assert (june["start"], june["end"], june["period_days"], june["active_days"], june["fee"]) == (
        "2026-06-01",
        "2026-06-15",
        30,
        15,
        "30.00",
    )


def test_example_e_escalates_fee_and_price_from_the_anniversary(client, staff, customer):
    device_id = new_device(client, staff, "KY1", meters=["bw"], model="ECOSYS P2040dn")
    body = example_a(
        customer.id,
        device_id,
        start_date="2025-03-01",
        escalation_percent="3",
        allowances=[{"meter": "bw", "included": 0, "bands": [{"up_to": None, "price": "0.012"}]}],
        devices=[{"device_id": device_id, "counters": {"bw": 0}}],
    )
    contract = create_contract(client, staff, body)

    periods = client.get(f"/api/v1/contracts/{contract['id']}/periods?until=2026-03-01", headers=staff).get_json()

    before, after = periods[-2], periods[-1]
    assert (before["start"], before["fee"], before["prices"]["bw"][0]["price"]) == ("2026-02-01", "50.00", "0.012000")
    assert (after["start"], after["fee"], after["prices"]["bw"][0]["price"]) == ("2026-03-01", "51.50", "0.012360")


def test_month_end_start_uses_the_last_day_of_shorter_months(client, staff, customer):
    contract = create_contract(client, staff, example_a(customer.id, 1, start_date="2026-01-31", devices=[]))

    periods = client.get(f"/api/v1/contracts/{contract['id']}/periods?until=2026-03-31", headers=staff).get_json()

    assert [(p["start"], p["end"]) for p in periods] == [
        ("2026-01-31", "2026-02-27"),
        ("2026-02-28", "2026-03-30"),
        ("2026-03-31", "2026-04-29"),
    ]


def test_open_ended_contract_needs_until_for_its_periods(client, staff, customer):
    contract = create_contract(client, staff, example_a(customer.id, 1, devices=[]))

    response = client.get(f"/api/v1/contracts/{contract['id']}/periods", headers=staff)

    assert "until" in problem_fields(response)


def test_bands_not_ascending_or_with_a_negative_price_are_rejected_and_nothing_is_written(client, staff, customer):
    device_id = new_device(client, staff, "VCF1")
    body = example_a(customer.id, device_id)
    body["allowances"][0]["bands"] = [
        {"up_to": 5000, "price": "0.010"},
        {"up_to": 4000, "price": "0.009"},
        {"up_to": None, "price": "-0.008"},
    ]

    errors = problem_fields(client.post("/api/v1/contracts", json=body, headers=staff))

    assert "ascending" in errors["allowances.0.bands.1.up_to"]
    assert "negative" in errors["allowances.0.bands.2.price"]
    assert count(Contract) == 0 and count(ContractLine) == 0


def test_bands_must_end_with_an_unbounded_band(client, staff, customer):
    body = example_a(customer.id, 1, devices=[])
    body["allowances"][0]["bands"] = [{"up_to": 5000, "price": "0.010"}]

    errors = problem_fields(client.post("/api/v1/contracts", json=body, headers=staff))

    assert "no upper bound" in errors["allowances.0.bands"]


def test_counters_must_match_the_meters_of_the_device_model(client, staff, customer):
    device_id = new_device(client, staff, "VCF1")
    body = example_a(customer.id, device_id, devices=[{"device_id": device_id, "counters": {"bw": 10, "fax": 3}}])

    errors = problem_fields(client.post("/api/v1/contracts", json=body, headers=staff))

    assert "no fax meter" in errors["devices.0.counters.fax"]
    assert "missing" in errors["devices.0.counters.color"]


def test_allowance_for_an_unknown_meter_is_rejected(client, staff, customer):
    body = example_a(customer.id, 1, devices=[])
    body["allowances"][0]["meter"] = "toner"

    assert "toner" in problem_fields(client.post("/api/v1/contracts", json=body, headers=staff))["allowances.0.meter"]


def test_device_on_an_active_contract_cannot_join_another(client, staff, customer):
    device_id = new_device(client, staff, "VCF1")
    first = create_contract(client, staff, example_a(customer.id, device_id))
    other = create_contract(client, staff, example_a(customer.id, device_id, devices=[]))

    in_body = client.post("/api/v1/contracts", json=example_a(customer.id, device_id), headers=staff)
    added = client.post(
        f"/api/v1/contracts/{other['id']}/devices",
        json={"device_id": device_id, "start_date": "2026-02-01", "counters": {"bw": 1, "color": 1}},
        headers=staff,
    )

    assert first["number"] in problem_fields(in_body)["devices.0.device_id"]
    assert first["number"] in problem_fields(added)["device_id"]


def test_database_refuses_a_second_open_line_for_a_device(app, client, staff, customer):
    device_id = new_device(client, staff, "VCF1")
    contract = create_contract(client, staff, example_a(customer.id, device_id))

    db.session.add(ContractLine(contract_id=contract["id"], device_id=device_id, start_date=dt.date(2026, 3, 1)))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_device_leaves_with_final_counters_and_can_then_join_another_contract(client, staff, customer):
    device_id = new_device(client, staff, "VCF1")
    first = create_contract(client, staff, example_a(customer.id, device_id))
    url = f"/api/v1/contracts/{first['id']}/devices/{device_id}/remove"

    lower = client.post(url, json={"end_date": "2026-03-31", "counters": {"bw": 9000, "color": 2500}}, headers=staff)
    removed = client.post(url, json={"end_date": "2026-03-31", "counters": {"bw": 15000, "color": 2500}}, headers=staff)
    overlapping = client.post(
        "/api/v1/contracts", json=example_a(customer.id, device_id, start_date="2026-03-31"), headers=staff
    )
    later = client.post(
        "/api/v1/contracts",
        json=example_a(
            customer.id,
            device_id,
            start_date="2026-04-01",
            devices=[{"device_id": device_id, "counters": {"bw": 15000, "color": 2500}}],
        ),
        headers=staff,
    )

    assert "10000" in problem_fields(lower)["counters.bw"]
    assert removed.status_code == 200
    assert removed.get_json()["devices"][0]["end_counters"] == {"bw": 15000, "color": 2500}
    assert "2026-03-31" in problem_fields(overlapping)["devices.0.start_date"]
    assert later.status_code == 201


def test_swap_replaces_a_device_in_one_step(client, staff, customer):
    old = new_device(client, staff, "OLD1")
    new = new_device(client, staff, "NEW1", meters=["bw"], model="ECOSYS P2040dn")
    contract = create_contract(client, staff, example_a(customer.id, old))
    url = f"/api/v1/contracts/{contract['id']}/devices/{old}/swap"

    missing = client.post(
        url,
        json={"date": "2026-05-10", "end_counters": {"bw": 12000}, "new_device_id": new, "counters": {}},
        headers=staff,
    )
    swapped = client.post(
        url,
        json={
            "date": "2026-05-10",
            "end_counters": {"bw": 12000, "color": 2100},
            "new_device_id": new,
            "counters": {"bw": 0},
        },
        headers=staff,
    )

    assert set(problem_fields(missing)) == {"end_counters.color", "counters.bw"}
    lines = swapped.get_json()["devices"]
    assert [(line["device_id"], line["start_date"], line["end_date"]) for line in lines] == [
        (old, "2026-01-01", "2026-05-10"),
        (new, "2026-05-10", None),
    ]
    assert client.get(f"/api/v1/devices/{old}", headers=staff).get_json()["status"] == "in_stock"


def test_patch_changes_terms_and_replaces_allowances(client, staff, customer):
    contract = create_contract(client, staff, example_a(customer.id, new_device(client, staff, "VCF1")))
    allowances = [
        {"meter": "bw", "included": 500, "pooled": True, "bands": [{"up_to": 100, "price": "0.02"}, {"price": "0.01"}]}
    ]

    response = client.patch(
        f"/api/v1/contracts/{contract['id']}", json={"fee": "55.50", "allowances": allowances}, headers=staff
    )

    body = response.get_json()
    assert body["fee"] == "55.50" and body["number"] == contract["number"]
    assert body["allowances"] == [
        {
            "meter": "bw",
            "included": 500,
            "pooled": True,
            "bands": [{"up_to": 100, "price": "0.020000"}, {"up_to": None, "price": "0.010000"}],
        }
    ]


def test_contract_ends_only_after_its_devices_have_left(client, staff, customer):
    device_id = new_device(client, staff, "VCF1")
    contract = create_contract(client, staff, example_a(customer.id, device_id))
    url = f"/api/v1/contracts/{contract['id']}"

    early = client.patch(url, json={"state": "ended", "end_date": "2026-06-30"}, headers=staff)
    client.post(
        f"{url}/devices/{device_id}/remove",
        json={"end_date": "2026-06-30", "counters": {"bw": 20000, "color": 3000}},
        headers=staff,
    )
    ended = client.patch(url, json={"state": "ended", "end_date": "2026-06-30"}, headers=staff)

    assert "devices" in problem_fields(early)["state"]
    assert ended.get_json()["state"] == "ended"


def test_bad_scalar_terms_name_their_fields(client, staff, customer):
    body = example_a(
        customer.id, 1, devices=[], fee="-1", end_date="2025-12-31", vat_rate="120", minimum_charge="1.234"
    )

    errors = problem_fields(client.post("/api/v1/contracts", json=body, headers=staff))

    assert {"fee", "end_date", "vat_rate", "minimum_charge"} <= set(errors)


def test_money_sent_as_a_json_number_is_refused(client, staff, customer):
    body = example_a(customer.id, 1, devices=[], fee=50.5)

    assert "fee" in problem_fields(client.post("/api/v1/contracts", json=body, headers=staff))


# Who sees what


def test_customer_token_sees_only_its_own_devices_and_contracts(client, staff, customer):
    other = add_customer("Farmacia San Marco Srl")
    mine = new_device(client, staff, "MINE1")
    theirs = new_device(client, staff, "THEIRS1")
    my_contract = create_contract(client, staff, example_a(customer.id, mine))
    their_contract = create_contract(client, staff, example_a(other.id, theirs))
    headers = bearer("customer_user", customer=customer, email="anna@bianchi.example")

    devices = client.get("/api/v1/devices", headers=headers).get_json()
    contracts = client.get("/api/v1/contracts", headers=headers).get_json()

    assert [d["id"] for d in devices["items"]] == [mine]
    assert [c["id"] for c in contracts["items"]] == [my_contract["id"]]
    assert client.get(f"/api/v1/devices/{theirs}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/contracts/{their_contract['id']}", headers=headers).status_code == 404
    assert (
        client.get(f"/api/v1/contracts/{their_contract['id']}/periods?until=2026-02-01", headers=headers).status_code
        == 404
    )
    assert (
        client.get(f"/api/v1/contracts/{my_contract['id']}/periods?until=2026-02-01", headers=headers).status_code
        == 200
    )


def test_customer_and_technician_cannot_write_contracts(client, staff, customer):
    body = example_a(customer.id, 1, devices=[])
    for headers in (
        bearer("customer_admin", customer=customer, email="boss@bianchi.example"),
        bearer("technician"),
    ):
        assert client.post("/api/v1/contracts", json=body, headers=headers).status_code == 403
    assert count(Contract) == 0
