"""Device accounting's periodic jobs: quota periods, directory syncs, anonymisation, reports, held jobs, page logs."""

from __future__ import annotations

from core import clock
from core.db import db


def open_quota_periods() -> None:
    """Periodic job: open the new period of every quota whose period has started (dealer's time zone), committed."""
    from modules.device_accounting.quotas import open_due_periods

    open_due_periods(clock.now())
    db.session.commit()


def sync_directories() -> None:
    """Periodic job: sync the customers' directories (LDAP) that are due, each in its own transaction."""
    from modules.device_accounting.directory import sync_due

    sync_due(clock.now())


def sync_directory(directory_id: int) -> None:
    """Job: sync one customer's directory now (the "Sync now" buttons), committed; a failure recorded, then raised."""
    from modules.device_accounting.directory import run_sync

    run_sync(directory_id, raise_errors=True)


# An on-demand sync that failed is shown as failed (with the reason) rather than tried again behind the user's back.
sync_directory.job_retries = 0


def anonymise_transactions() -> None:
    """Periodic job: anonymise transactions older than each customer's setting, committed."""
    from modules.device_accounting.privacy import anonymise_due

    anonymise_due(clock.now())
    db.session.commit()


def send_monthly_reports() -> None:
    """Periodic job: email last month's usage report to the customer admins who asked for it, committed."""
    from modules.device_accounting.report_mail import send_due

    send_due(clock.today())
    db.session.commit()


def expire_held_jobs() -> None:
    """Periodic job: held print jobs past their customer's hours expire and their documents are deleted, committed."""
    from modules.device_accounting.held_jobs import expire_held_jobs as expire

    expire()
    db.session.commit()


def import_page_logs() -> None:
    """Periodic job: import the CUPS page logs of the print servers that name one (page_log.py commits each)."""
    from modules.device_accounting.page_log import import_configured_logs

    import_configured_logs()
