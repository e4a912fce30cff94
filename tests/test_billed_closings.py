"""Metering billed by the real invoicing: closings kept through later readings, released by cancels and credit notes."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.db import db
from modules.invoicing import runs, services
from modules.invoicing.jobs import run_chunk
from modules.invoicing.models import BilledRef, Invoice, InvoiceLine
from modules.metering.billing import missing_readings
from modules.metering.models import BilledClosing
from modules.metering.tests import support as s

D = dt.date.fromisoformat
ONLY_BW = [{"meter": "bw", "included": 1000, "bands": [{"up_to": None, "price": "0.01"}]}]


class Billing:
    """One customer billed as the dealer does: runs drafting what is due, drafts cancelled, invoices credited."""

    def __init__(self, customer_id: int) -> None:
        self.customer_id = customer_id
        self.drafts: list[int] = []  # the invoices holding metering lines, in billing order (draft 1 is the first)

    def run(self, as_of: str | dt.date) -> dict[str, Decimal]:
        """A billing run of this customer (its chunk job); the metering lines it drafted, by source_ref."""
        run = runs.create_run(D(as_of) if isinstance(as_of, str) else as_of)
        run.total = 1
        db.session.commit()
        run_chunk(run.id, [self.customer_id])
        assert [issue.message for issue in runs.run_issues(run.id, "error")] == []
        lines = db.session.scalars(
            sa.select(InvoiceLine)
            .join(Invoice, InvoiceLine.invoice_id == Invoice.id)
            .where(Invoice.billing_run_id == run.id, InvoiceLine.source == "metering")
        ).all()
        assert all(line.quantity > 0 for line in lines)
        self.drafts += sorted({line.invoice_id for line in lines})
        return {line.source_ref: line.quantity for line in lines}

    def invoice(self, draft: int) -> Invoice:
        return db.session.get(Invoice, self.drafts[draft - 1])

    def cancel(self, draft: int) -> None:
        """Cancel the draft (one cancelled or posted already stays as it is)."""
        invoice = self.invoice(draft)
        if invoice.state == "draft":
            services.cancel(invoice)
            db.session.commit()

    def credit(self, draft: int) -> None:
        """Post the draft, then reverse it whole with a posted credit note (a cancelled or posted one stays)."""
        invoice = self.invoice(draft)
        if invoice.state == "draft":
            services.post(invoice)
            services.post(services.create_credit_note(invoice))
            db.session.commit()

    def pages(self, kind: str = "overage") -> int:
        """Pages on the customer's standing metering lines (not cancelled, not credited)."""
        total = db.session.scalar(
            sa.select(sa.func.sum(InvoiceLine.quantity))
            .join(BilledRef, BilledRef.line_id == InvoiceLine.id)
            .join(Invoice, InvoiceLine.invoice_id == Invoice.id)
            .where(BilledRef.source == "metering", InvoiceLine.kind == kind, Invoice.customer_id == self.customer_id)
        )
        return int(total or 0)


def bw_contract(serial: str, **terms):
    customer = s.customer()
    device = s.device(serial, meters=("bw",))
    contract = s.contract(customer.id, [(device, {"bw": 10_000})], allowances=terms.pop("allowances", ONLY_BW), **terms)
    db.session.commit()
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


def test_crediting_an_invoice_bills_its_pages_again_and_only_them(db_session):
    billing, contract, device = bw_contract("KYH8")
    s.read(device, "2026-02-02", bw=11_850)
    billing.run("2026-02-05")
    s.read(device, "2026-02-08", bw=12_000)
    s.read(device, "2026-03-02", bw=13_500)
    billing.run("2026-03-05")
    billing.credit(1)  # January's invoice posted, then reversed by a posted credit note
    assert (billing.invoice(1).state, billing.pages()) == ("posted", 650)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BilledClosing)) == 1
    assert billing.run("2026-03-05") == {f"overage:{contract.id}:0:bw:{device.id}:1": Decimal(850)}
    assert billing.pages() == 850 + 650


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
    """Readings of about 100 pages a day, some entered late; runs, some with an older as_of; drafts cancelled or
    credited."""
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
                st.tuples(st.just("credit"), st.integers(1, 4)),
            ),
            max_size=24,
        )
    )
    return readings, steps


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenarios(), st.integers(3, 12))
def test_no_page_is_billed_twice_or_lost_whatever_the_order_of_readings_runs_cancels_and_credits(
    db_session, scenario, grace
):
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
        elif action in ("cancel", "credit") and len(billing.drafts) >= amount:
            getattr(billing, action)(len(billing.drafts) - amount + 1)
    for day, value in pending:
        s.read(device, (start + dt.timedelta(days=day)).isoformat(), bw=value)
    last_day, last_value = readings[-1]
    # Long after the last reading every period up to it is closed: each page billed exactly once.
    billing.run(start + dt.timedelta(days=last_day + 70))
    assert billing.pages() == last_value - 10_000
