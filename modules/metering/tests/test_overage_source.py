"""The `metering` billable source through the real models: the billing rules' worked examples A, B and D."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from core.extension_points import BILLABLE_SOURCE, BillableSource, implementations
from modules.metering.billing import OverageSource, missing_readings
from modules.metering.estimates import create_due_estimates
from modules.metering.tests import support as s
from modules.rentals.contract_lines import remove_device
from modules.rentals.contracts import create_contract
from modules.rentals.periods import line_amount

D = dt.date.fromisoformat


def lines_of(customer_id: int, as_of: str):
    return OverageSource().billable_lines(customer_id, D(as_of))


def amounts(lines) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    return {
        line.source_ref: (line.quantity, line.unit_price, line_amount(int(line.quantity), line.unit_price))
        for line in lines
    }


def test_metering_is_registered_as_a_billable_source(app):
    with app.app_context():
        sources = [source for source in implementations(BILLABLE_SOURCE) if source.name == "metering"]
    assert len(sources) == 1 and isinstance(sources[0], BillableSource)


def test_worked_example_a_january_overage(db_session):
    customer = s.customer()
    device = s.device("KYA1")
    contract = s.contract(customer.id, [(device, {"bw": 10_000, "color": 2_000})])
    s.read(device, "2026-02-02", bw=11_850, color=2_310)
    lines = lines_of(customer.id, "2026-02-05")
    assert amounts(lines) == {
        f"overage:{contract.id}:0:bw:{device.id}:1": (Decimal(850), Decimal("0.012000"), Decimal("10.20")),
        f"overage:{contract.id}:0:color:{device.id}:1": (Decimal(110), Decimal("0.090000"), Decimal("9.90")),
    }
    bw = next(line for line in lines if line.meter == "bw")
    assert (bw.source, bw.kind, bw.device_id, bw.contract_id) == ("metering", "overage", device.id, contract.id)
    assert (bw.period_start, bw.period_end, bw.vat_rate) == (D("2026-01-01"), D("2026-01-31"), Decimal("22.00"))
    for text in ("KYA1", "10000", "11850", "1850", "1000", "1/1/26", "1/31/26", contract.number):
        assert text in bw.description
    # The same run again finds the same lines with the same references (invoicing bills each once).
    assert amounts(lines_of(customer.id, "2026-02-05")) == amounts(lines)


def test_no_overage_before_the_period_has_ended_or_without_its_reading(db_session):
    customer = s.customer()
    device = s.device("KYA2")
    s.contract(customer.id, [(device, {"bw": 10_000, "color": 2_000})])
    assert lines_of(customer.id, "2026-02-05") == []  # ended, but no reading
    missing = missing_readings(customer.id, D("2026-02-05"))
    assert {(m["serial"], m["meter"], m["period_start"]) for m in missing} == {
        ("KYA2", "bw", D("2026-01-01")),
        ("KYA2", "color", D("2026-01-01")),
    }
    assert missing[0]["grace_until"] == D("2026-02-10")
    assert OverageSource().missing_readings(customer.id, D("2026-02-05")) == missing
    s.read(device, "2026-01-20", bw=11_850, color=2_310)
    assert lines_of(customer.id, "2026-01-31") == []  # January has not ended
    # Once it has, the latest reading up to its end + grace closes it, even one taken before its last day.
    assert len(lines_of(customer.id, "2026-02-05")) == 2
    assert missing_readings(customer.id, D("2026-02-05")) == []


def _example_b(db_session):
    customer = s.customer()
    first, second = s.device("KYB1", meters=("bw",)), s.device("KYB2", meters=("bw",))
    contract = s.contract(
        customer.id,
        [(first, {"bw": 1_000}), (second, {"bw": 5_000})],
        period_months=3,
        allowances=[
            {
                "meter": "bw",
                "included": 9_000,
                "pooled": True,
                "bands": [{"up_to": 5_000, "price": "0.010"}, {"up_to": None, "price": "0.008"}],
            }
        ],
    )
    return customer, contract, first, second


def test_worked_example_b_pooled_quarter_priced_by_bands(db_session):
    customer, contract, first, second = _example_b(db_session)
    s.read(first, "2026-04-02", bw=8_000)
    s.read(second, "2026-04-03", bw=14_500)
    lines = lines_of(customer.id, "2026-04-05")
    assert amounts(lines) == {
        f"overage:{contract.id}:0:bw:pool:1": (Decimal(5_000), Decimal("0.010000"), Decimal("50.00")),
        f"overage:{contract.id}:0:bw:pool:2": (Decimal(2_500), Decimal("0.008000"), Decimal("20.00")),
    }
    assert all(line.device_id is None for line in lines)
    assert "KYB1" in lines[0].description and "KYB2" in lines[0].description and "9000" in lines[0].description


def test_pooled_overage_waits_for_every_device_sharing_it(db_session):
    customer, _contract, first, _second = _example_b(db_session)
    s.read(first, "2026-04-02", bw=8_000)
    assert lines_of(customer.id, "2026-04-05") == []
    assert [m["serial"] for m in missing_readings(customer.id, D("2026-04-05"))] == ["KYB2"]


def test_worked_example_d_estimate_billed_then_actuals_true_up(db_session):
    customer = s.customer()
    device = s.device("KYD1", meters=("bw",))
    contract = s.contract(
        customer.id,
        [(device, {"bw": 10_000})],
        estimate_missing=True,
        allowances=[{"meter": "bw", "included": 0, "bands": [{"up_to": None, "price": "0.01"}]}],
    )
    s.read(device, "2026-01-30", bw=11_000)
    s.read(device, "2026-04-30", bw=20_000)
    create_due_estimates(D("2026-06-11"))
    may = f"overage:{contract.id}:4:bw:{device.id}:1"
    assert amounts(lines_of(customer.id, "2026-06-11"))[may][0] == Decimal(3_100)  # 23,100 - 20,000
    s.read(device, "2026-06-30", bw=22_900)
    s.read(device, "2026-07-31", bw=26_000)
    billed = amounts(lines_of(customer.id, "2026-08-05"))
    assert billed[may][0] == Decimal(3_100)
    assert f"overage:{contract.id}:5:bw:{device.id}:1" not in billed  # June: 0 pages above the high-water mark
    assert billed[f"overage:{contract.id}:6:bw:{device.id}:1"][0] == Decimal(2_900)


def test_minimum_charge_adjustment_when_fee_and_overage_fall_short(db_session):
    customer = s.customer()
    device = s.device("KYM1")
    contract = s.contract(customer.id, [(device, {"bw": 10_000, "color": 2_000})], minimum_charge="80.00")
    s.read(device, "2026-02-02", bw=11_850, color=2_310)
    lines = {line.source_ref: line for line in lines_of(customer.id, "2026-02-05")}
    minimum = lines[f"minimum:{contract.id}:0"]
    # 80.00 - fee 50.00 - overage (10.20 + 9.90) = 9.90
    assert (minimum.quantity, minimum.unit_price, minimum.kind) == (Decimal(1), Decimal("9.90"), "minimum")


def test_no_minimum_line_when_the_period_already_reaches_it(db_session):
    customer = s.customer()
    device = s.device("KYM2")
    s.contract(customer.id, [(device, {"bw": 10_000, "color": 2_000})], minimum_charge="60.00")
    s.read(device, "2026-02-02", bw=11_850, color=2_310)
    assert [line.kind for line in lines_of(customer.id, "2026-02-05")] == ["overage", "overage"]


def test_included_pages_are_prorated_for_a_device_that_leaves_mid_period(db_session):
    """Example C's proration: 15 of 30 June days, 500 of 1,000 included; final counters close the period."""
    customer = s.customer()
    device = s.device("KYC1", meters=("bw",))
    contract = s.contract(
        customer.id,
        [(device, {"bw": 0})],
        start_date="2026-03-01",
        end_date="2026-06-15",
        fee_timing="arrears",
        allowances=[{"meter": "bw", "included": 1_000, "bands": [{"up_to": None, "price": "0.01"}]}],
    )
    for day, value in (("2026-03-31", 900), ("2026-04-30", 1_800), ("2026-05-31", 2_700)):
        s.read(device, day, bw=value)
    remove_device(contract, device.id, "2026-06-15", {"bw": 3_400})
    lines = lines_of(customer.id, "2026-06-20")
    assert [(line.period_start, line.quantity) for line in lines] == [(D("2026-06-01"), Decimal(200))]
    assert "500" in lines[0].description


def test_estimated_counters_are_marked_in_the_description(db_session):
    customer = s.customer()
    device = s.device("KYE1", meters=("bw",))
    s.contract(
        customer.id,
        [(device, {"bw": 10_000})],
        estimate_missing=True,
        allowances=[{"meter": "bw", "included": 0, "bands": [{"up_to": None, "price": "0.01"}]}],
    )
    s.read(device, "2026-01-30", bw=11_000)
    s.read(device, "2026-04-30", bw=20_000)
    create_due_estimates(D("2026-06-11"))
    may = [line for line in lines_of(customer.id, "2026-06-11") if line.period_start == D("2026-05-01")]
    assert "estimated" in may[0].description and may[0].extra["estimated"] is True


def test_draft_contracts_bill_nothing(db_session):
    customer = s.customer()
    create_contract({"customer_id": customer.id, "start_date": "2026-01-01"})
    assert lines_of(customer.id, "2026-06-01") == []
