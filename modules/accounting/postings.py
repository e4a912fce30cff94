"""Sales entries of invoices and credit notes, posted in the same transaction as the document (both or neither).

An invoice debits the customer's receivable for its total, one line per instalment of its payment schedule (each with
the invoice and the instalment's due date, so collection, reminders and the aging see each instalment when it falls
due; a credit note, or an invoice posted before schedules existed, has one line due on its due date), credits the
income account of each line kind (settings.income_account) for the net and VAT payable per rate (the rate and taxable
amount on the line). A credit note posts the same with debits and credits swapped, and its receivable credit is
matched at once with what is still open on its original invoice, earliest instalment first. A document under split
payment (Invoice.split_payment: the customer's flag as it was when the document was posted, not as it is now) asks
only the net: the entry also debits VAT payable and credits the receivable for the VAT, matched at once with the
invoice's debit (the instalments sum to the net, so the first instalment's line carries the VAT as well).
One entry per document: UNIQUE(source, source_id) with source "invoice".

Invoicing allows negative unit prices, so a line kind, a VAT rate or the total may sum below zero: such an amount is
posted on the opposite side (a negative income is a debit), and an amount of zero is no line. A document whose every
amount is zero (a zero invoice) posts no entry: there is nothing to record, and nothing is left open.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import sqlalchemy as sa
from flask_babel import gettext as _

from core import signals
from core.context import ModuleContext
from core.db import db
from core.validation import fail
from modules.accounting import chart, ledger, reconcile, settings
from modules.accounting.ledger import LineSpec
from modules.accounting.models import Entry, EntryLine
from modules.invoicing import services
from modules.invoicing.models import Invoice

ZERO = Decimal("0.00")
CENT = Decimal("0.01")


def connect(ctx: ModuleContext) -> None:
    """Post every invoice and credit note invoicing posts in this app (not in other apps of the process)."""
    signals.invoice_posting.connect(on_invoice_posting, sender=ctx.app, weak=False)


def on_invoice_posting(app, invoice: Invoice, **_kwargs) -> None:
    post_invoice(invoice)


def _side(account: object, amount: Decimal, *, credit: bool, **fields) -> list[LineSpec]:
    """`amount` debited (credit=False) or credited on `account`: a negative amount goes to the opposite side, a zero
    amount is no line at all (invoicing allows negative unit prices, so a kind or a rate may sum below zero)."""
    if not amount:
        return []
    if (amount > 0) == credit:
        return [LineSpec(account, credit=abs(amount), **fields)]
    return [LineSpec(account, debit=abs(amount), **fields)]


def _lines(invoice: Invoice) -> list[LineSpec]:
    """The invoice's lines as an invoice posts them (a credit note swaps them); empty when every amount is zero."""
    receivable = settings.receivable_account()
    vat_payable = settings.vat_payable_account()
    income: dict[str, Decimal] = defaultdict(Decimal)
    for line in invoice.lines:
        income[settings.income_account_code(line.kind)] += Decimal(line.amount)
    customer = invoice.customer
    label = f"{invoice.number} {customer.name}"[:200]
    owed = {"partner_id": invoice.customer_id, "invoice_id": invoice.id}
    split_vat = Decimal(invoice.vat_total) if invoice.split_payment and invoice.vat_total else ZERO
    specs: list[LineSpec] = []
    for n, (due, amount) in enumerate(instalments(invoice)):
        # Under split payment the instalments sum to the net: the first one's line carries the VAT set off below.
        specs += _side(
            receivable, amount + (split_vat if n == 0 else ZERO), credit=False, label=label, due_date=due, **owed
        )
    for code, amount in sorted(income.items()):
        specs += _side(code, amount, credit=True, label=invoice.number)
    for rate, base, vat in services.vat_summary(invoice.lines):
        label = _("VAT %(rate)s, %(number)s", rate=f"{_rate(rate)}%", number=invoice.number)
        specs += _side(vat_payable, vat, credit=True, label=label, vat_rate=rate, vat_base=base)
    if split_vat:
        label = _("Split payment %(number)s", number=invoice.number)
        specs += _side(vat_payable, split_vat, credit=False, label=label)
        specs += _side(receivable, split_vat, credit=True, label=label, due_date=invoice.due_date, **owed)
    if invoice.type == "credit_note":
        specs = [_swapped(spec) for spec in specs]
    return specs


def instalments(invoice: Invoice) -> list[tuple[dt.date | None, Decimal]]:
    """What the document asks of the customer (`services.amount_due`) and when: an invoice's payment schedule, else
    (a credit note, an invoice posted before schedules) one amount due on its due date. A schedule that does not sum
    to the amount due is refused (ValidationError naming `payment_schedule`): its entry would not match the XML."""
    due = services.amount_due(invoice)
    if invoice.type != "invoice" or not invoice.payment_schedule:
        return [(invoice.due_date, due)]
    try:
        schedule = [
            (dt.date.fromisoformat(item["due_date"]), Decimal(str(item["amount"])).quantize(CENT))
            for item in invoice.payment_schedule
        ]
    except (KeyError, TypeError, ValueError, ArithmeticError):
        schedule = []
    if not schedule or sum((amount for _due, amount in schedule), ZERO) != due:
        fail(
            "payment_schedule",
            _("The instalments of invoice %(number)s do not add up to its amount due.", number=invoice.number),
        )
    return sorted(schedule, key=lambda item: item[0])


def _rate(rate: Decimal) -> str:
    return f"{rate.normalize():f}"


def _swapped(spec: LineSpec) -> LineSpec:
    return LineSpec(
        spec.account,
        debit=spec.credit,
        credit=spec.debit,
        partner_id=spec.partner_id,
        label=spec.label,
        invoice_id=spec.invoice_id,
        due_date=spec.due_date,
        vat_rate=spec.vat_rate,
        vat_base=-spec.vat_base if spec.vat_base is not None else None,
    )


def post_invoice(invoice: Invoice) -> Entry | None:
    """The sales entry of a posted invoice or credit note: posted now, or the one it already has. A document whose
    every amount is zero has nothing to post: None, and no entry."""
    existing = ledger.entry_for("invoice", invoice.id)
    if existing is not None:
        return existing
    if invoice.state != "posted" or not invoice.number:
        fail("invoice", _("Only a posted invoice or credit note has an entry."))
    chart.ensure_installed()
    lines = _lines(invoice)
    if not lines:
        return None
    entry = ledger.post_entry(
        "sales",
        invoice.issue_date,
        lines,
        reference=invoice.number,
        source="invoice",
        source_id=invoice.id,
    )
    _match_at_once(invoice, entry)
    return entry


def _receivables(entry: Entry, invoice_id: int) -> tuple[list[EntryLine], list[EntryLine]]:
    receivable_id = settings.receivable_account().id
    lines = [ln for ln in entry.lines if ln.account_id == receivable_id and ln.invoice_id == invoice_id]
    return [ln for ln in lines if ln.debit > 0], [ln for ln in lines if ln.credit > 0]


def _by_due_date(lines: list[EntryLine]) -> list[EntryLine]:
    """Receivable lines earliest due first (then as posted): what a payment or a credit note settles first."""
    return sorted(lines, key=lambda ln: (ln.due_date is None, ln.due_date or dt.date.min, ln.id))


def _set_off(debits: list[EntryLine], credits: list[EntryLine]) -> None:
    """Match each open credit with the open debits in turn, for what both still have open."""
    for credit in credits:
        for debit in debits:
            left = min(reconcile.residual(debit), -reconcile.residual(credit))
            if left > 0:
                reconcile.reconcile(debit, credit, left, auto=True)


def _match_at_once(invoice: Invoice, entry: Entry) -> None:
    """Split payment's VAT against the document's own receivable; a credit note against its original invoice."""
    debits, credits = _receivables(entry, invoice.id)
    if invoice.split_payment and invoice.vat_total and debits and credits:
        # The VAT line is the last receivable line posted; it sets off the instalment line(s) on the other side.
        vat_line = max(debits + credits, key=lambda ln: ln.id)
        if vat_line.credit > 0:
            _set_off(_by_due_date([ln for ln in debits if ln is not vat_line]), [vat_line])
        else:
            _set_off([vat_line], _by_due_date([ln for ln in credits if ln is not vat_line]))
    if invoice.type != "credit_note" or invoice.original_id is None:
        return
    original = ledger.entry_for("invoice", invoice.original_id)
    if original is None:
        return
    open_debits = [ln for ln in _receivables(original, invoice.original_id)[0] if reconcile.residual(ln) > 0]
    open_credits = [ln for ln in credits if reconcile.residual(ln) < 0]
    _set_off(_by_due_date(open_debits), open_credits)


def backfill() -> int:
    """Post the entry of every posted document that has none, oldest number first; returns how many it posted.

    For a database where accounting is enabled after invoices were posted (`flask accounting backfill`).
    """
    posted = sa.select(Entry.source_id).where(Entry.source == "invoice")
    query = (
        sa.select(Invoice)
        .where(Invoice.state == "posted", Invoice.id.not_in(posted))
        .order_by(Invoice.issue_date, sa.case((Invoice.type == "invoice", 0), else_=1), Invoice.sequence_number)
    )
    chart.ensure_installed()
    count = 0
    for invoice in db.session.scalars(query).all():
        if post_invoice(invoice) is not None:
            count += 1
    return count
