"""Meter replacements and resets: readings from that day on count from the new meter's start."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from core import clock
from core.clock import day_start, local_date
from core.db import db
from core.validation import Checker
from modules.metering.history import current_segment, known_values, show_time
from modules.metering.models import MeterReplacement
from modules.metering.readings import lock_device
from modules.metering.validation import check_device


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
    device = check_device(check, device_id)
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
        segment = current_segment(device.id, meter, known_values(device.id, meter), at - dt.timedelta(seconds=1))
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
