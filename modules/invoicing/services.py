"""Invoices and credit notes: lines and totals, drafts, posting with gapless numbers, cancelling, reversing.

The rounding rules (shared/docs/billing-rules.md): a line's amount is quantity x unit price rounded HALF_UP to 0.01;
VAT is computed per rate on the sum of that rate's line amounts, rounded HALF_UP; total = net + VAT.

Double billing is impossible by construction: every line that bills something carries `(source, source_ref)`, and
`invoicing_billed_ref` holds that pair under a UNIQUE constraint while the line stands. Cancelling a draft, or
posting a credit note that reverses the line, deletes the row, so the pair is unique over what is still billed.

Functions stage their changes in the caller's transaction; the caller commits. Posted documents are handed to
`deliver_invoice` (PDF, email) by a job once the posting transaction commits.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from flask_babel import gettext as _
from sqlalchemy.orm import aliased

from core import clock, jobs, signals
from core.db import db, on_commit, utcnow
from core.extension_points import BillableLine
from core.models import Partner
from core.sequences import format_number, next_number, peek_next
from core.validation import Checker, fail
from modules.invoicing.models import BilledRef, Invoice, InvoiceLine

CENT = Decimal("0.01")
PRICE_QUANTUM = Decimal("0.000001")
QUANTITY_QUANTUM = Decimal("0.001")
AMOUNT_LIMIT = Decimal(10) ** 10
# The source a credit note line is billed under: a line is reversed at most once while the credit note stands.
CREDIT_SOURCE = "credit"


def line_amount(quantity: Decimal, unit_price: Decimal) -> Decimal:
    """quantity x unit price, rounded to 0.01 HALF_UP (exact: the product of two decimals needs no rounding)."""
    with localcontext() as context:
        context.prec = 60
        return (quantity * unit_price).quantize(CENT, rounding=ROUND_HALF_UP)


def vat_summary(lines: Iterable[Any]) -> list[tuple[Decimal, Decimal, Decimal]]:
    """(rate, taxable, VAT) per VAT rate, ascending: VAT on the sum of that rate's line amounts, HALF_UP."""
    taxable: dict[Decimal, Decimal] = defaultdict(Decimal)
    for line in lines:
        taxable[Decimal(line.vat_rate)] += Decimal(line.amount)
    return [(rate, base, (base * rate / 100).quantize(CENT, ROUND_HALF_UP)) for rate, base in sorted(taxable.items())]


def compute_totals(invoice: Invoice) -> None:
    """Set every line's amount and the invoice's net, VAT and total from its lines."""
    for line in invoice.lines:
        line.amount = line_amount(Decimal(line.quantity), Decimal(line.unit_price))
    summary = vat_summary(invoice.lines)
    invoice.net_total = sum((base for _rate, base, _vat in summary), Decimal("0.00"))
    invoice.vat_total = sum((vat for _rate, _base, vat in summary), Decimal("0.00"))
    invoice.total = invoice.net_total + invoice.vat_total


def due_date(issue_date: dt.date, partner: Partner) -> dt.date:
    """Issue date + the customer's payment days; with `payment_end_of_month`, the end of that month ("fine mese")."""
    due = issue_date + dt.timedelta(days=partner.payment_terms_days or 0)
    if partner.payment_end_of_month:
        due = due.replace(day=calendar.monthrange(due.year, due.month)[1])
    return due


def _decimal(check: Checker, field: str, value: Any, quantum: Decimal, minimum: Decimal | None) -> Decimal:
    try:
        number = Decimal(value) if not isinstance(value, float | bool) else None
    except (InvalidOperation, TypeError, ValueError):
        number = None
    if number is None or not number.is_finite():
        check.fail(field, _("Not a decimal number: %(value)s", value=value))
        return Decimal(0)
    if number != number.quantize(quantum, rounding=ROUND_HALF_UP):
        check.fail(field, _("At most %(places)d decimal places.", places=-quantum.as_tuple().exponent))
    elif minimum is not None and number < minimum:
        check.fail(field, _("Must not be less than %(minimum)s.", minimum=minimum))
    elif abs(number) >= AMOUNT_LIMIT:
        check.fail(field, _("Too large: at most %(max)s.", max=AMOUNT_LIMIT))
    return number


def _text(check: Checker, field: str, value: Any, max_length: int, required: bool = True) -> str | None:
    text = (value or "").strip() if isinstance(value, str | type(None)) else str(value)
    if not text:
        if required:
            check.fail(field, _("This field is required."))
        return None
    if len(text) > max_length:
        check.fail(field, _("At most %(max)d characters.", max=max_length))
    return text


def new_line(line: BillableLine, position: int, field: str = "line") -> InvoiceLine:
    """An invoice line from a BillableLine, checked; ValidationError names the bad field."""
    check = Checker()
    quantity = _decimal(check, f"{field}.quantity", line.quantity, QUANTITY_QUANTUM, Decimal(0))
    unit_price = _decimal(check, f"{field}.unit_price", line.unit_price, PRICE_QUANTUM, None)
    vat_rate = _decimal(check, f"{field}.vat_rate", line.vat_rate, CENT, Decimal(0))
    if f"{field}.vat_rate" not in check and vat_rate > 100:
        check.fail(f"{field}.vat_rate", _("A VAT rate is at most 100."))
    description = _text(check, f"{field}.description", line.description, 1000)
    source = _text(check, f"{field}.source", line.source, 40)
    source_ref = _text(check, f"{field}.source_ref", line.source_ref, 200)
    kind = _text(check, f"{field}.kind", line.kind, 20)
    unit = _text(check, f"{field}.unit", line.unit, 10, required=False) or "pz"
    meter = _text(check, f"{field}.meter", line.meter, 20, required=False)
    if line.period_start and line.period_end and line.period_end < line.period_start:
        check.fail(f"{field}.period_end", _("The period ends before it starts."))
    check.raise_if_any()
    amount = line_amount(quantity, unit_price)
    if abs(amount) >= AMOUNT_LIMIT:
        fail(f"{field}.quantity", _("The line amount is too large."))
    return InvoiceLine(
        position=position,
        description=description,
        quantity=quantity,
        unit=unit,
        unit_price=unit_price,
        vat_rate=vat_rate,
        amount=amount,
        kind=kind,
        period_start=line.period_start,
        period_end=line.period_end,
        meter=meter,
        device_id=line.device_id,
        contract_id=line.contract_id,
        source=source,
        source_ref=source_ref,
        details=dict(line.extra) or None,
    )


def create_draft(
    customer_id: int, lines: Sequence[BillableLine], contract_id: int | None = None, billing_run_id: int | None = None
) -> Invoice:
    """A draft invoice of `lines` with their billed refs; a ref already billed fails at flush (IntegrityError)."""
    if not lines:
        fail("lines", _("An invoice needs at least one line."))
    invoice = Invoice(
        type="invoice",
        state="draft",
        customer_id=customer_id,
        contract_id=contract_id,
        billing_run_id=billing_run_id,
        lines=[new_line(line, position, f"lines.{position - 1}") for position, line in enumerate(lines, start=1)],
    )
    compute_totals(invoice)
    db.session.add(invoice)
    db.session.flush()
    _hold_refs(invoice)
    return invoice


def _hold_refs(invoice: Invoice) -> None:
    """Insert the billed refs of a flushed document's lines in one statement (UNIQUE: a ref billed twice fails)."""
    rows = [{"source": ln.source, "source_ref": ln.source_ref, "line_id": ln.id} for ln in invoice.lines]
    db.session.execute(sa.insert(BilledRef), rows)
    _announce_billed(invoice.lines)


def _by_source(lines: Iterable[InvoiceLine]) -> dict[str, list[InvoiceLine]]:
    grouped: dict[str, list[InvoiceLine]] = defaultdict(list)
    for line in lines:
        grouped[line.source].append(line)
    return grouped


def _announce_billed(lines: Iterable[InvoiceLine]) -> None:
    """Tell each source which of its lines are now billed, inside this transaction (core.signals.lines_billed)."""
    app = current_app._get_current_object()
    for source, source_lines in _by_source(lines).items():
        signals.lines_billed.send(app, source=source, lines=[(ln.source_ref, ln.details or {}) for ln in source_lines])


def _announce_released(lines: Iterable[InvoiceLine]) -> None:
    """Tell each source which of its lines are unbilled again (core.signals.lines_released), inside this transaction."""
    app = current_app._get_current_object()
    for source, source_lines in _by_source(lines).items():
        signals.lines_released.send(app, source=source, source_refs=[ln.source_ref for ln in source_lines])


def billed_keys(keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of the (source, source_ref) pairs are already on a standing line."""
    by_source: dict[str, list[str]] = defaultdict(list)
    for source, ref in set(keys):
        by_source[source].append(ref)
    found: set[tuple[str, str]] = set()
    for source, refs in by_source.items():
        refs.sort()
        for start in range(0, len(refs), 500):  # bounded IN lists; (source, source_ref) is the unique index
            query = sa.select(BilledRef.source_ref).where(
                BilledRef.source == source, BilledRef.source_ref.in_(refs[start : start + 500])
            )
            found.update((source, ref) for ref in db.session.scalars(query))
    return found


def _claim_draft(invoice: Invoice, values: dict[str, Any]) -> bool:
    """Change a draft in one conditional UPDATE: False when someone posted or cancelled it first."""
    result = db.session.execute(
        sa.update(Invoice)
        .where(Invoice.id == invoice.id, Invoice.state == "draft", Invoice.posted_at.is_(None))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def post(invoice: Invoice, issue_date: dt.date | None = None) -> Invoice:
    """Give a draft its number (gapless per type and year, in posting order), issue and due dates; never twice.

    Posting a credit note frees the (source, source_ref) of the lines it reverses.
    """
    issue_date = issue_date or clock.today()
    if not _claim_draft(invoice, {"posted_at": utcnow()}):
        db.session.refresh(invoice)
        message = _("Only a draft can be posted; this document is %(state)s.", state=invoice.state)
        fail("state", message)
    db.session.refresh(invoice)
    sequence = next_number(invoice.type, issue_date.year)
    last_date = db.session.scalar(
        sa.select(sa.func.max(Invoice.issue_date)).where(
            Invoice.type == invoice.type, Invoice.year == issue_date.year, Invoice.state == "posted"
        )
    )
    if last_date is not None and issue_date < last_date:
        message = _("The issue date must not be before %(date)s, the date of the last number.", date=last_date)
        fail("issue_date", message)
    invoice.sequence_number = sequence
    invoice.year = issue_date.year
    invoice.number = format_number(sequence, issue_date.year)
    invoice.issue_date = issue_date
    invoice.due_date = due_date(issue_date, invoice.customer)
    invoice.state = "posted"
    if invoice.type == "credit_note":
        reversed_ids = [line.reversed_line_id for line in invoice.lines if line.reversed_line_id]
        db.session.execute(sa.delete(BilledRef).where(BilledRef.line_id.in_(reversed_ids)))
        _announce_released(db.session.scalars(sa.select(InvoiceLine).where(InvoiceLine.id.in_(reversed_ids))))
    db.session.flush()
    # Same transaction: a receiver that fails (accounting's entry) fails the posting, and the caller rolls back.
    signals.invoice_posting.send(current_app._get_current_object(), invoice=invoice)
    on_commit(functools.partial(_deliver_posted, current_app._get_current_object(), invoice.id, invoice.customer_id))
    return invoice


def planned_numbers(drafts: list[Invoice], issue_date: dt.date | None = None) -> list[tuple[Invoice, str]]:
    """Each draft with the number posting them in this order today would give it; nothing is taken."""
    year = (issue_date or clock.today()).year
    following: dict[str, int] = {}
    planned = []
    for draft in drafts:
        following.setdefault(draft.type, peek_next(draft.type, year))
        planned.append((draft, format_number(following[draft.type], year)))
        following[draft.type] += 1
    return planned


def cancel(invoice: Invoice) -> Invoice:
    """Cancel a draft: what it held can be billed again. A posted document is reversed by a credit note instead."""
    if not _claim_draft(invoice, {"state": "cancelled"}):
        db.session.refresh(invoice)
        fail("state", _("Only a draft can be cancelled; this document is %(state)s.", state=invoice.state))
    lines = sa.select(InvoiceLine.id).where(InvoiceLine.invoice_id == invoice.id)
    db.session.execute(sa.delete(BilledRef).where(BilledRef.line_id.in_(lines)))
    db.session.refresh(invoice)
    _announce_released(invoice.lines)
    return invoice


def create_credit_note(invoice: Invoice, line_ids: Sequence[int] | None = None) -> Invoice:
    """A draft credit note reversing all of `invoice`'s lines, or those in `line_ids`.

    Amounts stay positive: the document type says it is a credit (FatturaPA TD04). A line is reversed by at most one
    standing credit note; posting the credit note frees the line's (source, source_ref) for a corrected bill.
    """
    if invoice.type != "invoice" or invoice.state != "posted":
        fail("invoice", _("Only a posted invoice can be credited."))
    by_id = {line.id: line for line in invoice.lines}
    if line_ids is None:
        chosen = list(invoice.lines)
    else:
        unknown = [str(line_id) for line_id in line_ids if line_id not in by_id]
        if unknown:
            fail("line_ids", _("Not lines of this invoice: %(ids)s", ids=", ".join(unknown)))
        chosen = [by_id[line_id] for line_id in dict.fromkeys(line_ids)]
    if not chosen:
        fail("line_ids", _("Choose at least one line to credit."))
    already = billed_keys((CREDIT_SOURCE, f"line:{line.id}") for line in chosen)
    if already:
        numbers = ", ".join(ref.removeprefix("line:") for _source, ref in sorted(already))
        fail("line_ids", _("These lines are already credited: %(ids)s", ids=numbers))
    note = Invoice(
        type="credit_note",
        state="draft",
        customer_id=invoice.customer_id,
        contract_id=invoice.contract_id,
        original_id=invoice.id,
        lines=[
            InvoiceLine(
                position=position,
                description=line.description,
                quantity=line.quantity,
                unit=line.unit,
                unit_price=line.unit_price,
                vat_rate=line.vat_rate,
                amount=line.amount,
                kind=line.kind,
                period_start=line.period_start,
                period_end=line.period_end,
                meter=line.meter,
                device_id=line.device_id,
                contract_id=line.contract_id,
                source=CREDIT_SOURCE,
                source_ref=f"line:{line.id}",
                details=line.details,
                reversed_line_id=line.id,
            )
            for position, line in enumerate(chosen, start=1)
        ],
    )
    compute_totals(note)
    db.session.add(note)
    db.session.flush()
    _hold_refs(note)
    return note


def previous_invoices(invoices: Sequence[Invoice]) -> dict[int, Invoice | None]:
    """For each invoice (by id), the latest standing invoice before it for the same contract (or customer, without a
    contract) and not of the same run: two queries for any number of invoices."""
    ids = [invoice.id for invoice in invoices]
    if not ids:
        return {}
    current, earlier = aliased(Invoice), aliased(Invoice)
    latest = (
        sa.select(sa.func.max(earlier.id))
        .where(
            earlier.type == "invoice",
            earlier.state != "cancelled",
            earlier.id < current.id,
            earlier.customer_id == current.customer_id,
            earlier.contract_id.is_not_distinct_from(current.contract_id),
            sa.or_(
                current.billing_run_id.is_(None),
                earlier.billing_run_id.is_(None),
                earlier.billing_run_id != current.billing_run_id,
            ),
        )
        .correlate(current)
        .scalar_subquery()
    )
    previous_ids = dict(db.session.execute(sa.select(current.id, latest).where(current.id.in_(ids))).all())
    wanted = {previous_id for previous_id in previous_ids.values() if previous_id is not None}
    found = {row.id: row for row in db.session.scalars(sa.select(Invoice).where(Invoice.id.in_(wanted)))}
    return {invoice_id: found.get(previous_ids.get(invoice_id)) for invoice_id in ids}


def change_percent(invoice: Invoice, previous: Invoice | None) -> Decimal | None:
    """How much the total changed against `previous`, in percent (None without a previous non-zero total)."""
    if previous is None or not previous.total:
        return None
    return ((invoice.total - previous.total) * 100 / previous.total).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _deliver_posted(app: Flask, invoice_id: int, customer_id: int) -> None:
    from modules.invoicing.jobs import deliver_invoice

    signals.invoice_posted.send(app, invoice_id=invoice_id, customer_id=customer_id)
    try:
        jobs.enqueue(deliver_invoice, invoice_id, job_id=f"invoice-deliver:{invoice_id}")
    except Exception as exc:  # the posting stands; the PDF is rendered on first download and the email resent
        app.logger.warning("invoice %s: delivery not started: %s", invoice_id, exc)
