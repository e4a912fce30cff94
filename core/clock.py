"""The dealer's clock: business dates (today, an invoice's date, a reading's day) are in the dealer's time zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app

from core.db import utcnow
from core.settings import get_setting

TIMEZONE_SETTING = "core.timezone"
DEFAULT_TIMEZONE = "Europe/Rome"


def timezone() -> ZoneInfo:
    """The dealer's time zone (setting `core.timezone`, default Europe/Rome); an unknown name falls back, logged."""
    name = get_setting(TIMEZONE_SETTING, DEFAULT_TIMEZONE)
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        current_app.logger.warning("%s %r is not a known time zone; using %s", TIMEZONE_SETTING, name, DEFAULT_TIMEZONE)
        return ZoneInfo(DEFAULT_TIMEZONE)


def as_utc(value: dt.datetime) -> dt.datetime:
    """`value` in UTC; a naive value is UTC already (SQLite hands stored timestamps back naive)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def now() -> dt.datetime:
    """The dealer's wall-clock time, timezone-aware."""
    return utcnow().astimezone(timezone())


def today() -> dt.date:
    """The dealer's date: what "today" means for invoices, runs, readings and contracts."""
    return now().date()


def local_date(value: dt.datetime) -> dt.date:
    """The dealer's date at the moment `value` (aware, or naive UTC)."""
    return as_utc(value).astimezone(timezone()).date()


def day_start(day: dt.date) -> dt.datetime:
    """The moment (UTC) the dealer's `day` begins."""
    return dt.datetime.combine(day, dt.time(), timezone()).astimezone(dt.UTC)
