"""What was billed is metering's state: closings kept through later readings, released by cancelled drafts.

Invoicing is played by `Billing` below exactly as the signals' contract says (de-duplicate on source_ref, send
`lines_billed` in the draft's transaction, `lines_released` on cancel); metering's own tables are real.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from decimal import Decimal

import sqlalchemy as sa
from flask import current_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import signals
from core.db import db
from core.extension_points import BillableLine
from modules.metering.models import BilledClosing
from modules.metering.overage import OverageSource, missing_readings
from modules.metering.tests import support as s

D = dt.date.fromisoformat
ONLY_BW = [{"meter": "bw", "included": 1000, "bands": [{"up_to": None, "price": "0.01"}]}]


class Billing:
    """Invoicing as metering sees it: drafts of the lines not yet billed, cancelled drafts free their lines."""

    def __init__(self, customer_id: int) -> None:
        self.customer_id = customer_id
        self.billed: dict[str, tuple[int, BillableLine]] = {}
        self.drafts = 0

    def run(self, as_of: str | dt.date) -> dict[str, Decimal]:
        as_of = D(as_of) if isinstance(as_of, str) else as_of
        lines = OverageSource().billable_lines(self.customer_id, as_of)
        assert all(line.quantity > 0 for line in lines)
        new = [line for line in lines if line.source_ref not in self.billed]
        if new:
            self.drafts += 1
            self.billed.update({line.source_ref: (self.drafts, line) for line in new})
            stored = [(line.source_ref, json.loads(json.dumps(line.extra))) for line in new]  # as a JSON column
            signals.lines_billed.send(current_app._get_current_object(), source="metering", lines=stored)
        db.session.commit()
        return {line.source_ref: line.quantity for line in new}

    def cancel(self, draft: int) -> None:
        refs = [ref for ref, (number, _line) in self.billed.items() if number == draft]
        for ref in refs:
            del self.billed[ref]
        signals.lines_released.send(current_app._get_current_object(), source="metering", source_refs=refs)
        db.session.commit()

    def pages(self, kind: str = "overage") -> int:
        return int(sum(line.quantity for _draft, line in self.billed.values() if line.kind == kind))


def bw_contract(serial: str, **terms):
    customer = s.customer()
    device = s.device(serial, meters=("bw",))
    contract = s.contract(customer.id, [(device, {"bw": 10_000})], allowances=terms.pop("allowances", ONLY_BW), **terms)
    return Billing(customer.id), contract, device


def test_worked_example_a_a_later_reading_in_the_grace_leaves_january_as_billed(db_session):
    billing, contract, device = bw_contract("KYH1")
    s.read(device, "2026-02-02", bw=11_850)
    assert billing.run("2026-02-05") == {f"overage:{contract.id}:0:bw:{device.id}:1": Decimal(850)}
    s.read(device, "2026-02-08", bw=12_000)
    s.read(device, "2026-03-02", bw=13_500)
    # January stays 850 (not 1,000 with the reading of 8 February); February starts from its billed 11,850.
    assert billing.run("2026-03-05") == {f"overage:{contract.id}:1:bw:{device.id}:1": Decimal(650)}
    assert billing.run("2026-03-05") == {}


def test_without_a_billed_january_its_latest_grace_reading_closes_it(db_session):
    billing, contract, device = bw_contract("KYH2")
    s.read(device, "2026-02-02", bw=11_850)
    s.read(device, "2026-02-08", bw=12_000)
    assert billing.run("2026-02-10") == {f"overage:{contract.id}:0:bw:{device.id}:1": Decimal(1_000)}


def test_a_period_under_its_allowance_does_not_lend_its_pages_to_the_next(db_session):
    billing, contract, device = bw_contract("KYH3")
    s.read(device, "2026-02-02", bw=10_600)
    assert billing.run("2026-02-05") == {}  # 600 pages, 1,000 included
    s.read(device, "2026-03-02", bw=12_100)
    # February: 12,100 - 10,600 = 1,500 pages, 500 over its own 1,000.
    assert billing.run("2026-03-05") == {f"overage:{contract.id}:1:bw:{device.id}:1": Decimal(500)}


def test_a_billed_minimum_charge_keeps_the_closings_of_its_period(db_session):
    billing, contract, device = bw_contract("KYH4", minimum_charge="80.00")
    s.read(device, "2026-02-02", bw=10_900)
    assert billing.run("2026-02-05") == {f"minimum:{contract.id}:0": Decimal(1)}  # 900 pages, 1,000 included
    recorded = db.session.scalars(sa.select(BilledClosing.closing_counter)).all()
    assert recorded == [10_900]
    assert s.read(device, "2026-02-08", bw=11_300).status == "accepted"  # in January's grace: January is billed
    s.read(device, "2026-03-02", bw=12_300)
    # February: 12,300 - 10,900 = 1,400 pages, 400 over; January's 900 pages stay under its allowance.
    assert billing.run("2026-03-05") == {
        f"overage:{contract.id}:1:bw:{device.id}:1": Decimal(400),
        f"minimum:{contract.id}:1": Decimal(1),
    }


def test_cancelling_a_draft_bills_its_pages_again_and_only_them(db_session):
    billing, contract, device = bw_contract("KYH5")
    s.read(device, "2026-02-02", bw=11_850)
    billing.run("2026-02-05")
    s.read(device, "2026-02-08", bw=12_000)
    s.read(device, "2026-03-02", bw=13_500)
    billing.run("2026-03-05")
    billing.cancel(1)  # January's draft, after February was billed from January's closing
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BilledClosing)) == 1
    assert billing.run("2026-03-05") == {f"overage:{contract.id}:0:bw:{device.id}:1": Decimal(850)}


def test_receivers_ignore_other_sources_and_roll_back_with_the_invoice(db_session):
    billing, _contract, device = bw_contract("KYH6")
    s.read(device, "2026-02-02", bw=11_850)
    db.session.commit()
    (line,) = OverageSource().billable_lines(billing.customer_id, D("2026-02-05"))
    app = current_app._get_current_object()
    signals.lines_billed.send(app, source="rentals", lines=[(line.source_ref, line.extra)])
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BilledClosing)) == 0
    signals.lines_billed.send(app, source="metering", lines=[(line.source_ref, line.extra)])
    db.session.rollback()  # the draft failed: nothing was billed
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BilledClosing)) == 0
    signals.lines_billed.send(app, source="metering", lines=[(line.source_ref, line.extra)])
    signals.lines_released.send(app, source="rentals", source_refs=[line.source_ref])
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BilledClosing)) == 1


def test_worked_example_d_the_billed_estimate_is_the_high_water_mark(db_session):
    from modules.metering.estimates import create_due_estimates

    allowances = [{"meter": "bw", "included": 0, "bands": [{"up_to": None, "price": "0.01"}]}]
    billing, contract, device = bw_contract("KYH7", estimate_missing=True, allowances=allowances)
    s.read(device, "2026-01-30", bw=11_000)
    s.read(device, "2026-04-30", bw=20_000)
    create_due_estimates(D("2026-06-11"))
    assert billing.run("2026-06-11")[f"overage:{contract.id}:4:bw:{device.id}:1"] == Decimal(3_100)
    s.read(device, "2026-06-30", bw=22_900)
    s.read(device, "2026-07-31", bw=26_000)
    assert billing.run("2026-08-15") == {f"overage:{contract.id}:6:bw:{device.id}:1": Decimal(2_900)}
    assert missing_readings(billing.customer_id, D("2026-08-15")) == []


serials = itertools.count(1)


@st.composite
def scenarios(draw):
    """Readings of about 100 pages a day, some entered late; runs, some with an older as_of; drafts cancelled."""
    days = sorted(draw(st.sets(st.integers(3, 120), min_size=1, max_size=25)))
    value, readings = 10_000, []
    previous = 0
    for day in days:
        value += (day - previous) * draw(st.integers(80, 120))
        previous = day
        readings.append((day, value))
    steps = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("read"), st.integers(0, 9)),
                st.tuples(st.just("run"), st.integers(0, 40)),
                st.tuples(st.just("cancel"), st.integers(1, 4)),
            ),
            max_size=24,
        )
    )
    return readings, steps


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenarios(), st.integers(3, 12))
def test_no_page_is_billed_twice_or_lost_whatever_the_order_of_readings_runs_and_cancels(db_session, scenario, grace):
    readings, steps = scenario
    allowances = [{"meter": "bw", "included": 0, "bands": [{"up_to": None, "price": "0.01"}]}]
    billing, _contract, device = bw_contract(f"KYP{next(serials)}", grace_days=grace, allowances=allowances)
    start = D("2026-01-01")
    pending = list(readings)
    today = start
    for action, amount in steps:
        if action == "read" and pending:
            day, value = pending.pop(amount % len(pending))  # not always in date order: some arrive late
            s.read(device, (start + dt.timedelta(days=day)).isoformat(), bw=value)
            today = max(today, start + dt.timedelta(days=day))
        elif action == "run":
            billing.run(today + dt.timedelta(days=40 - amount))
        elif action == "cancel" and billing.drafts >= amount:
            billing.cancel(billing.drafts - amount + 1)
    for day, value in pending:
        s.read(device, (start + dt.timedelta(days=day)).isoformat(), bw=value)
    last_day, last_value = readings[-1]
    # Long after the last reading every period up to it is closed: each page billed exactly once.
    billing.run(start + dt.timedelta(days=last_day + 70))
    assert billing.pages() == last_value - 10_000
