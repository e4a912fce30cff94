"""Invoicing on other records' pages and on the dashboard: a customer's and a contract's invoices, drafts to post."""

from __future__ import annotations

import sqlalchemy as sa
from flask import url_for
from flask_babel import format_currency
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import selectinload

from core.db import db
from core.extension_points import DashboardCard, RecordLink, RecordPanel
from core.labels import enum_label, local_date, number, record_label
from core.models import Partner
from core.permissions import has_permission
from modules.invoicing.models import Invoice

SHOWN = 10


def _invoice_link(invoice: Invoice) -> RecordLink:
    when = local_date(invoice.issue_date) if invoice.issue_date else ""
    detail = " · ".join(
        part
        for part in (enum_label("invoice.state", invoice.state), when, format_currency(invoice.total, "EUR"))
        if part
    )
    url = url_for("invoicing_invoices_admin.details", invoice_id=invoice.id)
    return RecordLink(record_label(invoice), url, detail)


class InvoicingPanels:
    """Customer -> its invoices; contract -> the invoices billing it (invoicing knows contracts only by their id)."""

    def record_panels(self, kind: str, record_id: int) -> list[RecordPanel]:
        if kind not in ("customer", "contract") or not has_permission(current_user, "billing.manage"):
            return []
        column = Invoice.customer_id if kind == "customer" else Invoice.contract_id
        invoices = db.session.scalars(
            sa.select(Invoice)
            .where(column == record_id)
            .options(selectinload(Invoice.customer))
            .order_by(Invoice.id.desc())
            .limit(SHOWN)
        ).all()
        customer = db.session.get(Partner, record_id) if kind == "customer" else None
        more = None
        if customer is not None:
            more = RecordLink(
                _("All invoices of %(customer)s", customer=customer.name),
                url_for("invoicing_invoices_admin.index", q=customer.name),
            )
        return [
            RecordPanel(
                _("Invoices"),
                tuple(_invoice_link(invoice) for invoice in invoices),
                more=more,
                empty=_("No invoices yet."),
            )
        ]


class InvoicingDashboard:
    """Drafts waiting to be posted."""

    def dashboard_cards(self) -> list[DashboardCard]:
        if not has_permission(current_user, "billing.manage"):
            return []
        drafts = db.session.scalar(sa.select(sa.func.count()).select_from(Invoice).where(Invoice.state == "draft")) or 0
        url = url_for("invoicing_invoices_admin.index", state="draft")
        return [DashboardCard(_("Drafts to post"), number(drafts), url)]
