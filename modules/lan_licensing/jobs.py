"""Periodic job: note the time (so a clock set back is noticed) and commit."""

from __future__ import annotations

from core.db import db
from modules.lan_licensing import installation


def watch_licence() -> None:
    """Hourly: keep the latest time seen moving forward."""
    installation.note_time(installation.get())
    db.session.commit()
