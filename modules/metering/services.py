"""Metering domain logic: the one validation every reading channel goes through, review, and meter replacements.

The API, the staff form, the CSV import and the customer portal all call `record_reading`, so a reading gets the same
checks and the same messages whichever door it comes through. Errors are collected per field (`taken_at`,
`counters.bw`, `supplies.cyan`) and raised together as one `core.validation.ValidationError`; nothing is written
when any is wrong.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import selectinload

from core import audit, clock
from core.clock import as_utc, day_start, local_date
from core.db import db, on_commit, utcnow
from core.settings import get_setting
from core.signals import reading_accepted
from core.validation import MAX_COUNTER as MAX_COUNTER
from core.validation import Checker, ValidationError, fail
from modules.metering.models import (
    READING_SOURCES,
    SUPPLY_COLOURS,
    MeterReplacement,
    Reading,
    ReadingValue,
    SupplyLevel,
)
from modules.rentals.models import Contract, ContractLine, Device

# Device clocks and browsers drift: a reading a few minutes "in the future" is still now.
CLOCK_SKEW = dt.timedelta(minutes=5)
DEFAULT_JUMP_FACTOR = 3
DEFAULT_JUMP_MIN_HISTORY_DAYS = 30
DEFAULT_JUMP_MIN_PAGES = 500
# Channels that people and devices use; `estimate` readings are made only by the estimate service.
ENTRY_SOURCES = tuple(source for source in READING_SOURCES if source != "estimate")
INTEGER_RE = re.compile(r"\s*\d+\s*")


# The name the API, the portal and the CSV import catch: core's ValidationError itself.
MeteringError = ValidationError


@dataclass
class Checked:
    """A reading that passed validation: its clean values and the status it gets."""

    device: Device
    taken_at: dt.datetime
    counters: dict[str, int]
    supplies: dict[str, int]
    source: str
    status: str = "accepted"
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class Recorded:
    """What `record_reading` did: the reading, whether it is new (False: the same reading was already stored)."""

    reading: Reading
    created: bool
    warnings: list[str]


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


def parse_taken_at(check: Checker, name: str, value: Any) -> dt.datetime | None:
    """An aware UTC datetime from a datetime, a date or ISO text; a time without zone is the dealer's local time.

    A date alone means noon of that day, so it stays on that day in every time zone near the dealer's.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        check.fail(name, _("This field is required."))
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(12))
    if isinstance(value, str):
        text = value.strip()
        try:
            value = (
                dt.datetime.combine(dt.date.fromisoformat(text), dt.time(12))
                if len(text) == 10
                else dt.datetime.fromisoformat(text.replace(" ", "T", 1))
            )
        except ValueError:
            check.fail(name, _("Not a date and time (YYYY-MM-DD HH:MM): %(value)s", value=text[:40]))
            return None
    if not isinstance(value, dt.datetime):
        check.fail(name, _("Not a date and time (YYYY-MM-DD HH:MM): %(value)s", value=str(value)[:40]))
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=clock.timezone())
    if not 1990 <= value.year <= 2199:
        check.fail(name, _("The year must be between %(min)d and %(max)d.", min=1990, max=2199))
        return None
    return value.astimezone(dt.UTC).replace(microsecond=0)


# History


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


def devices_last_values(devices: list[Device], customer_id: int | None = None) -> dict[int, dict[str, KnownValue]]:
    """last_values of each device, by device id, in the same few queries for one device or a hundred."""
    device_ids = [device.id for device in devices]
    if not device_ids:
        return {}
    held: dict[int, list[Stay]] | None = None
    if customer_id is not None:
        held = defaultdict(list)
        for stay in stays(customer_id, device_ids):
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


def _current_segment(device_id: int, meter: str, values: list[KnownValue], at: dt.datetime | None) -> list[KnownValue]:
    """The values read on the meter in place at `at` (None: now): those since its last replacement, plus its start."""
    return _segment(replacements(device_id, meter), values, at)


def _segment(events: list[MeterReplacement], values: list[KnownValue], at: dt.datetime | None) -> list[KnownValue]:
    """_current_segment given the meter's replacements, oldest first."""
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


def _average_daily_pages(segment: list[KnownValue], min_days: int) -> float | None:
    """Pages per day over the history in `segment`, or None when it covers fewer than `min_days` days."""
    if len(segment) < 2:
        return None
    first, last = segment[0], segment[-1]
    days = (last.at - first.at).total_seconds() / 86400
    if days < min_days:
        return None
    return max(0, last.value - first.value) / days


# Validation


def validate_reading(
    device_id: Any,
    taken_at: Any,
    counters: Any,
    supplies: Any = None,
    source: Any = "staff",
    now: dt.datetime | None = None,
    exclude_id: int | None = None,
    customer_id: int | None = None,
) -> Checked:
    """Check a reading as every channel must; raise ValidationError naming each bad field, or return its status.

    Returns status `accepted`, or `pending_review` with the reason when a counter jumps far beyond the device's usual
    volume; `warnings` lists the device's meters that were not given. A reading sent by a customer (`customer_id`)
    must be dated while the device was on one of that customer's contracts.
    """
    check = Checker()
    now = as_utc(now or utcnow())
    device = _check_device(check, device_id)
    source = _check_source(check, source)
    when = parse_taken_at(check, "taken_at", taken_at)
    if when is not None and when > now + CLOCK_SKEW:
        check.fail("taken_at", _("The reading is dated in the future (%(when)s).", when=show_time(when)))
    if (
        customer_id is not None
        and device is not None
        and when is not None
        and not any(stay.covers(when) for stay in stays(customer_id, [device.id]))
    ):
        check.fail(
            "taken_at",
            _(
                "The reading date %(date)s is outside the time device %(serial)s has been on your contracts.",
                date=local_date(when),
                serial=device.serial,
            ),
        )
    if device is not None and when is not None:
        first = db.session.scalar(
            sa.select(sa.func.min(ContractLine.start_date)).where(ContractLine.device_id == device.id)
        )
        if first is not None and local_date(when) < first:
            check.fail(
                "taken_at",
                _(
                    "Device %(serial)s was installed on %(date)s, after this reading's date.",
                    serial=device.serial,
                    date=first,
                ),
            )
    clean_counters = _check_counters(check, device, counters)
    clean_supplies = _check_supplies(check, device, supplies)
    check.raise_if_any()
    checked = Checked(device, when, clean_counters, clean_supplies, source)
    missing = [meter for meter in device.model.meter_codes if meter not in clean_counters]
    if missing:
        checked.warnings.append(_("No counter given for: %(meters)s.", meters=", ".join(missing)))
    _check_history(check, checked, exclude_id)
    check.raise_if_any()
    return checked


def show_time(when: dt.datetime) -> str:
    """An instant as the dealer reads it: local date and time."""
    return as_utc(when).astimezone(clock.timezone()).strftime("%Y-%m-%d %H:%M")


def _check_device(check: Checker, device_id: Any) -> Device | None:
    if isinstance(device_id, Device):
        return device_id
    if isinstance(device_id, str) and device_id.strip().isdigit():
        device_id = int(device_id)
    if isinstance(device_id, bool) or not isinstance(device_id, int):
        check.fail("device_id", _("Choose a device."))
        return None
    device = db.session.get(Device, device_id) if 0 < device_id < 2**31 else None
    if device is None:
        check.fail("device_id", _("There is no device with id %(id)s.", id=device_id))
    return device


def _check_source(check: Checker, source: Any) -> str:
    if source in ENTRY_SOURCES:
        return source
    check.fail("source", _("Choose one of: %(choices)s", choices=", ".join(ENTRY_SOURCES)))
    return "staff"


def _check_counters(check: Checker, device: Device | None, counters: Any) -> dict[str, int]:
    if not isinstance(counters, dict) or not counters:
        check.fail("counters", _("Give at least one counter."))
        return {}
    meters = device.model.meter_codes if device is not None else None
    clean = {}
    for meter, value in counters.items():
        name = f"counters.{str(meter)[:40]}"
        if meters is not None and meter not in meters:
            check.fail(
                name,
                _(
                    "Device %(serial)s has no %(meter)s meter (it has %(meters)s).",
                    serial=device.serial,
                    meter=str(meter)[:40],
                    meters=", ".join(meters),
                ),
            )
            continue
        number = check.counter(name, value, str(meter))
        if number is not None:
            clean[meter] = number
    return clean


def _check_supplies(check: Checker, device: Device | None, supplies: Any) -> dict[str, int]:
    if supplies is None or supplies == {}:
        return {}
    if not isinstance(supplies, dict):
        check.fail("supplies", _("Not a list of toner levels."))
        return {}
    colours = SUPPLY_COLOURS if device is None or device.model.color else ("black",)
    clean = {}
    for colour, value in supplies.items():
        name = f"supplies.{str(colour)[:40]}"
        if colour not in colours:
            check.fail(
                name, _("Unknown toner colour %(colour)s: use %(colours)s.", colour=colour, colours=", ".join(colours))
            )
            continue
        if isinstance(value, str) and INTEGER_RE.fullmatch(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            check.fail(name, _("The %(colour)s toner level must be a whole percent from 0 to 100.", colour=colour))
            continue
        clean[colour] = value
    return clean


def _check_history(check: Checker, checked: Checked, exclude_id: int | None) -> None:
    """Counters must not go backwards (without a replacement) and should not jump far beyond the usual volume."""
    factor = get_setting("metering.jump_factor", DEFAULT_JUMP_FACTOR)
    min_days = get_setting("metering.jump_min_history_days", DEFAULT_JUMP_MIN_HISTORY_DAYS)
    min_pages = get_setting("metering.jump_min_pages", DEFAULT_JUMP_MIN_PAGES)
    reasons = []
    for meter, value in checked.counters.items():
        name = f"counters.{meter}"
        values = known_values(checked.device.id, meter, exclude_id)
        segment = _current_segment(checked.device.id, meter, values, checked.taken_at)
        before = [known for known in segment if known.at <= checked.taken_at]
        after = [known for known in segment if known.at > checked.taken_at]
        same = [k for k in before if k.at == checked.taken_at and k.what == "reading" and k.value != value]
        if same:
            check.fail(
                name,
                _(
                    "The %(meter)s counter %(value)s differs from the one already recorded at the same time, "
                    "%(last)s on %(date)s.",
                    meter=meter,
                    value=value,
                    last=same[0].value,
                    date=show_time(same[0].at),
                ),
            )
            continue
        if before and value < max(known.value for known in before):
            previous = max(before, key=lambda known: known.value)
            check.fail(
                name,
                _(
                    "The %(meter)s counter %(value)s is lower than the last one, %(last)s on %(date)s. "
                    "If the meter was replaced or reset, record that first.",
                    meter=meter,
                    value=value,
                    last=previous.value,
                    date=show_time(previous.at),
                ),
            )
            continue
        if after and value > min(known.value for known in after):
            following = min(after, key=lambda known: known.value)
            check.fail(
                name,
                _(
                    "The %(meter)s counter %(value)s is higher than a later one, %(later)s on %(date)s.",
                    meter=meter,
                    value=value,
                    later=following.value,
                    date=show_time(following.at),
                ),
            )
            continue
        average = _average_daily_pages(before, min_days)
        if average is None:
            continue
        last = before[-1]
        days = max(1.0, (checked.taken_at - last.at).total_seconds() / 86400)
        allowed = max(average * days * float(factor), float(min_pages))
        if value - last.value > allowed:
            reasons.append(
                _(
                    "The %(meter)s counter rose by %(pages)s pages in %(days)d days; "
                    "this device usually prints about %(average)d a day.",
                    meter=meter,
                    pages=value - last.value,
                    days=round(days),
                    average=round(average),
                )
            )
    if reasons:
        checked.status = "pending_review"
        checked.reason = " ".join(reasons)


# Recording


def lock_device(device_id: Any) -> None:
    """Hold the device's row until the caller commits, so its readings are checked and stored one at a time.

    PostgreSQL: SELECT ... FOR UPDATE. SQLite has one writer at a time, but pysqlite begins the transaction only at
    the first write: a no-op UPDATE takes the write lock before the history is read, not after.
    """
    device = _check_device({}, device_id)
    if device is None:
        return
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.select(Device.id).where(Device.id == device.id).with_for_update())
    else:
        table = Device.__table__
        db.session.execute(sa.update(table).where(table.c.id == device.id).values(id=table.c.id))


def record_reading(
    device_id: Any,
    taken_at: Any,
    counters: Any,
    supplies: Any = None,
    source: Any = "staff",
    entered_by: int | None = None,
    now: dt.datetime | None = None,
    customer_id: int | None = None,
) -> Recorded:
    """Validate and store a reading; the same device, instant and counters again returns the stored one.

    Raises ValidationError (nothing written) when a field is wrong. An accepted reading emits `reading_accepted`.
    `customer_id`: the customer sending it, whose tenure the reading must fall in. The caller commits; the device
    stays locked until then.
    """
    lock_device(device_id)
    existing = _existing(device_id, taken_at, counters)
    if existing is not None:
        return Recorded(existing, False, existing.warning_list)
    checked = validate_reading(device_id, taken_at, counters, supplies, source, now, customer_id=customer_id)
    row = {
        "device_id": checked.device.id,
        "taken_at": checked.taken_at,
        "source": checked.source,
        "status": checked.status,
        "reason": checked.reason,
        "warnings": "\n".join(checked.warnings) or None,
        "entered_by": entered_by,
        "fingerprint": fingerprint(checked.device.id, checked.taken_at, checked.counters),
        "created_at": utcnow(),
    }
    # ON CONFLICT DO NOTHING: when the same reading arrives twice at once, the second finds the first (no error,
    # and no savepoint, which pysqlite would turn into a commit).
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[db.session.get_bind().dialect.name]
    reading_id = db.session.execute(
        insert(Reading).values(**row).on_conflict_do_nothing(index_elements=["fingerprint"]).returning(Reading.id)
    ).scalar()
    if reading_id is None:
        existing = db.session.scalars(sa.select(Reading).where(Reading.fingerprint == row["fingerprint"])).one()
        return Recorded(existing, False, existing.warning_list)
    reading = db.session.get(Reading, reading_id)
    reading.values = [ReadingValue(meter=meter, value=value) for meter, value in sorted(checked.counters.items())]
    reading.supplies = [SupplyLevel(colour=colour, percent=value) for colour, value in sorted(checked.supplies.items())]
    changes = {key: row[key] for key in ("device_id", "source", "status", "reason", "entered_by")}
    changes |= {"taken_at": checked.taken_at.isoformat(), "counters": checked.counters}
    audit.record("create", Reading.__tablename__, reading.id, changes)
    db.session.flush()
    if reading.status == "accepted":
        _emit_accepted(reading)
    return Recorded(reading, True, checked.warnings)


def _existing(device_id: Any, taken_at: Any, counters: Any) -> Reading | None:
    """The stored reading identical to this one, when the input is clean enough to tell."""
    check = Checker()
    device = _check_device(check, device_id)
    when = parse_taken_at(check, "taken_at", taken_at)
    if device is None or when is None or not isinstance(counters, dict):
        return None
    clean = {}
    for meter, value in counters.items():
        number = check.counter("counter", value, str(meter))
        if number is None:
            return None
        clean[meter] = number
    return db.session.scalar(sa.select(Reading).where(Reading.fingerprint == fingerprint(device.id, when, clean)))


def _emit_accepted(reading: Reading) -> None:
    # Sent after commit: a receiver then always finds the reading, and a preview that rolls back sends nothing.
    on_commit(
        functools.partial(
            reading_accepted.send, current_app._get_current_object(), reading_id=reading.id, device_id=reading.device_id
        )
    )


def approve_reading(reading: Reading, user_id: int | None) -> Reading:
    """Staff accept a reading held for review; it is checked again against what was recorded since."""
    if reading.status != "pending_review":
        fail("status", _("Only a reading waiting for review can be accepted."))
    lock_device(reading.device_id)
    checked = validate_reading(
        reading.device_id,
        reading.taken_at,
        reading.counters,
        reading.supply_levels,
        reading.source,
        now=reading.created_at,
        exclude_id=reading.id,
    )
    reading.status = "accepted"
    reading.reviewed_by = user_id
    reading.reviewed_at = utcnow()
    audit.record("reading.approved", "metering_reading", reading.id, {"reason": reading.reason or checked.reason})
    db.session.flush()
    _emit_accepted(reading)
    return reading


def reject_reading(reading: Reading, user_id: int | None, reason: str) -> Reading:
    """Staff reject a reading held for review, saying why."""
    if reading.status != "pending_review":
        fail("status", _("Only a reading waiting for review can be rejected."))
    reason = (reason or "").strip()
    if not reason:
        fail("reason", _("Say why the reading is rejected."))
    if len(reason) > 500:
        fail("reason", _("At most %(max)d characters.", max=500))
    reading.status = "rejected"
    reading.reason = reason
    reading.reviewed_by = user_id
    reading.reviewed_at = utcnow()
    audit.record("reading.rejected", "metering_reading", reading.id, {"reason": reason})
    db.session.flush()
    return reading


# Meter replacements


def record_replacement(
    device_id: Any,
    date: Any,
    meter: Any,
    old_final: Any,
    new_start: Any,
    entered_by: int | None = None,
    notes: str | None = None,
    today: dt.date | None = None,
) -> MeterReplacement:
    """Record that `meter` was replaced or reset on `date`; readings from that day on count from `new_start`."""
    check = Checker()
    device = _check_device(check, device_id)
    day = _parse_date(check, "date", date)
    today = today or clock.today()
    if day is not None and day > today:
        check.fail("date", _("The date is in the future."))
    meters = device.model.meter_codes if device is not None else []
    if device is not None and meter not in meters:
        check.fail(
            "meter",
            _(
                "Device %(serial)s has no %(meter)s meter (it has %(meters)s).",
                serial=device.serial,
                meter=str(meter)[:40],
                meters=", ".join(meters),
            ),
        )
    old = check.counter("old_final", old_final, str(meter))
    new = check.counter("new_start", new_start, str(meter))
    if not check.errors:
        lock_device(device.id)
        at = day_start(day)
        segment = _current_segment(device.id, meter, known_values(device.id, meter), at - dt.timedelta(seconds=1))
        before = [known for known in segment if known.at < at]
        if before and old < before[-1].value:
            check.fail(
                "old_final",
                _(
                    "The old meter's final value is lower than its last reading, %(last)s on %(date)s.",
                    last=before[-1].value,
                    date=show_time(before[-1].at),
                ),
            )
        taken = db.session.scalar(
            sa.select(MeterReplacement.id).where(
                MeterReplacement.device_id == device.id, MeterReplacement.meter == meter, MeterReplacement.date == day
            )
        )
        if taken is not None:
            check.fail("date", _("A replacement of this meter is already recorded on %(date)s.", date=day))
    check.raise_if_any()
    event = MeterReplacement(
        device_id=device.id,
        date=day,
        meter=meter,
        old_final=old,
        new_start=new,
        entered_by=entered_by,
        notes=(notes or "").strip()[:2000] or None,
    )
    db.session.add(event)
    db.session.flush()
    return event


def _parse_date(check: Checker, name: str, value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return local_date(value)
    if isinstance(value, dt.date):
        return value
    try:
        day = dt.date.fromisoformat(str(value).strip())
    except ValueError:
        check.fail(name, _("Not a date (YYYY-MM-DD): %(value)s", value=str(value)[:40]))
        return None
    if not 1990 <= day.year <= 2199:
        check.fail(name, _("The year must be between %(min)d and %(max)d.", min=1990, max=2199))
        return None
    return day
