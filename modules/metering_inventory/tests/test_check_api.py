"""GET /api/v1/consumption-check as a client sees it: the worked example exactly, figures as strings, the window's
checks, and customer scoping."""

from __future__ import annotations

from decimal import Decimal

import pytest

from modules.metering_inventory.tests import support as w
from tests.api_support import bearer

URL = "/api/v1/consumption-check"


@pytest.fixture
def example(db_session):
    customer, device, _product, _store = w.worked_example()
    return customer, device


def _black(items: list[dict], serial: str = "KY1") -> dict:
    return next(item for item in items if item["serial"] == serial and item["colour"] == "black")


def test_the_worked_example_gives_e_2_u_3_6_r_1_8_over_consumption(client, example):
    customer, device = example
    response = client.get(
        f"{URL}?customer_id={customer.id}&device_id={device.id}&from=2026-01-01&to=2026-11-30",
        headers=bearer("back_office"),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()
    assert (data["from"], data["to"], data["tolerance"]) == ("2026-01-01", "2026-11-30", "0.30")
    black = _black(data["items"])
    assert black["pages"] == 30_000
    assert black["shipped"] == "3" or Decimal(black["shipped"]) == 3
    assert (black["level_from"], black["level_to"]) == (80, 20)
    assert Decimal(black["expected"]) == Decimal("2.0") and black["expected"] == "2.00"
    assert Decimal(black["consumed"]) == Decimal("3.6") and black["consumed"] == "3.60"
    assert Decimal(black["ratio"]) == Decimal("1.8") and black["ratio"] == "1.80"
    assert black["verdict"] == "over_consumption" and black["explained"] is False


def test_colours_without_a_yield_or_shipments_are_listed_without_a_verdict(client, example):
    _customer, device = example
    data = client.get(f"{URL}?device_id={device.id}&from=2026-01-01&to=2026-11-30", headers=bearer("technician"))
    cyan = next(item for item in data.get_json()["items"] if item["colour"] == "cyan")
    assert cyan["pages"] == 6_000 and cyan["expected"] is None and cyan["verdict"] == "unknown"


def test_a_window_that_ends_before_it_starts_is_422_naming_to(client, example):
    response = client.get(f"{URL}?from=2026-11-30&to=2026-01-01", headers=bearer("back_office"))
    assert response.status_code == 422
    assert [error["field"] for error in response.get_json()["errors"]] == ["to"]


def test_a_window_end_in_year_1_or_9999_is_422_naming_to_not_a_server_error(client, example):
    headers = bearer("back_office")
    for day in ("0001-06-01", "9999-12-31"):
        response = client.get(f"{URL}?to={day}", headers=headers)
        assert response.status_code == 422, (day, response.get_data(as_text=True))
        [error] = response.get_json()["errors"]
        assert error["field"] == "to" and "1990" in error["message"]


def test_a_customer_token_sees_only_its_own_devices(client, example):
    customer, _device = example
    other, foreign, _p, _s = w.worked_example("Farmacia Verdi", "KY2")
    own = client.get(f"{URL}?from=2026-01-01&to=2026-11-30", headers=bearer("customer_admin", customer))
    assert own.status_code == 200
    assert {item["serial"] for item in own.get_json()["items"]} == {"KY1"}
    headers = bearer("customer_user", customer, email="user@bianchi.it")
    assert client.get(f"{URL}?device_id={foreign.id}", headers=headers).status_code == 404
    assert client.get(f"{URL}?customer_id={other.id}", headers=headers).status_code == 404


def test_without_a_token_or_permission_the_check_is_refused(client, example):
    assert client.get(URL).status_code == 401


def test_a_device_that_moved_to_another_customer_in_the_window_is_checked_at_each(db_session):
    from core.settings import set_setting
    from modules.metering.tests import support as s
    from modules.metering_inventory.consumption import consumption_check
    from modules.rentals.contract_lines import remove_device

    set_setting("metering.jump_min_pages", 10**9)
    first, second = s.customer("Studio Primo"), s.customer("Studio Secondo")
    device = s.device("MOV1")
    before = s.contract(first.id, [(device, {"bw": 10_000, "color": 2_000})], start_date="2025-06-01")
    w.reading(device, "2025-12-31", bw=20_000, color=5_000)
    w.reading(device, "2026-05-31", bw=30_000, color=7_000)
    remove_device(before, device.id, "2026-05-31", {"bw": 30_000, "color": 7_000})
    s.contract(second.id, [(device, {"bw": 30_000, "color": 7_000})], start_date="2026-06-01")
    w.reading(device, "2026-11-30", bw=44_000, color=11_000)
    db_session.commit()

    rows = consumption_check(None, device.id, w.START, w.END)

    # Black toner prints bw + colour pages: 12,000 at the first customer, 18,000 at the second.
    assert {row.customer_id: row.pages for row in rows if row.colour == "black"} == {
        first.id: 12_000,
        second.id: 18_000,
    }
