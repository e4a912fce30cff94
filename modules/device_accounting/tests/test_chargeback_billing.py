"""Chargeback billed by the real invoicing and metering: lines per function, colour and size, never twice, never both.

Invoicing and metering are driven through their API (device accounting may not import them).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db
from modules.device_accounting.models import Chargeback, ChargebackBilled
from modules.device_accounting.pricing import save_price_list
from modules.device_accounting.tests import reports_support as s
from tests.api_support import bearer

PRICES = [
    {"function": "print", "colour": "bw", "price_per_side": "0.020000"},
    {"function": "print", "colour": "color", "price_per_side": "0.100000"},
    {"function": "print", "colour": "bw", "paper_size": "A3", "price_per_side": "0.040000"},
    {"function": "copy", "colour": "bw", "price_per_side": "0.015000"},
    {"function": "copy", "colour": "color", "price_per_side": "0.080000"},
    {"function": "scan", "colour": "bw", "price_per_side": "0"},
    {"function": "scan", "colour": "color", "price_per_side": "0"},
]


@pytest.fixture
def office(db_session):
    """A customer whose contract bills job accounting from 1 February 2026 (meter overage before), its price list,
    and jobs in January, February and March on the contract's device and on a device not on the contract."""
    customer = s.customer("Studio Bianchi")
    device = s.device("RB2001")
    contract = s.contract(customer.id, [device])
    stray = s.device("RB2002", customer.id)
    db.session.add(Chargeback(contract_id=contract.id, start_date=dt.date(2026, 2, 1)))
    save_price_list(customer.id, {"name": "Listino Bianchi", "valid_from": dt.date(2026, 1, 1), "entries": PRICES})
    c, d = customer.id, device.id
    s.job(c, d, s.at("2026-01-20"), sides_bw=700, cost="14.0000")  # metered: before the chargeback
    s.job(c, d, s.at("2026-02-03"), sides_bw=1000, cost="20.0000")
    s.job(c, d, s.at("2026-02-10"), sides_bw=234, sides_color=333, cost="37.9800")
    s.job(c, d, s.at("2026-02-11"), sides_bw=50, paper_size="A3", cost="2.0000")
    s.job(c, d, s.at("2026-02-12"), function="copy", sides_bw=3, cost="0.0450")
    s.job(c, d, s.at("2026-02-12", 11), function="scan", sides_bw=100)
    s.job(c, stray.id, s.at("2026-02-13"), sides_bw=999, cost="19.9800")  # not on the contract
    s.job(c, d, s.at("2026-02-28", 23, 30), sides_bw=7, cost="0.1400")  # 00:30 on 1 March in Rome: March
    db.session.commit()
    return {"customer": customer.id, "contract": contract, "device": device}


def _read(client, headers, device_id: int, day: str, bw: int, color: int) -> None:
    response = client.post(
        "/api/v1/readings",
        json={"device_id": device_id, "taken_at": f"{day}T10:00:00+00:00", "counters": {"bw": bw, "color": color}},
        headers=headers,
    )
    assert response.status_code == 201, response.get_data(as_text=True)


def _run(client, headers, as_of: str) -> dict:
    started = client.post("/api/v1/billing-runs", json={"as_of": as_of}, headers=headers)
    assert started.status_code == 202, started.get_data(as_text=True)
    run = client.get(f"/api/v1/billing-runs/{started.get_json()['id']}", headers=headers).get_json()
    assert run["status"] == "done" and run["errors"] == []
    lines = []
    for invoice_id in run["invoice_ids"]:
        lines += client.get(f"/api/v1/invoices/{invoice_id}", headers=headers).get_json()["lines"]
    return {"run": run, "lines": lines}


def _usage_lines(result: dict) -> list[tuple]:
    """The run's chargeback and overage lines: (kind, period start, quantity, unit price, amount)."""
    return [
        (line["kind"], line["period_start"], int(Decimal(line["quantity"])), line["unit_price"], line["amount"])
        for line in result["lines"]
        if line["kind"] in ("chargeback", "overage", "minimum")
    ]


def test_chargeback_bills_the_period_per_function_colour_and_size_and_no_overage(client, office):
    headers = bearer("dealer_admin")
    device_id = office["device"].id
    _read(client, headers, device_id, "2026-02-02", bw=11_500, color=2_300)  # January: 500 and 100 over
    _read(client, headers, device_id, "2026-03-02", bw=13_500, color=2_700)  # February: 1000 and 200 over

    january = _run(client, headers, "2026-02-05")
    assert _usage_lines(january) == [
        ("overage", "2026-01-01", 500, "0.012000", "6.00"),
        ("overage", "2026-01-01", 100, "0.090000", "9.00"),
    ]

    february = _run(client, headers, "2026-03-05")
    # February is chargeback's: its sides per function, colour and size at the customer's prices, no overage.
    assert _usage_lines(february) == [
        ("chargeback", "2026-02-01", 3, "0.015000", "0.05"),  # 0.045 rounded half up
        ("chargeback", "2026-02-01", 50, "0.040000", "2.00"),
        ("chargeback", "2026-02-01", 1234, "0.020000", "24.68"),
        ("chargeback", "2026-02-01", 333, "0.100000", "33.30"),
    ]
    descriptions = [line["description"] for line in february["lines"] if line["kind"] == "chargeback"]
    contract_number = office["contract"].number
    # In the customer's language (Italian by default).
    assert (
        descriptions[2] == f"Stampa, bianco e nero, A4: facciate, contratto {contract_number}, dal 01/02/26 al 28/02/26"
    )
    assert {line["unit"] for line in february["lines"] if line["kind"] == "chargeback"} == {"facciate"}

    again = _run(client, headers, "2026-03-05")
    assert again["run"]["invoice_ids"] == []  # nothing billed twice


def test_a_chargeback_period_waits_for_no_reading(client, office):
    headers = bearer("dealer_admin")
    _read(client, headers, office["device"].id, "2026-02-02", bw=11_500, color=2_300)
    result = _run(client, headers, "2026-03-20")  # February's grace is over and it has no closing reading
    assert result["run"]["missing_readings"] == []
    assert {line["kind"] for line in result["lines"]} == {"fee", "overage", "chargeback"}
    assert {line["period_start"] for line in result["lines"] if line["kind"] == "overage"} == {"2026-01-01"}


def test_late_jobs_are_billed_once_they_arrive_and_a_cancelled_draft_frees_its_sides(client, office):
    headers = bearer("dealer_admin")
    first = _run(client, headers, "2026-03-05")
    assert sum(Decimal(line["quantity"]) for line in first["lines"] if line["kind"] == "chargeback") == 1620
    # A device that was offline sends a February job after February was billed.
    s.job(office["customer"], office["device"].id, s.at("2026-02-20"), sides_bw=100, cost="2.0000")
    db.session.commit()
    late = _run(client, headers, "2026-03-05")
    (line,) = [line for line in late["lines"] if line["kind"] == "chargeback"]
    assert (Decimal(line["quantity"]), line["amount"]) == (100, "2.00")
    assert line["description"].endswith("(lavori ricevuti dopo la fatturazione del periodo)")
    assert db.session.scalar(sa.select(sa.func.sum(ChargebackBilled.sides))) == 1720

    (draft,) = late["run"]["invoice_ids"]
    assert client.post(f"/api/v1/invoices/{draft}/cancel", headers=headers).status_code == 200
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.sum(ChargebackBilled.sides))) == 1620
    again = _run(client, headers, "2026-03-05")
    assert [Decimal(line["quantity"]) for line in again["lines"] if line["kind"] == "chargeback"] == [100]
    assert _run(client, headers, "2026-03-05")["run"]["invoice_ids"] == []

    # The first draft cancelled while the late one stands: its 1,620 sides are billed again, under new references.
    assert client.post(f"/api/v1/invoices/{first['run']['invoice_ids'][0]}/cancel", headers=headers).status_code == 200
    rebilled = _run(client, headers, "2026-03-05")
    assert sum(Decimal(line["quantity"]) for line in rebilled["lines"] if line["kind"] == "chargeback") == 1620
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.sum(ChargebackBilled.sides))) == 1720


def test_prices_are_those_valid_on_the_periods_first_day(client, office):
    headers = bearer("dealer_admin")
    cheaper = [{**entry, "price_per_side": "0.010000"} if entry["function"] == "print" else entry for entry in PRICES]
    save_price_list(office["customer"], {"name": "Listino 2", "valid_from": dt.date(2026, 2, 15), "entries": cheaper})
    db.session.commit()
    result = _run(client, headers, "2026-03-05")
    prices = {
        int(Decimal(line["quantity"])): line["unit_price"] for line in result["lines"] if line["kind"] == "chargeback"
    }
    assert prices[1234] == "0.020000"  # February started under the first list


def test_a_contract_without_chargeback_bills_overage_as_before(client, db_session):
    customer = s.customer("Ferri Logistica")
    device = s.device("RB3001")
    s.contract(customer.id, [device])
    save_price_list(customer.id, {"name": "Listino Ferri", "valid_from": dt.date(2026, 1, 1), "entries": PRICES})
    s.job(customer.id, device.id, s.at("2026-01-20"), sides_bw=700, cost="14.0000")
    db.session.commit()
    headers = bearer("dealer_admin")
    _read(client, headers, device.id, "2026-02-02", bw=11_500, color=2_100)
    result = _run(client, headers, "2026-02-05")
    assert [line[0] for line in _usage_lines(result)] == ["overage"]
