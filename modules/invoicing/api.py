"""/api/v1/billing-runs and /api/v1/invoices: runs (staff), invoices and credit notes (a customer sees its own)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response
from flask.views import MethodView
from flask_babel import gettext as _
from sqlalchemy import Select
from sqlalchemy.orm import selectinload

from core.api.auth import api_user, require
from core.api.blueprint import ApiBlueprint
from core.api.fields import DECIMAL_PATTERN, DecimalString, Integer, String
from core.api.helpers import ID_PATH, answering, committing, get_or_404, id_field
from core.api.pagination import PageArgs, page_schema, paginate
from core.auth.scoping import confined_customer, customer_scoped
from core.db import db
from core.models import Partner
from core.partners import PAYMENT_METHODS
from core.procurement import ORDER_KINDS
from core.validation import fail
from modules.invoicing import fatturapa, payment_status, pdf, runs, services
from modules.invoicing.models import DOCUMENT_TYPES, EINVOICE_STATES, INVOICE_STATES, BillingRun, Invoice

PAYMENT_STATES = ["paid", "partial", "overdue", "open", "collecting"]
REFERENCE_FIELDS = ("cig", "cup", "order_kind", "order_reference", "order_date")

runs_blp = ApiBlueprint("invoicing_runs", __name__, url_prefix="/billing-runs", description="Billing runs.")
invoices_blp = ApiBlueprint(
    "invoicing_invoices", __name__, url_prefix="/invoices", description="Invoices and credit notes."
)


# Billing runs


class RunCreateSchema(ma.Schema):
    as_of = ma.fields.Date(required=True, metadata={"description": "Bill what is due by this date."})


class RunProgressSchema(ma.Schema):
    done = Integer(required=True)
    total = Integer(required=True)


class MissingReadingSchema(ma.Schema):
    contract_id = Integer(allow_none=True)
    device_id = Integer(allow_none=True)
    meter = ma.fields.String(allow_none=True)
    period_start = ma.fields.Date(allow_none=True)
    period_end = ma.fields.Date(allow_none=True)


class RunErrorSchema(ma.Schema):
    customer_id = Integer(allow_none=True)
    contract_id = Integer(allow_none=True)
    message = ma.fields.String()


class RunCreatedSchema(ma.Schema):
    id = Integer(required=True)
    status = ma.fields.String(required=True)


class RunSchema(ma.Schema):
    id = Integer()
    as_of = ma.fields.Date()
    status = ma.fields.String(metadata={"enum": ["queued", "running", "done", "failed"]})
    progress = ma.fields.Nested(RunProgressSchema)
    invoice_ids = ma.fields.List(Integer())
    missing_readings = ma.fields.List(ma.fields.Nested(MissingReadingSchema))
    errors = ma.fields.List(ma.fields.Nested(RunErrorSchema))

    @ma.pre_dump
    def _gather(self, run: BillingRun, **kwargs: Any) -> dict[str, Any]:
        return {
            "id": run.id,
            "as_of": run.as_of,
            "status": run.status,
            "progress": {"done": run.done, "total": run.total},
            "invoice_ids": [invoice.id for invoice in runs.run_invoices(run.id)],
            "missing_readings": runs.run_issues(run.id, "missing"),
            "errors": runs.run_issues(run.id, "error"),
        }


@runs_blp.route("")
class BillingRuns(MethodView):
    @require("billing.manage")
    @runs_blp.arguments(RunCreateSchema)
    @runs_blp.response(202, RunCreatedSchema)
    def post(self, data: dict[str, Any]):
        """Start a billing run

        Every enabled billable source is asked, for each customer, what is due by `as_of`; one draft invoice per
        contract. Runs in background jobs; without Redis (the embedded default) it has finished when this answers.
        `as_of` may be at most `invoicing.max_as_of_days_ahead` days ahead (default 31) and
        `invoicing.max_as_of_years_back` years back (default 10); a draft holds at most
        `invoicing.max_lines_per_draft` lines (default 500), the rest waits for the next run.
        """
        with committing():
            run = runs.create_run(data["as_of"], api_user().id)
        runs.launch_run(run.id)
        db.session.expire_all()
        return {"id": run.id, "status": run.status}


@runs_blp.route(f"/<{ID_PATH}:run_id>")
class BillingRunResource(MethodView):
    @require("billing.manage")
    @runs_blp.response(200, RunSchema)
    @runs_blp.alt_response(404, response="NOT_FOUND")
    def get(self, run_id: int):
        """Read a billing run: progress, drafts, missing readings, errors"""
        return get_or_404(db.select(BillingRun).where(BillingRun.id == run_id))


# Invoices


class InvoiceLineSchema(ma.Schema):
    id = Integer()
    description = ma.fields.String()
    quantity = DecimalString()
    unit = ma.fields.String()
    unit_price = DecimalString()
    vat_rate = DecimalString()
    vat_code = ma.fields.String(allow_none=True, metadata={"description": "The VAT code (22, N4, ...)."})
    vat_nature = ma.fields.String(allow_none=True, metadata={"description": "FatturaPA Natura of a 0% line."})
    vat_reference = ma.fields.String(allow_none=True, metadata={"description": "The law a 0% line cites."})
    amount = DecimalString()
    kind = ma.fields.String()
    period_start = ma.fields.Date(allow_none=True)
    period_end = ma.fields.Date(allow_none=True)
    meter = ma.fields.String(allow_none=True)
    device_id = Integer(allow_none=True)
    contract_id = Integer(allow_none=True)


class InstalmentSchema(ma.Schema):
    due_date = ma.fields.String(metadata={"format": "date"})
    amount = ma.fields.String(metadata={"pattern": DECIMAL_PATTERN})


class InvoiceSchema(ma.Schema):
    id = Integer()
    number = ma.fields.String(allow_none=True)
    type = ma.fields.String(metadata={"enum": list(DOCUMENT_TYPES)})
    state = ma.fields.String(metadata={"enum": list(INVOICE_STATES)})
    customer_id = Integer()
    contract_id = Integer(allow_none=True)
    billing_run_id = Integer(allow_none=True)
    original_id = Integer(allow_none=True, metadata={"description": "The invoice a credit note credits."})
    issue_date = ma.fields.Date(allow_none=True)
    due_date = ma.fields.Date(allow_none=True)
    lines = ma.fields.List(ma.fields.Nested(InvoiceLineSchema))
    net_total = DecimalString()
    vat_total = DecimalString()
    total = DecimalString()
    stamp_duty = DecimalString(metadata={"description": "Stamp duty (bollo virtuale): 0.00 or 2.00, set when posted."})
    split_payment = ma.fields.Boolean(metadata={"description": "Split payment: the customer pays only the net."})
    payment_method = ma.fields.String(
        allow_none=True,
        metadata={
            "enum": [*PAYMENT_METHODS, None],
            "description": "Fixed when posted, from the customer's terms.",
        },
    )
    payment_schedule = ma.fields.List(
        ma.fields.Nested(InstalmentSchema), allow_none=True, metadata={"description": "Instalments, set when posted."}
    )
    cig = ma.fields.String(allow_none=True, metadata={"description": "Codice Identificativo Gara."})
    cup = ma.fields.String(allow_none=True, metadata={"description": "Codice Unico di Progetto."})
    order_kind = ma.fields.String(allow_none=True, metadata={"enum": [*ORDER_KINDS, None]})
    order_reference = ma.fields.String(allow_none=True, metadata={"description": "The customer's contract/order."})
    order_date = ma.fields.Date(allow_none=True)
    einvoice_state = ma.fields.String(
        allow_none=True,
        metadata={
            "enum": [*EINVOICE_STATES, None],
            "description": "Where the e-invoice stands with the exchange system.",
        },
    )
    email_status = ma.fields.Method("_email_status", metadata={"description": "Outbox status of the email."})
    payment_state = ma.fields.Method(
        "_payment_state",
        allow_none=True,
        metadata={
            "type": "string",
            "enum": [*PAYMENT_STATES, None],
            "description": "How far a posted document is paid (`collecting`: in a direct debit being collected); "
            "null for drafts and when no enabled module keeps payments.",
        },
    )
    amount_due = ma.fields.Method(
        "_amount_due",
        allow_none=True,
        metadata={
            "type": "string",
            "pattern": DECIMAL_PATTERN,
            "description": "What is still to be paid (for a credit note: still to be refunded or set off) when a "
            "module keeps payments; else what the posted document asks (the net under split payment); null for "
            "drafts.",
        },
    )

    def _email_status(self, invoice: Invoice) -> str | None:
        return invoice.email_message.status if invoice.email_message else None

    def _payment_state(self, invoice: Invoice) -> str | None:
        status = payment_status.payment_state(invoice)
        return status.state if status else None

    def _amount_due(self, invoice: Invoice) -> str | None:
        status = payment_status.payment_state(invoice)
        if status:
            return str(status.amount_due)
        return str(services.amount_due(invoice)) if invoice.state == "posted" else None


class InvoiceListArgs(PageArgs):
    customer_id = id_field()
    contract_id = id_field()
    billing_run_id = id_field()
    state = String(validate=ma.validate.OneOf(INVOICE_STATES))
    type = String(validate=ma.validate.OneOf(DOCUMENT_TYPES))


class InvoiceLineInSchema(ma.Schema):
    description = String(required=True, validate=ma.validate.Length(min=1, max=1000))
    quantity = DecimalString(required=True)
    unit_price = DecimalString(required=True)
    unit = String(validate=ma.validate.Length(max=10), metadata={"description": "Default pz."})
    vat_code = String(
        validate=ma.validate.Length(max=10),
        metadata={"description": "A VAT code (22, N4, ...): its rate, Natura and legal reference; wins over vat_rate."},
    )
    vat_rate = DecimalString(
        metadata={"description": "Older clients: the default code of this rate (above 0; a 0% line needs vat_code)."}
    )
    kind = String(validate=ma.validate.Length(max=20), metadata={"description": "Default other."})
    period_start = ma.fields.Date(allow_none=True)
    period_end = ma.fields.Date(allow_none=True)


class InvoiceCreateSchema(ma.Schema):
    customer_id = id_field(required=True)
    contract_id = id_field(allow_none=True, metadata={"description": "Its procurement references are copied."})
    lines = ma.fields.List(
        ma.fields.Nested(InvoiceLineInSchema), required=True, validate=ma.validate.Length(min=1, max=500)
    )
    cig = String(allow_none=True, metadata={"description": "CIG: 10 letters or digits."})
    cup = String(allow_none=True, metadata={"description": "CUP: 15 letters or digits."})
    order_kind = String(allow_none=True, validate=ma.validate.OneOf(ORDER_KINDS))
    order_reference = String(allow_none=True, metadata={"description": "The customer's contract or order number."})
    order_date = ma.fields.Date(allow_none=True)


class CorrectionSchema(ma.Schema):
    credit_note_id = Integer(required=True)
    credit_note_number = ma.fields.String(required=True)
    invoice_id = Integer(required=True, metadata={"description": "The new draft, to check and post."})
    invoice_number = ma.fields.String(allow_none=True, metadata={"description": "null: a draft has no number yet."})


class InvoicePostSchema(ma.Schema):
    issue_date = ma.fields.Date(metadata={"description": "Default: today."})


class InvoicePostedSchema(ma.Schema):
    number = ma.fields.String(required=True)


class CreditNoteCreateSchema(ma.Schema):
    line_ids = ma.fields.List(
        id_field(),
        validate=ma.validate.Length(min=1, max=10_000),
        metadata={"description": "Lines of the invoice to credit; all of them when left out."},
    )


def _visible_invoices() -> Select:
    """Staff see every document; a customer's user only its own customer's posted ones."""
    query = customer_scoped(db.select(Invoice), Invoice.customer_id, api_user())
    if confined_customer(api_user()) is not None:
        query = query.where(Invoice.state == "posted")
    return query


def _get_invoice(invoice_id: int) -> Invoice:
    return get_or_404(_visible_invoices().where(Invoice.id == invoice_id))


@invoices_blp.route("")
class Invoices(MethodView):
    @require("billing.manage", "portal.invoices")
    @invoices_blp.arguments(InvoiceListArgs, location="query")
    @invoices_blp.response(200, page_schema(InvoiceSchema))
    def get(self, args: dict[str, Any]):
        """List invoices and credit notes

        Newest first. A customer's token lists only its own posted documents.
        """
        # What each item shows of its relations comes with the page, not one query per row.
        query = _visible_invoices().options(selectinload(Invoice.lines), selectinload(Invoice.email_message))
        for key in ("customer_id", "contract_id", "billing_run_id", "state", "type"):
            if key in args:
                query = query.where(getattr(Invoice, key) == args[key])
        page = paginate(query.order_by(Invoice.id.desc()), args)
        payment_status.payment_states(page["items"])  # the page's states at once, not one question per row
        return page

    @require("billing.manage")
    @invoices_blp.arguments(InvoiceCreateSchema)
    @invoices_blp.response(201, InvoiceSchema)
    def post(self, data: dict[str, Any]):
        """Create a draft invoice of lines typed in by hand

        Each line names its VAT code (`vat_code`); `vat_rate` alone takes that rate's default code, and a 0% line
        without a code is refused (`lines.N.vat_code`: it needs its Natura). CIG, CUP and the customer's contract or
        order, when given, replace what the contract (`contract_id`) has. `422` naming the field: `customer_id`,
        `contract_id` (not a contract of this customer), `cig` (10 letters or digits), `cup` (15), `order_reference`,
        `lines.N.quantity`, ...
        """
        customer = db.session.get(Partner, data["customer_id"])
        with committing():
            if customer is None or not customer.is_customer:
                fail("customer_id", _("No such customer."))
            references = {key: data[key] for key in REFERENCE_FIELDS if data.get(key) is not None}
            invoice = services.create_manual_draft(
                customer.id, data["lines"], contract_id=data.get("contract_id"), **references
            )
        return invoice


@invoices_blp.route(f"/<{ID_PATH}:invoice_id>")
class InvoiceResource(MethodView):
    @require("billing.manage", "portal.invoices")
    @invoices_blp.response(200, InvoiceSchema)
    @invoices_blp.alt_response(404, response="NOT_FOUND")
    def get(self, invoice_id: int):
        """Read an invoice or credit note"""
        return _get_invoice(invoice_id)


@invoices_blp.route(f"/<{ID_PATH}:invoice_id>/post")
class PostInvoice(MethodView):
    @require("billing.manage")
    @invoices_blp.arguments(InvoicePostSchema)
    @invoices_blp.response(200, InvoicePostedSchema)
    @invoices_blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any], invoice_id: int):
        """Post a draft: it gets its number, issue and due dates; the PDF is rendered and emailed in the background"""
        invoice = _get_invoice(invoice_id)
        with committing(status=lambda errors: 409 if "state" in errors else 422):
            services.post(invoice, data.get("issue_date"))
        return {"number": invoice.number}


@invoices_blp.route(f"/<{ID_PATH}:invoice_id>/cancel")
class CancelInvoice(MethodView):
    @require("billing.manage")
    @invoices_blp.response(200, InvoiceSchema)
    @invoices_blp.alt_response(404, response="NOT_FOUND")
    def post(self, invoice_id: int):
        """Cancel a draft: what it billed can be billed again"""
        invoice = _get_invoice(invoice_id)
        with committing(status=409):
            services.cancel(invoice)
        return invoice


@invoices_blp.route(f"/<{ID_PATH}:invoice_id>/credit-notes")
class CreditNotes(MethodView):
    @require("billing.manage")
    @invoices_blp.arguments(CreditNoteCreateSchema)
    @invoices_blp.response(201, InvoiceSchema)
    @invoices_blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any], invoice_id: int):
        """Create a draft credit note reversing all or some lines of a posted invoice

        Amounts stay positive (the type says it is a credit). Posting it frees the credited lines' billed
        references, so a corrected line can be billed again.
        """
        invoice = _get_invoice(invoice_id)
        with committing(status=lambda errors: 409 if "invoice" in errors else 422):
            note = services.create_credit_note(invoice, data.get("line_ids"))
        return note


@invoices_blp.route(f"/<{ID_PATH}:invoice_id>/correct")
class CorrectRejected(MethodView):
    @require("billing.manage")
    @invoices_blp.response(201, CorrectionSchema)
    @invoices_blp.alt_response(404, response="NOT_FOUND")
    def post(self, invoice_id: int):
        """Correct an invoice the exchange system rejected

        Posts a credit note of all its lines and creates a new draft of the same lines (the same billed
        references, the contract's procurement references) to check and post. `409` naming `state` unless the
        invoice is posted, rejected and not credited yet (corrected before); `422` naming the field when a line can
        no longer be billed as it was (e.g. its VAT code was retired).
        """
        invoice = _get_invoice(invoice_id)
        with committing(status=422 if services.can_correct(invoice) else 409):
            note, draft = services.correct_rejected(invoice)
        return {
            "credit_note_id": note.id,
            "credit_note_number": note.number,
            "invoice_id": draft.id,
            "invoice_number": draft.number,
        }


@invoices_blp.route(f"/<{ID_PATH}:invoice_id>/pdf")
class InvoicePdfFile(MethodView):
    @require("billing.manage", "portal.invoices")
    @invoices_blp.response(200, content_type="application/pdf")
    @invoices_blp.alt_response(404, response="NOT_FOUND")
    def get(self, invoice_id: int):
        """Download the PDF (a posted document's stored copy; a draft's preview)"""
        invoice = _get_invoice(invoice_id)
        name, content = pdf.pdf_for(invoice)
        db.session.commit()
        return _download(content, "application/pdf", name)


@invoices_blp.route(f"/<{ID_PATH}:invoice_id>/fatturapa")
class InvoiceXml(MethodView):
    @require("billing.manage", "portal.invoices")
    @invoices_blp.response(200, content_type="application/xml")
    @invoices_blp.alt_response(404, response="NOT_FOUND")
    @invoices_blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def get(self, invoice_id: int):
        """Download the FatturaPA XML of a posted document"""
        invoice = _get_invoice(invoice_id)
        with answering():
            content, name = fatturapa.build(invoice), fatturapa.file_name(invoice)
        return _download(content, "application/xml", name)


def _download(content: bytes, mimetype: str, name: str) -> Response:
    response = Response(content, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
