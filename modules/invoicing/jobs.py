"""Background jobs of invoicing: one chunk of a billing run; delivering a posted document (PDF, then email)."""

from __future__ import annotations

from flask_babel import gettext as _

from core.db import db
from core.models import PartnerContact
from core.outbox import queue_email
from modules.invoicing import pdf
from modules.invoicing.models import Invoice
from modules.invoicing.runs import bill_chunk


def run_chunk(run_id: int, customer_ids: list[int]) -> None:
    """Bill one chunk of a run's customers; safe to run again (customers already done are skipped)."""
    bill_chunk(run_id, customer_ids)


def invoice_recipients(invoice: Invoice) -> list[str]:
    """The customer's contacts who receive invoices, else the customer's own email."""
    contacts = db.session.scalars(
        db.select(PartnerContact.email)
        .where(PartnerContact.partner_id == invoice.customer_id, PartnerContact.receives_invoices.is_(True))
        .order_by(PartnerContact.id)
    ).all()
    addresses = [address for address in contacts if address]
    if not addresses and invoice.customer.email:
        addresses = [invoice.customer.email]
    return list(dict.fromkeys(addresses))


def deliver_invoice(invoice_id: int) -> None:
    """Render and store a posted document's PDF, then email it to the customer (once: dedupe key per document)."""
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None or invoice.state != "posted":
        return
    stored = pdf.stored_pdf(invoice)
    recipients = invoice_recipients(invoice)
    if not recipients:
        invoice.email_note = _("Not emailed: the customer has no invoice contact and no email address.")
    else:
        message = queue_email(
            recipients,
            "invoicing/invoice",
            invoice.customer.language,
            context={"invoice": invoice, "customer": invoice.customer},
            dedupe_key=f"invoice:{invoice.id}",
            attachments=[(stored.filename, "application/pdf", stored.content)],
        )
        invoice.email_message = message
        invoice.email_note = None
    db.session.commit()
