"""Accounting back office, receivables: the aging page (with a bar per bucket), a customer's partner ledger, SEPA
mandates, SEPA collections (new batch, download the XML, settle, mark a debit returned) and the reminders sent."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, g, redirect, request, send_file, url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy.orm import selectinload

from core import clock, labels
from core.admin import SecuredView, arg_id, model_view
from core.context import ModuleContext
from core.db import db
from core.models import OutboxMessage, Partner
from core.permissions import has_permission
from core.validation import Checker
from modules.accounting import receivables, sepa
from modules.accounting.admin import VIEW, AccountingView
from modules.accounting.models import DunningLetter, SepaBatch, SepaBatchItem, SepaMandate
from modules.invoicing.models import Invoice

MANDATE_LABELS = {
    "partner": _l("Customer"),
    "reference": _l("Mandate reference"),
    "signed_on": _l("Signed on"),
    "iban": _l("IBAN"),
    "bic": _l("BIC"),
    "scheme": _l("Scheme"),
    "first_collected_on": _l("First collected on"),
    "active": _l("Active"),
}
BATCH_LABELS = {
    "message_id": _l("Message id"),
    "collection_date": _l("Collection date"),
    "due_from": _l("Due from"),
    "due_to": _l("Due to"),
    "item_count": _l("Invoices"),
    "total": _l("Total"),
    "created_at": _l("Created"),
    "collection": _l("Collection date"),
    "reason": _l("Return reason"),
    "returned_on": _l("Returned on"),
    "creditor_id": _l("SEPA creditor identifier"),
    "iban": _l("IBAN"),
    "date": _l("Date"),
    "batch": _l("SEPA collection"),
    "state": _l("State"),
}
LETTER_LABELS = {
    "partner": _l("Customer"),
    "step": _l("Step"),
    "sent_on": _l("Sent on"),
    "total": _l("Total due"),
    "outbox_message_id": _l("Email"),
}


def _date_arg(name: str, default: dt.date | None) -> dt.date | None:
    """The query argument as a date (ISO), `default` when empty; a wrong one is flashed and `default` used."""
    value = request.args.get(name, "").strip()
    if not value:
        return default
    check = Checker()
    day = check.date(name, value)
    if day is None:
        flash(_("%(value)s is not a date.", value=value), "error")
        return default
    return day


class AgingView(SecuredView):
    """Open receivables per customer at a date, by how late they are; each customer links to its ledger."""

    permission = VIEW

    @expose("/")
    def index(self):
        as_of = _date_arg("date", clock.today())
        report = receivables.aging(as_of)
        totals = report.totals
        largest = max([*totals.values(), receivables.ZERO]) or 1
        bars = [
            (bucket, receivables.BUCKET_LABELS[bucket], totals[bucket], int(totals[bucket] * 100 / largest))
            for bucket in receivables.BUCKETS
        ]
        return self.render(
            "accounting/admin/aging.html",
            report=report,
            bars=bars,
            buckets=receivables.BUCKETS,
            bucket_labels=receivables.BUCKET_LABELS,
        )


class PartnerLedgerView(SecuredView):
    """A customer's (or supplier's) lines on the receivable and payable accounts, with the running balance."""

    permission = VIEW

    @expose("/")
    def index(self):
        partner_id = arg_id("partner_id")
        partner = db.session.get(Partner, partner_id) if partner_id else None
        if partner_id and partner is None:
            abort(404)
        date_from = _date_arg("date_from", None)
        date_to = _date_arg("date_to", clock.today())
        ledger = receivables.partner_ledger(partner, date_from, date_to) if partner else None
        invoice_ids = {row.line.invoice_id for row in ledger.rows if row.line.invoice_id} if ledger else set()
        invoices = {
            invoice.id: invoice for invoice in db.session.scalars(sa.select(Invoice).where(Invoice.id.in_(invoice_ids)))
        }
        partners = db.session.scalars(
            sa.select(Partner)
            .where(sa.or_(Partner.is_customer.is_(True), Partner.is_supplier.is_(True)))
            .order_by(Partner.name)
        ).all()
        return self.render(
            "accounting/admin/partner_ledger.html",
            partner=partner,
            partners=partners,
            ledger=ledger,
            invoices=invoices,
            date_from=date_from,
            date_to=date_to,
        )


class SepaMandateView(AccountingView):
    """Customers' SEPA Direct Debit mandates: the IBAN is checked (python-stdnum), the reference is unique."""

    column_list = ("partner", "reference", "signed_on", "iban", "scheme", "first_collected_on", "active")
    column_details_list = (*column_list, "bic")
    column_labels = MANDATE_LABELS
    column_searchable_list = ("reference", "iban")
    column_filters = ("active", "scheme")
    column_default_sort = ("signed_on", True)
    form_columns = ("partner", "reference", "signed_on", "iban", "bic", "scheme", "active")
    form_choices = {"scheme": [("CORE", "CORE"), ("B2B", "B2B")]}
    form_args = {
        "partner": {
            "query_factory": lambda: db.session.scalars(
                sa.select(Partner).where(Partner.is_customer.is_(True)).order_by(Partner.name)
            ).all(),
            "get_label": lambda partner: partner.name,
        },
        "reference": {
            "description": _l("The mandate id (ADR), as printed on the signed mandate: up to 35 characters.")
        },
    }
    can_delete = False

    def _values(self, form: Any) -> dict[str, Any]:
        return {
            "partner_id": form.partner.data.id if form.partner.data else None,
            "reference": form.reference.data,
            "signed_on": form.signed_on.data,
            "iban": form.iban.data,
            "bic": form.bic.data,
            "scheme": form.scheme.data,
            "active": form.active.data,
        }

    def create_model(self, form: Any) -> Any:
        fields = {"partner_id": "partner"}
        return self.save_form(form, lambda: sepa.save_mandate(None, **self._values(form)), fields)

    def update_model(self, form: Any, model: SepaMandate) -> bool:
        fields = {"partner_id": "partner"}
        return self.save_form(form, lambda: sepa.save_mandate(model, **self._values(form)), fields) is not False


class SepaBatchView(AccountingView):
    """SEPA collections: a new one for the invoices due in a range, its page with the invoices, the XML to upload to
    the bank, "Settled" once the bank credits it, and "Returned" for a debit the debtor's bank sent back."""

    list_template = "accounting/admin/sepa_batches.html"
    details_template = "accounting/admin/sepa_batch.html"
    column_list = ("message_id", "collection_date", "due_from", "due_to", "item_count", "total", "created_at")
    column_labels = BATCH_LABELS
    column_default_sort = ("id", True)
    can_create = False
    can_edit = False
    can_delete = False

    def _require_edit(self) -> None:
        """The actions (collect, settle, return) ask the view's edit permission, as core's create/edit/delete do."""
        if not self._can_edit():
            abort(403)

    def _batch(self) -> SepaBatch:
        batch_id = arg_id("id") or (int(request.form["id"]) if request.form.get("id", "").isdigit() else None)
        batch = db.session.get(SepaBatch, batch_id) if batch_id else None
        if batch is None:
            abort(404)
        return batch

    @expose("/details/")
    def details_view(self):
        batch = db.session.scalar(
            sa.select(SepaBatch)
            .where(SepaBatch.id == (arg_id("id") or 0))
            .options(selectinload(SepaBatch.items).selectinload(SepaBatchItem.mandate))
        )
        if batch is None:
            abort(404)
        invoices = {
            invoice.id: invoice
            for invoice in db.session.scalars(
                sa.select(Invoice)
                .where(Invoice.id.in_([item.invoice_id for item in batch.items]))
                .options(selectinload(Invoice.customer))
            )
        }
        return self.render(
            self.details_template,
            batch=batch,
            invoices=invoices,
            can_edit=self._can_edit(),
            today=clock.today(),
        )

    @expose("/download/")
    def download(self):
        batch = self._batch()
        from io import BytesIO

        return send_file(
            BytesIO(batch.content), mimetype="application/xml", as_attachment=True, download_name=batch.filename
        )

    @expose("/collect/", methods=("GET", "POST"))
    def collect(self):
        self._require_edit()
        today = clock.today()
        values = {
            "due_from": request.values.get("due_from") or today.isoformat(),
            "due_to": request.values.get("due_to") or (today + dt.timedelta(days=30)).isoformat(),
            "collection_date": request.values.get("collection_date") or (today + dt.timedelta(days=5)).isoformat(),
        }
        if request.method == "POST":
            batch = self.run_action(
                lambda: sepa.create_batch(
                    values["due_from"], values["due_to"], values["collection_date"], user_id=current_user.id
                ),
                lambda made: _("Collection %(id)s created: download its file for the bank.", id=made.message_id),
                BATCH_LABELS,
            )
            if batch is not None:
                return redirect(url_for(".details_view", id=batch.id))
        check = Checker()
        start, end = check.date("due_from", values["due_from"]), check.date("due_to", values["due_to"])
        found = sepa.candidates(start, end) if start and end else []
        return self.render(
            "accounting/admin/sepa_new.html", values=values, candidates=found, creditor_id=sepa.creditor_id()
        )

    @expose("/settle/", methods=("POST",))
    def settle(self):
        self._require_edit()
        batch = self._batch()
        self.run_action(
            lambda: sepa.settle_batch(batch, request.form.get("date") or None, user_id=current_user.id),
            lambda payments: _("%(count)d payments recorded.", count=len(payments)),
            BATCH_LABELS,
        )
        return redirect(url_for(".details_view", id=batch.id))

    @expose("/return/", methods=("POST",))
    def mark_returned(self):
        self._require_edit()
        batch = self._batch()
        item_id = request.form.get("item_id", "")
        item = next((i for i in batch.items if item_id.isdigit() and i.id == int(item_id)), None)
        if item is None:
            abort(404)
        self.run_action(
            lambda: sepa.mark_returned(
                item, request.form.get("reason"), request.form.get("returned_on") or None, user_id=current_user.id
            ),
            _("Direct debit %(id)s marked returned: its invoice is open again.", id=item.end_to_end_id),
            BATCH_LABELS,
        )
        return redirect(url_for(".details_view", id=batch.id))


def _letter_email(letter: DunningLetter) -> Markup | str:
    """The letter's email by its subject and state (core names no outbox message), a link to it for who reads the
    outbox."""
    if letter.outbox_message_id is None:
        return ""
    message = g.get("accounting_letter_emails", {}).get(letter.outbox_message_id) or db.session.get(
        OutboxMessage, letter.outbox_message_id
    )
    if message is None:
        return ""
    text = f"{message.subject} · {labels.enum_label('outbox.status', message.status)}"
    if not has_permission(current_user, "outbox.view"):
        return text
    url = url_for("core_outbox.details", message_id=message.id)
    return Markup('<a href="{}">{}</a>').format(url, text)


class DunningLetterView(AccountingView):
    """The payment reminders sent, newest first, each with its email."""

    column_list = ("sent_on", "partner", "step", "total", "outbox_message_id")
    column_labels = LETTER_LABELS
    column_default_sort = ("sent_on", True)
    column_formatters = {"outbox_message_id": lambda view, context, model, name: _letter_email(model)}
    can_create = False
    can_edit = False
    can_delete = False

    def preload_rows(self, rows: list[Any]) -> None:
        super().preload_rows(rows)
        ids = {row.outbox_message_id for row in rows if row.outbox_message_id}
        found = sa.select(OutboxMessage).where(OutboxMessage.id.in_(ids))
        g.accounting_letter_emails = {message.id: message for message in db.session.scalars(found)} if ids else {}


def _collection_record(app: Any) -> None:
    """SEPA records link to the collection's page."""
    labels.register_record(
        app,
        SepaBatch,
        lambda batch: _("SEPA collection of %(date)s", date=labels.local_date(batch.collection_date)),
        url=lambda batch: url_for("accounting_sepa_batch.details_view", id=batch.id),
    )
    labels.register_record(
        app,
        SepaBatchItem,
        lambda item: item.end_to_end_id,
        url=lambda item: url_for("accounting_sepa_batch.details_view", id=item.batch_id),
    )


def register(ctx: ModuleContext) -> None:
    add = ctx.add_admin_view
    add(AgingView(name=_l("Receivables aging"), endpoint="accounting_aging"))
    add(PartnerLedgerView(name=_l("Partner ledger"), endpoint="accounting_partner_ledger"))
    add(model_view(SepaMandateView, SepaMandate, _l("SEPA mandates"), "accounting_sepa_mandate"))
    add(model_view(SepaBatchView, SepaBatch, _l("SEPA collections"), "accounting_sepa_batch"))
    add(model_view(DunningLetterView, DunningLetter, _l("Payment reminders"), "accounting_dunning_letter"))
    _collection_record(ctx.app)
