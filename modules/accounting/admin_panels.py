"""Accounting on other back-office pages: the dashboard's card of what customers owe (open, of which overdue), and a
customer's balance, overdue amount and oldest open invoices on the customer's page, linked to its partner ledger."""

from __future__ import annotations

from decimal import Decimal

from flask import url_for
from flask_babel import gettext as _
from flask_login import current_user

from core import clock, labels
from core.db import db
from core.extension_points import DashboardCard, RecordLink, RecordPanel
from core.models import Partner
from core.permissions import has_permission
from modules.accounting import reconcile
from modules.accounting.admin import VIEW, money
from modules.invoicing.models import Invoice

SHOWN = 5
ZERO = Decimal("0.00")


class AccountingDashboard:
    """What customers owe today: the open receivables, and the part past its due date."""

    def dashboard_cards(self) -> list[DashboardCard]:
        if not has_permission(current_user, VIEW):
            return []
        today = clock.today()
        items = [item for item in reconcile.open_receivables(as_of=today) if item.residual > 0]
        owed = sum((item.residual for item in items), ZERO)
        late = sum((item.residual for item in items if item.due_date and item.due_date < today), ZERO)
        aging = url_for("accounting_aging.index")
        return [
            DashboardCard(_("Receivables open"), money(owed), aging),
            DashboardCard(_("Receivables overdue"), money(late), aging),
        ]


class AccountingPanels:
    """Customer -> its balance, what is overdue, its oldest open invoices; a link to its partner ledger."""

    def record_panels(self, kind: str, record_id: int) -> list[RecordPanel]:
        if kind != "customer" or not has_permission(current_user, VIEW):
            return []
        customer = db.session.get(Partner, record_id)
        if customer is None:
            return []
        today = clock.today()
        items = reconcile.open_receivables(partner_id=record_id, as_of=today)
        balance = reconcile.receivable_balance(record_id, as_of=today)
        late = sum(
            (item.residual for item in items if item.residual > 0 and item.due_date and item.due_date < today),
            ZERO,
        )
        invoices = labels.preload_records(Invoice, [item.invoice_id for item in items if item.residual > 0])
        rows = []
        for item in [item for item in items if item.residual > 0][:SHOWN]:
            invoice = invoices.get(item.invoice_id)
            due = _("due %(date)s", date=labels.local_date(item.due_date)) if item.due_date else ""
            detail = " · ".join(part for part in (due, _("open %(amount)s", amount=money(item.residual))) if part)
            url = labels.record_url(invoice) if invoice is not None else None
            ledger_url = url_for("accounting_partner_ledger.index", partner_id=record_id)
            rows.append(RecordLink(labels.record_label(invoice) if invoice else item.number, url or ledger_url, detail))
        title = _("Accounts: balance %(balance)s, overdue %(late)s", balance=money(balance), late=money(late))
        return [
            RecordPanel(
                title,
                tuple(rows),
                more=RecordLink(
                    _("Partner ledger of %(customer)s", customer=customer.name),
                    url_for("accounting_partner_ledger.index", partner_id=record_id),
                ),
                actions=(
                    RecordLink(_("Record a payment"), url_for("accounting_payments.create", partner_id=record_id)),
                ),
                empty=_("Nothing open: every invoice is paid."),
            )
        ]
