"""/api/v1 reports/aging, sepa-mandates and sepa-batches: open receivables by lateness, SEPA Direct Debit mandates,
collections (create for a due-date range, read, download the pain.008 XML, settle, mark a debit returned)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import Response, url_for
from flask.views import MethodView
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from core.api.auth import api_user, require
from core.api.blueprint import ApiBlueprint
from core.api.fields import Boolean, DecimalString, Integer, String, UtcDateTime
from core.api.helpers import ID_PATH, answering, committing, get_or_404, id_field
from core.api.pagination import PageArgs, page_schema, paginate
from core.db import db
from core.validation import fail
from modules.accounting import receivables, sepa
from modules.accounting.admin import EDIT, VIEW
from modules.accounting.models import SEPA_ITEM_STATES, SEPA_SEQUENCE_TYPES, SepaBatch, SepaBatchItem, SepaMandate
from modules.invoicing.models import Invoice

aging_blp = ApiBlueprint(
    "accounting_api_aging", __name__, url_prefix="/reports/aging", description="Open receivables by lateness."
)
mandates_blp = ApiBlueprint(
    "accounting_api_sepa_mandates", __name__, url_prefix="/sepa-mandates", description="SEPA Direct Debit mandates."
)
batches_blp = ApiBlueprint(
    "accounting_api_sepa_batches",
    __name__,
    url_prefix="/sepa-batches",
    description="SEPA Direct Debit collections (pain.008.001.02 files).",
)
BLUEPRINTS = [aging_blp, mandates_blp, batches_blp]


# Aging


class AgingArgs(ma.Schema):
    date = ma.fields.Date(metadata={"description": "The date the items are aged at; default today."})
    partner_id = id_field(metadata={"description": "One customer only."})


class BucketsSchema(ma.Schema):
    not_due = DecimalString(metadata={"description": "Not yet due (due today included)."})
    d1_30 = DecimalString(data_key="1_30")
    d31_60 = DecimalString(data_key="31_60")
    d61_90 = DecimalString(data_key="61_90")
    over_90 = DecimalString()


class AgingRowSchema(ma.Schema):
    partner_id = Integer()
    partner = String()
    buckets = ma.fields.Nested(BucketsSchema)
    credits = DecimalString(metadata={"description": "Unapplied payments and credit notes (negative)."})
    overdue = DecimalString()
    total = DecimalString(metadata={"description": "The customer's receivable balance."})


class AgingSchema(ma.Schema):
    date = ma.fields.Date()
    rows = ma.fields.List(ma.fields.Nested(AgingRowSchema))
    totals = ma.fields.Nested(BucketsSchema)
    credits = DecimalString()
    overdue = DecimalString()
    total = DecimalString()


def _buckets(values: dict[str, Any]) -> dict[str, Any]:
    return {("d" + key if key[0].isdigit() else key): value for key, value in values.items()}


@aging_blp.route("")
class AgingReport(MethodView):
    @require(VIEW)
    @aging_blp.arguments(AgingArgs, location="query")
    @aging_blp.response(200, AgingSchema)
    def get(self, args: dict[str, Any]):
        """Receivables aging

        Each customer's open items at the date by days past due: not yet due, 1-30, 31-60, 61-90, over 90.
        """
        report = receivables.aging(args.get("date"), args.get("partner_id"))
        return {
            "date": report.as_of,
            "rows": [
                {
                    "partner_id": row.partner.id,
                    "partner": row.partner.name,
                    "buckets": _buckets(row.buckets),
                    "credits": row.credits,
                    "overdue": row.overdue,
                    "total": row.total,
                }
                for row in report.rows
            ],
            "totals": _buckets(report.totals),
            "credits": report.credits,
            "overdue": report.overdue,
            "total": report.total,
        }


# Mandates


class MandateSchema(ma.Schema):
    id = Integer(dump_only=True)
    partner_id = id_field(required=True, metadata={"description": "The customer."})
    reference = String(required=True, validate=ma.validate.Length(min=1, max=35), metadata={"description": "ADR."})
    signed_on = ma.fields.Date(required=True)
    iban = String(required=True, validate=ma.validate.Length(min=1, max=42))
    bic = String(allow_none=True, validate=ma.validate.Length(max=15))
    scheme = String(validate=ma.validate.OneOf(sepa.SCHEMES), metadata={"description": "Default CORE."})
    first_collected_on = ma.fields.Date(dump_only=True)
    active = Boolean()


class MandatePatchSchema(MandateSchema):
    partner_id = id_field()
    reference = String(validate=ma.validate.Length(min=1, max=35))
    signed_on = ma.fields.Date()
    iban = String(validate=ma.validate.Length(min=1, max=42))


class MandateListArgs(PageArgs):
    partner_id = id_field()
    active = Boolean()


def _mandate_values(mandate: SepaMandate | None, data: dict[str, Any]) -> dict[str, Any]:
    fields = ("partner_id", "reference", "signed_on", "iban", "bic", "scheme", "active")
    current = {name: getattr(mandate, name) for name in fields} if mandate is not None else {}
    return {**current, **{name: data[name] for name in fields if name in data}}


@mandates_blp.route("")
class Mandates(MethodView):
    @require(VIEW)
    @mandates_blp.arguments(MandateListArgs, location="query")
    @mandates_blp.response(200, page_schema(MandateSchema))
    def get(self, args: dict[str, Any]):
        """List SEPA mandates

        Newest signed first.
        """
        query = sa.select(SepaMandate).order_by(SepaMandate.signed_on.desc(), SepaMandate.id.desc())
        if args.get("partner_id"):
            query = query.where(SepaMandate.partner_id == args["partner_id"])
        if "active" in args:
            query = query.where(SepaMandate.active.is_(args["active"]))
        return paginate(query, args)

    @require(EDIT)
    @mandates_blp.arguments(MandateSchema)
    @mandates_blp.response(201, MandateSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, data: dict[str, Any]):
        """Create a SEPA mandate

        The IBAN's check digits are verified; the reference is unique.
        """
        with committing():
            mandate = sepa.save_mandate(None, **_mandate_values(None, data))
        location = url_for("accounting_api_sepa_mandates.MandateItem", mandate_id=mandate.id)
        return mandate, 201, {"Location": location}


@mandates_blp.route(f"/<{ID_PATH}:mandate_id>")
class MandateItem(MethodView):
    @require(VIEW)
    @mandates_blp.response(200, MandateSchema)
    @mandates_blp.alt_response(404, response="NOT_FOUND")
    def get(self, mandate_id: int):
        """Read a SEPA mandate"""
        return get_or_404(sa.select(SepaMandate).where(SepaMandate.id == mandate_id))

    @require(EDIT)
    @mandates_blp.arguments(MandatePatchSchema)
    @mandates_blp.response(200, MandateSchema)
    @mandates_blp.alt_response(404, response="NOT_FOUND")
    def patch(self, data: dict[str, Any], mandate_id: int):
        """Update a SEPA mandate

        Only the fields sent change; `active: false` stops collecting under it (a mandate is never deleted: the
        collections made under it name it).
        """
        mandate = get_or_404(sa.select(SepaMandate).where(SepaMandate.id == mandate_id))
        with committing():
            sepa.save_mandate(mandate, **_mandate_values(mandate, data))
        return mandate


# Batches


class SepaDebitSchema(ma.Schema):
    id = Integer()
    invoice_id = Integer()
    invoice_number = String()
    mandate_reference = String()
    amount = DecimalString()
    end_to_end_id = String()
    sequence_type = String(metadata={"description": ", ".join(SEPA_SEQUENCE_TYPES)})
    state = String(metadata={"description": ", ".join(SEPA_ITEM_STATES)})
    return_reason = String(allow_none=True)
    returned_on = ma.fields.Date(allow_none=True)


class SepaBatchSchema(ma.Schema):
    id = Integer(dump_only=True)
    message_id = String(dump_only=True)
    collection_date = ma.fields.Date(required=True, metadata={"description": "After today."})
    due_from = ma.fields.Date(required=True)
    due_to = ma.fields.Date(required=True)
    filename = String(dump_only=True)
    item_count = Integer(dump_only=True)
    total = DecimalString(dump_only=True)
    created_at = UtcDateTime(dump_only=True)
    items = ma.fields.List(ma.fields.Nested(SepaDebitSchema), dump_only=True)


class SepaBatchListSchema(SepaBatchSchema):
    class Meta:
        exclude = ("items",)


class SettleSchema(ma.Schema):
    date = ma.fields.Date(metadata={"description": "The day the bank credited the collection; default today."})


class ReturnSchema(ma.Schema):
    end_to_end_id = String(required=True, validate=ma.validate.Length(min=1, max=35))
    reason = String(required=True, validate=ma.validate.Length(min=1, max=10), metadata={"description": "AM04..."})
    returned_on = ma.fields.Date(metadata={"description": "Default today."})


class PaymentRefSchema(ma.Schema):
    id = Integer()
    invoice_id = Integer()
    amount = DecimalString()


def _dump_batch(batch: SepaBatch) -> dict[str, Any]:
    numbers = dict(
        db.session.execute(
            sa.select(Invoice.id, Invoice.number).where(Invoice.id.in_([item.invoice_id for item in batch.items]))
        ).all()
    )
    fields = ("id", "message_id", "collection_date", "due_from", "due_to", "filename", "item_count", "total")
    return {
        **{name: getattr(batch, name) for name in fields},
        "created_at": batch.created_at,
        "items": [
            {
                "id": item.id,
                "invoice_id": item.invoice_id,
                "invoice_number": numbers.get(item.invoice_id),
                "mandate_reference": item.mandate.reference,
                "amount": item.amount,
                "end_to_end_id": item.end_to_end_id,
                "sequence_type": item.sequence_type,
                "state": item.state,
                "return_reason": item.return_reason,
                "returned_on": item.returned_on,
            }
            for item in batch.items
        ],
    }


def _get_batch(batch_id: int) -> SepaBatch:
    return get_or_404(
        sa.select(SepaBatch)
        .where(SepaBatch.id == batch_id)
        .options(selectinload(SepaBatch.items).selectinload(SepaBatchItem.mandate))
    )


@batches_blp.route("")
class Batches(MethodView):
    @require(VIEW)
    @batches_blp.arguments(PageArgs, location="query")
    @batches_blp.response(200, page_schema(SepaBatchListSchema))
    def get(self, args: dict[str, Any]):
        """List SEPA collections

        Newest first.
        """
        return paginate(sa.select(SepaBatch).order_by(SepaBatch.id.desc()), args)

    @require(EDIT)
    @batches_blp.arguments(SepaBatchSchema)
    @batches_blp.response(201, SepaBatchSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, data: dict[str, Any]):
        """Create a SEPA collection

        Collects every open invoice of a customer with an active mandate due from `due_from` to `due_to`, not
        already being collected; 422 when there is none, or the creditor identifier or the company's IBAN is missing.
        """
        with committing():
            batch = sepa.create_batch(data["due_from"], data["due_to"], data["collection_date"], user_id=api_user().id)
        location = url_for("accounting_api_sepa_batches.BatchItem", batch_id=batch.id)
        return _dump_batch(batch), 201, {"Location": location}


@batches_blp.route(f"/<{ID_PATH}:batch_id>")
class BatchItem(MethodView):
    @require(VIEW)
    @batches_blp.response(200, SepaBatchSchema)
    @batches_blp.alt_response(404, response="NOT_FOUND")
    def get(self, batch_id: int):
        """Read a SEPA collection with its invoices"""
        return _dump_batch(_get_batch(batch_id))


@batches_blp.route(f"/<{ID_PATH}:batch_id>/xml")
class BatchXml(MethodView):
    @require(VIEW)
    @batches_blp.response(200, content_type="application/xml")
    @batches_blp.alt_response(404, response="NOT_FOUND")
    def get(self, batch_id: int):
        """Download the pain.008.001.02 file of a SEPA collection"""
        batch = _get_batch(batch_id)
        response = Response(batch.content, mimetype="application/xml")
        response.headers["Content-Disposition"] = f'attachment; filename="{batch.filename}"'
        return response


@batches_blp.route(f"/<{ID_PATH}:batch_id>/settle")
class BatchSettle(MethodView):
    @require(EDIT)
    @batches_blp.arguments(SettleSchema)
    @batches_blp.response(200, PaymentRefSchema(many=True))
    @batches_blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any], batch_id: int):
        """Settle a SEPA collection

        The bank credited it: one SEPA direct debit payment per invoice still being collected, matched to it.
        """
        batch = _get_batch(batch_id)
        with committing():
            payments = sepa.settle_batch(batch, data.get("date"), user_id=api_user().id)
        return [{"id": p.id, "invoice_id": p.invoice_id, "amount": p.amount} for p in payments]


@batches_blp.route(f"/<{ID_PATH}:batch_id>/returns")
class BatchReturns(MethodView):
    @require(EDIT)
    @batches_blp.arguments(ReturnSchema)
    @batches_blp.response(200, SepaDebitSchema)
    @batches_blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any], batch_id: int):
        """Mark a direct debit returned

        The debtor's bank returned it (R-transaction reason code): its invoice is open again; if the collection was
        settled, the debit's payment is cancelled.
        """
        batch = _get_batch(batch_id)
        item = next((i for i in batch.items if i.end_to_end_id == data["end_to_end_id"]), None)
        with answering():
            if item is None:
                fail("end_to_end_id", _("No direct debit of this collection has this end-to-end id."))
        with committing():
            sepa.mark_returned(item, data["reason"], data.get("returned_on"), user_id=api_user().id)
        return next(row for row in _dump_batch(batch)["items"] if row["id"] == item.id)
