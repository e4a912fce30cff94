"""Reading tiers: accepted readings counted per licence year, the share of the tier used, warnings at 80 and 100."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from core.db import db
from core.models import User
from core.outbox import queue_email
from modules.lan_licensing import installation, state
from modules.lan_licensing.models import ReadingCount

THRESHOLDS = (80, 100)
EVALUATION_ID = "evaluation"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Usage:
    licence_id: str
    year_start: dt.date
    year_end: dt.date
    readings: int
    tier_name: str | None
    tier_readings: int | None

    @property
    def percent(self) -> int | None:
        return None if not self.tier_readings else self.readings * 100 // self.tier_readings

    @property
    def excess(self) -> int:
        return max(0, self.readings - self.tier_readings) if self.tier_readings else 0


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def licence_year(start: dt.date, today: dt.date) -> tuple[dt.date, dt.date]:
    """The licence year holding `today`: from an anniversary of `start` to the day before the next one."""
    years = max(0, today.year - start.year)
    while years > 0 and _add_years(start, years) > today:
        years -= 1
    first = _add_years(start, years)
    return first, _add_years(start, years + 1) - dt.timedelta(days=1)


def _period(now_state: state.LicenceState) -> tuple[str, dt.date, dt.date, str | None, int | None]:
    licence = now_state.licence
    if licence is None:
        first_day = now_state.ends_on - dt.timedelta(days=state.EVALUATION_DAYS - 1)
        start, end = licence_year(first_day, now_state.today)
        return EVALUATION_ID, start, end, None, None
    start, end = licence_year(licence.valid_from, now_state.today)
    return licence.licence_id, start, end, licence.tier_name, licence.tier_readings


def usage(now_state: state.LicenceState | None = None) -> Usage:
    """Readings of the current licence year against its tier."""
    now_state = now_state or state.current()
    licence_id, start, end, name, tier = _period(now_state)
    row = db.session.get(ReadingCount, (licence_id, start))
    return Usage(licence_id, start, end, row.readings if row else 0, name, tier)


def count_readings(count: int = 1) -> Usage:
    """Add `count` accepted readings to this licence year in the caller's transaction; warns once at 80 and 100."""
    now_state = state.compute()
    licence_id, start, end, name, tier = _period(now_state)
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[db.session.get_bind().dialect.name]
    db.session.execute(
        insert(ReadingCount)
        .values(licence_id=licence_id, year_start=start, readings=0)
        .on_conflict_do_nothing(index_elements=["licence_id", "year_start"])
    )
    total = db.session.execute(
        sa.update(ReadingCount)
        .where(ReadingCount.licence_id == licence_id, ReadingCount.year_start == start)
        .values(readings=ReadingCount.readings + count)
        .returning(ReadingCount.readings)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    result = Usage(licence_id, start, end, total, name, tier)
    if tier:
        for threshold in THRESHOLDS:
            if total - count < tier * threshold / 100 <= total:
                _warn(result, threshold)
    return result


def _warn(result: Usage, threshold: int) -> None:
    admins = db.session.scalars(
        sa.select(User).where(User.role == "dealer_admin", User.active.is_(True)).order_by(User.id)
    ).all()
    for admin in admins:
        queue_email(
            admin.email,
            "lan_licensing/tier_warning",
            admin.language,
            {
                "name": admin.name,
                "threshold": threshold,
                "readings": result.readings,
                "tier_name": result.tier_name,
                "tier_readings": result.tier_readings,
                "year_start": result.year_start,
                "year_end": result.year_end,
            },
            dedupe_key=f"lan_licensing:tier:{result.licence_id}:{result.year_start}:{threshold}:{admin.id}",
        )


def on_reading_recorded(sender, reading_id: int, device_id: int) -> None:
    """Receiver of core.signals.reading_recorded: count the reading in its own transaction (in a savepoint).

    Never raises: a reading is never refused, nor its sender shown an error, because of the dealer's licence.
    """
    try:
        with db.session.begin_nested():
            installation.get()
            count_readings(1)
    except Exception:  # counting must not break the reading's request
        log.exception("lan_licensing: reading %s could not be counted", reading_id)
