"""Metering demo data: a year of readings on the demo contracts, two pending reading requests with their emails in the
outbox (Studio Legale Bianchi, Farmacia San Marco) and one overdue request (Academia Cervantes)."""

from __future__ import annotations

import datetime as dt
import hashlib

import sqlalchemy as sa

from core import clock
from core.db import db
from core.models import Partner
from modules.metering.campaigns import create_due_requests, due_date_for, mark_overdue, request_now
from modules.metering.readings import record_reading
from modules.rentals.models import Contract
from modules.rentals.periods import Period, periods

# Pages a day per meter; each period varies around it (deterministically, so loading twice adds nothing).
DAILY_PAGES = {"bw": 120, "color": 35, "scan": 25, "a3_bw": 12, "a3_color": 6, "fax": 2}
PENDING = ("Studio Legale Bianchi", "Farmacia San Marco Srl")
OVERDUE = "Academia Cervantes SL"
HISTORY_DAYS = 366


def _variation(serial: str, index: int) -> float:
    digest = hashlib.sha256(f"{serial}:{index}".encode()).digest()
    return 0.75 + digest[0] / 255 / 2


def _overdue_period(contract: Contract, today: dt.date) -> Period | None:
    """The latest period of the contract whose reading deadline has passed: left without a reading."""
    ended = [
        period
        for period in periods(contract.start_date, contract.period_months, contract.end_date, until=today)
        if period.end + dt.timedelta(days=contract.grace_days) < today
    ]
    return ended[-1] if ended else None


def _read_contract(contract: Contract, today: dt.date, stop_at: int | None) -> None:
    """Readings on each past period's due date, for the last year, up to period `stop_at` (excluded)."""
    for line in contract.lines:
        if line.end_date is not None:
            continue
        values = dict(line.start_counters)
        previous = line.start_date
        for period in periods(contract.start_date, contract.period_months, contract.end_date, until=today):
            due = due_date_for(period, None)
            if period.end >= today or due <= line.start_date or (stop_at is not None and period.index >= stop_at):
                break
            days = (due - previous).days
            previous = due
            for meter in values:
                values[meter] += round(DAILY_PAGES.get(meter, 10) * days * _variation(line.device.serial, period.index))
            if due < today - dt.timedelta(days=HISTORY_DAYS):
                continue
            taken_at = dt.datetime.combine(due, dt.time(10, 30), clock.timezone())
            black = 100 - (period.index * 17) % 90
            record_reading(line.device_id, taken_at, dict(values), {"black": black}, source="portal")


def load_demo() -> None:
    """Readings, then the requests: idempotent (readings and requests are unique, emails de-duplicated)."""
    today = clock.today()
    customers = dict(db.session.execute(sa.select(Partner.name, Partner.id)).all())
    contracts = db.session.scalars(sa.select(Contract).where(Contract.state == "active").order_by(Contract.id)).all()
    late = None
    for contract in contracts:
        stop_at = None
        if contract.customer_id == customers.get(OVERDUE) and late is None:
            late = _overdue_period(contract, today)
            stop_at = late.index if late is not None else None
        _read_contract(contract, today, stop_at)
    db.session.flush()
    if late is not None:
        create_due_requests(due_date_for(late, None), [customers[OVERDUE]])
        mark_overdue(today)
    for name in PENDING:
        if name in customers:
            request_now(customers[name], today)
    db.session.commit()
