"""Back office: billing runs (start, progress, review against the previous invoice, post) and invoices."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Response, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.orm import selectinload

from core import clock, jobs, labels
from core.admin import SecuredView
from core.db import contains, db
from core.models import Partner
from core.settings import get_setting
from core.validation import ValidationError
from modules.invoicing import fatturapa, payment_status, pdf, runs, services
from modules.invoicing.models import INVOICE_STATES, BillingRun, Invoice

DEFAULT_REVIEW_THRESHOLD = 20
PAGE_SIZE = 50


def review_threshold() -> Decimal:
    return Decimal(str(get_setting("invoicing.review_threshold_percent", DEFAULT_REVIEW_THRESHOLD)))


def review_rows(invoices: list[Invoice]) -> list[dict]:
    """Each invoice of a run with the previous invoice of its contract and whether the change needs a look."""
    threshold = review_threshold()
    previous_of = services.previous_invoices(invoices)
    rows = []
    for invoice in invoices:
        previous = previous_of[invoice.id]
        change = services.change_percent(invoice, previous)
        rows.append(
            {
                "invoice": invoice,
                "previous": previous,
                "change": change,
                "flagged": change is not None and abs(change) > threshold,
            }
        )
    return rows


def _post_many(invoices: list[Invoice]) -> None:
    """Post each draft in its own transaction, reporting what was numbered and what could not be."""
    numbers, failures = [], []
    for invoice in invoices:
        try:
            services.post(invoice)
            db.session.commit()
            numbers.append(invoice.number)
        except ValidationError as error:
            db.session.rollback()
            failures.append(f"#{invoice.id}: {error.messages()}")
    if numbers:
        flash(_("Posted %(count)d document(s): %(numbers)s", count=len(numbers), numbers=", ".join(numbers)), "success")
    for failure in failures:
        flash(failure, "error")
    if not numbers and not failures:
        flash(_("Nothing to post: choose at least one draft."), "warning")


EMAIL_STATES = {
    "pending": _l("being sent"),
    "sent": _l("sent"),
    "failed": _l("not sent: the mail server refused it (see the outbox)"),
    "kept": _l("kept in the outbox: no mail server is configured"),
}


def email_state(invoice: Invoice) -> str:
    """What became of a posted document's email, in words: sent, kept in the outbox and why, or why none was sent."""
    if invoice.email_message is None:
        return invoice.email_note or ""
    return str(EMAIL_STATES.get(invoice.email_message.status, invoice.email_message.status))


def _download(content: bytes, mimetype: str, name: str) -> Response:
    response = Response(content, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


class BillingRunsView(SecuredView):
    """Start a run, watch it progress, review its drafts against the previous invoices, post them."""

    permission = "billing.manage"

    @expose("/")
    def index(self):
        recent = db.session.scalars(sa.select(BillingRun).order_by(BillingRun.id.desc()).limit(PAGE_SIZE)).all()
        earliest, latest = runs.as_of_window()
        return self.render(
            "invoicing/admin/runs.html", runs=recent, today=clock.today(), earliest=earliest, latest=latest
        )

    @expose("/start", methods=["POST"])
    def start(self):
        try:
            as_of = dt.date.fromisoformat(request.form.get("as_of", "").strip())
        except ValueError:
            flash(_("As of: enter a date (YYYY-MM-DD)."), "error")
            return redirect(url_for(".index"))
        run = self.run_action(lambda: runs.create_run(as_of, current_user.id), labels={"as_of": _("As of")})
        if run is None:
            return redirect(url_for(".index"))
        runs.launch_run(run.id)
        return redirect(url_for(".details", run_id=run.id))

    @expose("/<int:run_id>")
    def details(self, run_id: int):
        run = db.get_or_404(BillingRun, run_id)
        invoices = runs.run_invoices(run.id)
        missing, errors = runs.run_issues(run.id, "missing"), runs.run_issues(run.id, "error")
        # The page reloads every 2 s while the run works: only the partners it names, not every partner.
        named = {row.customer_id for row in (*invoices, *missing, *errors) if row.customer_id is not None}
        labels.preload("customer", named)
        labels.preload("contract", {row.contract_id for row in (*invoices, *missing, *errors)})
        labels.preload("device", {row.device_id for row in missing})
        return self.render(
            "invoicing/admin/run.html",
            run=run,
            rows=review_rows(invoices),
            missing=missing,
            errors=errors,
            threshold=review_threshold(),
            refresh=run.status in ("queued", "running"),
            no_worker=run.status in ("queued", "running") and jobs.workers_taking_jobs() == 0,
            drafts=sum(1 for invoice in invoices if invoice.state == "draft"),
            percent=int(run.done * 100 / run.total) if run.total else 100,
        )

    @expose("/<int:run_id>/post", methods=["POST"])
    def post(self, run_id: int):
        """Numbers are final: the first POST shows which drafts get which numbers; the confirmed one posts them."""
        run = db.get_or_404(BillingRun, run_id)
        query = (
            sa.select(Invoice)
            .options(selectinload(Invoice.customer))
            .where(Invoice.billing_run_id == run_id, Invoice.state == "draft")
        )
        if request.form.get("all") != "1":
            chosen = [int(value) for value in request.form.getlist("invoice_id") if value.isdigit()]
            query = query.where(Invoice.id.in_(chosen))
        drafts = list(db.session.scalars(query.order_by(Invoice.id)))
        if drafts and request.form.get("confirm") != "1":
            unticked = request.form.get("asked") == "1"
            return self.render(
                "invoicing/admin/post_confirm.html",
                run=run,
                planned=services.planned_numbers(drafts),
                error=_("Tick the box to confirm that these numbers are given for good.") if unticked else None,
            )
        _post_many(drafts)
        return redirect(url_for(".details", run_id=run_id))


class InvoicesView(SecuredView):
    """Every invoice and credit note: read, post, cancel, credit, download the PDF and the FatturaPA XML."""

    permission = "billing.manage"

    @expose("/")
    def index(self):
        state = request.args.get("state")
        query = (
            sa.select(Invoice)
            .options(selectinload(Invoice.customer), selectinload(Invoice.email_message))
            .order_by(Invoice.id.desc())
        )
        if state in INVOICE_STATES:
            query = query.where(Invoice.state == state)
        search = request.args.get("q", "").strip()
        if search:
            query = query.join(Invoice.customer).where(
                sa.or_(contains(Partner.name, search), contains(Invoice.number, search))
            )
        page = db.paginate(query, per_page=PAGE_SIZE, error_out=False)
        return self.render(
            "invoicing/admin/invoices.html",
            page=page,
            state=state,
            search=search,
            states=INVOICE_STATES,
            email_state=email_state,
            payments_tracked=payment_status.tracked(),
            payments=payment_status.payment_states(page.items),
        )

    @expose("/<int:invoice_id>")
    def details(self, invoice_id: int):
        invoice = db.get_or_404(Invoice, invoice_id)
        credit_notes = db.session.scalars(
            sa.select(Invoice).where(Invoice.original_id == invoice.id).order_by(Invoice.id)
        ).all()
        return self.render(
            "invoicing/admin/invoice.html",
            invoice=invoice,
            credit_notes=credit_notes,
            email_state=email_state,
            payment=payment_status.payment_state(invoice),
        )

    @expose("/<int:invoice_id>/post", methods=["POST"])
    def post(self, invoice_id: int):
        _post_many([db.get_or_404(Invoice, invoice_id)])
        return redirect(url_for(".details", invoice_id=invoice_id))

    @expose("/<int:invoice_id>/cancel", methods=["POST"])
    def cancel(self, invoice_id: int):
        invoice = db.get_or_404(Invoice, invoice_id)
        self.run_action(lambda: services.cancel(invoice), _("The draft is cancelled: its lines can be billed again."))
        return redirect(url_for(".details", invoice_id=invoice_id))

    @expose("/<int:invoice_id>/credit-note", methods=["POST"])
    def credit_note(self, invoice_id: int):
        invoice = db.get_or_404(Invoice, invoice_id)
        line_ids = [int(value) for value in request.form.getlist("line_id") if value.isdigit()]
        note = self.run_action(
            lambda: services.create_credit_note(invoice, line_ids or None),
            _("Draft credit note created: check it and post it."),
        )
        return redirect(url_for(".details", invoice_id=note.id if note else invoice_id))

    @expose("/<int:invoice_id>/pdf")
    def pdf(self, invoice_id: int):
        name, content = pdf.pdf_for(db.get_or_404(Invoice, invoice_id))
        db.session.commit()
        return _download(content, "application/pdf", name)

    @expose("/<int:invoice_id>/fatturapa")
    def fatturapa(self, invoice_id: int):
        invoice = db.get_or_404(Invoice, invoice_id)
        try:
            return _download(fatturapa.build(invoice), "application/xml", fatturapa.file_name(invoice))
        except ValidationError as error:
            flash(error.messages(), "error")
            return redirect(url_for(".details", invoice_id=invoice_id))


INVOICE_STATE_LABELS = {"draft": _l("Draft"), "posted": _l("Posted"), "cancelled": _l("Cancelled")}
RUN_STATUS_LABELS = {"queued": _l("queued"), "running": _l("running"), "done": _l("done"), "failed": _l("failed")}
DOCUMENT_TYPE_LABELS = {"invoice": _l("Invoice"), "credit_note": _l("Credit note")}
INVOICING_TABLES = {
    "invoicing_billing_run": _l("Billing run"),
    "invoicing_run_issue": _l("Billing run issue"),
    "invoicing_run_customer": _l("Customer of a billing run"),
    "invoicing_invoice": _l("Invoice"),
    "invoicing_invoice_line": _l("Invoice line"),
    "invoicing_billed_ref": _l("Billed item"),
    "invoicing_invoice_pdf": _l("Invoice PDF"),
}


def _invoice_label(invoice: Invoice) -> str:
    kind = labels.enum_label("invoice.type", invoice.type)
    if invoice.number:
        return f"{kind} {invoice.number}"
    return _("%(kind)s draft for %(customer)s", kind=kind, customer=invoice.customer.name)


def register_labels(app: Any) -> None:
    """How invoicing's records are named and its codes read (core/labels.py)."""
    labels.register_enum(app, "invoice.state", INVOICE_STATE_LABELS)
    labels.register_enum(app, "invoice.type", DOCUMENT_TYPE_LABELS)
    labels.register_enum(app, "run.status", RUN_STATUS_LABELS)
    labels.register_enum(app, "audit.table", INVOICING_TABLES)
    labels.register_enum(
        app,
        "job.func",
        {
            "modules.invoicing.jobs:run_chunk": _l("Bill a group of customers of a billing run"),
            "modules.invoicing.jobs:deliver_invoice": _l("Email a posted invoice"),
        },
    )
    labels.register_record(
        app,
        Invoice,
        _invoice_label,
        url=lambda invoice: url_for("invoicing_invoices_admin.details", invoice_id=invoice.id),
        needs=("customer",),
    )
    labels.register_record(
        app,
        BillingRun,
        lambda run: _("Billing run as of %(date)s", date=labels.local_date(run.as_of)),
        url=lambda run: url_for("invoicing_runs_admin.details", run_id=run.id),
    )
