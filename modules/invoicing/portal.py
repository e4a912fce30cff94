"""Customer portal: the customer's own posted invoices and credit notes, to read and download."""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template
from flask_login import current_user

from core.auth.scoping import customer_scoped, get_scoped_or_404
from core.db import db
from core.portal import portal_view
from modules.invoicing import pdf
from modules.invoicing.models import Invoice

bp = Blueprint("invoicing_portal", __name__, url_prefix="/portal/invoices")


@bp.route("/")
@portal_view("portal.invoices")
def invoices():
    query = customer_scoped(db.select(Invoice), Invoice.customer_id).where(Invoice.state == "posted")
    documents = db.session.scalars(query.order_by(Invoice.issue_date.desc(), Invoice.id.desc()).limit(500)).all()
    return render_template("invoicing/portal/invoices.html", invoices=documents, user=current_user)


@bp.route("/<int:invoice_id>.pdf")
@portal_view("portal.invoices")
def download(invoice_id: int):
    invoice = get_scoped_or_404(Invoice, invoice_id, Invoice.customer_id)
    if invoice.state != "posted":
        abort(404)
    stored = pdf.stored_pdf(invoice)
    db.session.commit()
    response = Response(stored.content, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{stored.filename}"'
    return response
