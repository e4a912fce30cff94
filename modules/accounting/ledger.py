"""The general ledger: posting balanced entries with gapless numbers per journal and year, reversing them.

Every entry of the module goes through `post_entry`, which refuses (ValidationError, nothing staged) an empty or
unbalanced entry, a line with both a debit and a credit, a negative amount or more than 2 decimals, an account that
is unknown, a group or inactive, a missing partner on an account that needs one, a date on or before the lock date.
Posted entries are never edited: `reverse_entry` posts the opposite entry (and matches its receivable and payable
lines with the originals'). Functions stage in the caller's
transaction; the caller commits (a rolled-back posting gives its number back: core.sequences).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from flask_babel import gettext as _

from core import clock
from core.db import db
from core.models import Partner
from core.sequences import next_number
from core.validation import MAX_YEAR, MIN_YEAR, Checker, ValidationError, fail
from modules.accounting import chart, reconcile, settings
from modules.accounting.models import Account, Entry, EntryLine, Journal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
AMOUNT_LIMIT = Decimal(10) ** 12  # Numeric(14, 2)


@dataclass(frozen=True)
class LineSpec:
    """One line to post: an account (or its code), a debit or a credit, and what it refers to."""

    account: Account | str
    debit: Decimal = ZERO
    credit: Decimal = ZERO
    partner_id: int | None = None
    label: str = ""
    invoice_id: int | None = None
    bill_id: int | None = None
    due_date: dt.date | None = None
    vat_rate: Decimal | None = None
    vat_base: Decimal | None = None


def find_account(code: str | None) -> Account | None:
    """The account with `code` (any case, spaces ignored), or None. Reads only: the chart is installed by the
    paths that post (chart.ensure_installed), never by a lookup."""
    text = str(code or "").strip().upper()
    if not text:
        return None
    return db.session.scalar(sa.select(Account).where(Account.code == text))


def get_account(code: str | Account | None, field: str = "account") -> Account:
    """The account with `code`; ValidationError naming `field` when it is empty or there is none."""
    if isinstance(code, Account):
        return code
    if not str(code or "").strip():
        fail(field, _("This field is required."))
    account = find_account(code)
    if account is None:
        fail(field, _("There is no account %(code)s.", code=str(code).strip()[:20]))
    return account


def get_journal(code_or_kind: str | Journal) -> Journal:
    """The journal with this code ("VEN"), else the first active journal of this kind ("bank")."""
    if isinstance(code_or_kind, Journal):
        return code_or_kind
    text = str(code_or_kind).strip()
    journal = db.session.scalar(sa.select(Journal).where(Journal.code == text))
    if journal is None:
        journal = db.session.scalar(
            sa.select(Journal).where(Journal.kind == text, Journal.active.is_(True)).order_by(Journal.id).limit(1)
        )
    if journal is None:
        fail("journal", _("There is no journal %(code)s.", code=code_or_kind))
    return journal


def _amount(value: object) -> Decimal | None:
    """A non-negative amount with at most 2 decimals, or None when it is not one."""
    try:
        amount = Decimal(str(value if value is not None else 0))
    except (InvalidOperation, ValueError):
        return None
    if not amount.is_finite() or amount < 0 or amount >= AMOUNT_LIMIT or amount != amount.quantize(CENT):
        return None
    return amount.quantize(CENT)


def _accounts(lines: Sequence[LineSpec]) -> dict[str, Account]:
    """The lines' accounts given by code, in one query."""
    codes = {str(spec.account).strip() for spec in lines if not isinstance(spec.account, Account)}
    if not codes:
        return {}
    return {a.code: a for a in db.session.scalars(sa.select(Account).where(Account.code.in_(codes)))}


def check_entry(journal: Journal | str, date: dt.date | None, lines: Sequence[LineSpec]) -> list[EntryLine]:
    """The entry lines `post_entry` would write; ValidationError naming "journal", "date" or "lines" otherwise."""
    check = Checker()
    try:
        journal = get_journal(journal)
    except ValidationError as exc:
        check.fail("journal", exc.errors["journal"])
    else:
        if not journal.active:
            check.fail("journal", _("The journal %(code)s is closed.", code=journal.code))
    if not isinstance(date, dt.date):
        check.fail("date", _("This field is required."))
    elif not MIN_YEAR <= date.year <= MAX_YEAR:
        check.fail("date", _("The year must be between %(min)d and %(max)d.", min=MIN_YEAR, max=MAX_YEAR))
    else:
        locked = settings.lock_date()
        if locked is not None and date <= locked:
            check.fail("date", _("The books are closed up to %(date)s: choose a later date.", date=locked))
    if not lines:
        check.fail("lines", _("An entry needs at least one debit and one credit line."))
    by_code = _accounts(lines)
    partner_ids = {spec.partner_id for spec in lines if spec.partner_id}
    known_partners = set(db.session.scalars(sa.select(Partner.id).where(Partner.id.in_(partner_ids))))
    built: list[EntryLine] = []
    debits = credits = ZERO
    for number, spec in enumerate(lines, start=1):
        debit, credit = _amount(spec.debit), _amount(spec.credit)
        account = spec.account if isinstance(spec.account, Account) else by_code.get(str(spec.account).strip())
        problem = None
        if debit is None or credit is None:
            problem = _("Line %(n)d: amounts are positive, with at most 2 decimals.", n=number)
        elif debit and credit:
            problem = _("Line %(n)d: a line has a debit or a credit, not both.", n=number)
        elif not debit and not credit:
            problem = _("Line %(n)d: a line needs a debit or a credit.", n=number)
        elif account is None:
            problem = _("Line %(n)d: there is no account %(code)s.", n=number, code=spec.account)
        elif not account.postable:
            problem = _("Line %(n)d: %(account)s is a group: choose one of its accounts.", n=number, account=account)
        elif not account.active:
            problem = _("Line %(n)d: the account %(account)s is closed.", n=number, account=account)
        elif account.needs_partner and not spec.partner_id:
            problem = _("Line %(n)d: the account %(account)s needs a customer or supplier.", n=number, account=account)
        elif spec.partner_id and spec.partner_id not in known_partners:
            problem = _("Line %(n)d: there is no customer or supplier %(id)s.", n=number, id=spec.partner_id)
        elif len(spec.label or "") > 200:
            problem = _("Line %(n)d: the label has at most 200 characters.", n=number)
        if problem:
            check.fail("lines", problem)
            continue
        debits += debit
        credits += credit
        built.append(
            EntryLine(
                account_id=account.id,
                partner_id=spec.partner_id,
                label=spec.label or "",
                debit=debit,
                credit=credit,
                invoice_id=spec.invoice_id,
                bill_id=spec.bill_id,
                due_date=spec.due_date,
                vat_rate=spec.vat_rate,
                vat_base=spec.vat_base,
            )
        )
    if "lines" not in check:
        if not debits or not credits:
            check.fail("lines", _("An entry needs at least one debit and one credit line."))
        elif debits != credits:
            check.fail(
                "lines",
                _("Debits (%(debits)s) and credits (%(credits)s) differ.", debits=debits, credits=credits),
            )
    check.raise_if_any()
    return built


def post_entry(
    journal: Journal | str,
    date: dt.date,
    lines: Sequence[LineSpec],
    *,
    reference: str = "",
    source: str = "manual",
    source_id: int | None = None,
    memo: str | None = None,
    user_id: int | None = None,
) -> Entry:
    """Post a balanced entry in `journal` (a Journal, its code or its kind) numbered `<code>/<year>/<nnnn>`."""
    chart.ensure_installed()  # the first posting of a new database writes the default chart and journals
    built = check_entry(journal, date, lines)
    journal = get_journal(journal)
    if len(reference or "") > 200:
        fail("reference", _("At most %(max)d characters.", max=200))
    sequence = next_number(f"accounting.{journal.code}", date.year)
    entry = Entry(
        journal_id=journal.id,
        number=f"{journal.code}/{date.year}/{sequence:04d}",
        sequence_number=sequence,
        year=date.year,
        date=date,
        reference=reference or "",
        memo=memo,
        source=source,
        source_id=source_id,
        created_by=user_id,
        lines=built,
    )
    db.session.add(entry)
    db.session.flush()
    return entry


def entry_for(source: str, source_id: int) -> Entry | None:
    """The entry a document posted (one per document: UNIQUE(source, source_id))."""
    return db.session.scalar(sa.select(Entry).where(Entry.source == source, Entry.source_id == source_id))


def reverse_entry(entry: Entry, date: dt.date | None = None, *, user_id: int | None = None) -> Entry:
    """Post the opposite of `entry` (same journal, debits and credits swapped), dated `date` or today.

    On a reconcilable account (receivable, payable) each reversal line is matched with its twin for what the twin
    still has open, so neither stays in the open items or the aging; a twin already fully matched is skipped.
    An entry is reversed at most once, and a reversal is not reversed (post the entry again instead).
    """
    if entry.source == "reversal":
        fail("entry", _("%(number)s is a reversal: post the entry again instead.", number=entry.number))
    if entry_for("reversal", entry.id) is not None:
        fail("entry", _("%(number)s is already reversed.", number=entry.number))
    originals = list(entry.lines)
    lines = [
        LineSpec(
            account=line.account,
            debit=line.credit,
            credit=line.debit,
            partner_id=line.partner_id,
            label=line.label,
            invoice_id=line.invoice_id,
            bill_id=line.bill_id,
            due_date=line.due_date,
            vat_rate=line.vat_rate,
            vat_base=-line.vat_base if line.vat_base is not None else None,
        )
        for line in originals
    ]
    reversal = post_entry(
        entry.journal,
        date or clock.today(),
        lines,
        reference=entry.reference,
        source="reversal",
        source_id=entry.id,
        memo=_("Reversal of %(number)s", number=entry.number),
        user_id=user_id,
    )
    reversal.reversed_entry_id = entry.id
    db.session.flush()
    _match_twins(originals, list(reversal.lines), user_id)
    return reversal


def _match_twins(originals: list[EntryLine], twins: list[EntryLine], user_id: int | None) -> None:
    """Match each reconcilable original line with its reversal line, for what the original still has open."""
    for original, twin in zip(originals, twins, strict=True):
        if not original.account.reconcilable:
            continue
        left = reconcile.residual(original)  # signed like the original: + an open debit, - an open credit
        if left > 0:
            reconcile.reconcile(original, twin, left, auto=True, user_id=user_id)
        elif left < 0:
            reconcile.reconcile(twin, original, -left, auto=True, user_id=user_id)


def unbalanced_entries() -> list[str]:
    """The numbers of entries whose debits and credits differ (there should be none)."""
    query = (
        sa.select(Entry.number)
        .join(EntryLine, EntryLine.entry_id == Entry.id)
        .group_by(Entry.id, Entry.number)
        # Rounded: SQLite sums NUMERIC columns as floating point.
        .having(sa.func.round(sa.func.sum(EntryLine.debit) - sa.func.sum(EntryLine.credit), 2) != 0)
    )
    return list(db.session.scalars(query))
