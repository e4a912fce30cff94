"""The dealer's alert: the consumption check's new flags, emailed once to the staff who handle consumables."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask_babel import force_locale

from core import clock
from core.auth.services import external_url, user_language
from core.db import db
from core.models import User
from core.outbox import queue_email
from core.permissions import STAFF_ROLES, has_permission
from modules.metering_inventory.consumption import CheckRow, new_flags, quantized, record_alerts

# Who handles the flags: staff who may edit the inventory (dealer_admin, back_office).
ALERT_PERMISSION = "inventory.edit"


def recipients() -> list[User]:
    users = db.session.scalars(
        sa.select(User).where(User.role.in_(STAFF_ROLES), User.active.is_(True)).order_by(User.id)
    ).all()
    return [user for user in users if has_permission(user, ALERT_PERMISSION)]


def _entry(row: CheckRow) -> dict:
    return {
        "customer": row.contract.customer.name,
        "serial": row.device.serial,
        "model": str(row.device.model),
        "colour": row.colour,
        "verdict": row.verdict,
        "start": row.start,
        "end": row.end,
        "pages": row.pages,
        "expected": None if row.expected is None else quantized(row.expected),
        "consumed": quantized(row.consumed),
        "ratio": None if row.ratio is None else quantized(row.ratio),
        "shipped": row.shipped,
    }


def send_new_flags(today: dt.date | None = None) -> int:
    """Email the flags not alerted (nor explained) yet to every recipient and remember them; the number of flags.

    The caller commits: the emails and the alerted flags are stored together, so a failed run sends nothing twice.
    """
    rows = new_flags(today or clock.today())
    if not rows:
        return 0
    records = record_alerts(rows)
    entries = [_entry(row) for row in rows]
    link = external_url("metering_inventory_check.index")
    for user in recipients():
        language = user_language(user)
        with force_locale(language):
            queue_email(
                [user.email],
                "metering_inventory/new_flags",
                language,
                {"name": user.name, "entries": entries, "link": link},
                dedupe_key=f"metering_inventory:flags:{records[0].id}:{user.id}",
            )
    return len(rows)
