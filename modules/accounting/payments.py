"""Customer payments: recording one (its entry debits the bank or cash and credits the customer's receivable, matched
at once to the invoice it names, its instalments earliest due first) and cancelling one (a reversing entry; its
matches undone)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from flask_babel import format_currency
from flask_babel import gettext as _

from core import clock
from core.db import db
from core.models import Partner
from core.validation import Checker, ValidationError
from modules.accounting import ledger, reconcile, settings
from modules.accounting.models import PAYMENT_METHODS, ZERO, Entry, EntryLine, Journal, Match, Payment, StatementLine
from modules.invoicing.models import Invoice

MAX_AMOUNT = reconcile.MAX_AMOUNT


def _money(amount: Decimal) -> str:
    return format_currency(amount, "EUR")


def _invoice_named_in(reference: str, partner_id: int) -> Invoice | None:
    """The customer's open invoice whose number the reference quotes ("saldo fattura 2026/0042"), if exactly one."""
    if not reference:
        return None
    open_ids = {item.invoice_id for item in reconcile.open_receivables(partner_id) if item.residual > 0}
    if not open_ids:
        return None
    candidates = db.session.scalars(
        sa.select(Invoice).where(Invoice.id.in_(open_ids), Invoice.type == "invoice", Invoice.number.is_not(None))
    ).all()
    quoted = [
        invoice
        for invoice in candidates
        if re.search(rf"(?<![\w/]){re.escape(invoice.number)}(?![\w/])", reference, flags=re.IGNORECASE)
    ]
    return quoted[0] if len(quoted) == 1 else None


def _payment_journal(journal: Journal | str | None, check: Checker) -> Journal | None:
    try:
        found = ledger.get_journal(journal or "bank")
    except ValidationError as error:
        check.fail("journal", next(iter(error.errors.values())))
        return None
    if found.kind not in ("bank", "cash") or found.account_id is None or not found.active:
        check.fail("journal", _("Choose an active bank or cash journal."))
        return None
    return found


def record_payment(
    partner_id: int,
    amount: Decimal,
    date: dt.date,
    *,
    method: str = "bank_transfer",
    journal: Journal | str | None = None,
    reference: str = "",
    invoice_id: int | None = None,
    advance: bool = False,
    statement_line_id: int | None = None,
    user_id: int | None = None,
) -> Payment:
    """Record a customer's payment and post its entry in the bank (default) or cash journal.

    It is matched at once to the invoice it names (`invoice_id`, or an invoice number quoted in `reference`), up to
    what that invoice still asks; otherwise it stays an open credit that staff match by hand. Without `advance` a
    payment may not exceed what is due (the named invoice's amount due, else the customer's open balance): a
    ValidationError names `amount`, and nothing is written.
    """
    check = Checker()
    partner = db.session.get(Partner, partner_id) if isinstance(partner_id, int) else None
    if partner is None or not partner.is_customer:
        check.fail("partner_id", _("Choose a customer."))
    amount = check.decimal("amount", amount, 2, MAX_AMOUNT)
    if amount is not None and amount <= 0:
        check.fail("amount", _("Must be more than zero."))
    date = check.date("date", date)
    if date is not None and date > clock.today():
        # What is due, the aging and the reminders are read as of today: money not yet received is not a payment.
        check.fail("date", _("The date cannot be in the future."))
    if method not in PAYMENT_METHODS:
        check.fail("method", _("Choose one of: %(choices)s.", choices=", ".join(PAYMENT_METHODS)))
    reference = check.text("reference", reference, 200) or ""
    bank = _payment_journal(journal, check)
    check.raise_if_any()
    # One payment of a customer at a time: what is due is read and used in the same transaction.
    db.session.execute(sa.select(Partner.id).where(Partner.id == partner.id).with_for_update()).all()

    invoice = None
    if invoice_id is not None:
        invoice = db.session.get(Invoice, invoice_id) if isinstance(invoice_id, int) else None
        if invoice is None or invoice.customer_id != partner.id:
            check.fail("invoice_id", _("Choose an invoice of this customer."))
        elif invoice.state != "posted" or invoice.type != "invoice":
            check.fail("invoice_id", _("Only a posted invoice can be paid."))
        check.raise_if_any()
    else:
        invoice = _invoice_named_in(reference, partner.id)

    debit_lines: list[EntryLine] = []
    if invoice is not None:
        # Its instalments earliest due first: a part payment settles the instalment that falls due first.
        debit_lines = sorted(
            (
                line
                for line in reconcile.lines_of_invoices([invoice.id]).get(invoice.id, [])
                if line.debit > 0 and reconcile.residual(line) > 0
            ),
            key=lambda line: (line.due_date is None, line.due_date or dt.date.min, line.id),
        )
    if not advance:
        if invoice_id is not None:
            due = sum((reconcile.residual(line) for line in debit_lines), ZERO)
            what = _("invoice %(number)s", number=invoice.number)
        else:
            due = max(sum((item.residual for item in reconcile.open_receivables(partner.id)), ZERO), ZERO)
            what = partner.name
        if amount > due:
            check.fail(
                "amount",
                _(
                    "%(amount)s is more than the %(due)s due from %(what)s: record it as an advance to keep the rest "
                    "as a credit.",
                    amount=_money(amount),
                    due=_money(due),
                    what=what,
                ),
            )
        check.raise_if_any()

    label = reference or (_("Payment of %(number)s", number=invoice.number) if invoice else _("Payment"))
    entry = ledger.post_entry(
        bank,
        date,
        [
            ledger.LineSpec(account=bank.account, debit=amount, label=label[:200]),
            ledger.LineSpec(
                account=settings.receivable_account(), credit=amount, partner_id=partner.id, label=label[:200]
            ),
        ],
        reference=reference or (invoice.number if invoice else ""),
        source="payment",
        user_id=user_id,
    )
    payment = Payment(
        date=date,
        partner_id=partner.id,
        amount=amount,
        method=method,
        journal_id=bank.id,
        reference=reference,
        invoice_id=invoice.id if invoice else None,
        advance=advance,
        entry_id=entry.id,
        statement_line_id=statement_line_id,
        created_by=user_id,
    )
    db.session.add(payment)
    db.session.flush()
    entry.source_id = payment.id  # the entry is found from the payment and the payment from the entry
    credit_line = _receivable_line(entry)
    left = amount
    for line in debit_lines:
        if left <= 0:
            break
        part = min(left, reconcile.residual(line))
        reconcile.reconcile(line, credit_line, part, auto=True, user_id=user_id)
        left -= part
    db.session.flush()
    return payment


def _receivable_line(entry: Entry) -> EntryLine:
    receivable_id = settings.receivable_account().id
    return next(line for line in entry.lines if line.account_id == receivable_id)


def _reversals_of(entry_ids: Sequence[int]) -> sa.Select:
    return sa.select(Entry).where(Entry.source == "reversal", Entry.source_id.in_(list(entry_ids)))


def cancelled_entry_ids(entry_ids: Sequence[int]) -> set[int]:
    """Which of these payment entries were reversed (their payment cancelled), in one query."""
    if not entry_ids:
        return set()
    return set(db.session.scalars(_reversals_of(entry_ids).with_only_columns(Entry.source_id)))


def is_cancelled(payment: Payment) -> bool:
    return cancelling_entry(payment) is not None


def cancelling_entry(payment: Payment) -> Entry | None:
    """The entry that reversed the payment's entry, if it was cancelled."""
    return db.session.scalar(_reversals_of([payment.entry_id]).limit(1))


def cancel_payment(payment: Payment, user_id: int | None = None) -> Entry:
    """Cancel a payment: its matches are undone (the invoices it paid are open again) and its entry is reversed; the
    reversal's receivable debit is matched with the payment's credit, so neither is left open. A payment confirmed
    from a bank statement line puts that line back to open."""
    if is_cancelled(payment):
        raise ValidationError({"payment": _("This payment is already cancelled.")})
    entry = payment.entry
    line_ids = [line.id for line in entry.lines]
    for match in db.session.scalars(
        sa.select(Match).where(sa.or_(Match.debit_line_id.in_(line_ids), Match.credit_line_id.in_(line_ids)))
    ):
        reconcile.undo(match, user_id=user_id)
    # Dated today, or the payment's own date when that is later: a reversal never precedes what it reverses.
    reversal = ledger.reverse_entry(entry, max(clock.today(), entry.date), user_id=user_id)
    debit, credit = _receivable_line(reversal), _receivable_line(entry)
    if reconcile.residual(credit) < 0 and reconcile.residual(debit) > 0:
        # Unless reverse_entry matched them itself: the reversal's debit settles the payment's credit.
        reconcile.reconcile(debit, credit, auto=True, user_id=user_id)
    if payment.statement_line_id is not None:
        line = db.session.get(StatementLine, payment.statement_line_id)
        if line is not None and line.payment_id == payment.id:
            line.state, line.payment_id = "open", None
    db.session.flush()
    return reversal
