"""The invoice PDF (xhtml2pdf): an Italian-law invoice in the customer's language, with a usage detail page.

xhtml2pdf lays long tables out slowly (its cost grows faster than the row count), so lines are printed in tables of
ROWS_PER_TABLE rows each. A posted document's PDF is rendered once, by the delivery job, and stored: the copy the
customer downloads is the one that was emailed.

The footer's "page X/Y" is laid out in one pass: xhtml2pdf's <pdf:pagecount/> lays the whole document out twice, so
the footer prints a mark for Y and the mark is replaced by the page count in the PDF's page streams (see
`stamp_page_count`). The logo is printed scaled to its printed size (core.images), scaled once per process.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import unicodedata
from collections import defaultdict
from decimal import Decimal
from typing import Any

from flask import render_template
from flask_babel import force_locale, format_date, format_decimal
from flask_babel import gettext as _
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject
from xhtml2pdf import pisa

from core import images, procurement
from core.db import db
from core.models import Company, Partner
from core.outbox import mail_language
from core.partners import PAYMENT_METHOD_LABELS, vat_display
from core.vat_codes import is_reverse_charge
from modules.invoicing.models import Invoice, InvoiceLine, InvoicePdf
from modules.invoicing.services import amount_due, vat_rows

ROWS_PER_TABLE = 30
DEFAULT_UNIT = "pz"  # core.extension_points.BillableLine's default
LOGO_TYPES = ("image/png", "image/jpeg", "image/gif")
# Printed where the page count goes, then replaced in each page's content stream: as wide as two digits in Helvetica,
# and the whole of its text run, since the page number before it is a run of its own ("(/##) Tj").
PAGE_COUNT_MARK = "##"


class PdfError(Exception):
    """xhtml2pdf could not lay the document out."""


def chunks(items: list[Any], size: int = ROWS_PER_TABLE) -> list[list[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)] or [[]]


def document_title(invoice: Invoice) -> str:
    return _("Credit note") if invoice.type == "credit_note" else _("Invoice")


def filename(invoice: Invoice) -> str:
    """`Fattura_1-2026.pdf`, `Factura_1-2026.pdf`, `Invoice_1-2026.pdf`: in the customer's language, ASCII only."""
    with force_locale(mail_language(invoice.customer.language)):
        title = document_title(invoice)
        label = invoice.number.replace("/", "-") if invoice.number else f"{_('draft')}-{invoice.id}"
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return f"{ascii_title.replace(' ', '_')}_{label}.pdf"


def unit_name(line: InvoiceLine) -> str:
    """The unit as the customer reads it: pages for a meter's overage, the source's own word otherwise."""
    if line.unit == DEFAULT_UNIT:
        return _("pages") if line.meter else _("pcs")
    return line.unit


def contract_notes(invoice: Invoice) -> list[str]:
    """The invoice notes of the contracts billed, each once, as the sources put them in their lines' extra data."""
    notes = (str((line.details or {}).get("invoice_notes") or "").strip() for line in invoice.lines)
    return list(dict.fromkeys(note for note in notes if note))


def courtesy_copy(invoice: Invoice, company: Company | None) -> bool:
    """An Italian dealer's posted document: the fiscal document is the FatturaPA sent through the SdI, not this PDF."""
    return invoice.state == "posted" and company is not None and (company.country or "IT").upper() == "IT"


def shows_province(party: Company | Partner) -> bool:
    """Provinces are Italian: a foreign address is printed without one."""
    return bool(party.province) and (party.country or "IT").upper() == "IT"


def payment_method(invoice: Invoice) -> str:
    """The method posted on the invoice; on a draft, the customer's own."""
    return invoice.payment_method or invoice.customer.payment_method or "bank_transfer"


def payment_method_text(method: str) -> str:
    """How the customer pays, in their words (the labels of the customer's form)."""
    return str(PAYMENT_METHOD_LABELS.get(method, method))


def instalments(invoice: Invoice) -> list[tuple[dt.date, Decimal]]:
    """The posted payment schedule as (due date, amount); a single payment is the due date alone, no table."""
    schedule = [
        (dt.date.fromisoformat(entry["due_date"]), Decimal(entry["amount"])) for entry in invoice.payment_schedule or []
    ]
    return schedule if len(schedule) > 1 else []


def order_reference_text(invoice: Invoice, date: Any) -> str:
    """The public body's contract or purchase order the invoice refers to (DatiContratto / DatiOrdineAcquisto)."""
    if not invoice.order_reference:
        return ""
    order_date = date(invoice.order_date) if invoice.order_date else None
    return procurement.reference_text(invoice.order_kind, invoice.order_reference, order_date)


def _usage_groups(invoice: Invoice) -> list[dict[str, Any]]:
    """Lines carrying meter data, per device and meter."""
    groups: dict[tuple, list] = defaultdict(list)
    for line in invoice.lines:
        if line.meter:
            groups[(line.device_id or 0, line.meter)].append(line)
    return [
        {"device_id": device_id or None, "meter": meter, "lines": lines}
        for (device_id, meter), lines in sorted(groups.items())
    ]


def logo_uri(company: Company | None, scaled: bool = True) -> str | None:
    """The dealer's logo as a data URI, scaled to its printed size unless `scaled` is false (as stored)."""
    if company is None or not company.logo or company.logo_mimetype not in LOGO_TYPES:
        return None
    content, mimetype = company.logo, company.logo_mimetype
    if scaled:
        content, mimetype = images.fit_cached(content, mimetype)
    return f"data:{mimetype};base64,{base64.b64encode(content).decode()}"


def customer_locale(invoice: Invoice) -> contextlib.AbstractContextManager:
    """The customer's language, which the document is written in."""
    return force_locale(mail_language(invoice.customer.language))


def document_context(invoice: Invoice, page_count: str = PAGE_COUNT_MARK) -> dict[str, Any]:
    """What the template prints, inside `customer_locale(invoice)`; `page_count` is the footer's Y of "page X/Y"."""
    company = db.session.scalar(db.select(Company).order_by(Company.id).limit(1))

    def money(value: Decimal) -> str:
        return format_decimal(value, format="#,##0.00")

    def number(value: Decimal, places: int = 0) -> str:
        """At least `places` decimals, more only when the value has them (1 page, 0.01236 per page)."""
        exponent = Decimal(value).normalize().as_tuple().exponent
        shown = max(places, -exponent if isinstance(exponent, int) else 0)
        return format_decimal(value, format="#,##0" + ("." + "0" * shown if shown else ""))

    def date(value: dt.date | None) -> str:
        return format_date(value, "short") if value else ""

    rows = vat_rows(invoice.lines)
    return dict(
        invoice=invoice,
        title=document_title(invoice),
        company=company,
        customer=invoice.customer,
        logo=logo_uri(company),
        page_count=page_count,
        line_chunks=chunks(list(invoice.lines)),
        vat_rows=rows,
        reverse_charge=any(is_reverse_charge(row.nature) for row in rows),
        courtesy_copy=courtesy_copy(invoice, company),
        province=shows_province,
        payment_method=payment_method(invoice),
        payment_method_text=payment_method_text,
        instalments=instalments(invoice),
        amount_due=amount_due(invoice),
        order_reference=order_reference_text(invoice, date),
        usage=[{**group, "chunks": chunks(group["lines"])} for group in _usage_groups(invoice)],
        money=money,
        number=number,
        vat=vat_display,
        unit=unit_name,
        notes=contract_notes(invoice),
        date=date,
    )


def render_html(invoice: Invoice, page_count: str = PAGE_COUNT_MARK) -> str:
    """The document as the HTML xhtml2pdf lays out, in the customer's language."""
    with customer_locale(invoice):
        return render_template("invoicing/pdf/invoice.html", **document_context(invoice, page_count))


def _lay_out(invoice: Invoice, html: str) -> bytes:
    output = io.BytesIO()
    result = pisa.CreatePDF(html, dest=output, encoding="utf-8")
    if result.err:
        raise PdfError(f"invoice {invoice.id}: xhtml2pdf reported {result.err} error(s)")
    return output.getvalue()


def stamp_page_count(content: bytes, mark: str = PAGE_COUNT_MARK) -> bytes | None:
    """The PDF with the footer's page count mark replaced by the number of pages; None when a page lacks the mark.

    The footer is painted first on each page, so the first `(/mark) Tj` of a page's content stream is the footer's.
    """
    reader = PdfReader(io.BytesIO(content))
    old = f"(/{mark}) Tj".encode()
    new = f"(/{len(reader.pages)}) Tj".encode()
    writer = PdfWriter(clone_from=reader)
    for page in writer.pages:
        stream = page.get("/Contents")
        stream = stream.get_object() if stream is not None else None
        if stream is None or not hasattr(stream, "get_data"):
            return None
        data = stream.get_data()
        if old not in data:
            return None
        # ReportLab writes [/ASCII85Decode /FlateDecode]; pypdf writes back Flate alone.
        stream.pop(NameObject("/DecodeParms"), None)
        stream[NameObject("/Filter")] = NameObject("/FlateDecode")
        stream.set_data(data.replace(old, new, 1))
    output = io.BytesIO()
    writer.write(output)
    return output.getvalue()


def render_pdf(invoice: Invoice) -> bytes:
    """The PDF, laid out once; laid out again with the page count written in only if stamping it fails."""
    content = _lay_out(invoice, render_html(invoice))
    stamped = stamp_page_count(content)
    if stamped is not None:
        return stamped
    # The page count takes no room of the body's (the footer is a frame of its own): the pages stay as many.
    pages = len(PdfReader(io.BytesIO(content)).pages)
    return _lay_out(invoice, render_html(invoice, page_count=str(pages)))


def stored_pdf(invoice: Invoice) -> InvoicePdf:
    """The stored PDF of a posted document, rendered and staged now if the job has not done it yet."""
    stored = db.session.get(InvoicePdf, invoice.id)
    if stored is None:
        stored = InvoicePdf(invoice_id=invoice.id, filename=filename(invoice), content=render_pdf(invoice))
        db.session.add(stored)
        db.session.flush()
    return stored


def pdf_for(invoice: Invoice) -> tuple[str, bytes]:
    """(filename, bytes): the stored copy of a posted document, a fresh preview of a draft."""
    if invoice.state == "posted":
        stored = stored_pdf(invoice)
        return stored.filename, stored.content
    return filename(invoice), render_pdf(invoice)
