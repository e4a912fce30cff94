"""Metering's periodic job: each morning, the day's reading requests, reminders and overdue requests."""

from __future__ import annotations

from core.db import db, utcnow
from modules.metering.campaigns import run_campaigns
from modules.metering.services import local_date


def send_reading_requests() -> None:
    """Periodic job: run today's reading campaign (in the dealer's time zone) and commit."""
    run_campaigns(local_date(utcnow()))
    db.session.commit()
