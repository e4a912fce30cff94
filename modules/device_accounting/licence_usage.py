"""The licence's "devices for device accounting" in use: devices that recorded a job in the licence year."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask_babel import gettext as _

from core import clock
from core.context import ModuleContext
from core.db import db
from core.extension_points import LICENCE_USAGE, LicenceUsage
from modules.device_accounting.models import Transaction


def devices_in_use(start: dt.date, end: dt.date) -> int:
    """Distinct devices with at least one job that ended from `start` to `end` (the dealer's dates, inclusive)."""
    return db.session.scalar(
        sa.select(sa.func.count(sa.distinct(Transaction.device_id))).where(
            Transaction.ended_at >= clock.day_start(start),
            Transaction.ended_at < clock.day_start(end + dt.timedelta(days=1)),
        )
    )


class DeviceLicenceUsage:
    """core.extension_points.LICENCE_USAGE: the devices counted against the licence's devices for device accounting."""

    def licence_usage(self, start: dt.date, end: dt.date) -> list[LicenceUsage]:
        what = _("devices that recorded a job this licence year")
        return [LicenceUsage("devices", devices_in_use(start, end), what)]


def register(ctx: ModuleContext) -> None:
    ctx.register(LICENCE_USAGE, DeviceLicenceUsage())
