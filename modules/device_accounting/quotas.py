"""Quotas and balances: periods (reset, rollover with cap), the ledger every balance is the sum of, warnings."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from core import clock
from core.db import db
from core.models import User
from core.outbox import queue_email
from core.validation import Checker, ValidationError
from modules.device_accounting.models import (
    QUOTA_MODES,
    QUOTA_PERIODS,
    Balance,
    CostCenter,
    LedgerEntry,
    PrintUser,
    Quota,
    Transaction,
)
from modules.rentals.validation import MAX_PAGES, check_customer

# Amounts of a quota, a cap, an overdraft or one adjustment: below ten million (a typing mistake beyond).
AMOUNT_LIMIT = Decimal(10_000_000)
# What a balance column (NUMERIC(14, 4)) holds.
BALANCE_LIMIT = Decimal(10) ** 10
WARNING_TEMPLATE = "device_accounting/quota_warning"


# --- periods -----------------------------------------------------------------------------------------------------


def period_start(period: str, day: dt.date) -> dt.date:
    """The first day of the period containing `day`: the 1st of its month, or the Monday of its week."""
    if period == "weekly":
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def next_period_start(period: str, start: dt.date) -> dt.date:
    """The first day of the period after the one starting (or running) on `start`."""
    if period == "weekly":
        return period_start("weekly", start) + dt.timedelta(days=7)
    return (start.replace(day=1) + dt.timedelta(days=32)).replace(day=1)


def period_end(period: str, start: dt.date) -> dt.date:
    """The last day of the period starting on `start`."""
    return next_period_start(period, start) - dt.timedelta(days=1)


def opening_amount(quota: Quota, closing: Decimal) -> Decimal:
    """What a new period opens with after one that closed at `closing`.

    reset: A, but a negative balance (overdraft used) is carried: A + closing. rollover: min(closing + A, C), the
    negative balance carried the same way.
    """
    if quota.mode == "rollover":
        return min(closing + quota.amount, quota.rollover_cap)
    return quota.amount + min(closing, Decimal(0))


# --- saving a quota ----------------------------------------------------------------------------------------------


def _holder(check: Checker, customer_id: int, data: dict, quota: Quota | None) -> tuple[int | None, int | None]:
    user_id, center_id = data.get("user_id"), data.get("cost_center_id")
    if quota is not None:
        if ("user_id" in data and user_id != quota.user_id) or (
            "cost_center_id" in data and center_id != quota.cost_center_id
        ):
            check.fail("user_id" if "user_id" in data else "cost_center_id", _("A quota cannot change hands."))
        return quota.user_id, quota.cost_center_id
    if (user_id is None) == (center_id is None):
        check.fail("user_id", _("A quota belongs to one print user or to one shared cost center."))
        return None, None
    if user_id is not None:
        number = check.integer("user_id", user_id, 1, MAX_PAGES)
        user = db.session.get(PrintUser, number) if number is not None else None
        if number is not None and (user is None or user.customer_id != customer_id):
            check.fail("user_id", _("This customer has no print user with id %(id)s.", id=number))
        elif user is not None and db.session.scalar(sa.select(Quota.id).where(Quota.user_id == user.id)):
            check.fail("user_id", _("%(user)s already has a quota.", user=user))
        return number, None
    number = check.integer("cost_center_id", center_id, 1, MAX_PAGES)
    center = db.session.get(CostCenter, number) if number is not None else None
    if number is not None and (center is None or center.customer_id != customer_id):
        check.fail("cost_center_id", _("This customer has no cost center with id %(id)s.", id=number))
    elif center is not None and not center.shared:
        check.fail("cost_center_id", _("Only a shared cost center has a quota of its own."))
    elif center is not None and db.session.scalar(sa.select(Quota.id).where(Quota.cost_center_id == center.id)):
        check.fail("cost_center_id", _("%(center)s already has a quota.", center=center))
    return None, number


def save_quota(customer_id: int, data: dict, quota: Quota | None = None) -> Quota:
    """Create or change a quota: user_id | cost_center_id (a shared one), period, amount, mode, rollover_cap,
    overdraft, warning_percent. Creating one opens its first period (the one running today) with the full amount;
    a change applies from the next period (use an adjustment to change the running balance)."""
    check = Checker()
    if not isinstance(data, dict):
        raise ValidationError({"amount": _("Give the quota as an object.")})
    customer = check_customer(check, "customer_id", customer_id, required=True)
    if quota is not None and customer is not None and quota.customer_id != customer.id:
        check.fail("customer_id", _("A quota cannot move to another customer."))
    user_id, center_id = _holder(check, customer_id, data, quota) if customer is not None else (None, None)

    def given(key: str, default: Any) -> Any:
        return data[key] if key in data else (getattr(quota, key) if quota is not None else default)

    period = check.choice("period", given("period", "monthly"), QUOTA_PERIODS)
    mode = check.choice("mode", given("mode", "reset"), QUOTA_MODES)
    amount = check.decimal("amount", given("amount", None), 4, AMOUNT_LIMIT)
    cap = check.decimal("rollover_cap", given("rollover_cap", None), 4, AMOUNT_LIMIT, required=mode == "rollover")
    overdraft = check.decimal("overdraft", given("overdraft", Decimal(0)), 4, AMOUNT_LIMIT)
    warning = check.integer("warning_percent", given("warning_percent", 80), 1, 100)
    if amount is not None and cap is not None and cap < amount:
        check.fail("rollover_cap", _("The rollover cap must be at least the amount of each period."))
    check.raise_if_any()
    creating = quota is None
    if creating:
        quota = Quota(customer_id=customer_id, user_id=user_id, cost_center_id=center_id)
        db.session.add(quota)
    quota.period, quota.mode, quota.amount = period, mode, amount
    quota.rollover_cap, quota.overdraft, quota.warning_percent = cap, overdraft, warning
    db.session.flush()
    if creating:
        _open_first(quota, clock.today())
    return quota


# --- balances ----------------------------------------------------------------------------------------------------


def paying_quota(user: PrintUser | None, cost_center: CostCenter | None) -> Quota | None:
    """The quota a job draws on: the cost center's own when it is a shared account with a quota, else the user's."""
    if cost_center is not None and cost_center.shared:
        quota = db.session.scalar(sa.select(Quota).where(Quota.cost_center_id == cost_center.id))
        if quota is not None:
            return quota
    if user is None:
        return None
    return db.session.scalar(sa.select(Quota).where(Quota.user_id == user.id))


def _open_first(quota: Quota, today: dt.date) -> Balance:
    start = period_start(quota.period, today)
    balance = Balance(quota_id=quota.id, period_start=start, opening=quota.amount, balance=quota.amount)
    db.session.add(balance)
    db.session.flush()
    db.session.add(LedgerEntry(balance_id=balance.id, period_start=start, kind="opening", amount=quota.amount))
    return balance


def _take_write_lock() -> None:
    """SQLite: begin the write transaction (BEGIN IMMEDIATE) before reading a balance to change, so no other writer
    changes it between the read and the write. PostgreSQL locks the row itself (SELECT ... FOR UPDATE)."""
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.begin_nested().commit()


def _locked(quota: Quota, today: dt.date) -> Balance:
    """The quota's balance row, locked until commit and read afresh; its first period opened if it has none."""
    _take_write_lock()
    balance = db.session.scalars(
        sa.select(Balance)
        .where(Balance.quota_id == quota.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    return balance if balance is not None else _open_first(quota, today)


def _open_due(quota: Quota, balance: Balance, today: dt.date) -> int:
    """Open every period that has started since the balance's own, in turn; the number opened."""
    current = period_start(quota.period, today)
    opened = 0
    while balance.period_start < current:
        start = next_period_start(quota.period, balance.period_start)
        amount = opening_amount(quota, balance.balance)
        db.session.add(LedgerEntry(balance_id=balance.id, period_start=start, kind="opening", amount=amount))
        balance.period_start, balance.opening, balance.balance = start, amount, amount
        opened += 1
    return opened


def _today(now: dt.datetime | None) -> dt.date:
    return clock.local_date(now) if now is not None else clock.today()


def current_balance(quota: Quota, now: dt.datetime | None = None) -> Balance:
    """The quota's balance in the period running at `now` (default: now), opening the periods due first; the row
    stays locked until the caller's transaction ends."""
    today = _today(now)
    balance = _locked(quota, today)
    _open_due(quota, balance, today)
    return balance


def paying_balance(
    user: PrintUser, cost_center: CostCenter | None, now: dt.datetime | None = None
) -> tuple[Quota | None, Decimal | None]:
    """The quota a job draws on (as paying_quota) and its balance in the period running at `now`, in one query and
    without a lock: what the last commit left, so a login never waits for a batch charging the same balance. Only
    when a period is due (or none is open yet) does it open them through current_balance, which locks."""
    holder = Quota.user_id == user.id
    if cost_center is not None and cost_center.shared:
        holder = sa.or_(holder, Quota.cost_center_id == cost_center.id)
    found = db.session.execute(
        sa.select(Quota, Balance.period_start, Balance.balance)
        .join(Balance, Balance.quota_id == Quota.id, isouter=True)
        .where(holder)
        .order_by(Quota.cost_center_id.is_(None))  # the shared cost center's own quota first
        .limit(1)
    ).first()
    if found is None:
        return None, None
    quota, start, amount = found
    if start is not None and start >= period_start(quota.period, _today(now)):
        return quota, amount
    return quota, current_balance(quota, now).balance


def recompute(balance: Balance) -> Decimal:
    """The balance from the ledger alone: its period's opening plus every record after it in that period."""
    total = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.balance_id == balance.id, LedgerEntry.period_start == balance.period_start
        )
    )
    return Decimal(total).quantize(Decimal("0.0001"))


def _move(balance: Balance, amount: Decimal, field: str) -> Decimal:
    new = balance.balance + amount
    if abs(new) >= BALANCE_LIMIT:
        raise ValidationError({field: _("This would take the balance beyond what can be stored.")})
    return new


def charge(quota: Quota, tx: Transaction, now: dt.datetime | None = None) -> Balance:
    """Lower the quota's current balance by the transaction's cost (below the overdraft too: a job printed is
    recorded, never dropped), note it on the transaction, and email the warning when spending passes W%."""
    balance = current_balance(quota, now)
    new = _move(balance, -tx.cost, "sides_bw")
    if tx.cost:
        db.session.add(
            LedgerEntry(
                balance_id=balance.id,
                period_start=balance.period_start,
                kind="charge",
                amount=-tx.cost,
                transaction_id=tx.id,
            )
        )
    balance.balance = new
    tx.quota_id, tx.balance_after = quota.id, new
    _warn_if_due(quota, balance)
    return balance


def credit(
    quota: Quota, amount: Decimal, kind: str, *, transaction_id=None, refund_id=None, reason=None, actor_id=None
) -> LedgerEntry:
    """Raise (or, for a negative adjustment, lower) the quota's current balance by `amount` with a ledger record."""
    balance = current_balance(quota)
    balance.balance = _move(balance, amount, "amount")
    entry = LedgerEntry(
        balance_id=balance.id,
        period_start=balance.period_start,
        kind=kind,
        amount=amount,
        transaction_id=transaction_id,
        refund_id=refund_id,
        reason=reason,
        actor_id=actor_id,
    )
    db.session.add(entry)
    db.session.flush()
    return entry


def _signed_amount(check: Checker, field: str, value: Any) -> Decimal | None:
    """A positive or negative amount of money with at most 4 places, not zero."""
    negative = False
    if isinstance(value, str) and value.strip().startswith("-"):
        negative, value = True, value.strip()[1:]
    elif isinstance(value, Decimal | int) and not isinstance(value, bool) and value < 0:
        negative, value = True, -value
    number = check.decimal(field, value, 4, AMOUNT_LIMIT)
    if number is not None and number == 0:
        check.fail(field, _("An adjustment of zero changes nothing."))
        return None
    return -number if negative and number is not None else number


def adjust(quota: Quota, amount: Decimal, reason: str, actor: User | None) -> LedgerEntry:
    """A manual top-up (positive) or correction (negative) of the current balance, with who and why."""
    check = Checker()
    number = _signed_amount(check, "amount", amount)
    text = check.text("reason", reason, 500, required=True)
    check.raise_if_any()
    return credit(quota, number, "adjustment", reason=text, actor_id=actor.id if actor else None)


def open_due_periods(now: dt.datetime) -> int:
    """Open the new period of every balance whose period has ended (the periodic job); the number of periods opened.
    Balances not reached here open lazily when touched."""
    today = _today(now)
    due = (
        sa.select(Quota.id)
        .join(Balance, Balance.quota_id == Quota.id, isouter=True)
        .where(
            sa.or_(
                Balance.id.is_(None),
                sa.and_(Quota.period == "monthly", Balance.period_start < period_start("monthly", today)),
                sa.and_(Quota.period == "weekly", Balance.period_start < period_start("weekly", today)),
            )
        )
        .order_by(Quota.id)
    )
    opened = 0
    for quota_id in db.session.scalars(due).all():
        quota = db.session.get(Quota, quota_id)
        balance = _locked(quota, today)
        opened += _open_due(quota, balance, today)
    return opened


# --- the warning ---------------------------------------------------------------------------------------------------


def spent_in_period(balance: Balance) -> Decimal:
    """What the period's jobs cost, less their refunds (adjustments are not spending)."""
    total = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.balance_id == balance.id,
            LedgerEntry.period_start == balance.period_start,
            LedgerEntry.kind.in_(("charge", "refund")),
        )
    )
    return -Decimal(total)


def _warn_if_due(quota: Quota, balance: Balance) -> None:
    """Email the user once per period when the period's spending reaches W% of what it opened with."""
    if quota.user_id is None or balance.warned_period == balance.period_start:
        return
    user = db.session.get(PrintUser, quota.user_id)
    if user is None or not user.email:
        return
    db.session.flush()
    spent = spent_in_period(balance)
    if spent <= 0 or spent * 100 < balance.opening * quota.warning_percent:
        return
    balance.warned_period = balance.period_start
    queue_email(
        user.email,
        WARNING_TEMPLATE,
        user.language or user.customer.language,
        {
            "user": user,
            "name": user.full_name or user.username,
            "spent": spent,
            "opening": balance.opening,
            "balance": balance.balance,
            "overdraft": quota.overdraft,
            # How much of the opening is used (the subject); W% itself when the period opened with nothing.
            "percent": int(spent * 100 / balance.opening) if balance.opening > 0 else quota.warning_percent,
            "period_start": balance.period_start,
            "period_end": period_end(quota.period, balance.period_start),
            "next_start": next_period_start(quota.period, balance.period_start),
        },
        dedupe_key=f"device_accounting:quota_warning:{balance.id}:{balance.period_start.isoformat()}",
    )
