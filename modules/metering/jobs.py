"""Metering's periodic jobs: the day's estimated readings, reading requests, reminders and overdue requests."""

from __future__ import annotations

from core import clock
from core.db import db
from modules.metering.campaigns import run_campaigns
from modules.metering.estimates import create_due_estimates


def estimate_due_readings() -> None:
    """Periodic job: today's due estimates (in the dealer's time zone), committed."""
    create_due_estimates(clock.today())
    db.session.commit()


def send_reading_requests() -> None:
    """Periodic job: run today's reading campaign (in the dealer's time zone) and commit."""
    run_campaigns(clock.today())
    db.session.commit()
