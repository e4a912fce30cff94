"""Recording readings through any channel, and staff review of the readings held for it."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy.dialects import postgresql, sqlite

from core import audit, clock
from core.db import db, on_commit, utcnow
from core.signals import reading_accepted, reading_recorded
from core.validation import Checker, fail
from modules.metering import campaigns
from modules.metering.history import fingerprint
from modules.metering.models import Reading, ReadingValue, SupplyLevel
from modules.metering.validation import check_device, parse_taken_at, validate_reading
from modules.rentals.models import Device


@dataclass
class Recorded:
    """What `record_reading` did: the reading, whether it is new (False: the same reading was already stored)."""

    reading: Reading
    created: bool
    warnings: list[str]


def lock_device(device_id: Any) -> None:
    """Hold the device's row until the caller commits, so its readings are checked and stored one at a time.

    PostgreSQL: SELECT ... FOR UPDATE. SQLite has one writer at a time, but pysqlite begins the transaction only at
    the first write: a no-op UPDATE takes the write lock before the history is read, not after.
    """
    device = check_device({}, device_id)
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
    campaigns.answer_reading(reading)
    if reading.status == "accepted":
        _emit_accepted(reading)
    return Recorded(reading, True, checked.warnings)


def _existing(device_id: Any, taken_at: Any, counters: Any) -> Reading | None:
    """The stored reading identical to this one, when the input is clean enough to tell."""
    check = Checker()
    device = check_device(check, device_id)
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
    # reading_recorded now, for counts that must commit with the reading (the licence's reading tier);
    # reading_accepted after commit: a receiver then always finds the reading, and a preview that rolls back sends
    # nothing.
    reading_recorded.send(current_app._get_current_object(), reading_id=reading.id, device_id=reading.device_id)
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
        clock.as_utc(reading.taken_at),  # stored UTC; SQLite gives it back naive, which would read as local time
        reading.counters,
        reading.supply_levels,
        reading.source,
        now=clock.as_utc(reading.created_at),
        exclude_id=reading.id,
    )
    reading.status = "accepted"
    reading.reviewed_by = user_id
    reading.reviewed_at = utcnow()
    audit.record("reading.approved", "metering_reading", reading.id, {"reason": reading.reason or checked.reason})
    db.session.flush()
    campaigns.answer_reading(reading)
    _emit_accepted(reading)
    return reading


def reject_reading(reading: Reading, user_id: int | None, reason: str) -> Reading:
    """Staff reject a reading held for review, saying why; a request it completed opens again (see
    `campaigns.release_reading`), in the caller's transaction."""
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
    campaigns.release_reading(reading, clock.today())
    return reading
