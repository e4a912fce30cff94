"""Receivables: the aging of open customer items at any date (by due date buckets) and the partner ledger."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import selectinload

from core import clock
from core.db import db
from core.models import Partner
from modules.accounting.models import Account, Entry, EntryLine
from modules.accounting.reports import LedgerRow

ZERO = Decimal("0.00")
# Days late: not yet due (0 or less), 1-30, 31-60, 61-90, over 90.
BUCKETS = ("not_due", "1_30", "31_60", "61_90", "over_90")
BUCKET_LABELS = {
    "not_due": _l("Not yet due"),
    "1_30": _l("1-30 days"),
    "31_60": _l("31-60 days"),
    "61_90": _l("61-90 days"),
    "over_90": _l("Over 90 days"),
}
_LIMITS = ((0, "not_due"), (30, "1_30"), (60, "31_60"), (90, "61_90"))


def days_late(due_date: dt.date, as_of: dt.date) -> int:
    return (as_of - due_date).days


def bucket_for(due_date: dt.date, as_of: dt.date) -> str:
    """The aging bucket of an item due on `due_date`, seen on `as_of` (due today is not yet late)."""
    late = days_late(due_date, as_of)
    for limit, bucket in _LIMITS:
        if late <= limit:
            return bucket
    return "over_90"


@dataclass
class AgingRow:
    """One customer's open items at the date: amounts per bucket, unapplied credits (payments on account, credit
    notes not matched: negative), and the total, which is the customer's receivable balance."""

    partner: Partner
    buckets: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(BUCKETS, ZERO))
    credits: Decimal = ZERO
    items: list = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum(self.buckets.values(), ZERO) + self.credits

    @property
    def overdue(self) -> Decimal:
        return sum((amount for bucket, amount in self.buckets.items() if bucket != "not_due"), ZERO)


@dataclass
class Aging:
    as_of: dt.date
    rows: list[AgingRow]

    @property
    def totals(self) -> dict[str, Decimal]:
        return {bucket: sum((row.buckets[bucket] for row in self.rows), ZERO) for bucket in BUCKETS}

    @property
    def credits(self) -> Decimal:
        return sum((row.credits for row in self.rows), ZERO)

    @property
    def total(self) -> Decimal:
        return sum((row.total for row in self.rows), ZERO)

    @property
    def overdue(self) -> Decimal:
        return sum((row.overdue for row in self.rows), ZERO)


def aging(as_of: dt.date | None = None, partner_id: int | None = None) -> Aging:
    """Every customer with open receivables at `as_of` (default today), by name, with its amounts per bucket.

    An item's bucket comes from its due date (the entry's date when it has none); what is open is what was not
    matched by that date (`reconcile.open_receivables`).
    """
    from modules.accounting.reconcile import open_receivables

    as_of = as_of or clock.today()
    items = open_receivables(partner_id=partner_id, as_of=as_of)
    partner_ids = {item.line.partner_id for item in items}
    partners = (
        {p.id: p for p in db.session.scalars(sa.select(Partner).where(Partner.id.in_(partner_ids)))}
        if partner_ids
        else {}
    )
    rows: dict[int, AgingRow] = {}
    for item in items:
        if item.residual == 0:
            continue
        row = rows.setdefault(item.line.partner_id, AgingRow(partners[item.line.partner_id]))
        row.items.append(item)
        if item.residual < 0:
            row.credits += item.residual
        else:
            bucket = bucket_for(item.due_date or item.date, as_of)
            row.buckets[bucket] += item.residual
    ordered = sorted(rows.values(), key=lambda row: (row.partner.name.casefold(), row.partner.id))
    return Aging(as_of, [row for row in ordered if row.total != 0 or row.items])


@dataclass
class PartnerLedger:
    """A partner's lines on the accounts that carry partners (receivable, payable), oldest first, with the balance
    (debit minus credit) running from the balance before `date_from`."""

    partner: Partner
    date_from: dt.date | None
    date_to: dt.date
    opening: Decimal
    rows: Sequence[LedgerRow]

    @property
    def closing(self) -> Decimal:
        return self.rows[-1].balance if self.rows else self.opening

    @property
    def debit(self) -> Decimal:
        return sum((row.line.debit for row in self.rows), ZERO)

    @property
    def credit(self) -> Decimal:
        return sum((row.line.credit for row in self.rows), ZERO)


def _partner_lines(partner_id: int):
    return (
        sa.select(EntryLine)
        .join(Entry, Entry.id == EntryLine.entry_id)
        .join(Account, Account.id == EntryLine.account_id)
        .where(EntryLine.partner_id == partner_id, Account.needs_partner.is_(True))
    )


def partner_ledger(partner: Partner, date_from: dt.date | None = None, date_to: dt.date | None = None) -> PartnerLedger:
    date_to = date_to or clock.today()
    opening = ZERO
    if date_from is not None:
        before = _partner_lines(partner.id).where(Entry.date < date_from).subquery()
        opening = Decimal(
            db.session.scalar(sa.select(sa.func.coalesce(sa.func.sum(before.c.debit - before.c.credit), 0))) or 0
        ).quantize(Decimal("0.01"))
    query = _partner_lines(partner.id).where(Entry.date <= date_to)
    if date_from is not None:
        query = query.where(Entry.date >= date_from)
    lines = db.session.scalars(
        query.order_by(Entry.date, Entry.id, EntryLine.id).options(
            selectinload(EntryLine.entry).selectinload(Entry.journal), selectinload(EntryLine.account)
        )
    ).all()
    rows, balance = [], opening
    for line in lines:
        balance += line.debit - line.credit
        rows.append(LedgerRow(line, balance))
    return PartnerLedger(partner, date_from, date_to, opening, rows)
