"""Back office: billing runs (start, progress, review against the previous invoice, post) and invoices."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, flash, redirect, request, url_for
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
from modules.invoicing import einvoice_exchange, fatturapa, payment_status, pdf, runs, services
from modules.invoicing.models import EINVOICE_STATES, INVOICE_STATES, BillingRun, EInvoiceReceipt, Invoice

DEFAULT_REVIEW_THRESHOLD = 20
PAGE_SIZE = 50
# Room for several receipt files or a zip of a month's receipts, and the form around them.
MAX_RECEIPTS_UPLOAD = 50 * 1024 * 1024


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
        receipts = db.session.scalars(
            sa.select(EInvoiceReceipt).where(EInvoiceReceipt.invoice_id == invoice.id).order_by(EInvoiceReceipt.id)
        ).all()
        return self.render(
            "invoicing/admin/invoice.html",
            invoice=invoice,
            credit_notes=credit_notes,
            email_state=email_state,
            payment=payment_status.payment_state(invoice),
            receipts=receipts,
            rejection=next((receipt for receipt in reversed(receipts) if receipt.kind == "NS"), None),
            explain=einvoice_exchange.explain,
            outcome_label=einvoice_exchange.outcome_label,
            document_state_label=einvoice_exchange.document_state_label,
            can_correct=services.can_correct(invoice),
            corrected=_corrected(invoice, request.args.get("credit_note"), request.args.get("new_invoice")),
        )

    @expose("/<int:invoice_id>/correct", methods=["GET", "POST"])
    def correct(self, invoice_id: int):
        """A rejected e-invoice: first what will happen, then (confirmed) a posted credit note and a new draft."""
        invoice = db.get_or_404(Invoice, invoice_id)
        if not services.can_correct(invoice):
            flash(
                _("Only a posted invoice rejected by the exchange system and not yet credited can be corrected."),
                "error",
            )
            return redirect(url_for(".details", invoice_id=invoice_id))
        if request.method == "POST" and request.form.get("confirm") == "1":
            made = self.run_action(lambda: services.correct_rejected(invoice))
            if made is None:
                return redirect(url_for(".details", invoice_id=invoice_id))
            note, draft = made
            flash(_("Credit note %(number)s posted; correct the new draft and post it.", number=note.number), "success")
            return redirect(url_for(".details", invoice_id=invoice_id, credit_note=note.id, new_invoice=draft.id))
        return self.render(
            "invoicing/admin/correct_confirm.html",
            invoice=invoice,
            error=_("Tick the box to confirm.") if request.method == "POST" else None,
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


def _corrected(invoice: Invoice, note_id: str | None, draft_id: str | None) -> tuple[Invoice, Invoice] | None:
    """The credit note and new draft a correction just made, named by the redirect (checked, not trusted)."""
    if not (note_id or "").isdigit() or not (draft_id or "").isdigit():
        return None
    note, draft = db.session.get(Invoice, int(note_id)), db.session.get(Invoice, int(draft_id))
    if note is None or draft is None or note.original_id != invoice.id or draft.customer_id != invoice.customer_id:
        return None
    return note, draft


INTERNAL = "internal"


def state_counts() -> list[tuple[str | None, int]]:
    """How many posted documents are in each e-invoice state (None: not sent yet), in the order of the exchange;
    last the internal credit notes (of rejected invoices), never sent."""
    bucket = sa.case((einvoice_exchange.internal_credit_note(), INTERNAL), else_=Invoice.einvoice_state)
    posted = sa.select(bucket.label("bucket")).where(Invoice.state == "posted").subquery()
    rows = dict(db.session.execute(sa.select(posted.c.bucket, sa.func.count()).group_by(posted.c.bucket)).all())
    return [(state, rows.get(state, 0)) for state in (None, *EINVOICE_STATES, INTERNAL)]


def count_label(state: str | None) -> str:
    if state == INTERNAL:
        return _("internal credit note, not sent")
    return einvoice_exchange.state_label(state)


def last_receipts(invoices: list[Invoice]) -> dict[int, EInvoiceReceipt]:
    ids = [invoice.id for invoice in invoices]
    last: dict[int, EInvoiceReceipt] = {}
    if ids:
        query = sa.select(EInvoiceReceipt).where(EInvoiceReceipt.invoice_id.in_(ids)).order_by(EInvoiceReceipt.id)
        for receipt in db.session.scalars(query):
            last[receipt.invoice_id] = receipt
    return last


def _previous_month() -> tuple[dt.date, dt.date]:
    first_of_this = clock.today().replace(day=1)
    last = first_of_this - dt.timedelta(days=1)
    return last.replace(day=1), last


def _date(name: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(request.form.get(name, "").strip())
    except ValueError:
        return None


class EInvoicesView(SecuredView):
    """E-invoices and the exchange system: states, the zip of a period for the intermediary, the receipts back."""

    permission = "billing.manage"

    def create_blueprint(self, admin: Any) -> Blueprint:
        blueprint = super().create_blueprint(admin)
        upload = f"{self.endpoint}.receipts"

        @blueprint.url_value_preprocessor
        def _limit_upload(endpoint: str | None, values: Any) -> None:
            # Before CSRF reads the form: a larger body is refused (413) unread.
            if endpoint == upload:
                request.max_content_length = MAX_RECEIPTS_UPLOAD

        return blueprint

    def _page(self, **extra: Any):
        state = request.args.get("state")
        query = (
            sa.select(Invoice)
            .options(selectinload(Invoice.customer), selectinload(Invoice.original))
            .where(Invoice.state == "posted")
        )
        if state == "none":
            query = query.where(Invoice.einvoice_state.is_(None), ~einvoice_exchange.internal_credit_note())
        elif state == INTERNAL:
            query = query.where(einvoice_exchange.internal_credit_note())
        elif state in EINVOICE_STATES:
            query = query.where(Invoice.einvoice_state == state)
        page = db.paginate(
            query.order_by(Invoice.issue_date.desc(), Invoice.id.desc()), per_page=PAGE_SIZE, error_out=False
        )
        date_from, date_to = _previous_month()
        values = {
            "page": page,
            "state": state,
            "counts": state_counts(),
            "state_label": count_label,
            "document_state_label": einvoice_exchange.document_state_label,
            "is_internal": einvoice_exchange.is_internal_credit_note,
            "last": last_receipts(page.items),
            "date_from": date_from,
            "date_to": date_to,
            "refused": None,
            "refused_invoices": {},
            "resend": False,
            "outcomes": None,
            **extra,
        }
        return self.render("invoicing/admin/einvoices.html", **values)

    @expose("/")
    def index(self):
        return self._page()

    @expose("/export", methods=["POST"])
    def export(self):
        """The zip of the period; when some documents cannot be e-invoices, they are listed first with the reasons."""
        date_from, date_to = _date("date_from"), _date("date_to")
        resend = request.form.get("resend") == "1"
        try:
            result = einvoice_exchange.export_zip(date_from, date_to, resend=resend)
        except ValidationError as error:
            db.session.rollback()
            flash(error.messages({"date_from": _("From"), "date_to": _("To")}), "error")
            return redirect(url_for(".index"))
        if result.refused and request.form.get("download") != "1":
            db.session.rollback()  # nothing is marked exported until the dealer downloads the zip without them
            return self._page(
                refused=result.refused,
                refused_invoices=result.refused_invoices,
                date_from=date_from,
                date_to=date_to,
                resend=resend,
                exportable=result.invoices,
            )
        if not result.invoices:
            db.session.rollback()
            flash(_("Nothing to export in this period."), "warning")
            return redirect(url_for(".index"))
        db.session.commit()
        return _download(result.content, "application/zip", result.file_name)

    @expose("/receipts", methods=["POST"])
    def receipts(self):
        files = [
            (upload.filename or "receipt.xml", upload.stream.read())
            for upload in request.files.getlist("files")
            if upload.filename
        ]
        if not files:
            flash(_("Choose at least one receipt file or a zip."), "warning")
            return redirect(url_for(".index"))
        outcomes = einvoice_exchange.import_receipts(files)
        db.session.commit()
        return self._page(outcomes=outcomes)


EINVOICE_STATE_LABELS = einvoice_exchange.STATE_LABELS
RECEIPT_KIND_LABELS = einvoice_exchange.KIND_LABELS
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
    "invoicing_einvoice_receipt": _l("E-invoice receipt"),
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
    labels.register_enum(app, "invoice.einvoice_state", EINVOICE_STATE_LABELS)
    labels.register_enum(app, "einvoice.receipt_kind", RECEIPT_KIND_LABELS)
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
