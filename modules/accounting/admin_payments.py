"""Accounting back office: payments (list, record, cancel) and a customer's open items, where staff match payments and
credit notes with invoices and undo matches."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.orm import selectinload

from core import clock, labels
from core.admin import SecuredView
from core.context import ModuleContext
from core.db import contains, db
from core.models import Partner
from core.permissions import has_permission
from core.validation import ValidationError
from modules.accounting import payments, reconcile
from modules.accounting.admin import EDIT, VIEW
from modules.accounting.models import PAYMENT_METHODS, EntryLine, Journal, Match, Payment
from modules.invoicing.models import Invoice

PAGE_SIZE = 50
METHOD_ENUM = "accounting_payment.method"
FORM_LABELS = {
    "partner_id": _l("Customer"),
    "amount": _l("Amount"),
    "date": _l("Date"),
    "method": _l("Method"),
    "journal": _l("Journal"),
    "reference": _l("Reference"),
    "invoice_id": _l("Invoice"),
    "invoice": _l("Invoice"),
    "debit_line_id": _l("Invoice"),
    "credit_line_id": _l("Payment or credit note"),
    "payment": _l("Payment"),
    "entry": _l("Entry"),
}


class AccountingPage(SecuredView):
    """An accounting page: read with VIEW; every form it takes (POST) asks EDIT as well."""

    permission = VIEW

    def _handle_view(self, name: str, **kwargs: Any):
        refused = super()._handle_view(name, **kwargs)
        if refused is None and request.method == "POST" and not has_permission(current_user, EDIT):
            abort(403)
        return refused


class PaymentsView(AccountingPage):
    """Customer payments: the list, the form that records one, cancelling one."""

    @expose("/")
    def index(self):
        query = (
            sa.select(Payment)
            .options(selectinload(Payment.partner), selectinload(Payment.journal), selectinload(Payment.entry))
            .order_by(Payment.date.desc(), Payment.id.desc())
        )
        search = request.args.get("q", "").strip()
        if search:
            query = query.join(Payment.partner).where(
                sa.or_(contains(Partner.name, search), contains(Payment.reference, search))
            )
        page = db.paginate(query, per_page=PAGE_SIZE, error_out=False)
        invoice_ids = {payment.invoice_id for payment in page.items if payment.invoice_id}
        invoices = {
            invoice.id: invoice
            for invoice in db.session.scalars(
                sa.select(Invoice).options(selectinload(Invoice.customer)).where(Invoice.id.in_(invoice_ids))
            )
        }
        return self.render(
            "accounting/admin/payments.html",
            page=page,
            search=search,
            invoices=invoices,
            cancelled=payments.cancelled_entry_ids([payment.entry_id for payment in page.items]),
        )

    @expose("/new", methods=["GET", "POST"])
    def create(self):
        values: dict[str, Any] = {
            "date": clock.today().isoformat(),
            "method": "bank_transfer",
            **request.args.to_dict(),
        }
        errors: dict[str, str] = {}
        if request.method == "POST":
            values = request.form.to_dict()
            try:
                payment = payments.record_payment(
                    _whole(values.get("partner_id"), "partner_id"),
                    values.get("amount", ""),
                    values.get("date", ""),
                    method=values.get("method", ""),
                    journal=values.get("journal") or None,
                    reference=values.get("reference", ""),
                    invoice_id=_invoice_id(values),
                    advance=values.get("advance") == "1",
                    user_id=current_user.id,
                )
            except ValidationError as error:
                db.session.rollback()
                errors = error.errors
            else:
                db.session.commit()
                flash(_("Payment recorded: %(number)s.", number=payment.entry.number), "success")
                return redirect(url_for(".open_items", partner_id=payment.partner_id))
        customers = db.session.scalars(
            sa.select(Partner).where(Partner.is_customer.is_(True), Partner.active.is_(True)).order_by(Partner.name)
        ).all()
        journals = db.session.scalars(
            sa.select(Journal)
            .where(Journal.kind.in_(("bank", "cash")), Journal.active.is_(True))
            .order_by(Journal.kind, Journal.code)
        ).all()
        return self.render(
            "accounting/admin/payment_form.html",
            values=values,
            errors=errors,
            labels=FORM_LABELS,
            customers=customers,
            journals=journals,
            methods=[(code, labels.enum_label(METHOD_ENUM, code)) for code in PAYMENT_METHODS],
        )

    @expose("/<int:payment_id>/cancel", methods=["POST"])
    def cancel(self, payment_id: int):
        payment = db.get_or_404(Payment, payment_id)
        self.run_action(
            lambda: payments.cancel_payment(payment, user_id=current_user.id),
            lambda reversal: _("Payment cancelled: reversed by %(number)s.", number=reversal.number),
            labels=FORM_LABELS,
        )
        return redirect(url_for(".index"))

    @expose("/open-items/")
    def customers(self):
        """Customers with something open on their receivable: what they owe, what is overdue, credits to match."""
        today = clock.today()
        totals: dict[int, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        for item in reconcile.open_receivables():
            row = totals[item.line.partner_id]
            row["open" if item.residual > 0 else "credit"] += abs(item.residual)
            if item.residual > 0 and item.due_date is not None and item.due_date < today:
                row["overdue"] += item.residual
        partners = db.session.scalars(sa.select(Partner).where(Partner.id.in_(list(totals)))).all()
        rows = sorted(((partner, totals[partner.id]) for partner in partners), key=lambda row: row[0].name.lower())
        return self.render("accounting/admin/open_customers.html", rows=rows)

    @expose("/open-items/<int:partner_id>")
    def open_items(self, partner_id: int):
        partner = db.get_or_404(Partner, partner_id)
        items = reconcile.open_receivables(partner.id)
        debits = [item for item in items if item.residual > 0]
        credits = [item for item in items if item.residual < 0]
        matches = _partner_matches(partner.id)
        return self.render(
            "accounting/admin/open_items.html",
            partner=partner,
            debits=debits,
            credits=credits,
            matches=matches,
            references=_references(
                [item.line for item in items]
                + [line for match in matches for line in (match.debit_line, match.credit_line)]
            ),
            undoable=reconcile.undoable_matches(matches),
            balance=reconcile.receivable_balance(partner.id),
            today=clock.today(),
        )

    @expose("/open-items/<int:partner_id>/match", methods=["POST"])
    def match(self, partner_id: int):
        partner = db.get_or_404(Partner, partner_id)

        def action() -> Match:
            debit = _partner_line(request.form.get("debit_line_id"), partner.id, "debit_line_id")
            credit = _partner_line(request.form.get("credit_line_id"), partner.id, "credit_line_id")
            amount = request.form.get("amount", "").strip() or None
            return reconcile.reconcile(debit, credit, amount, user_id=current_user.id)

        self.run_action(action, _("Matched."), labels=FORM_LABELS)
        return redirect(url_for(".open_items", partner_id=partner.id))

    @expose("/matches/<int:match_id>/undo", methods=["POST"])
    def undo(self, match_id: int):
        match = db.get_or_404(Match, match_id)
        partner_id = match.debit_line.partner_id
        self.run_action(lambda: reconcile.undo(match, user_id=current_user.id), _("Match undone: both are open again."))
        if partner_id is None:
            return redirect(url_for(".customers"))
        return redirect(url_for(".open_items", partner_id=partner_id))


def _whole(value: Any, field: str) -> int:
    text = (value or "").strip()
    if not text.isdigit() or len(text) > 10:
        raise ValidationError({field: _("Choose a customer.")})
    return int(text)


def _invoice_id(values: dict[str, Any]) -> int | None:
    """The invoice typed by its number (of the chosen customer), None when the field is empty."""
    number = (values.get("invoice") or "").strip()
    if not number:
        return None
    partner = (values.get("partner_id") or "").strip()
    invoice = db.session.scalar(
        sa.select(Invoice).where(
            Invoice.number == number,
            Invoice.type == "invoice",
            Invoice.customer_id == (int(partner) if partner.isdigit() and len(partner) <= 10 else -1),
        )
    )
    if invoice is None:
        raise ValidationError({"invoice": _("No posted invoice %(number)s of this customer.", number=number[:40])})
    return invoice.id


def _partner_line(value: Any, partner_id: int, field: str) -> EntryLine:
    text = (value or "").strip()
    line = db.session.get(EntryLine, int(text)) if text.isdigit() and len(text) <= 10 else None
    if line is None or line.partner_id != partner_id:
        raise ValidationError({field: _("Choose one of the lists' lines.")})
    return line


def _partner_matches(partner_id: int) -> list[Match]:
    lines = sa.select(EntryLine.id).where(EntryLine.partner_id == partner_id)
    return list(
        db.session.scalars(
            sa.select(Match)
            .options(
                selectinload(Match.debit_line).selectinload(EntryLine.entry),
                selectinload(Match.credit_line).selectinload(EntryLine.entry),
            )
            .where(Match.debit_line_id.in_(lines))
            .order_by(Match.id.desc())
            .limit(100)
        )
    )


def _references(lines: list[EntryLine]) -> dict[int, tuple[str, str | None]]:
    """Each line's document and its page: the invoice or credit note, else its entry (named by reference or number)."""
    invoice_ids = {line.invoice_id for line in lines if line.invoice_id}
    numbers = dict(
        db.session.execute(sa.select(Invoice.id, Invoice.number).where(Invoice.id.in_(invoice_ids))).all()
        if invoice_ids
        else []
    )
    found = {}
    for line in lines:
        if line.invoice_id in numbers:
            url = url_for("invoicing_invoices_admin.details", invoice_id=line.invoice_id)
            found[line.id] = (numbers[line.invoice_id], url)
        else:
            found[line.id] = (line.entry.reference or line.entry.number, labels.record_url(line.entry))
    return found


def register(ctx: ModuleContext) -> None:
    """The payments pages."""
    ctx.add_admin_view(PaymentsView(name=_l("Payments"), endpoint="accounting_payments"))
