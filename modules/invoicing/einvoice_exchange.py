"""The exchange with the SdI through the intermediary: a period's e-invoices as one zip, the SdI receipts read back."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from lxml import etree
from sqlalchemy.orm import aliased, selectinload

from core.db import db
from core.models import Company
from core.partners import vat_display
from core.validation import ValidationError
from modules.invoicing import fatturapa
from modules.invoicing.models import EInvoiceReceipt, Invoice

SDI_NAMESPACE = "http://www.fatturapa.gov.it/sdi/messaggi/v1.0"
# The SdI states its moments in Italian time when the message carries no offset.
SDI_TIMEZONE = ZoneInfo("Europe/Rome")
MAX_PERIOD_DAYS = 366
MAX_RECEIPT_BYTES = 5 * 1024 * 1024
MAX_ZIP_MEMBERS = 5000
# What one zip may unpack to in all, and how much smaller than its content a member may be: beyond, a zip bomb.
MAX_ZIP_BYTES = 50 * 1024 * 1024
MAX_ZIP_RATIO = 100
MAX_FILE_NAME = 120

# Root element of each SdI message -> the receipt kind it is stored as.
ROOT_KINDS = {
    "RicevutaConsegna": "RC",
    "NotificaScarto": "NS",
    "NotificaMancataConsegna": "MC",
    # The PA flow's "delivery impossible" attestation: the invoice is issued but not delivered, as an MC.
    "AttestazioneTrasmissioneFattura": "MC",
    "NotificaEsito": "NE",
    "NotificaDecorrenzaTermini": "DT",
}
OUTCOME_STATES = {"EC01": "accepted", "EC02": "refused"}
OUTCOME_LABELS = {"EC01": _l("accepted by the public body"), "EC02": _l("refused by the public body")}
# NS error "file already received": the SdI has the file from an earlier sending; the document's state stands.
DUPLICATE_FILE_ERROR = "00002"
KIND_STATES = {"RC": "delivered", "NS": "rejected", "MC": "not_delivered", "DT": "deadline_passed"}
# Which e-invoice state each receipt may follow: a receipt never moves a delivered or accepted invoice back.
ALLOWED_FROM = {
    "RC": {None, "exported", "not_delivered", "delivered"},
    "NS": {None, "exported", "rejected"},
    "MC": {None, "exported", "not_delivered"},
    "NE": {None, "exported", "delivered", "not_delivered"},
    "DT": {None, "exported", "delivered", "not_delivered"},
}

STATE_LABELS = {
    "exported": _l("exported, waiting for the exchange system"),
    "delivered": _l("delivered"),
    "rejected": _l("rejected by the exchange system"),
    "not_delivered": _l("not delivered: in the customer's tax area"),
    "accepted": _l("accepted by the public body"),
    "refused": _l("refused by the public body"),
    "deadline_passed": _l("no answer within the deadline"),
}
KIND_LABELS = {
    "RC": _l("Delivery receipt"),
    "NS": _l("Rejection notice"),
    "MC": _l("Failed delivery notice"),
    "NE": _l("Outcome from the public body"),
    "DT": _l("Deadline passed notice"),
}

# The SdI's common error codes in plain words, with what to fix; other codes show the SdI's own description.
ERROR_HINTS = {
    "00001": _l("The file name is not valid. Export the invoice again from Copydesk without renaming the file."),
    "00002": _l(
        "A file with the same name was already sent. Export the invoice again: do not send a file a second time."
    ),
    "00102": _l("The digital signature of the file is not valid. Ask your intermediary to sign and send it again."),
    "00200": _l(
        "The file does not follow the official format. Check the customer's and your company's data (address, "
        "VAT number, codes), then correct the invoice with a credit note and a new invoice."
    ),
    "00305": _l(
        "The customer's VAT number does not exist in the tax register. Check it with the customer, fix it on the "
        "customer, then correct the invoice."
    ),
    "00306": _l(
        "The customer's fiscal code does not exist in the tax register. Check it with the customer, fix it on the "
        "customer, then correct the invoice."
    ),
    "00311": _l(
        "The customer's recipient code (SdI code) is not registered. Ask the customer for the right code (or leave "
        "it empty and use their certified email), fix it on the customer, then correct the invoice."
    ),
    "00312": _l(
        "The customer's recipient code (SdI code) is no longer active. Ask the customer for their current code, fix "
        "it on the customer, then correct the invoice."
    ),
    "00400": _l(
        "A line at 0% VAT has no exemption nature (Natura). Give the line a VAT code with its nature, then correct "
        "the invoice."
    ),
    "00401": _l(
        "A line with VAT has an exemption nature (Natura). A nature goes only with 0% VAT: choose the right VAT "
        "code, then correct the invoice."
    ),
    "00403": _l(
        "The invoice date is later than the day the exchange system received it. Issue the new invoice with "
        "today's date or an earlier one."
    ),
    "00404": _l(
        "The exchange system already has an invoice with this number and date: this one is a duplicate. Nothing to "
        "correct if the first one was delivered; check it before issuing anything."
    ),
    "00409": _l("The same invoice appears twice in the file sent. Export it again on its own."),
    "00411": _l(
        "A line says it is subject to withholding tax but the invoice has no withholding data. Contact support: "
        "Copydesk does not issue invoices with withholding tax."
    ),
    "00417": _l(
        "The customer has neither a VAT number nor a fiscal code. Enter one of them on the customer, then correct "
        "the invoice."
    ),
    "00418": _l(
        "The credit note is dated before the invoice it refers to. Issue it with a date on or after the invoice's."
    ),
    "00419": _l(
        "A VAT rate used on the lines has no VAT summary row. Correct the invoice; if it happens again, contact "
        "support."
    ),
    "00421": _l(
        "The VAT of a summary row does not match its taxable amount times the rate. Correct the invoice; if it "
        "happens again, contact support."
    ),
    "00422": _l(
        "The taxable amount of a VAT summary row does not match the sum of its lines. Correct the invoice; if it "
        "happens again, contact support."
    ),
    "00423": _l(
        "A line's total is not its quantity times its unit price. Check the line's quantity and price, then correct "
        "the invoice."
    ),
    "00424": _l("A VAT rate is not written as a percentage (22.00, not 0.22). Contact support."),
    "00425": _l("The invoice number contains no digit. Contact support: check the numbering sequence."),
    "00427": _l(
        "The recipient code does not fit the kind of customer: a public body needs its 6-character office code "
        "(FPA12), a business a 7-character code (FPR12). Fix the customer's code or its public administration "
        "flag, then correct the invoice."
    ),
    "00429": _l(
        "A VAT summary row at 0% has no exemption nature (Natura). Give the lines a VAT code with its nature, then "
        "correct the invoice."
    ),
    "00430": _l(
        "A VAT summary row with VAT has an exemption nature (Natura). Choose the right VAT codes, then correct the "
        "invoice."
    ),
    "00443": _l(
        "The VAT rates or natures of the lines do not match those of the VAT summary. Correct the invoice; if it "
        "happens again, contact support."
    ),
    "00445": _l(
        "A generic exemption nature (N2, N3 or N6) is used: since 2021 the exchange system wants the detailed one "
        "(for example N2.1 or N2.2). Choose a detailed VAT code, then correct the invoice."
    ),
    "00448": _l(
        "A VAT summary row uses a generic exemption nature (N2, N3 or N6), no longer accepted since 2021. Choose a "
        "detailed VAT code, then correct the invoice."
    ),
}

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True, remove_pis=True
)
_FILE_NAME = re.compile(r"(?P<sender>[A-Za-z]{2}[A-Za-z0-9]{2,28})_(?P<progressive>[A-Za-z0-9]{1,5})\.xml")


@dataclass
class ExportResult:
    """The zip for the intermediary, the documents in it and those left out with the reasons."""

    content: bytes
    file_name: str
    invoices: list[Invoice] = field(default_factory=list)
    # invoice number -> the reasons in plain words; refused_invoices: the same documents by number.
    refused: dict[str, list[str]] = field(default_factory=dict)
    refused_invoices: dict[str, Invoice] = field(default_factory=dict)


@dataclass(frozen=True)
class Receipt:
    """An SdI message as read: its kind, the e-invoice file it is about, the SdI's errors or outcome."""

    kind: str
    sdi_id: str | None
    invoice_file: str
    received_at: dt.datetime | None
    outcome: str | None = None
    errors: tuple[dict[str, str], ...] = ()
    text: str = ""  # the message as text to keep: as received when UTF-8, else re-serialized


@dataclass
class ReceiptOutcome:
    """What became of one uploaded file: imported, already imported (duplicate) or not imported (error)."""

    file_name: str
    status: str
    message: str
    invoice: Invoice | None = None


def state_label(state: str | None) -> str:
    return str(STATE_LABELS.get(state, state)) if state else _("not sent")


def outcome_label(outcome: str | None) -> str:
    """The public body's outcome (NE) in words: EC01 accepted, EC02 refused."""
    return str(OUTCOME_LABELS.get(outcome, outcome or ""))


def internal_credit_note() -> sa.ColumnElement[bool]:
    """SQL: the document is a credit note of an invoice the SdI rejected (`correct_rejected`). The rejected file never
    legally existed, so its credit note is internal bookkeeping: never sent to the exchange system."""
    original = aliased(Invoice)
    return sa.and_(
        Invoice.type == "credit_note",
        sa.exists().where(original.id == Invoice.original_id, original.einvoice_state == "rejected"),
    )


def is_internal_credit_note(invoice: Invoice) -> bool:
    return (
        invoice.type == "credit_note" and invoice.original is not None and invoice.original.einvoice_state == "rejected"
    )


def document_state_label(invoice: Invoice) -> str:
    """The e-invoice state of a posted document in words, an internal credit note said as such."""
    if invoice.einvoice_state is None and is_internal_credit_note(invoice):
        return _("internal credit note, not sent")
    return state_label(invoice.einvoice_state)


def explain(error: dict) -> str:
    """An SdI error in plain words: our explanation of its code, else the SdI's description (and suggestion)."""
    hint = ERROR_HINTS.get(str(error.get("code") or ""))
    if hint is not None:
        return str(hint)
    return " ".join(part for part in (error.get("description"), error.get("hint")) if part)


# Export


def _company() -> Company:
    company = db.session.scalar(sa.select(Company).order_by(Company.id).limit(1))
    if company is None or not company.vat_number:
        raise ValidationError({"company.vat_number": _("Enter the dealer's VAT number before issuing e-invoices.")})
    return company


def check_period(date_from: dt.date | None, date_to: dt.date | None) -> None:
    if not isinstance(date_from, dt.date):
        raise ValidationError({"date_from": _("Enter the first day of the period (YYYY-MM-DD).")})
    if not isinstance(date_to, dt.date):
        raise ValidationError({"date_to": _("Enter the last day of the period (YYYY-MM-DD).")})
    if date_to < date_from:
        raise ValidationError({"date_to": _("The period ends before it starts.")})
    if (date_to - date_from).days >= MAX_PERIOD_DAYS:
        raise ValidationError({"date_to": _("Export at most one year at a time.")})


def exportable(date_from: dt.date, date_to: dt.date, resend: bool = False) -> list[Invoice]:
    """Posted invoices and credit notes issued in the period and not sent yet; with `resend`, also those exported
    before without a receipt (the SdI refuses a file it already has: only when the intermediary lost it).

    A rejected one is not sent again: it is corrected by a credit note and a new document, and that credit note is
    internal (the rejected file never legally existed), so it is not sent either."""
    states = Invoice.einvoice_state.is_(None)
    if resend:
        states = sa.or_(states, Invoice.einvoice_state == "exported")
    return list(
        db.session.scalars(
            sa.select(Invoice)
            .options(selectinload(Invoice.customer))
            .where(
                Invoice.state == "posted",
                Invoice.issue_date >= date_from,
                Invoice.issue_date <= date_to,
                states,
                ~internal_credit_note(),
            )
            .order_by(Invoice.type, Invoice.year, Invoice.sequence_number, Invoice.id)
        )
    )


def export_zip(date_from: dt.date, date_to: dt.date, resend: bool = False) -> ExportResult:
    """The period's e-invoices not sent yet (with `resend`, also those exported before) as one zip; the documents in
    it become "exported" (staged: the caller commits)."""
    check_period(date_from, date_to)
    company = _company()
    name = f"{vat_display(company.vat_number, company.country)}_{date_from.isoformat()}_{date_to.isoformat()}.zip"
    result = ExportResult(b"", name)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for invoice in exportable(date_from, date_to, resend):
            try:
                content, member = fatturapa.build(invoice), fatturapa.file_name(invoice)
            except ValidationError as error:
                result.refused[str(invoice)] = [str(message) for message in error.errors.values()]
                result.refused_invoices[str(invoice)] = invoice
                continue
            archive.writestr(member, content)
            result.invoices.append(invoice)
    for invoice in result.invoices:
        invoice.einvoice_state = "exported"
    result.content = buffer.getvalue()
    return result


# Receipts


def _children(element: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in element if isinstance(child.tag, str) and etree.QName(child).localname == name]


def _text(element: etree._Element, name: str) -> str | None:
    found = _children(element, name)
    text = (found[0].text or "").strip() if found else ""
    return text or None


def _moment(value: str | None, file_name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            {"file": _("%(file)s: DataOraRicezione is not a date and time.", file=file_name)}
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=SDI_TIMEZONE)
    return moment.astimezone(dt.UTC)


def parse_receipt(file_name: str, content: bytes) -> Receipt:
    """Read an SdI message (RicevutaConsegna, NotificaScarto, NotificaMancataConsegna, NotificaEsito,
    NotificaDecorrenzaTermini, AttestazioneTrasmissioneFattura); anything else is refused naming the file."""
    try:
        root = etree.fromstring(content, _PARSER)
    except etree.XMLSyntaxError as error:
        raise ValidationError(
            {"file": _("%(file)s: not well-formed XML (%(error)s).", file=file_name, error=error.msg)}
        ) from None
    name = etree.QName(root)
    if root.getroottree().docinfo.doctype or name.namespace not in (SDI_NAMESPACE, None):
        raise ValidationError({"file": _("%(file)s: not a message of the exchange system (SdI).", file=file_name)})
    kind = ROOT_KINDS.get(name.localname)
    if kind is None:
        raise ValidationError(
            {"file": _("%(file)s: %(element)s is not an SdI receipt.", file=file_name, element=name.localname)}
        )
    invoice_file = _text(root, "NomeFile")
    if invoice_file is None:
        raise ValidationError({"file": _("%(file)s: the receipt names no invoice file (NomeFile).", file=file_name)})
    outcome = None
    if kind == "NE":
        answers = _children(root, "EsitoCommittente")
        outcome = _text(answers[0], "Esito") if answers else None
        if outcome not in OUTCOME_STATES:
            raise ValidationError(
                {"file": _("%(file)s: the outcome (Esito) is neither EC01 nor EC02.", file=file_name)}
            )
    errors = []
    for errors_list in _children(root, "ListaErrori"):
        for error in _children(errors_list, "Errore"):
            errors.append(
                {
                    "code": _text(error, "Codice") or "",
                    "description": _text(error, "Descrizione") or "",
                    "hint": _text(error, "Suggerimento") or "",
                }
            )
    return Receipt(
        text=_kept_text(content, root),
        kind=kind,
        sdi_id=_text(root, "IdentificativoSdI"),
        invoice_file=invoice_file,
        received_at=_moment(_text(root, "DataOraRicezione"), file_name),
        outcome=outcome,
        errors=tuple(errors),
    )


def _kept_text(content: bytes, root: etree._Element) -> str:
    """The message as stored: the file itself when it is UTF-8 text; another encoding (UTF-16, Latin-1) as lxml
    re-serializes the parsed tree, since a UTF-16 file read as UTF-8 is full of NULs that PostgreSQL refuses."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        return text
    return etree.tostring(root, encoding="unicode")


def invoice_for_file(invoice_file: str) -> Invoice | None:
    """The posted document exported as `invoice_file` (its .xml name, or the signed .xml.p7m one)."""
    base = PurePosixPath(invoice_file.replace("\\", "/")).name
    if base.lower().endswith(".p7m"):
        base = base[:-4]
    match = _FILE_NAME.fullmatch(base)
    if match is None:
        return None
    invoice = db.session.get(Invoice, int(match["progressive"], 36))
    if invoice is None or invoice.state != "posted" or fatturapa.file_name(invoice).lower() != base.lower():
        return None
    return invoice


def _import_one(file_name: str, content: bytes) -> ReceiptOutcome:
    existing = db.session.scalar(sa.select(EInvoiceReceipt).where(EInvoiceReceipt.file_name == file_name))
    if existing is not None:
        return ReceiptOutcome(file_name, "duplicate", _("Already imported: nothing changed."), existing.invoice)
    if len(file_name) > MAX_FILE_NAME:
        return ReceiptOutcome(
            file_name, "error", _("The file name is longer than %(max)d characters.", max=MAX_FILE_NAME)
        )
    if len(content) > MAX_RECEIPT_BYTES:
        return ReceiptOutcome(file_name, "error", _("The file is too large to be an SdI receipt."))
    try:
        receipt = parse_receipt(file_name, content)
        invoice = invoice_for_file(receipt.invoice_file)
    except ValidationError as error:
        return ReceiptOutcome(file_name, "error", error.messages())
    if invoice is None:
        message = _("No posted invoice was exported as %(name)s.", name=receipt.invoice_file)
        return ReceiptOutcome(file_name, "error", message)
    duplicate_file = receipt.kind == "NS" and {error["code"] for error in receipt.errors} == {DUPLICATE_FILE_ERROR}
    if not duplicate_file and invoice.einvoice_state not in ALLOWED_FROM[receipt.kind]:
        message = _(
            "%(kind)s for %(number)s refused: the document is already %(state)s, which this receipt cannot follow.",
            kind=KIND_LABELS[receipt.kind],
            number=str(invoice),
            state=state_label(invoice.einvoice_state),
        )
        return ReceiptOutcome(file_name, "error", message, invoice)
    db.session.add(
        EInvoiceReceipt(
            invoice=invoice,
            kind=receipt.kind,
            file_name=file_name,
            sdi_id=(receipt.sdi_id or "")[:20] or None,
            received_at=receipt.received_at,
            outcome=receipt.outcome,
            errors=list(receipt.errors) or None,
            content=receipt.text,
        )
    )
    if duplicate_file:
        db.session.flush()
        message = _(
            "%(kind)s for %(number)s: duplicate file: the exchange system already has it; still %(state)s.",
            kind=KIND_LABELS[receipt.kind],
            number=str(invoice),
            state=state_label(invoice.einvoice_state),
        )
        return ReceiptOutcome(file_name, "imported", message, invoice)
    invoice.einvoice_state = OUTCOME_STATES[receipt.outcome] if receipt.kind == "NE" else KIND_STATES[receipt.kind]
    db.session.flush()
    message = _(
        "%(kind)s for %(number)s: now %(state)s.",
        kind=KIND_LABELS[receipt.kind],
        number=str(invoice),
        state=state_label(invoice.einvoice_state),
    )
    return ReceiptOutcome(file_name, "imported", message, invoice)


def _import_zip(file_name: str, content: bytes) -> list[ReceiptOutcome]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError):
        return [ReceiptOutcome(file_name, "error", _("%(file)s is not a readable zip file.", file=file_name))]
    if len(members) > MAX_ZIP_MEMBERS:
        return [ReceiptOutcome(file_name, "error", _("%(file)s holds too many files.", file=file_name))]
    outcomes = []
    budget = MAX_ZIP_BYTES
    for position, info in enumerate(members):
        name = PurePosixPath(info.filename).name
        if info.file_size > budget:
            left = len(members) - position
            message = ngettext(
                "%(file)s unpacks to more than %(max)d MB: %(num)d file was not read, import it in another upload.",
                "%(file)s unpacks to more than %(max)d MB: %(num)d files were not read, import them in another upload.",
                left,
                file=file_name,
                max=MAX_ZIP_BYTES // (1024 * 1024),
            )
            outcomes.append(ReceiptOutcome(file_name, "error", message))
            break
        if info.file_size > MAX_RECEIPT_BYTES:
            outcomes.append(ReceiptOutcome(name, "error", _("The file is too large to be an SdI receipt.")))
            continue
        if info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
            message = _("%(file)s is compressed too much to be an SdI receipt: not read.", file=name)
            outcomes.append(ReceiptOutcome(name, "error", message))
            continue
        try:
            with archive.open(info) as member:
                data = member.read(MAX_RECEIPT_BYTES + 1)
        except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError):
            outcomes.append(ReceiptOutcome(name, "error", _("%(file)s cannot be read from the zip.", file=name)))
            continue
        budget -= len(data)
        outcomes.append(_import_one(name, data))
    return outcomes


def import_receipts(files: Iterable[tuple[str, bytes]]) -> list[ReceiptOutcome]:
    """Import SdI receipt files (a .zip among them is opened): each sets its invoice's e-invoice state and is kept.

    The same file twice is a duplicate and changes nothing; one naming no invoice of ours is an error. Staged: the
    caller commits."""
    outcomes = []
    for name, content in files:
        base = PurePosixPath(name.replace("\\", "/")).name or name
        if base.lower().endswith(".zip"):
            outcomes.extend(_import_zip(base, content))
        else:
            outcomes.append(_import_one(base, content))
    return outcomes
