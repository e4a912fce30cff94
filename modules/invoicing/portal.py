"""Customer portal: the customer's own posted invoices and credit notes, to read and download (PDF and FatturaPA)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from core.auth.scoping import customer_scoped, get_scoped_or_404
from core.db import db
from core.portal import portal_view
from core.validation import ValidationError
from modules.invoicing import fatturapa, payment_status, pdf
from modules.invoicing.models import Invoice

bp = Blueprint("invoicing_portal", __name__, url_prefix="/portal/invoices")


def _posted_or_404(invoice_id: int) -> Invoice:
    invoice = get_scoped_or_404(Invoice, invoice_id, Invoice.customer_id)
    if invoice.state != "posted":
        abort(404)
    return invoice


def _download(content: bytes, mimetype: str, filename: str) -> Response:
    response = Response(content, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.route("/")
@portal_view("portal.invoices")
def invoices():
    query = customer_scoped(db.select(Invoice), Invoice.customer_id).where(Invoice.state == "posted")
    documents = db.session.scalars(query.order_by(Invoice.issue_date.desc(), Invoice.id.desc()).limit(500)).all()
    return render_template(
        "invoicing/portal/invoices.html",
        invoices=documents,
        payments=payment_status.payment_states(documents),
        user=current_user,
    )


@bp.route("/<int:invoice_id>.pdf")
@portal_view("portal.invoices")
def download(invoice_id: int):
    stored = pdf.stored_pdf(_posted_or_404(invoice_id))
    db.session.commit()
    return _download(stored.content, "application/pdf", stored.filename)


@bp.route("/<int:invoice_id>.xml")
@portal_view("portal.invoices")
def download_xml(invoice_id: int):
    invoice = _posted_or_404(invoice_id)
    try:
        return _download(fatturapa.build(invoice), "application/xml", fatturapa.file_name(invoice))
    except ValidationError:
        # The dealer's own data are incomplete (their VAT number): nothing the customer can fix.
        flash(
            _("The electronic copy of %(number)s is not available yet; please ask us for it.", number=invoice.number),
            "error",
        )
        return redirect(url_for(".invoices"))
