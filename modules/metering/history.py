"""What a device is known to have counted: readings, contract line counters, meter replacements, tenure."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa
from flask import g
from flask_babel import format_datetime, get_locale
from sqlalchemy.orm import selectinload

from core import clock
from core.clock import as_utc, day_start, local_date
from core.db import db
from modules.metering.models import MeterReplacement, Reading, ReadingValue
from modules.rentals.models import Contract, ContractLine, Device, MeterType


@dataclass(frozen=True)
class Stay:
    """A device's time on one of a customer's contracts: from `start` to `end` (its last day; None while it stays)."""

    device_id: int
    start: dt.date
    end: dt.date | None

    @property
    def start_at(self) -> dt.datetime:
        return day_start(self.start)

    @property
    def end_at(self) -> dt.datetime | None:
        """The first instant after the stay (None while it lasts)."""
        return None if self.end is None else day_start(self.end + dt.timedelta(days=1))

    def covers(self, at: dt.datetime) -> bool:
        day = local_date(at)
        return self.start <= day and (self.end is None or day <= self.end)


@dataclass(frozen=True)
class KnownValue:
    """A counter value the device is known to have had: an accepted actual reading or a contract line's counter."""

    at: dt.datetime
    value: int
    what: str


def fingerprint(device_id: int, taken_at: dt.datetime, counters: dict[str, int]) -> str:
    """The identity of a reading: the same device, instant and counters give the same fingerprint."""
    payload = json.dumps([device_id, as_utc(taken_at).isoformat(), sorted(counters.items())])
    return hashlib.sha256(payload.encode()).hexdigest()


def replacements(device_id: int, meter: str | None = None) -> list[MeterReplacement]:
    query = sa.select(MeterReplacement).where(MeterReplacement.device_id == device_id)
    if meter is not None:
        query = query.where(MeterReplacement.meter == meter)
    return list(db.session.scalars(query.order_by(MeterReplacement.date, MeterReplacement.id)))


def _replacements_by_meter(device_ids: list[int]) -> dict[tuple[int, str], list[MeterReplacement]]:
    """The replacements of the devices' meters, oldest first, by (device id, meter): one query for all devices."""
    query = sa.select(MeterReplacement).where(MeterReplacement.device_id.in_(device_ids))
    found: dict[tuple[int, str], list[MeterReplacement]] = defaultdict(list)
    for event in db.session.scalars(query.order_by(MeterReplacement.date, MeterReplacement.id)):
        found[(event.device_id, event.meter)].append(event)
    return found


def known_values(device_id: int, meter: str, exclude_id: int | None = None) -> list[KnownValue]:
    """The counter values the device is known to have had on `meter`, oldest first.

    Accepted actual readings (estimates are guesses and pending readings are not confirmed) and the counters with
    which the device joined and left contracts.
    """
    return _known_values_by_meter([device_id], meter, exclude_id).get((device_id, meter), [])


def _known_values_by_meter(
    device_ids: list[int], meter: str | None = None, exclude_id: int | None = None
) -> dict[tuple[int, str], list[KnownValue]]:
    """known_values of the devices' meters (all of them, or `meter`) by (device id, meter), in two queries."""
    query = (
        sa.select(Reading.device_id, ReadingValue.meter, Reading.taken_at, ReadingValue.value)
        .join(ReadingValue, ReadingValue.reading_id == Reading.id)
        .where(Reading.device_id.in_(device_ids), Reading.status == "accepted")
    )
    if meter is not None:
        query = query.where(ReadingValue.meter == meter)
    if exclude_id is not None:
        query = query.where(Reading.id != exclude_id)
    values: dict[tuple[int, str], list[KnownValue]] = defaultdict(list)
    for device_id, code, at, value in db.session.execute(query):
        values[(device_id, code)].append(KnownValue(as_utc(at), value, "reading"))
    lines = db.session.scalars(
        sa.select(ContractLine)
        .where(ContractLine.device_id.in_(device_ids))
        .options(selectinload(ContractLine.counters))
    )
    for line in lines:
        for counter in line.counters:
            if meter is not None and counter.meter != meter:
                continue
            known = values[(line.device_id, counter.meter)]
            known.append(KnownValue(day_start(line.start_date), counter.start_value, "installation"))
            if line.end_date is not None and counter.end_value is not None:
                # The final counters are read at the end of the device's last day on the contract.
                end = day_start(line.end_date + dt.timedelta(days=1)) - dt.timedelta(seconds=1)
                known.append(KnownValue(end, counter.end_value, "final"))
    return {key: sorted(known, key=lambda value: value.at) for key, known in values.items()}


def stays(customer_id: int, device_ids: list[int] | None = None) -> list[Stay]:
    """The customer's tenure: each time one of the devices was on one of its contracts, in any state."""
    query = (
        sa.select(ContractLine.device_id, ContractLine.start_date, ContractLine.end_date)
        .join(Contract, Contract.id == ContractLine.contract_id)
        .where(Contract.customer_id == customer_id)
        .order_by(ContractLine.device_id, ContractLine.start_date)
    )
    if device_ids is not None:
        query = query.where(ContractLine.device_id.in_(device_ids))
    return [Stay(device_id, start, end) for device_id, start, end in db.session.execute(query)]


def last_values(device: Device, customer_id: int | None = None) -> dict[str, KnownValue]:
    """The latest known value of each of the device's meters (for forms that show what was read last).

    For a customer, only the values known while the device was on its contracts: a device that moved on shows the
    customer its own last counters, never those of whoever has it now.
    """
    return devices_last_values([device], customer_id)[device.id]


def devices_last_values(
    devices: list[Device], customer_id: int | None = None, customer_stays: list[Stay] | None = None
) -> dict[int, dict[str, KnownValue]]:
    """last_values of each device, by device id, in the same few queries for one device or a hundred.

    `customer_stays`: the customer's stays when the caller has read them already (`stays(customer_id)`).
    """
    device_ids = [device.id for device in devices]
    if not device_ids:
        return {}
    held: dict[int, list[Stay]] | None = None
    if customer_id is not None:
        held = defaultdict(list)
        wanted = set(device_ids)
        for stay in stays(customer_id, device_ids) if customer_stays is None else customer_stays:
            if stay.device_id in wanted:
                held[stay.device_id].append(stay)
    known = _known_values_by_meter(device_ids)
    events = _replacements_by_meter(device_ids)
    return {
        device.id: _last_values(device, known, events, None if held is None else held.get(device.id, []))
        for device in devices
    }


def _last_values(
    device: Device,
    known: dict[tuple[int, str], list[KnownValue]],
    events: dict[tuple[int, str], list[MeterReplacement]],
    held: list[Stay] | None,
) -> dict[str, KnownValue]:
    """One device's last values from what devices_last_values read; `held`: the customer's stays (None: staff)."""
    if held == []:
        return {}
    until = None
    if held and all(stay.end_at is not None for stay in held):
        until = max(stay.end_at for stay in held) - dt.timedelta(seconds=1)
    result = {}
    for meter in device.model.meter_codes:
        segment = _segment(events.get((device.id, meter), []), known.get((device.id, meter), []), until)
        if held is not None:
            segment = [value for value in segment if any(stay.covers(value.at) for stay in held)]
        if segment:
            result[meter] = segment[-1]
    return result


def current_segment(device_id: int, meter: str, values: list[KnownValue], at: dt.datetime | None) -> list[KnownValue]:
    """The values read on the meter in place at `at` (None: now): those since its last replacement, plus its start."""
    return _segment(replacements(device_id, meter), values, at)


def _segment(events: list[MeterReplacement], values: list[KnownValue], at: dt.datetime | None) -> list[KnownValue]:
    """current_segment given the meter's replacements, oldest first."""
    later = [event for event in events if at is not None and day_start(event.date) > at]
    if later:
        # Values read after the next replacement belong to the meter that replaced this one.
        values = [v for v in values if v.at < day_start(later[0].date)]
    events = [event for event in events if at is None or day_start(event.date) <= at]
    if not events:
        return values
    last = events[-1]
    since = day_start(last.date)
    return [KnownValue(since, last.new_start, "replacement")] + [v for v in values if v.at >= since]


def show_time(when: dt.datetime) -> str:
    """An instant as the dealer reads it: local date and time."""
    return as_utc(when).astimezone(clock.timezone()).strftime("%Y-%m-%d %H:%M")


def local_time(value: dt.datetime) -> str:
    """An instant as the dealer's local date and time, in the user's language (Babel)."""
    return format_datetime(as_utc(value).astimezone(clock.timezone()), "short", rebase=False)


def meter_label(code: str) -> str:
    """A meter's name in the user's language (`bw` is "B/N" in Italian); read once per request."""
    if "metering_meter_labels" not in g:
        locale = get_locale()
        language = locale.language if locale else "en"
        g.metering_meter_labels = {m.code: m.label(language) for m in db.session.scalars(sa.select(MeterType))}
    return g.metering_meter_labels.get(code, code)
