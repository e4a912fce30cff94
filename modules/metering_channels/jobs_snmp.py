"""The periodic SNMP poll: runs every 5 minutes and polls each server-polled device once per polling hour."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from core import clock
from core.db import db
from core.settings import get_setting
from modules.metering_channels import snmp
from modules.metering_channels.models import SnmpDevice

DEFAULT_HOURS = [6, 18]


def latest_slot(now: dt.datetime | None = None, hours=None) -> dt.datetime | None:
    """The latest polling hour (`metering_channels.snmp_hours`, dealer-local) at or before `now`, in UTC; None
    without polling hours."""
    now = now or clock.now()
    hours = hours if hours is not None else get_setting("metering_channels.snmp_hours", DEFAULT_HOURS)
    zone = clock.timezone()
    local = clock.as_utc(now).astimezone(zone)
    slots = [
        dt.datetime.combine(day, dt.time(int(hour)), tzinfo=zone)
        for day in (local.date(), local.date() - dt.timedelta(days=1))
        for hour in set(hours or [])
        if 0 <= int(hour) <= 23
    ]
    past = [slot for slot in slots if slot <= local]
    return clock.as_utc(max(past)) if past else None


def due_ids(now: dt.datetime | None = None, hours=None) -> list[int]:
    """The device ids the server polls whose last poll is older than the latest polling hour (or never polled): a
    late or skipped run still polls the slot, a second run in the same slot polls nothing again."""
    slot = latest_slot(now, hours)
    if slot is None:
        return []
    rows = db.session.execute(
        sa.select(SnmpDevice.device_id, SnmpDevice.last_polled_at)
        .where(SnmpDevice.active.is_(True), SnmpDevice.agent_customer_id.is_(None))
        .order_by(SnmpDevice.id)
    )
    return [device_id for device_id, polled in rows if polled is None or clock.as_utc(polled) < slot]


def poll_due_devices() -> None:
    """Poll the devices due (see `due_ids`); each device's poll is committed on its own."""
    ids = due_ids()
    if ids:
        snmp.poll_devices(ids, commit=True)
