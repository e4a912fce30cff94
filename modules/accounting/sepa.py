"""SEPA Direct Debit: mandates, pain.008.001.02 collection batches for invoices due in a range, settlement and returns.

The XML writer (`pain008`) is a plain function over dataclasses, checked in tests against the official
pain.008.001.02 schema. A batch keeps its file; its items are "collecting" until the batch is settled (one payment per
invoice through `payments.record_payment(method="sepa_dd")`) or an item is returned by the debtor's bank, which
reopens its invoice (its payment cancelled when the money had already been booked).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import force_locale
from flask_babel import gettext as _
from lxml import etree
from sqlalchemy.orm import selectinload
from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban
from stdnum.eu import at_02
from stdnum.exceptions import ValidationError as StdnumError

from core import clock
from core.db import db, utcnow
from core.labels import local_date
from core.models import Company, Partner
from core.outbox import mail_language
from core.sequences import next_number
from core.settings import get_setting, set_setting
from core.validation import Checker, fail
from modules.accounting.models import SEPA_SEQUENCE_TYPES, Payment, SepaBatch, SepaBatchItem, SepaMandate
from modules.invoicing.models import Invoice

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:pain.008.001.02"
CREDITOR_ID_SETTING = "accounting.sepa_creditor_id"
SCHEMES = ("CORE", "B2B")
CENT = Decimal("0.01")
# The EPC's Latin character set for SEPA messages; anything else is transliterated or replaced by a space.
_NOT_SEPA = re.compile(r"[^A-Za-z0-9/\-?:().,'+ ]")
# A mandate reference (AT-01): the same characters without the space, up to 35.
_MANDATE_REF = re.compile(r"[A-Za-z0-9/\-?:().,'+]{1,35}")


# --- the pain.008 file ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Creditor:
    """The dealer collecting: name, account, the bank's BIC (None: "NOTPROVIDED", IBAN-only) and creditor id (AT-02)."""

    name: str
    iban: str
    bic: str | None
    creditor_id: str


@dataclass(frozen=True)
class Collection:
    """One debit: what is collected from whom, under which mandate."""

    end_to_end_id: str
    amount: Decimal
    sequence_type: str
    mandate_reference: str
    mandate_signed_on: dt.date
    debtor_name: str
    debtor_iban: str
    debtor_bic: str | None
    remittance: str
    scheme: str = "CORE"  # the mandate's: CORE (consumers and businesses) or B2B (businesses only)


def sepa_text(value: str, max_length: int) -> str:
    """`value` in the SEPA character set (accents dropped, others spaced), at most `max_length` characters."""
    plain = unicodedata.normalize("NFKD", value or "").encode("ascii", "ignore").decode("ascii")
    text = " ".join(_NOT_SEPA.sub(" ", plain).split())
    return text[:max_length].strip() or "-"


def _amount(value: Decimal) -> str:
    return f"{Decimal(value).quantize(CENT):.2f}"


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{NAMESPACE}}}{tag}", attributes)
    if text is not None:
        element.text = text
    return element


def _agent(parent: etree._Element, tag: str, bic: str | None) -> None:
    institution = _sub(_sub(parent, tag), "FinInstnId")
    if bic:
        _sub(institution, "BIC", bic)
    else:
        _sub(_sub(institution, "Othr"), "Id", "NOTPROVIDED")


def _account(parent: etree._Element, tag: str, iban: str) -> None:
    _sub(_sub(_sub(parent, tag), "Id"), "IBAN", iban)


def pain008(
    message_id: str,
    created_at: dt.datetime,
    collection_date: dt.date,
    creditor: Creditor,
    collections: Sequence[Collection],
) -> bytes:
    """The pain.008.001.02 document (UTF-8 bytes): one payment information block per scheme (CORE, B2B: its
    LclInstrm, the debtor's mandate's) and sequence type (FRST, RCUR), as a bank books each block apart."""
    root = etree.Element(f"{{{NAMESPACE}}}Document", nsmap={None: NAMESPACE})
    initiation = _sub(root, "CstmrDrctDbtInitn")
    header = _sub(initiation, "GrpHdr")
    _sub(header, "MsgId", message_id)
    _sub(header, "CreDtTm", created_at.replace(microsecond=0).isoformat())
    _sub(header, "NbOfTxs", str(len(collections)))
    _sub(header, "CtrlSum", _amount(sum((c.amount for c in collections), Decimal("0"))))
    _sub(_sub(header, "InitgPty"), "Nm", sepa_text(creditor.name, 70))
    blocks = [(scheme, sequence_type) for scheme in SCHEMES for sequence_type in SEPA_SEQUENCE_TYPES]
    for scheme, sequence_type in blocks:
        group = [c for c in collections if c.scheme == scheme and c.sequence_type == sequence_type]
        if not group:
            continue
        block = _sub(initiation, "PmtInf")
        _sub(block, "PmtInfId", f"{message_id[:25]}-{scheme}-{sequence_type}")
        _sub(block, "PmtMtd", "DD")
        _sub(block, "BtchBookg", "true")
        _sub(block, "NbOfTxs", str(len(group)))
        _sub(block, "CtrlSum", _amount(sum((c.amount for c in group), Decimal("0"))))
        kind = _sub(block, "PmtTpInf")
        _sub(_sub(kind, "SvcLvl"), "Cd", "SEPA")
        _sub(_sub(kind, "LclInstrm"), "Cd", scheme)
        _sub(kind, "SeqTp", sequence_type)
        _sub(block, "ReqdColltnDt", collection_date.isoformat())
        _sub(_sub(block, "Cdtr"), "Nm", sepa_text(creditor.name, 70))
        _account(block, "CdtrAcct", creditor.iban)
        _agent(block, "CdtrAgt", creditor.bic)
        _sub(block, "ChrgBr", "SLEV")
        scheme_id = _sub(_sub(_sub(_sub(block, "CdtrSchmeId"), "Id"), "PrvtId"), "Othr")
        _sub(scheme_id, "Id", creditor.creditor_id)
        _sub(_sub(scheme_id, "SchmeNm"), "Prtry", "SEPA")
        for collection in group:
            debit = _sub(block, "DrctDbtTxInf")
            _sub(_sub(debit, "PmtId"), "EndToEndId", collection.end_to_end_id)
            _sub(debit, "InstdAmt", _amount(collection.amount), Ccy="EUR")
            mandate = _sub(_sub(debit, "DrctDbtTx"), "MndtRltdInf")
            _sub(mandate, "MndtId", collection.mandate_reference)
            _sub(mandate, "DtOfSgntr", collection.mandate_signed_on.isoformat())
            _agent(debit, "DbtrAgt", collection.debtor_bic)
            _sub(_sub(debit, "Dbtr"), "Nm", sepa_text(collection.debtor_name, 70))
            _account(debit, "DbtrAcct", collection.debtor_iban)
            _sub(_sub(debit, "RmtInf"), "Ustrd", sepa_text(collection.remittance, 140))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


# --- checks ---------------------------------------------------------------------------------------------------------


def clean_iban(check: Checker, field: str, value: Any) -> str | None:
    """The IBAN compacted (no spaces, upper case) when its country format and check digits hold."""
    text = check.text(field, value, 42, required=True)
    if text is None:
        return None
    try:
        return stdnum_iban.validate(text)
    except StdnumError:
        check.fail(field, _("This is not a valid IBAN."))
        return None


def clean_bic(check: Checker, field: str, value: Any) -> str | None:
    text = check.text(field, value, 15)
    if text is None:
        return None
    try:
        return stdnum_bic.validate(text)
    except StdnumError:
        check.fail(field, _("This is not a valid BIC."))
        return None


def creditor_id() -> str | None:
    """The dealer's SEPA creditor identifier (AT-02, e.g. IT66ZZZA1B2C3D4E5F6G7H8), from setting accounting.*."""
    return get_setting(CREDITOR_ID_SETTING)


def set_creditor_id(value: Any) -> str:
    """Store the creditor identifier once its check digits hold (python-stdnum `eu.at_02`). Field: `creditor_id`."""
    check = Checker()
    text = check.text("creditor_id", value, 40, required=True)
    check.raise_if_any()
    try:
        compact = at_02.validate(text)
    except StdnumError:
        fail("creditor_id", _("This is not a valid SEPA creditor identifier."))
    set_setting(CREDITOR_ID_SETTING, compact)
    return compact


# --- mandates -------------------------------------------------------------------------------------------------------


def save_mandate(
    mandate: SepaMandate | None,
    *,
    partner_id: Any,
    reference: Any,
    signed_on: Any,
    iban: Any,
    bic: Any = None,
    scheme: Any = "CORE",
    active: Any = True,
) -> SepaMandate:
    """Create or change a mandate. Fields: `partner_id`, `reference`, `signed_on`, `iban`, `bic`, `scheme`."""
    check = Checker()
    partner = db.session.get(Partner, partner_id) if isinstance(partner_id, int) else None
    if partner is None or not partner.is_customer:
        check.fail("partner_id", _("Choose a customer."))
    ref = check.text("reference", reference, 35, required=True)
    if ref is not None and not _MANDATE_REF.fullmatch(ref):
        check.fail("reference", _("Letters, digits and / - ? : ( ) . , ' + only, without spaces."))
        ref = None
    if ref is not None:
        query = sa.select(SepaMandate.id).where(SepaMandate.reference == ref)
        if mandate is not None and mandate.id is not None:
            query = query.where(SepaMandate.id != mandate.id)
        if db.session.scalar(query) is not None:
            check.fail("reference", _("Another mandate has this reference."))
    signed = check.date("signed_on", signed_on, required=True)
    if signed is not None and signed > clock.today():
        check.fail("signed_on", _("The date cannot be in the future."))
    account = clean_iban(check, "iban", iban)
    bank = clean_bic(check, "bic", bic)
    chosen = check.choice("scheme", scheme or "CORE", SCHEMES)
    check.raise_if_any()
    if mandate is None:
        mandate = SepaMandate()
        db.session.add(mandate)
    mandate.partner_id = partner.id
    mandate.reference = ref
    mandate.signed_on = signed
    mandate.iban = account
    mandate.bic = bank
    mandate.scheme = chosen
    mandate.active = bool(active)
    db.session.flush()
    return mandate


def active_mandates(partner_ids: Iterable[int] | None = None) -> dict[int, SepaMandate]:
    """Each customer's active mandate (the latest signed when a customer has several)."""
    query = sa.select(SepaMandate).where(SepaMandate.active.is_(True)).order_by(SepaMandate.signed_on, SepaMandate.id)
    if partner_ids is not None:
        query = query.where(SepaMandate.partner_id.in_(list(partner_ids)))
    return {mandate.partner_id: mandate for mandate in db.session.scalars(query)}


# --- batches --------------------------------------------------------------------------------------------------------


def collecting_invoice_ids(invoice_ids: Iterable[int] | None = None) -> set[int]:
    """The invoices in a batch not yet settled nor returned (their payment state is "collecting")."""
    query = sa.select(SepaBatchItem.invoice_id).where(SepaBatchItem.state == "collecting")
    if invoice_ids is not None:
        query = query.where(SepaBatchItem.invoice_id.in_(list(invoice_ids)))
    return set(db.session.scalars(query))


@dataclass(frozen=True)
class Candidate:
    """An open invoice of a customer with a mandate, due in the batch's range: what a batch would collect (its
    instalments due in the range, less what batches already collect)."""

    invoice: Invoice
    mandate: SepaMandate
    amount: Decimal
    sequence_type: str


def _used_mandates(mandate_ids: Iterable[int]) -> set[int]:
    """Mandates already collected once (an item collecting or collected): their next debits are RCUR.

    The sequence rule (EPC SDD rulebooks since November 2016, where FRST is no longer required before RCUR): a
    mandate's first debit is FRST, every later one RCUR, the first one counting as soon as it is sent (collecting),
    not only once settled. A batch with several invoices under a mandate never collected sends one FRST (the
    invoice due first) and the others RCUR, so no mandate has two "first" debits; a FRST returned before any other
    debit went out makes the next debit a FRST again (`mark_returned`)."""
    return set(
        db.session.scalars(
            sa.select(SepaBatchItem.mandate_id).where(
                SepaBatchItem.mandate_id.in_(list(mandate_ids)), SepaBatchItem.state.in_(("collecting", "collected"))
            )
        )
    )


def collecting_amounts(invoice_ids: Iterable[int]) -> dict[int, Decimal]:
    """Per invoice: the amount of its items still collecting (the instalments a batch already asked for)."""
    ids = list(invoice_ids)
    if not ids:
        return {}
    query = (
        sa.select(SepaBatchItem.invoice_id, sa.func.sum(SepaBatchItem.amount))
        .where(SepaBatchItem.state == "collecting", SepaBatchItem.invoice_id.in_(ids))
        .group_by(SepaBatchItem.invoice_id)
    )
    return {invoice_id: Decimal(amount).quantize(CENT) for invoice_id, amount in db.session.execute(query)}


def not_collecting(items: Sequence[Any]) -> list[tuple[Any, Decimal]]:
    """Each open debit item (reconcile.OpenItem) with what of it no batch is collecting yet: an invoice's items
    collecting count against its instalments earliest due first, as the batch's payment will be matched."""
    debits = [item for item in items if item.invoice_id is not None and item.residual > 0]
    covered = collecting_amounts({item.invoice_id for item in debits})
    result = []
    for item in sorted(debits, key=lambda i: (i.due_date or i.date, i.line.id)):
        taken = min(covered.get(item.invoice_id, Decimal("0")), item.residual)
        if taken:
            covered[item.invoice_id] -= taken
        result.append((item, item.residual - taken))
    return result


def candidates(due_from: dt.date, due_to: dt.date) -> list[Candidate]:
    """Open receivables due from `due_from` to `due_to` of customers with an active mandate, not already collecting:
    per invoice, the sum of its instalments due in the range (one of three due now: that one only)."""
    from modules.accounting.reconcile import open_receivables

    items = [
        (item, left)
        for item, left in not_collecting(open_receivables())
        if left > 0 and item.due_date is not None and due_from <= item.due_date <= due_to
    ]
    mandates = active_mandates({item.line.partner_id for item, _left in items})
    items = [(item, left) for item, left in items if item.line.partner_id in mandates]
    invoices = {
        invoice.id: invoice
        for invoice in db.session.scalars(
            sa.select(Invoice)
            .where(Invoice.id.in_({item.invoice_id for item, _left in items}))
            .options(selectinload(Invoice.customer))
        )
    }
    used = _used_mandates(m.id for m in mandates.values())
    amounts: dict[int, Decimal] = {}
    first_due: dict[int, dt.date] = {}
    for item, left in items:
        amounts[item.invoice_id] = amounts.get(item.invoice_id, Decimal("0")) + left
        first_due[item.invoice_id] = min(first_due.get(item.invoice_id, item.due_date), item.due_date)
    ordered = sorted(amounts, key=lambda invoice_id: (first_due[invoice_id], invoices[invoice_id].number or ""))
    found = []
    for invoice_id in ordered:
        invoice = invoices[invoice_id]
        mandate = mandates[invoice.customer_id]
        found.append(Candidate(invoice, mandate, amounts[invoice_id], "RCUR" if mandate.id in used else "FRST"))
        used.add(mandate.id)  # one FRST per mandate: its other invoices in the batch go RCUR
    return found


def _creditor(check: Checker) -> Creditor | None:
    company = db.session.scalar(sa.select(Company).limit(1))
    identifier = creditor_id()
    if not identifier:
        check.fail("creditor_id", _("Set the SEPA creditor identifier in the accounting settings first."))
    iban = None
    if company is None or not company.iban:
        check.fail("iban", _("Set the company's IBAN first."))
    else:
        iban = clean_iban(check, "iban", company.iban)
    if "creditor_id" in check or "iban" in check:
        return None
    return Creditor(company.name, iban, None, identifier)


def _remittance(invoice: Invoice) -> str:
    """What the debtor reads on its bank statement, in its language."""
    with force_locale(mail_language(invoice.customer.language)):
        return _("Invoice %(number)s of %(date)s", number=invoice.number, date=local_date(invoice.issue_date, "short"))


def create_batch(due_from: Any, due_to: Any, collection_date: Any, *, user_id: int | None = None) -> SepaBatch:
    """A pain.008 batch collecting every candidate due in the range on `collection_date` (after today).

    Fields: `due_from`, `due_to`, `collection_date`, `creditor_id`, `iban` (the company's).
    """
    check = Checker()
    start = check.date("due_from", due_from, required=True)
    end = check.date("due_to", due_to, required=True)
    when = check.date("collection_date", collection_date, required=True)
    if start and end and end < start:
        check.fail("due_to", _("The end comes before the start."))
    if when is not None and when <= clock.today():
        check.fail("collection_date", _("The collection date must be after today."))
    creditor = _creditor(check)
    check.raise_if_any()
    found = candidates(start, end)
    if not found:
        fail("due_to", _("No open invoice of a customer with a mandate is due in this range."))
    year = when.year
    message_id = f"SDD-{year}-{next_number('accounting.sepa', year):05d}"
    batch = SepaBatch(
        message_id=message_id,
        collection_date=when,
        due_from=start,
        due_to=end,
        filename=f"{message_id}.xml",
        item_count=len(found),
        total=sum((c.amount for c in found), Decimal("0")),
        created_at=utcnow(),
        created_by=user_id,
    )
    db.session.add(batch)
    collections = []
    for n, candidate in enumerate(found, start=1):
        end_to_end = f"{message_id}-{n:04d}"
        batch.items.append(
            SepaBatchItem(
                invoice_id=candidate.invoice.id,
                mandate_id=candidate.mandate.id,
                amount=candidate.amount,
                end_to_end_id=end_to_end,
                sequence_type=candidate.sequence_type,
                state="collecting",
            )
        )
        if candidate.mandate.first_collected_on is None:
            candidate.mandate.first_collected_on = when
        collections.append(
            Collection(
                end_to_end_id=end_to_end,
                amount=candidate.amount,
                sequence_type=candidate.sequence_type,
                mandate_reference=candidate.mandate.reference,
                mandate_signed_on=candidate.mandate.signed_on,
                debtor_name=candidate.invoice.customer.name,
                debtor_iban=candidate.mandate.iban,
                debtor_bic=candidate.mandate.bic,
                remittance=_remittance(candidate.invoice),
                scheme=candidate.mandate.scheme or "CORE",
            )
        )
    batch.content = pain008(message_id, clock.now(), when, creditor, collections)
    db.session.flush()
    return batch


def settle_batch(batch: SepaBatch, date: Any = None, *, user_id: int | None = None) -> list[Payment]:
    """The bank credited the batch: one SEPA payment per item still collecting, matched to its invoice."""
    from modules.accounting.payments import record_payment
    from modules.accounting.reconcile import payment_states

    check = Checker()
    when = check.date("date", date, required=False) or clock.today()
    check.raise_if_any()
    items = [item for item in batch.items if item.state == "collecting"]
    if not items:
        fail("batch", _("Nothing in this batch is still being collected."))
    due = payment_states([item.invoice_id for item in items], as_of=when)
    customers = dict(
        db.session.execute(
            sa.select(Invoice.id, Invoice.customer_id).where(Invoice.id.in_([item.invoice_id for item in items]))
        ).all()
    )
    payments = []
    for item in items:
        status = due.get(item.invoice_id)
        payments.append(
            record_payment(
                customers[item.invoice_id],
                item.amount,
                when,
                method="sepa_dd",
                reference=item.end_to_end_id,
                invoice_id=item.invoice_id,
                # The money came in whatever else the customer paid meanwhile: the excess stays as a credit.
                advance=status is None or status.amount_due < item.amount,
                user_id=user_id,
            )
        )
        item.state = "collected"
    db.session.flush()
    return payments


def find_item(end_to_end_id: Any) -> SepaBatchItem:
    check = Checker()
    text = check.text("end_to_end_id", end_to_end_id, 35, required=True)
    check.raise_if_any()
    item = db.session.scalar(sa.select(SepaBatchItem).where(SepaBatchItem.end_to_end_id == text))
    if item is None:
        fail("end_to_end_id", _("No direct debit has this end-to-end id."))
    return item


def mark_returned(
    item: SepaBatchItem, reason: Any, returned_on: Any = None, *, user_id: int | None = None
) -> SepaBatchItem:
    """The debtor's bank returned the debit (an R-transaction reason code such as AC04, MD06): the invoice is open
    again. Before settlement the item just stops collecting; after it, the item's payment is cancelled (its matches
    undone, its entry reversed). Fields: `reason`, `returned_on`, `state`.
    """
    from modules.accounting.payments import cancel_payment

    check = Checker()
    code = check.text("reason", reason, 10, required=True)
    when = check.date("returned_on", returned_on, required=False) or clock.today()
    if item.state == "returned":
        check.fail("state", _("This direct debit is already returned."))
    check.raise_if_any()
    if item.state == "collected":
        payment = item_payment(item)
        if payment is not None:
            cancel_payment(payment, user_id=user_id)
    item.state = "returned"
    item.return_reason = code.upper()
    item.returned_on = when
    if not _used_mandates([item.mandate_id]):
        # Never collected after all: the next debit under this mandate is a first one again.
        item.mandate.first_collected_on = None
    db.session.flush()
    return item


def item_payment(item: SepaBatchItem) -> Payment | None:
    """The payment that settled the item (found by its end-to-end id, which is the payment's reference)."""
    return db.session.scalar(
        sa.select(Payment)
        .where(
            Payment.method == "sepa_dd",
            Payment.reference == item.end_to_end_id,
            Payment.invoice_id == item.invoice_id,
        )
        .order_by(Payment.id.desc())
        .limit(1)
    )
