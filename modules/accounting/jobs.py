"""Accounting background jobs: the daily dunning run (reminders for overdue invoices, through the outbox)."""

from __future__ import annotations

from core.context import ModuleContext
from core.db import db
from modules.accounting import dunning


def send_reminders() -> int:
    """Send today's payment reminders (none twice at one step for the same invoices); how many letters went out."""
    letters = dunning.run_dunning()
    db.session.commit()
    return len(letters)


def register(ctx: ModuleContext) -> None:
    # 06:00 UTC: the reminders are in the customers' inboxes when their working day starts in Europe.
    ctx.add_periodic_job(send_reminders, "0 6 * * *")
