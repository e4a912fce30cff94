"""Metering's periodic job: each morning, the day's reading requests, reminders and overdue requests."""

from __future__ import annotations

from core import clock
from core.db import db
from modules.metering.campaigns import run_campaigns


def send_reading_requests() -> None:
    """Periodic job: run today's reading campaign (in the dealer's time zone) and commit."""
    run_campaigns(clock.today())
    db.session.commit()
