"""Estimated readings: for contracts with `estimate_missing`, a period still missing its reading once the grace has
passed gets an estimated reading on its last day (billing-rules.md, example D)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from core import clock
from core.db import db
from modules.metering import usage as rules
from modules.metering.billing import (
    BILLABLE_STATES,
    billed_closings,
    device_points,
    device_replacements,
    ended_periods,
    stay_records,
)
from modules.metering.history import fingerprint
from modules.metering.models import Reading, ReadingValue
from modules.rentals.models import Contract, ContractLine


def create_due_estimates(as_of: dt.date, contract_ids: list[int] | None = None) -> list[Reading]:
    """Create every estimated reading due by `as_of`; the caller commits. Running it twice creates nothing new."""
    query = sa.select(Contract).where(Contract.estimate_missing.is_(True), Contract.state.in_(BILLABLE_STATES))
    if contract_ids is not None:
        query = query.where(Contract.id.in_(contract_ids))
    created = []
    for contract in db.session.scalars(query.order_by(Contract.id)):
        for line in contract.lines:
            created.extend(_estimate_line(contract, line, as_of))
    return created


def _estimate_line(contract: Contract, line: ContractLine, as_of: dt.date) -> list[Reading]:
    ended = ended_periods(contract, as_of)
    meters = {a.meter for a in contract.allowances} & {c.meter for c in line.counters}
    counters = {c.meter: c for c in line.counters}
    billed = billed_closings(contract.id)
    created = []
    for _attempt in range(len(ended)):
        due: dict[str, tuple[rules.Period, int]] = {}
        for meter in sorted(meters):
            stay = rules.Stay(line.start_date, counters[meter].start_value, line.end_date, counters[meter].end_value)
            points = device_points(line.device_id, meter)
            events = device_replacements(line.device_id, meter)
            records = stay_records(billed.get((line.device_id, meter), {}), stay)
            missing = next(
                (
                    item.period
                    for item in rules.meter_usage(ended, stay, points, events, contract.grace_days, as_of, records)
                    if item.missing and item.period.end + dt.timedelta(days=contract.grace_days) < as_of
                ),
                None,
            )
            if missing is None:
                continue
            history = [*points, rules.Point(line.start_date - dt.timedelta(days=1), stay.start_value)]
            value = rules.estimate_reading(history, missing.end, events)
            if value is not None:
                due[meter] = (missing, value)
        if not due:
            break
        period = min((p for p, _value in due.values()), key=lambda p: p.index)
        values = {meter: value for meter, (p, value) in due.items() if p == period}
        created.append(_store_estimate(line.device_id, period.end, values))
    return created


def _store_estimate(device_id: int, day: dt.date, counters: dict[str, int]) -> Reading:
    taken_at = dt.datetime.combine(day, dt.time(12), clock.timezone()).astimezone(dt.UTC)
    reading = Reading(
        device_id=device_id,
        taken_at=taken_at,
        source="estimate",
        status="estimated",
        fingerprint=fingerprint(device_id, taken_at, counters),
        values=[ReadingValue(meter=meter, value=value) for meter, value in sorted(counters.items())],
    )
    db.session.add(reading)
    db.session.flush()
    return reading
