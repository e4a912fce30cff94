"""Accounting reports from the posted entries: trial balance, general ledger, balance sheet, income statement.

Every figure is a sum of entry lines up to (or between) dates, one grouped query per report. Balances are signed by
the account's side: assets and expenses debit minus credit, liabilities, equity and income credit minus debit, so a
report reads in positive numbers where the books are as expected. There is no year-end closing entry: the balance
sheet shows the result of every year not yet carried to equity on its own line, which keeps it balanced at any date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from core import clock
from core.db import db
from core.validation import fail
from modules.accounting.models import Account, Entry, EntryLine, Journal

ZERO = Decimal("0.00")
DEBIT_SIDE = ("asset", "expense")
BALANCE_SHEET_TYPES = ("asset", "liability", "equity")


def signed(account_type: str, debit: Decimal, credit: Decimal) -> Decimal:
    """The balance on the account's own side (assets, expenses: debit - credit; the others: credit - debit)."""
    return debit - credit if account_type in DEBIT_SIDE else credit - debit


@dataclass(frozen=True)
class AccountRow:
    account: Account
    debit: Decimal
    credit: Decimal

    @property
    def balance(self) -> Decimal:
        """Debit minus credit: positive is a debit balance."""
        return self.debit - self.credit

    @property
    def amount(self) -> Decimal:
        """The balance on the account's own side."""
        return signed(self.account.type, self.debit, self.credit)


def _sums(date_to: dt.date, date_from: dt.date | None = None) -> dict[int, tuple[Decimal, Decimal]]:
    """(debit, credit) per account id over the entries dated from `date_from` (or the beginning) to `date_to`."""
    query = (
        sa.select(EntryLine.account_id, sa.func.sum(EntryLine.debit), sa.func.sum(EntryLine.credit))
        .join(Entry, Entry.id == EntryLine.entry_id)
        .where(Entry.date <= date_to)
        .group_by(EntryLine.account_id)
    )
    if date_from is not None:
        query = query.where(Entry.date >= date_from)
    return {
        account_id: (Decimal(debit or 0).quantize(ZERO), Decimal(credit or 0).quantize(ZERO))
        for account_id, debit, credit in db.session.execute(query)
    }


def _rows(sums: dict[int, tuple[Decimal, Decimal]], types: Iterable[str] | None = None) -> list[AccountRow]:
    """The postable accounts (active ones, and inactive ones with movements), by code, with their sums."""
    query = sa.select(Account).where(Account.postable.is_(True)).order_by(Account.code)
    if types is not None:
        query = query.where(Account.type.in_(tuple(types)))
    rows = []
    for account in db.session.scalars(query):
        debit, credit = sums.get(account.id, (ZERO, ZERO))
        if account.active or debit or credit:
            rows.append(AccountRow(account, debit, credit))
    return rows


@dataclass
class TrialBalance:
    as_of: dt.date
    rows: list[AccountRow]

    @property
    def total_debit(self) -> Decimal:
        return sum((row.debit for row in self.rows), ZERO)

    @property
    def total_credit(self) -> Decimal:
        return sum((row.credit for row in self.rows), ZERO)

    @property
    def balanced(self) -> bool:
        return self.total_debit == self.total_credit


def trial_balance(as_of: dt.date | None = None, with_zero: bool = False) -> TrialBalance:
    """Every account's debits, credits and balance over the entries up to `as_of` (default today); the totals are
    equal when the books are. Accounts without movements only `with_zero`."""
    as_of = as_of or clock.today()
    rows = _rows(_sums(as_of))
    if not with_zero:
        rows = [row for row in rows if row.debit or row.credit]
    return TrialBalance(as_of, rows)


@dataclass(frozen=True)
class LedgerRow:
    """A line of a ledger (an account's, a partner's) with the balance running after it, debit minus credit."""

    line: EntryLine
    balance: Decimal

    @property
    def entry(self) -> Entry:
        return self.line.entry


@dataclass
class GeneralLedger:
    account: Account
    date_from: dt.date
    date_to: dt.date
    opening: Decimal
    rows: list[LedgerRow] = field(default_factory=list)

    @property
    def total_debit(self) -> Decimal:
        return sum((row.line.debit for row in self.rows), ZERO)

    @property
    def total_credit(self) -> Decimal:
        return sum((row.line.credit for row in self.rows), ZERO)

    @property
    def closing(self) -> Decimal:
        return self.opening + self.total_debit - self.total_credit


def period(date_from: dt.date | None, date_to: dt.date | None) -> tuple[dt.date, dt.date]:
    """The dates of a report over a period: by default from the first of January of `date_to`'s year to today."""
    date_to = date_to or clock.today()
    date_from = date_from or date_to.replace(month=1, day=1)
    if date_from > date_to:
        fail("from", _("The period ends before it starts."))
    return date_from, date_to


def general_ledger(account: Account, date_from: dt.date | None = None, date_to: dt.date | None = None) -> GeneralLedger:
    """The account's lines between the dates in date and number order, with the balance before them and the running
    balance after each (debit minus credit)."""
    date_from, date_to = period(date_from, date_to)
    before = db.session.execute(
        sa.select(sa.func.sum(EntryLine.debit), sa.func.sum(EntryLine.credit))
        .join(Entry, Entry.id == EntryLine.entry_id)
        .where(EntryLine.account_id == account.id, Entry.date < date_from)
    ).one()
    opening = (Decimal(before[0] or 0) - Decimal(before[1] or 0)).quantize(ZERO)
    lines = db.session.scalars(
        sa.select(EntryLine)
        .join(Entry, Entry.id == EntryLine.entry_id)
        .join(Journal, Journal.id == Entry.journal_id)
        .where(EntryLine.account_id == account.id, Entry.date >= date_from, Entry.date <= date_to)
        .options(selectinload(EntryLine.entry).selectinload(Entry.journal), selectinload(EntryLine.partner))
        .order_by(Entry.date, Journal.code, Entry.year, Entry.sequence_number, EntryLine.id)
    ).all()
    report = GeneralLedger(account, date_from, date_to, opening)
    running = opening
    for line in lines:
        running += line.debit - line.credit
        report.rows.append(LedgerRow(line, running))
    return report


@dataclass
class Section:
    type: str
    rows: list[AccountRow]

    @property
    def total(self) -> Decimal:
        return sum((row.amount for row in self.rows), ZERO)


@dataclass
class BalanceSheet:
    as_of: dt.date
    assets: Section
    liabilities: Section
    equity: Section
    result: Decimal  # income minus expenses of every entry up to the date (not yet carried to equity)

    @property
    def total_assets(self) -> Decimal:
        return self.assets.total

    @property
    def total_liabilities_and_equity(self) -> Decimal:
        return self.liabilities.total + self.equity.total + self.result

    @property
    def balanced(self) -> bool:
        return self.total_assets == self.total_liabilities_and_equity


def _section(sums: dict[int, tuple[Decimal, Decimal]], account_type: str) -> Section:
    """The accounts of `account_type` whose balance is not zero."""
    return Section(account_type, [row for row in _rows(sums, (account_type,)) if row.amount])


def balance_sheet(as_of: dt.date | None = None) -> BalanceSheet:
    """Assets, liabilities and equity at `as_of`, with the result not yet carried to equity: it balances."""
    as_of = as_of or clock.today()
    sums = _sums(as_of)
    income, expense = _section(sums, "income"), _section(sums, "expense")
    return BalanceSheet(
        as_of,
        assets=_section(sums, "asset"),
        liabilities=_section(sums, "liability"),
        equity=_section(sums, "equity"),
        result=income.total - expense.total,
    )


@dataclass
class IncomeStatement:
    date_from: dt.date
    date_to: dt.date
    income: Section
    expenses: Section

    @property
    def result(self) -> Decimal:
        """Profit (positive) or loss (negative)."""
        return self.income.total - self.expenses.total


def income_statement(date_to: dt.date | None = None, date_from: dt.date | None = None) -> IncomeStatement:
    """Income and expenses from `date_from` (default the first of January of `date_to`'s year) to `date_to`."""
    date_from, date_to = period(date_from, date_to)
    sums = _sums(date_to, date_from)
    return IncomeStatement(date_from, date_to, _section(sums, "income"), _section(sums, "expense"))
