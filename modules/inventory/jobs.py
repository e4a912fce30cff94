"""Inventory's background jobs: the daily reorder report emailed to the warehouse staff."""

from __future__ import annotations

from core.db import db
from modules.inventory import reorder


def reorder_report() -> int:
    """Email today's list of what to order (nothing on a day with nothing to order); once a day per recipient."""
    sent = reorder.send_reorder_report()
    db.session.commit()
    return sent
