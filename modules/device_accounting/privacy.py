"""Privacy of job accounting: hidden document names, and old transactions anonymised with their daily rollups."""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa

from core import clock
from core.db import db
from modules.device_accounting import rollups
from modules.device_accounting.models import AccountingSettings, DailyUsage, LedgerEntry, Refund, Transaction
from modules.rentals.periods import add_months

log = logging.getLogger(__name__)

DOCUMENT_NAME_LENGTH = 500
# The columns that, with user_id, identify one row of DailyUsage.
ROLLUP_KEY = ("customer_id", "day", "cost_center_id", "device_id", "function", "paper_size")
ROLLUP_SUMS = ("jobs", "sides_bw", "sides_color", "sheets", "cost")


def names_hidden(customer_id: int) -> bool:
    """Does the customer hide document names (its accounting settings)?"""
    settings = db.session.get(AccountingSettings, customer_id)
    return settings is not None and bool(settings.hide_document_names)


def clean_document_name(name: str) -> str | None:
    """A document name as stored: without NUL characters, trimmed, at most 500 characters; None when empty."""
    return name.replace("\x00", "").strip()[:DOCUMENT_NAME_LENGTH] or None


def document_name_kept(customer_id: int, name: str | None) -> str | None:
    """The document name to store for a job of this customer: None when it hides names, else trimmed to 500."""
    if name is None or names_hidden(customer_id):
        return None
    return clean_document_name(str(name))


def anonymise_cutoff(months: int, now: dt.datetime) -> dt.date:
    """The dealer's first day that stays identified: jobs that ended before it (their day in the dealer's time zone)
    are `months` calendar months old (31 March less one month is 28 or 29 February)."""
    return add_months(clock.local_date(now), -months)


def anonymise_due(now: dt.datetime) -> int:
    """Anonymise, for each customer with a period set, the transactions that ended before now minus N months; return
    how many. The caller commits.

    A transaction loses its user, its document name and what leads back to the user (the quota that paid, the
    balance after it, the links of its ledger entries); cost center, device, function, counts and cost stay, and
    the daily rollup rows of those days move to user 0 (merged), so reports over cost centers, devices and
    functions keep their totals.
    """
    rows = db.session.execute(
        sa.select(AccountingSettings.customer_id, AccountingSettings.anonymise_after_months)
        .where(AccountingSettings.anonymise_after_months.is_not(None))
        .order_by(AccountingSettings.customer_id)
    ).all()
    total = 0
    for customer_id, months in rows:
        total += anonymise_customer(customer_id, anonymise_cutoff(months, now))
    return total


def anonymise_customer(customer_id: int, before: dt.date) -> int:
    """Anonymise the customer's transactions of the dealer's days before `before`; return how many changed."""
    cutoff = clock.day_start(before)
    old = sa.and_(
        Transaction.customer_id == customer_id, Transaction.ended_at < cutoff, Transaction.anonymised.is_(False)
    )
    old_ids = sa.select(Transaction.id).where(old)
    db.session.execute(
        sa.update(LedgerEntry)
        .where(
            sa.or_(
                LedgerEntry.transaction_id.in_(old_ids),
                LedgerEntry.refund_id.in_(sa.select(Refund.id).where(Refund.transaction_id.in_(old_ids))),
            )
        )
        .values(transaction_id=None, refund_id=None)
        .execution_options(synchronize_session=False)
    )
    changed = db.session.execute(
        sa.update(Transaction)
        .where(old)
        .values(user_id=None, document_name=None, quota_id=None, balance_after=None, anonymised=True)
        .execution_options(synchronize_session=False)
    ).rowcount
    merged = merge_daily_usage_users(customer_id, before)
    if merged:
        rollups.anonymised(customer_id, before)  # the monthly rollups of those days, summed again from them
    if changed or merged:
        log.info("customer %s: %d transactions anonymised, %d daily rows merged", customer_id, changed, merged)
    # The bulk statements bypassed the session: objects it still holds would show the old values.
    db.session.expire_all()
    return changed


def merge_daily_usage_users(customer_id: int, before: dt.date) -> int:
    """Move the customer's daily rollup rows of the days before `before` to user 0, adding them to the user-0 row
    of the same (day, cost center, device, function, paper size); return how many user rows were merged.

    Plain SQL on the table, three statements in the caller's transaction: add to the user-0 rows that exist, insert
    those missing, delete the user rows. The rows are locked first (PostgreSQL) and every statement works on the
    rows that existed then (ids up to the highest), so a job recorded meanwhile for one of those days is neither
    lost nor counted twice: it keeps its user row, which the next run merges.
    """
    table = DailyUsage.__table__
    user_rows = sa.and_(table.c.customer_id == customer_id, table.c.day < before, table.c.user_id != 0)
    locked = db.session.execute(sa.select(table.c.id).where(user_rows).with_for_update()).scalars().all()
    if not locked:
        return 0
    last_id = max(locked)
    source = table.alias("merged")
    from_users = sa.and_(source.c.user_id != 0, source.c.id <= last_id)
    same_key = sa.and_(*(source.c[name] == table.c[name] for name in ROLLUP_KEY))

    def summed(name: str):
        return sa.select(sa.func.coalesce(sa.func.sum(source.c[name]), 0)).where(same_key, from_users).scalar_subquery()

    db.session.execute(
        sa.update(table)
        .where(
            table.c.customer_id == customer_id,
            table.c.day < before,
            table.c.user_id == 0,
            sa.exists().where(same_key, from_users),
        )
        .values({name: table.c[name] + summed(name) for name in ROLLUP_SUMS})
    )
    target = table.alias("target")
    missing = (
        sa.select(
            *(source.c[name] for name in ROLLUP_KEY),
            sa.literal(0).label("user_id"),
            *(sa.func.sum(source.c[name]).label(name) for name in ROLLUP_SUMS),
        )
        .where(
            source.c.customer_id == customer_id,
            source.c.day < before,
            from_users,
            ~sa.exists().where(target.c.user_id == 0, *(target.c[name] == source.c[name] for name in ROLLUP_KEY)),
        )
        .group_by(*(source.c[name] for name in ROLLUP_KEY))
    )
    db.session.execute(sa.insert(table).from_select([*ROLLUP_KEY, "user_id", *ROLLUP_SUMS], missing))
    db.session.execute(sa.delete(table).where(user_rows, table.c.id <= last_id))
    return len(locked)
