"""Invoices and credit notes: lines and totals, drafts, posting with gapless numbers, cancelling, reversing.

The rounding rules (shared/docs/billing-rules.md): a line's amount is quantity x unit price rounded HALF_UP to 0.01;
VAT is computed per rate on the sum of that rate's line amounts, rounded HALF_UP; total = net + VAT.

Double billing is impossible by construction: every line that bills something carries `(source, source_ref)`, and
`invoicing_billed_ref` holds that pair under a UNIQUE constraint while the line stands. Cancelling a draft, or
posting a credit note that reverses the line, deletes the row, so the pair is unique over what is still billed.

Every line carries a VAT code (core.vat_codes) with its Natura and legal reference as they stood when it was made.
Posting fixes what the e-invoice states: the payment method, split payment, stamp duty and the instalments.

Functions stage their changes in the caller's transaction; the caller commits. Posted documents are handed to
`deliver_invoice` (PDF, email) by a job once the posting transaction commits.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy.orm import aliased

from core import clock, jobs, signals, vat_codes
from core.db import db, on_commit, utcnow
from core.extension_points import INVOICE_REFERENCES, BillableLine, InvoiceReference, implementations
from core.models import Partner, VatCode
from core.outbox import mail_language
from core.procurement import check_procurement
from core.sequences import format_number, next_number, peek_next
from core.settings import get_setting
from core.validation import Checker, ValidationError, fail
from modules.invoicing.models import BilledRef, Invoice, InvoiceLine

CENT = Decimal("0.01")
PRICE_QUANTUM = Decimal("0.000001")
QUANTITY_QUANTUM = Decimal("0.001")
AMOUNT_LIMIT = Decimal(10) ** 10
# The source a credit note line is billed under: a line is reversed at most once while the credit note stands.
CREDIT_SOURCE = "credit"
# The source of lines typed in by hand (API); each gets a fresh source_ref.
MANUAL_SOURCE = "manual"
# Bollo virtuale: 2.00 EUR on a document whose exempt, excluded or not-subject amounts exceed 77.47 EUR.
STAMP_DUTY = Decimal("2.00")
STAMP_THRESHOLD = Decimal("77.47")
STAMP_KIND = "stamp_duty"
STAMP_CODE = "N1"  # excluded from VAT (art. 15 DPR 633/72) when charged to the customer
STAMP_CHARGED_SETTING = "invoicing.stamp_duty_charged"


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


@dataclass(frozen=True)
class VatRow:
    """One line of the VAT summary of an e-invoice (DatiRiepilogo): a rate with its Natura."""

    rate: Decimal
    nature: str | None
    reference: str | None
    base: Decimal
    vat: Decimal


def vat_rows(lines: Iterable[Any]) -> list[VatRow]:
    """One row per (rate, Natura), by rate then Natura: VAT on the sum of the row's line amounts, HALF_UP."""
    base: dict[tuple[Decimal, str], Decimal] = defaultdict(Decimal)
    reference: dict[tuple[Decimal, str], str | None] = {}
    for line in lines:
        key = (Decimal(line.vat_rate), line.vat_nature or "")
        base[key] += Decimal(line.amount)
        reference[key] = reference.get(key) or line.vat_reference or None
    return [
        VatRow(rate, nature or None, reference[rate, nature], total, (total * rate / 100).quantize(CENT, ROUND_HALF_UP))
        for (rate, nature), total in sorted(base.items())
    ]


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


def payment_schedule(issue_date: dt.date, amount: Decimal, partner: Partner) -> list[tuple[dt.date, Decimal]]:
    """The customer's instalments: equal shares (the cents left over on the last), the k-th due k x the payment days
    after issue (end of that month with `payment_end_of_month`); one instalment is due on `due_date`."""
    count = max(1, partner.payment_instalments or 1)
    if count == 1:
        return [(due_date(issue_date, partner), amount)]
    share = (amount / count).quantize(CENT, rounding=ROUND_DOWN)
    schedule = []
    for k in range(1, count + 1):
        due = issue_date + dt.timedelta(days=k * (partner.payment_terms_days or 0))
        if partner.payment_end_of_month:
            due = due.replace(day=calendar.monthrange(due.year, due.month)[1])
        schedule.append((due, share if k < count else amount - share * (count - 1)))
    return schedule


def amount_due(invoice: Invoice) -> Decimal:
    """What the customer pays: the total, or under split payment the total less VAT (the VAT goes to the state)."""
    total = Decimal(invoice.total)
    return total - Decimal(invoice.vat_total) if invoice.split_payment else total


def stamp_duty_due(lines: Iterable[Any]) -> bool:
    """Whether the amounts of lines whose VAT code counts toward the stamp duty exceed 77.47 (a charged stamp line
    itself does not count)."""
    lines = [line for line in lines if line.kind != STAMP_KIND and line.vat_code]
    codes = {line.vat_code for line in lines}
    if not codes:
        return False
    stamped = set(db.session.scalars(sa.select(VatCode.code).where(VatCode.code.in_(codes), VatCode.stamp_duty)))
    return sum((Decimal(line.amount) for line in lines if line.vat_code in stamped), Decimal(0)) > STAMP_THRESHOLD


def stamp_duty_charged() -> bool:
    """Setting `invoicing.stamp_duty_charged` (default on): the stamp duty is a line the customer pays."""
    return bool(get_setting(STAMP_CHARGED_SETTING, True))


def _apply_stamp_duty(invoice: Invoice) -> None:
    """Stamp duty on a document that owes it; charged, a line of 2.00 (N1) once, never a second one. A credit note
    states its own DatiBollo by the same rule but never adds a line: the stamp is credited only through the
    invoice's own stamp line, when that line is among those credited."""
    if not stamp_duty_due(invoice.lines):
        invoice.stamp_duty = Decimal("0.00")
        return
    invoice.stamp_duty = STAMP_DUTY
    if invoice.type == "credit_note" or not stamp_duty_charged():
        return
    if any(line.kind == STAMP_KIND for line in invoice.lines):
        return
    code = vat_codes.resolve(STAMP_CODE, None, "stamp_duty")
    with force_locale(mail_language(invoice.customer.language)):
        description = _("Stamp duty")
    invoice.lines.append(
        InvoiceLine(
            position=max((line.position for line in invoice.lines), default=0) + 1,
            description=description,
            quantity=Decimal(1),
            unit="pz",
            unit_price=STAMP_DUTY,
            amount=STAMP_DUTY,
            kind=STAMP_KIND,
            source=None,
            source_ref=None,
            **_vat_fields(code),
        )
    )


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


def new_line(
    line: BillableLine, position: int, field: str = "line", codes: dict[tuple[Any, Any], VatCode] | None = None
) -> InvoiceLine:
    """An invoice line from a BillableLine, checked; ValidationError names the bad field.

    The VAT code decides the rate: a line's code wins over its rate; without a code, a rate above 0 takes that rate's
    default code and 0% is refused (a 0% line needs its Natura). `codes` caches the codes already resolved.
    """
    check = Checker()
    quantity = _decimal(check, f"{field}.quantity", line.quantity, QUANTITY_QUANTUM, Decimal(0))
    unit_price = _decimal(check, f"{field}.unit_price", line.unit_price, PRICE_QUANTUM, None)
    vat_rate = None
    if not line.vat_code and line.vat_rate is not None:
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
    code = _resolve(line.vat_code, vat_rate, f"{field}.vat_code", codes)
    amount = line_amount(quantity, unit_price)
    if abs(amount) >= AMOUNT_LIMIT:
        fail(f"{field}.quantity", _("The line amount is too large."))
    return InvoiceLine(
        position=position,
        description=description,
        quantity=quantity,
        unit=unit,
        unit_price=unit_price,
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
        **_vat_fields(code),
    )


def _resolve(
    vat_code: str | None, vat_rate: Decimal | None, field: str, codes: dict[tuple[Any, Any], VatCode] | None
) -> VatCode:
    key = (vat_code or None, None if vat_code else vat_rate)
    if codes is not None and key in codes:
        return codes[key]
    code = vat_codes.resolve(vat_code or None, vat_rate, field)
    if codes is not None:
        codes[key] = code
    return code


def _vat_fields(code: VatCode) -> dict[str, Any]:
    """What a line keeps of its VAT code: a later change of the code does not change a document already made."""
    return {
        "vat_rate": Decimal(code.rate),
        "vat_code": code.code,
        "vat_nature": code.nature,
        "vat_reference": code.legal_reference,
    }


def check_references(data: dict[str, Any]) -> dict[str, Any]:
    """Public procurement references typed in by hand (CIG, CUP, contract or order), cleaned by
    core.procurement; on an invoice the customer's number is required with a kind or a date (there is no contract
    number to fall back on). ValidationError names each bad field."""
    check = Checker()
    clean = check_procurement(check, data)
    reference = clean["order_reference"]
    if reference is None and "order_reference" not in check and (clean["order_kind"] or clean["order_date"]):
        check.fail("order_reference", _("The number of the customer's contract or order is required."))
    clean["order_kind"] = (clean["order_kind"] or "contract") if reference else None
    clean["order_date"] = clean["order_date"] if reference else None
    check.raise_if_any()
    return clean


def contract_references(contract_ids: Sequence[int]) -> dict[int, InvoiceReference]:
    """The procurement references of these contracts, as the enabled modules know them (the first that answers)."""
    found: dict[int, InvoiceReference] = {}
    for provider in implementations(INVOICE_REFERENCES):
        for contract_id, reference in provider.invoice_references(list(contract_ids)).items():
            found.setdefault(contract_id, reference)
    return found


def contract_customers(contract_ids: Sequence[int]) -> dict[int, int]:
    """The customer of each of these contracts the enabled modules know (none while no module keeps contracts)."""
    found: dict[int, int] = {}
    for provider in implementations(INVOICE_REFERENCES):
        for contract_id, customer_id in provider.contract_customers(list(contract_ids)).items():
            found.setdefault(contract_id, customer_id)
    return found


def _copy_references(invoice: Invoice, reference: InvoiceReference | None) -> None:
    if reference is None:
        return
    invoice.order_kind = (reference.kind or "contract") if reference.reference else None
    invoice.order_reference = reference.reference or None
    invoice.order_date = reference.date if reference.reference else None
    invoice.cig = reference.cig or None
    invoice.cup = reference.cup or None


def create_draft(
    customer_id: int, lines: Sequence[BillableLine], contract_id: int | None = None, billing_run_id: int | None = None
) -> Invoice:
    """A draft invoice of `lines` with their billed refs; a ref already billed fails at flush (IntegrityError).

    A contract's procurement references (CIG, CUP, contract or order) are copied onto the draft.
    """
    if not lines:
        fail("lines", _("An invoice needs at least one line."))
    references = contract_references([contract_id]) if contract_id is not None else {}
    invoice = _new_draft(customer_id, lines, contract_id, billing_run_id, {}, references)
    _store_drafts([invoice])
    return invoice


def create_drafts(
    customer_id: int, drafts: Sequence[tuple[int | None, Sequence[BillableLine]]], billing_run_id: int | None = None
) -> tuple[list[Invoice], dict[int | None, ValidationError]]:
    """One draft per (contract_id, lines) of a customer, stored together in a few statements: the drafts, and the
    ValidationError of each contract whose lines were refused (that draft is left out, the others stored).

    As `create_draft`: a ref already billed fails (IntegrityError) for all of them, so the caller wraps this in a
    savepoint and, on that error, stores them one by one to find which contract it was.
    """
    codes: dict[tuple[Any, Any], VatCode] = {}
    references = contract_references([cid for cid, _lines in drafts if cid is not None]) if drafts else {}
    built: list[tuple[Invoice, list[InvoiceLine]]] = []
    errors: dict[int | None, ValidationError] = {}
    for contract_id, lines in drafts:
        try:
            built.append(_new_draft_apart(customer_id, lines, contract_id, billing_run_id, codes, references))
        except ValidationError as error:
            errors[contract_id] = error
    if built:
        _store_apart(built)
    return [invoice for invoice, _lines in built], errors


def _new_draft(
    customer_id: int,
    lines: Sequence[BillableLine],
    contract_id: int | None,
    billing_run_id: int | None,
    codes: dict[tuple[Any, Any], VatCode],
    references: dict[int, InvoiceReference],
) -> Invoice:
    """An unsaved draft of `lines` (checked: ValidationError names the bad field), with its contract's references."""
    invoice, invoice_lines = _new_draft_apart(customer_id, lines, contract_id, billing_run_id, codes, references)
    invoice.lines = invoice_lines
    return invoice


def _new_draft_apart(
    customer_id: int,
    lines: Sequence[BillableLine],
    contract_id: int | None,
    billing_run_id: int | None,
    codes: dict[tuple[Any, Any], VatCode],
    references: dict[int, InvoiceReference],
) -> tuple[Invoice, list[InvoiceLine]]:
    """`_new_draft` with its lines kept apart from the invoice (not yet in its `lines`), its totals set from them."""
    if not lines:
        fail("lines", _("An invoice needs at least one line."))
    invoice_lines = [
        new_line(line, position, f"lines.{position - 1}", codes) for position, line in enumerate(lines, start=1)
    ]
    invoice = Invoice(
        type="invoice", state="draft", customer_id=customer_id, contract_id=contract_id, billing_run_id=billing_run_id
    )
    if contract_id is not None:
        _copy_references(invoice, references.get(contract_id))
    summary = vat_summary(invoice_lines)  # as compute_totals: new_line has set each line's amount
    invoice.net_total = sum((base for _rate, base, _vat in summary), Decimal("0.00"))
    invoice.vat_total = sum((vat for _rate, _base, vat in summary), Decimal("0.00"))
    invoice.total = invoice.net_total + invoice.vat_total
    return invoice, invoice_lines


def _store_drafts(invoices: Sequence[Invoice]) -> None:
    """Insert drafts with their lines (one flush), then their billed refs and announcements."""
    db.session.add_all(invoices)
    db.session.flush()
    _hold_refs(*invoices)


# The columns of a line stored by `_store_apart` (its id comes from the database).
_LINE_COLUMNS = [column.key for column in InvoiceLine.__table__.columns if column.key != "id"]


def _store_apart(built: Sequence[tuple[Invoice, list[InvoiceLine]]]) -> None:
    """Insert drafts (one flush: their ids and audit entries), all their lines in one bulk INSERT, their billed refs
    in one INSERT ... SELECT per 500 drafts (UNIQUE: a ref billed twice fails), then announce the lines once."""
    invoices = [invoice for invoice, _lines in built]
    db.session.add_all(invoices)
    db.session.flush()
    rows = []
    for invoice, lines in built:
        for line in lines:
            row = {key: getattr(line, key) for key in _LINE_COLUMNS}
            row["invoice_id"] = invoice.id
            rows.append(row)
    db.session.execute(sa.insert(InvoiceLine.__table__), rows)  # the table's: every row with every column, one batch
    ids = [invoice.id for invoice in invoices]
    for start in range(0, len(ids), 500):  # bounded IN lists
        # In line order, as every run inserts them: two runs take the unique index's locks in the same order.
        lines_of = (
            sa.select(InvoiceLine.source, InvoiceLine.source_ref, InvoiceLine.id)
            .where(InvoiceLine.invoice_id.in_(ids[start : start + 500]))
            .order_by(InvoiceLine.id)
        )
        db.session.execute(sa.insert(BilledRef).from_select(["source", "source_ref", "line_id"], lines_of))
    for invoice in invoices:  # read from the database when asked for
        db.session.expire(invoice, ["lines"])
    _announce_billed(line for _invoice, lines in built for line in lines)


def create_manual_draft(
    customer_id: int, lines: Sequence[dict[str, Any]], contract_id: int | None = None, **references: Any
) -> Invoice:
    """A draft of lines typed in by hand (source `manual`), with the procurement references given, else the
    contract's; ValidationError names the field (`lines.0.vat_code`, `cig`, `contract_id`: not a contract of this
    customer, nor any contract while no enabled module keeps contracts, ...)."""
    clean = check_references(references)
    if contract_id is not None and contract_customers([contract_id]).get(contract_id) != customer_id:
        fail("contract_id", _("Not a contract of this customer."))
    billable = [
        BillableLine(
            source=MANUAL_SOURCE,
            source_ref=uuid.uuid4().hex,
            description=line.get("description"),
            quantity=line.get("quantity"),
            unit_price=line.get("unit_price"),
            vat_rate=line.get("vat_rate"),
            vat_code=line.get("vat_code"),
            kind=line.get("kind") or "other",
            contract_id=contract_id,
            period_start=line.get("period_start"),
            period_end=line.get("period_end"),
            unit=line.get("unit") or "pz",
        )
        for line in lines
    ]
    invoice = create_draft(customer_id, billable, contract_id=contract_id)
    if any(clean.values()):
        for field, value in clean.items():
            setattr(invoice, field, value)
        db.session.flush()
    return invoice


def _hold_refs(*invoices: Invoice) -> None:
    """Insert the billed refs of flushed documents' lines in one statement (UNIQUE: a ref billed twice fails), then
    announce them: each source once for all these documents."""
    lines = [line for invoice in invoices for line in invoice.lines]
    rows = [{"source": ln.source, "source_ref": ln.source_ref, "line_id": ln.id} for ln in lines]
    db.session.execute(sa.insert(BilledRef), rows)
    _announce_billed(lines)


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
    wanted = set(keys)
    refs = sorted({ref for _source, ref in wanted})
    found: set[tuple[str, str]] = set()
    for start in range(0, len(refs), 500):  # bounded IN lists
        # By source_ref alone, on its own index: with `source = ...` too, a planner whose statistics say the table
        # is empty (a large run before autovacuum analyzes it) reads every ref of the source through the unique one.
        query = sa.select(BilledRef.source, BilledRef.source_ref).where(
            BilledRef.source_ref.in_(refs[start : start + 500])
        )
        found.update(pair for pair in db.session.execute(query).tuples() if pair in wanted)
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

    Before the number: the stamp duty (and its line when charged) and the totals. Then the customer's payment
    method, split payment and instalments are fixed on the document. Posting a credit note frees the
    (source, source_ref) of the lines it reverses.
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
    _apply_stamp_duty(invoice)
    compute_totals(invoice)
    invoice.sequence_number = sequence
    invoice.year = issue_date.year
    invoice.number = format_number(sequence, issue_date.year)
    invoice.issue_date = issue_date
    customer = invoice.customer
    invoice.payment_method = customer.payment_method
    # A credit note follows the invoice it credits: split payment then as now.
    invoice.split_payment = bool(invoice.original.split_payment if invoice.original else customer.split_payment)
    schedule = payment_schedule(issue_date, amount_due(invoice), customer)
    invoice.payment_schedule = [{"due_date": due.isoformat(), "amount": str(amount)} for due, amount in schedule]
    invoice.due_date = schedule[0][0]
    invoice.state = "posted"
    if invoice.type == "credit_note":
        reversed_ids = [line.reversed_line_id for line in invoice.lines if line.reversed_line_id]
        db.session.execute(sa.delete(BilledRef).where(BilledRef.line_id.in_(reversed_ids)))
        reversed_lines = db.session.scalars(sa.select(InvoiceLine).where(InvoiceLine.id.in_(reversed_ids))).all()
        _announce_released(line for line in reversed_lines if line.source is not None)
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
        cig=invoice.cig,
        cup=invoice.cup,
        order_kind=invoice.order_kind,
        order_reference=invoice.order_reference,
        order_date=invoice.order_date,
        lines=[
            InvoiceLine(
                position=position,
                description=line.description,
                quantity=line.quantity,
                unit=line.unit,
                unit_price=line.unit_price,
                vat_rate=line.vat_rate,
                vat_code=line.vat_code,
                vat_nature=line.vat_nature,
                vat_reference=line.vat_reference,
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


def _correction_refused(invoice: Invoice) -> str | None:
    """Why `correct_rejected` would refuse the invoice, or None."""
    if invoice.type != "invoice" or invoice.state != "posted" or invoice.einvoice_state != "rejected":
        return _("Only a posted invoice rejected by the exchange system can be corrected this way.")
    credited = sa.select(Invoice.id).where(Invoice.original_id == invoice.id, Invoice.state != "cancelled").limit(1)
    if db.session.scalar(credited) is not None:
        return _("This invoice already has a credit note: it was corrected before.")
    return None


def can_correct(invoice: Invoice) -> bool:
    """Whether `correct_rejected` takes this invoice: posted, rejected by the exchange system, and with no standing
    (draft or posted) credit note yet."""
    return _correction_refused(invoice) is None


def correct_rejected(invoice: Invoice) -> tuple[Invoice, Invoice]:
    """Correct an invoice the exchange system rejected: a posted credit note of all its lines, then a new draft of
    the same lines (billing the same references) for the dealer to check and post. ValidationError (`state`) unless
    `can_correct(invoice)`."""
    refused = _correction_refused(invoice)
    if refused is not None:
        fail("state", refused)
    note = post(create_credit_note(invoice))
    lines = [
        BillableLine(
            source=line.source,
            source_ref=line.source_ref,
            description=line.description,
            quantity=line.quantity,
            unit_price=line.unit_price,
            vat_rate=line.vat_rate,
            vat_code=line.vat_code,
            kind=line.kind,
            contract_id=line.contract_id,
            period_start=line.period_start,
            period_end=line.period_end,
            meter=line.meter,
            device_id=line.device_id,
            unit=line.unit,
            extra=dict(line.details or {}),
        )
        for line in invoice.lines
        if line.source is not None  # the stamp line: added again when the new invoice is posted
    ]
    draft = create_draft(invoice.customer_id, lines, contract_id=invoice.contract_id)
    if not any((draft.cig, draft.cup, draft.order_reference)):
        for field in ("cig", "cup", "order_kind", "order_reference", "order_date"):
            setattr(draft, field, getattr(invoice, field))
    draft.notes = invoice.notes
    db.session.flush()
    return note, draft


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
