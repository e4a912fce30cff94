"""Reconciliation: what is still open on receivable lines, matching debits (invoices) with credits (payments, credit
notes), undoing a match, and each invoice's payment state for invoicing's pages (core's PAYMENT_STATUS point).

A line's residual is signed like the line: a debit's is positive (still to be collected), a credit's negative (still
to be set off or refunded). A match counts as of a date once both of its lines' entries are dated by then, so the
state of an invoice, the open items and the aging can be read at any past date.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from flask_babel import format_currency
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import aliased

from core import clock
from core.db import db
from core.extension_points import PaymentStatus
from core.validation import Checker, fail
from modules.accounting import settings
from modules.accounting.models import ZERO, Account, Entry, EntryLine, Match, SepaBatchItem
from modules.invoicing.models import Invoice

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("1e12")  # Numeric(14, 2)

STATE_LABELS = {
    "paid": _l("Paid"),
    "partial": _l("Partly paid"),
    "overdue": _l("Overdue"),
    "open": _l("To be paid"),
    "collecting": _l("Being collected by direct debit"),
}
CREDIT_NOTE_LABELS = {"paid": _l("Set off"), "partial": _l("Partly set off"), "open": _l("Credit to set off")}


@dataclass(frozen=True)
class OpenItem:
    """A receivable line with something still open: an invoice's debit, or a payment's or credit note's credit."""

    line: EntryLine
    invoice_id: int | None
    number: str  # the invoice's number, else the entry's reference, else its number
    date: dt.date
    due_date: dt.date | None
    amount: Decimal  # signed: debit - credit
    residual: Decimal  # signed, what is still open of `amount`


def _matched_sums(as_of: dt.date | None) -> sa.Subquery:
    """Per line: the amount matched on it, counting a match once the other line's entry is dated by `as_of`."""
    other = aliased(EntryLine)
    other_entry = aliased(Entry)
    sides = []
    for own, opposite in ((Match.debit_line_id, Match.credit_line_id), (Match.credit_line_id, Match.debit_line_id)):
        query = sa.select(own.label("line_id"), Match.amount.label("amount"))
        if as_of is not None:
            query = (
                query.join(other, other.id == opposite)
                .join(other_entry, other_entry.id == other.entry_id)
                .where(other_entry.date <= as_of)
            )
        sides.append(query)
    both = sa.union_all(*sides).subquery()
    return sa.select(both.c.line_id, sa.func.sum(both.c.amount).label("matched")).group_by(both.c.line_id).subquery()


def _residual_of(line: EntryLine, matched: Decimal) -> Decimal:
    if line.debit > 0:
        return line.debit - matched
    return -(line.credit - matched)


def matched_amount(line: EntryLine, as_of: dt.date | None = None) -> Decimal:
    """What matches settle of `line` (as of a date: matches whose other line is dated by then)."""
    sums = _matched_sums(as_of)
    value = db.session.scalar(sa.select(sums.c.matched).where(sums.c.line_id == line.id))
    return Decimal(value or 0).quantize(CENT)


def residual(line: EntryLine, as_of: dt.date | None = None) -> Decimal:
    """The signed open amount of `line`: debit - credit, less what matches settle."""
    return _residual_of(line, matched_amount(line, as_of))


def _receivable_account_id() -> int | None:
    """The receivable account's id; None before the chart is installed (nothing is open then). Reads only."""
    code = settings.role_account_code("receivable")
    return db.session.scalar(sa.select(Account.id).where(Account.code == code))


def _receivable_rows(
    *conditions: sa.ColumnElement[bool], as_of: dt.date | None, matched_as_of: dt.date | None = None
) -> list[tuple[EntryLine, Decimal]]:
    """Receivable lines meeting `conditions` (dated by `as_of`), each with what is matched on it (as of
    `matched_as_of`, default `as_of`), in one query."""
    receivable_id = _receivable_account_id()
    if receivable_id is None:
        return []
    sums = _matched_sums(matched_as_of or as_of)
    query = (
        sa.select(EntryLine, sa.func.coalesce(sums.c.matched, 0))
        .join(Entry, Entry.id == EntryLine.entry_id)
        .outerjoin(sums, sums.c.line_id == EntryLine.id)
        .where(EntryLine.account_id == receivable_id, *conditions)
        .order_by(Entry.date, EntryLine.id)
    )
    if as_of is not None:
        query = query.where(Entry.date <= as_of)
    return [(line, Decimal(matched).quantize(CENT)) for line, matched in db.session.execute(query)]


def open_receivables(partner_id: int | None = None, as_of: dt.date | None = None) -> list[OpenItem]:
    """Every receivable line still open (of one customer, as of a date), oldest due first."""
    conditions = [EntryLine.partner_id == partner_id] if partner_id is not None else []
    rows = _receivable_rows(*conditions, as_of=as_of)
    invoice_ids = {line.invoice_id for line, _matched in rows if line.invoice_id is not None}
    numbers = dict(
        db.session.execute(sa.select(Invoice.id, Invoice.number).where(Invoice.id.in_(invoice_ids))).all()
        if invoice_ids
        else []
    )
    entries = {
        entry.id: entry
        for entry in db.session.scalars(
            sa.select(Entry).where(Entry.id.in_({line.entry_id for line, _matched in rows}))
        )
    }
    items = []
    for line, matched in rows:
        left = _residual_of(line, matched)
        if left == 0:
            continue
        entry = entries[line.entry_id]
        items.append(
            OpenItem(
                line=line,
                invoice_id=line.invoice_id,
                number=numbers.get(line.invoice_id) or entry.reference or entry.number,
                date=entry.date,
                due_date=line.due_date,
                amount=line.debit - line.credit,
                residual=left,
            )
        )
    items.sort(key=lambda item: (item.due_date or item.date, item.date, item.line.id))
    return items


def receivable_balance(partner_id: int, as_of: dt.date | None = None) -> Decimal:
    """The customer's receivable account balance (debits - credits) as of a date: what it owes, less advances."""
    receivable_id = _receivable_account_id()
    if receivable_id is None:
        return ZERO
    query = (
        sa.select(sa.func.coalesce(sa.func.sum(EntryLine.debit - EntryLine.credit), 0))
        .join(Entry, Entry.id == EntryLine.entry_id)
        .where(EntryLine.account_id == receivable_id, EntryLine.partner_id == partner_id)
    )
    if as_of is not None:
        query = query.where(Entry.date <= as_of)
    return Decimal(db.session.scalar(query)).quantize(CENT)


def _lock_lines(*line_ids: int) -> None:
    """Serialise matching on these lines (PostgreSQL row locks until commit; SQLite has one writer anyway)."""
    db.session.execute(
        sa.select(EntryLine.id).where(EntryLine.id.in_(line_ids)).order_by(EntryLine.id).with_for_update()
    ).all()


def reconcile(
    debit_line: EntryLine,
    credit_line: EntryLine,
    amount: Decimal | None = None,
    *,
    auto: bool = False,
    user_id: int | None = None,
) -> Match:
    """Match `amount` (default: all that both lines still have open) of a debit line with a credit line of the same
    reconcilable account and partner. ValidationError naming `debit_line_id`, `credit_line_id` or `amount`."""
    check = Checker()
    if debit_line is None or debit_line.debit <= 0:
        check.fail("debit_line_id", _("Choose a debit line (an invoice)."))
    if credit_line is None or credit_line.credit <= 0:
        check.fail("credit_line_id", _("Choose a credit line (a payment or a credit note)."))
    check.raise_if_any()
    if not debit_line.account.reconcilable:
        check.fail("debit_line_id", _("Account %(account)s cannot be reconciled.", account=debit_line.account.code))
    elif credit_line.account_id != debit_line.account_id:
        check.fail("credit_line_id", _("Both lines must be on the same account."))
    elif credit_line.partner_id != debit_line.partner_id:
        check.fail("credit_line_id", _("Both lines must belong to the same customer or supplier."))
    check.raise_if_any()
    _lock_lines(debit_line.id, credit_line.id)
    debit_open, credit_open = residual(debit_line), -residual(credit_line)
    if debit_open <= 0:
        check.fail("debit_line_id", _("This line is already fully matched."))
    if credit_open <= 0:
        check.fail("credit_line_id", _("This line is already fully matched."))
    check.raise_if_any()
    most = min(debit_open, credit_open)
    amount = check.decimal("amount", most if amount is None else amount, 2, MAX_AMOUNT)
    if amount is not None and amount <= 0:
        check.fail("amount", _("Must be more than zero."))
    elif amount is not None and amount > most:
        check.fail("amount", _("At most %(amount)s is open on both lines.", amount=format_currency(most, "EUR")))
    check.raise_if_any()
    match = Match(
        debit_line_id=debit_line.id, credit_line_id=credit_line.id, amount=amount, auto=auto, created_by=user_id
    )
    db.session.add(match)
    db.session.flush()
    return match


def undoable_matches(matches: Sequence[Match]) -> set[int]:
    """The ids of the matches staff may undo: not one inside a single entry (split payment's VAT set off against its
    invoice) nor one between an entry and its reversal (a cancelled payment), which their documents made for good."""
    pairs = {match.id: (match.debit_line.entry_id, match.credit_line.entry_id) for match in matches}
    entry_ids = {entry_id for pair in pairs.values() for entry_id in pair}
    reversed_by = dict(
        db.session.execute(
            sa.select(Entry.id, Entry.source_id).where(
                Entry.id.in_(entry_ids), Entry.source == "reversal", Entry.source_id.is_not(None)
            )
        ).all()
        if entry_ids
        else []
    )
    return {
        match_id
        for match_id, (debit, credit) in pairs.items()
        if debit != credit and reversed_by.get(debit) != credit and reversed_by.get(credit) != debit
    }


def undo(match: Match, *, user_id: int | None = None) -> None:
    """Undo a reconciliation: both lines are open again by its amount (the audit log keeps who undid it). A match
    that is part of its documents (see `undoable_matches`) is refused, naming `match`."""
    if match.id not in undoable_matches([match]):
        fail("match", _("This match belongs to its documents (split payment or a cancellation): it cannot be undone."))
    db.session.delete(match)
    db.session.flush()


def lines_of_invoices(invoice_ids: Sequence[int], as_of: dt.date | None = None) -> dict[int, list[EntryLine]]:
    """The receivable lines of each invoice or credit note (its own entry's, and split payment's VAT line)."""
    found: dict[int, list[EntryLine]] = defaultdict(list)
    for line, _matched in _receivable_rows(EntryLine.invoice_id.in_(list(invoice_ids)), as_of=as_of):
        found[line.invoice_id].append(line)
    return found


def amounts_due(invoice_ids: Sequence[int], as_of: dt.date | None = None) -> dict[int, tuple[Decimal, Decimal]]:
    """Per invoice with receivable lines: (what it asks of the customer, what is still open of it), both signed.

    As of `as_of`, or without it as of today for the matches (an invoice dated later still shows what it asks)."""
    return {invoice_id: (owed, left) for invoice_id, (owed, left, _due) in _dues(invoice_ids, as_of).items()}


def _dues(invoice_ids: Sequence[int], as_of: dt.date | None) -> dict[int, tuple[Decimal, Decimal, dt.date | None]]:
    """`amounts_due` with, per invoice, the earliest due date of its debit lines still open (its instalments)."""
    result: dict[int, tuple[Decimal, Decimal, dt.date | None]] = {}
    if not invoice_ids:
        return result
    condition = EntryLine.invoice_id.in_(list(invoice_ids))
    rows = _receivable_rows(condition, as_of=as_of, matched_as_of=as_of or clock.today())
    for line, matched in rows:
        owed, left, due = result.get(line.invoice_id, (ZERO, ZERO, None))
        line_left = _residual_of(line, matched)
        if line_left > 0 and line.due_date is not None and (due is None or line.due_date < due):
            due = line.due_date
        result[line.invoice_id] = (owed + line.debit - line.credit, left + line_left, due)
    return result


def payment_states(invoice_ids: Sequence[int], as_of: dt.date | None = None) -> dict[int, PaymentStatus]:
    """The payment state of each posted invoice or credit note that has its entry, in three queries for all. An
    invoice is overdue once the earliest of its instalments still open is past due (not its first instalment's date
    when that one is paid)."""
    ids = sorted(set(invoice_ids))
    if not ids:
        return {}
    day = as_of or clock.today()
    dues = _dues(ids, as_of)
    if not dues:
        return {}
    documents = {
        row.id: row
        for row in db.session.execute(
            sa.select(Invoice.id, Invoice.type, Invoice.due_date).where(Invoice.id.in_(list(dues)))
        )
    }
    collecting = set(
        db.session.scalars(
            sa.select(SepaBatchItem.invoice_id).where(
                SepaBatchItem.invoice_id.in_(list(dues)), SepaBatchItem.state == "collecting"
            )
        )
    )
    states = {}
    for invoice_id, (owed, left, open_due) in dues.items():
        document = documents[invoice_id]
        if document.type == "credit_note":
            states[invoice_id] = _credit_note_state(-owed, -left)
        else:
            due = open_due or document.due_date
            states[invoice_id] = _invoice_state(owed, left, due, day, invoice_id in collecting)
    return states


def _invoice_state(owed: Decimal, left: Decimal, due_date: dt.date | None, day: dt.date, collecting: bool):
    if left <= 0:
        state = "paid"
    elif collecting:
        state = "collecting"
    elif due_date is not None and due_date < day:
        state = "overdue"
    elif left < owed:
        state = "partial"
    else:
        state = "open"
    label = str(STATE_LABELS[state])
    if state == "overdue" and left < owed:
        label = _("Overdue, partly paid")
    return PaymentStatus(state=state, amount_due=max(left, ZERO), label=label)


def _credit_note_state(credited: Decimal, left: Decimal) -> PaymentStatus:
    """A credit note is `paid` once set off against invoices or refunded in full; `amount_due` is what is left."""
    state = "paid" if left <= 0 else ("partial" if left < credited else "open")
    return PaymentStatus(state=state, amount_due=max(left, ZERO), label=str(CREDIT_NOTE_LABELS[state]))


class AccountingPaymentStates:
    """core.extension_points.PaymentStatusProvider: invoicing's pages and API ask it how far invoices are paid."""

    def payment_states(self, invoice_ids: Sequence[int]) -> dict[int, PaymentStatus]:
        return payment_states(invoice_ids)
