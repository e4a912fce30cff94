"""The consumption check's periodic job: email the day's new flags to the dealer."""

from __future__ import annotations

from core import clock
from core.db import db
from modules.metering_inventory.alerts import send_new_flags


def email_new_flags() -> None:
    """Periodic job: the new flags of the default window (in the dealer's time zone), emailed and remembered."""
    send_new_flags(clock.today())
    db.session.commit()
