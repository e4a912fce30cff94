"""The billing rules' worked examples end to end through the API: rentals, metering and invoicing together."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.api_support import add_customer, bearer


@pytest.fixture
def staff(db_session):
    return bearer("dealer_admin")


def post(client, url, headers, body, expected=201):
    response = client.post(url, json=body, headers=headers)
    assert response.status_code == expected, response.get_data(as_text=True)
    return response.get_json()


def example_a_contract(client, staff, db_session) -> tuple[int, int]:
    customer = add_customer("Studio Esempio", vat_number="12345670157")
    device = post(
        client,
        "/api/v1/devices",
        staff,
        {"serial": "EX-A-001", "manufacturer": "Kyocera", "model": "TASKalfa 2554ci", "meters": ["bw", "color"]},
    )
    contract = post(
        client,
        "/api/v1/contracts",
        staff,
        {
            "customer_id": customer.id,
            "start_date": "2026-01-01",
            "period_months": 1,
            "fee": "50.00",
            "fee_timing": "advance",
            "grace_days": 10,
            "vat_rate": "22",
            "allowances": [
                {"meter": "bw", "included": 1000, "pooled": False, "bands": [{"up_to": None, "price": "0.012"}]},
                {"meter": "color", "included": 200, "pooled": False, "bands": [{"up_to": None, "price": "0.09"}]},
            ],
            "devices": [{"device_id": device["id"], "counters": {"bw": 10000, "color": 2000}}],
        },
    )
    assert contract["state"] == "active"
    return contract["id"], device["id"]


def reading(client, staff, device_id, taken_at, bw, color):
    body = {"device_id": device_id, "taken_at": taken_at, "counters": {"bw": bw, "color": color}}
    return post(client, "/api/v1/readings", staff, body)


def run(client, staff, as_of) -> dict:
    started = post(client, "/api/v1/billing-runs", staff, {"as_of": as_of}, expected=202)
    result = client.get(f"/api/v1/billing-runs/{started['id']}", headers=staff).get_json()
    assert result["status"] == "done", result
    return result


def invoices_of(client, staff, run_result) -> list[dict]:
    return [client.get(f"/api/v1/invoices/{i}", headers=staff).get_json() for i in run_result["invoice_ids"]]


def test_example_a_monthly_one_device(client, staff, db_session):
    _contract_id, device_id = example_a_contract(client, staff, db_session)
    reading(client, staff, device_id, "2026-02-02T10:00:00+01:00", 11850, 2310)

    [invoice] = invoices_of(client, staff, run(client, staff, "2026-02-05"))
    amounts = sorted((line["kind"], line["amount"]) for line in invoice["lines"])
    assert [a for _k, a in amounts if _k == "fee"] == ["50.00", "50.00"]
    overage = {
        line["meter"]: (line["quantity"], line["unit_price"], line["amount"])
        for line in invoice["lines"]
        if line["kind"] != "fee"
    }
    assert overage["bw"][2] == "10.20" and Decimal(overage["bw"][0]) == 850
    assert overage["color"][2] == "9.90" and Decimal(overage["color"][0]) == 110
    assert (invoice["net_total"], invoice["vat_total"], invoice["total"]) == ("120.10", "26.42", "146.52")

    again = run(client, staff, "2026-02-05")
    assert again["invoice_ids"] == []


def test_a_later_reading_in_the_grace_window_does_not_change_a_billed_period(client, staff, db_session):
    """January billed with the 2 February reading; the pages of 2 to 8 February are February's, billed once."""
    _contract_id, device_id = example_a_contract(client, staff, db_session)
    reading(client, staff, device_id, "2026-02-02T10:00:00+01:00", 11850, 2310)
    run(client, staff, "2026-02-05")
    reading(client, staff, device_id, "2026-02-08T10:00:00+01:00", 12350, 2400)
    assert run(client, staff, "2026-02-12")["invoice_ids"] == []  # nothing new for January
    reading(client, staff, device_id, "2026-03-02T10:00:00+01:00", 13850, 2510)

    [march] = invoices_of(client, staff, run(client, staff, "2026-03-05"))
    feb_bw = [line for line in march["lines"] if line["meter"] == "bw"]
    # February: 13,850 - 11,850 = 2,000 pages, 1,000 included: 1,000 x 0.012.
    assert [(Decimal(line["quantity"]), line["amount"]) for line in feb_bw] == [(Decimal(1000), "12.00")]


def test_cancelling_a_draft_frees_it_for_the_next_run(client, staff, db_session):
    _contract_id, device_id = example_a_contract(client, staff, db_session)
    reading(client, staff, device_id, "2026-02-02T10:00:00+01:00", 11850, 2310)
    [invoice] = invoices_of(client, staff, run(client, staff, "2026-02-05"))
    post(client, f"/api/v1/invoices/{invoice['id']}/cancel", staff, {}, expected=200)

    [rebilled] = invoices_of(client, staff, run(client, staff, "2026-02-05"))
    assert rebilled["total"] == "146.52"


def test_example_b_quarterly_pooled_allowance_with_bands(client, staff, db_session):
    customer = add_customer("Ufficio Pool", vat_number="23456780016")
    devices = [
        post(
            client,
            "/api/v1/devices",
            staff,
            {"serial": f"EX-B-{n}", "manufacturer": "Ricoh", "model": "IM 430F", "meters": ["bw"]},
        )["id"]
        for n in (1, 2)
    ]
    post(
        client,
        "/api/v1/contracts",
        staff,
        {
            "customer_id": customer.id,
            "start_date": "2026-01-01",
            "period_months": 3,
            "fee": "0",
            "fee_timing": "advance",
            "grace_days": 10,
            "allowances": [
                {
                    "meter": "bw",
                    "included": 9000,
                    "pooled": True,
                    "bands": [{"up_to": 5000, "price": "0.010"}, {"up_to": None, "price": "0.008"}],
                }
            ],
            "devices": [
                {"device_id": devices[0], "counters": {"bw": 1000}},
                {"device_id": devices[1], "counters": {"bw": 5000}},
            ],
        },
    )
    post(
        client, "/api/v1/readings", staff, {"device_id": devices[0], "taken_at": "2026-04-02", "counters": {"bw": 8000}}
    )
    post(
        client,
        "/api/v1/readings",
        staff,
        {"device_id": devices[1], "taken_at": "2026-04-02", "counters": {"bw": 14500}},
    )

    [invoice] = invoices_of(client, staff, run(client, staff, "2026-04-05"))
    overage = sorted(
        (Decimal(line["quantity"]), line["unit_price"], line["amount"])
        for line in invoice["lines"]
        if line["meter"] == "bw"
    )
    assert [(q, a) for q, _p, a in overage] == [(Decimal(2500), "20.00"), (Decimal(5000), "50.00")]


def test_example_d_estimate_then_true_up(app, client, staff, db_session):
    """An estimate bills May; a lower June actual bills nothing; July bills from the estimate's high-water mark.

    Installed on 31 January with 11,000: the installation counter is read at the start of that day, i.e. 90 days
    before the 20,000 of 30 April, so the device averages 100 pages a day.
    """
    import datetime as dt

    from modules.metering.estimates import create_due_estimates

    customer = add_customer("Studio Stima", vat_number="34567890651")
    device = post(
        client,
        "/api/v1/devices",
        staff,
        {"serial": "EX-D-001", "manufacturer": "Canon", "model": "iR 2630i", "meters": ["bw"]},
    )["id"]
    contract = post(
        client,
        "/api/v1/contracts",
        staff,
        {
            "customer_id": customer.id,
            "start_date": "2026-01-01",
            "period_months": 1,
            "fee": "10.00",
            "fee_timing": "advance",
            "grace_days": 10,
            "estimate_missing": True,
            "allowances": [
                {"meter": "bw", "included": 0, "pooled": False, "bands": [{"up_to": None, "price": "0.01"}]}
            ],
            "devices": [{"device_id": device, "start_date": "2026-01-31", "counters": {"bw": 11000}}],
        },
    )
    for day, value in (("2026-02-28", 13900), ("2026-03-31", 17000), ("2026-04-30", 20000)):
        post(client, "/api/v1/readings", staff, {"device_id": device, "taken_at": day, "counters": {"bw": value}})

    def may_to_july_overage(run_result) -> dict[str, Decimal]:
        lines = [line for inv in invoices_of(client, staff, run_result) for line in inv["lines"] if line["meter"]]
        return {line["period_start"]: Decimal(line["quantity"]) for line in lines}

    create_due_estimates(dt.date(2026, 6, 11), [contract["id"]])
    db_session.commit()
    june_run = may_to_july_overage(run(client, staff, "2026-06-12"))
    assert june_run["2026-05-01"] == 3100  # estimate 23,100 on 31 May: 100 pages a day since 20,000

    post(client, "/api/v1/readings", staff, {"device_id": device, "taken_at": "2026-06-30", "counters": {"bw": 22900}})
    assert "2026-06-01" not in may_to_july_overage(run(client, staff, "2026-07-05"))  # 22,900 < 23,100: nothing

    post(client, "/api/v1/readings", staff, {"device_id": device, "taken_at": "2026-07-31", "counters": {"bw": 26000}})
    assert may_to_july_overage(run(client, staff, "2026-08-05"))["2026-07-01"] == 2900
