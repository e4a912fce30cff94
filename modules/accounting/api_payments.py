"""/api/v1/payments and /api/v1/reconciliations: customer payments (record, read, cancel) and matches (list, match,
undo), for staff tokens with accounting's VIEW (reading) and EDIT (writing) permissions (`billing.manage`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import url_for
from flask.views import MethodView
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from core.api.auth import api_user, require
from core.api.blueprint import ApiBlueprint
from core.api.fields import Boolean, DecimalString, Integer, String, UtcDateTime
from core.api.helpers import ID_PATH, committing, get_or_404, id_field
from core.api.pagination import PageArgs, page_schema, paginate
from core.db import db
from core.validation import ValidationError
from modules.accounting import payments, reconcile
from modules.accounting.admin import EDIT, VIEW
from modules.accounting.models import PAYMENT_METHODS, ZERO, EntryLine, Match, Payment
from modules.invoicing.models import Invoice

payments_blp = ApiBlueprint(
    "accounting_api_payments", __name__, url_prefix="/payments", description="Customer payments."
)
reconciliations_blp = ApiBlueprint(
    "accounting_api_reconciliations",
    __name__,
    url_prefix="/reconciliations",
    description="Matches of receivable debits (invoices) with credits (payments, credit notes).",
)
BLUEPRINTS = [payments_blp, reconciliations_blp]


# Payments


class PaymentSchema(ma.Schema):
    id = Integer(dump_only=True)
    partner_id = id_field(required=True, metadata={"description": "The paying customer."})
    partner_name = String(dump_only=True)
    amount = DecimalString(required=True, metadata={"description": "More than zero, 2 decimal places."})
    date = ma.fields.Date(required=True)
    method = String(validate=ma.validate.OneOf(PAYMENT_METHODS), metadata={"description": "Default bank_transfer."})
    journal = String(
        validate=ma.validate.Length(min=1, max=10),
        metadata={"description": "Code of the bank or cash journal (default: the bank journal)."},
    )
    reference = String(
        validate=ma.validate.Length(max=200),
        metadata={"description": "The payer's text; an invoice number quoted in it matches that invoice."},
    )
    invoice_id = id_field(
        allow_none=True, metadata={"description": "The invoice paid: the payment is matched to it at once."}
    )
    invoice_number = String(dump_only=True, allow_none=True)
    advance = Boolean(
        metadata={"description": "Allow more than is due: the rest stays as the customer's credit (default false)."}
    )
    entry_id = Integer(dump_only=True)
    entry_number = String(dump_only=True)
    statement_line_id = Integer(dump_only=True, allow_none=True)
    unmatched = DecimalString(dump_only=True, metadata={"description": "What no invoice is matched with yet."})
    cancelled = Boolean(dump_only=True)
    created_at = UtcDateTime(dump_only=True)


class PaymentListArgs(PageArgs):
    partner_id = id_field()
    invoice_id = id_field()
    date_from = ma.fields.Date(data_key="from")
    date_to = ma.fields.Date(data_key="to")


def _dump_payments(rows: Sequence[Payment]) -> list[dict[str, Any]]:
    """The payments as the API shows them, with what is left unmatched and whether cancelled, in a few queries."""
    entry_ids = [payment.entry_id for payment in rows]
    cancelled = payments.cancelled_entry_ids(entry_ids)
    matched = dict(
        db.session.execute(
            sa.select(EntryLine.entry_id, sa.func.sum(Match.amount))
            .join(Match, Match.credit_line_id == EntryLine.id)
            .where(EntryLine.entry_id.in_(entry_ids))
            .group_by(EntryLine.entry_id)
        ).all()
    )
    invoice_ids = {payment.invoice_id for payment in rows if payment.invoice_id is not None}
    numbers = dict(
        db.session.execute(sa.select(Invoice.id, Invoice.number).where(Invoice.id.in_(invoice_ids))).all()
        if invoice_ids
        else []
    )
    out = []
    for payment in rows:
        is_cancelled = payment.entry_id in cancelled
        out.append(
            {
                **{name: getattr(payment, name) for name in PaymentSchema._declared_fields if hasattr(payment, name)},
                "partner_name": payment.partner.name,
                "journal": payment.journal.code,
                "invoice_number": numbers.get(payment.invoice_id),
                "entry_number": payment.entry.number,
                "cancelled": is_cancelled,
                "unmatched": ZERO if is_cancelled else payment.amount - (matched.get(payment.entry_id) or ZERO),
            }
        )
    return out


def _payments_query() -> sa.Select:
    return sa.select(Payment).options(
        selectinload(Payment.partner),
        selectinload(Payment.journal),
        selectinload(Payment.entry),
    )


def _get_payment(payment_id: int) -> Payment:
    return get_or_404(_payments_query().where(Payment.id == payment_id))


@payments_blp.route("")
class Payments(MethodView):
    @require(VIEW)
    @payments_blp.arguments(PaymentListArgs, location="query")
    @payments_blp.response(200, page_schema(PaymentSchema))
    def get(self, args: dict[str, Any]):
        """List payments

        Newest first; `from` and `to` bound the payment date.
        """
        query = _payments_query().order_by(Payment.date.desc(), Payment.id.desc())
        for key in ("partner_id", "invoice_id"):
            if key in args:
                query = query.where(getattr(Payment, key) == args[key])
        if "date_from" in args:
            query = query.where(Payment.date >= args["date_from"])
        if "date_to" in args:
            query = query.where(Payment.date <= args["date_to"])
        page = paginate(query, args)
        page["items"] = _dump_payments(page["items"])
        return page

    @require(EDIT)
    @payments_blp.arguments(PaymentSchema)
    @payments_blp.response(201, PaymentSchema, headers={"Location": {"schema": {"type": "string"}}})
    @payments_blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, data: dict[str, Any]):
        """Record a payment

        Posts its entry in the bank journal (debit bank, credit the customer's receivable) and matches it with the
        invoice it names (`invoice_id`, or an invoice number quoted in `reference`). More than is due (that invoice's
        amount due, else the customer's open balance) is refused with a 422 naming `amount`, unless `advance` is
        true; nothing is written then.
        """
        journal = data.pop("journal", None)
        with committing():
            payment = payments.record_payment(
                data.pop("partner_id"),
                data.pop("amount"),
                data.pop("date"),
                journal=journal,
                user_id=api_user().id,
                **data,
            )
        location = url_for("accounting_api_payments.PaymentItem", payment_id=payment.id)
        return _dump_payments([_get_payment(payment.id)])[0], 201, {"Location": location}


@payments_blp.route(f"/<{ID_PATH}:payment_id>")
class PaymentItem(MethodView):
    @require(VIEW)
    @payments_blp.response(200, PaymentSchema)
    @payments_blp.alt_response(404, response="NOT_FOUND")
    def get(self, payment_id: int):
        """Read a payment"""
        return _dump_payments([_get_payment(payment_id)])[0]


@payments_blp.route(f"/<{ID_PATH}:payment_id>/cancel")
class CancelPayment(MethodView):
    @require(EDIT)
    @payments_blp.response(200, PaymentSchema)
    @payments_blp.alt_response(404, response="NOT_FOUND")
    @payments_blp.alt_response(409, response="CONFLICT")
    def post(self, payment_id: int):
        """Cancel a payment

        Its matches are undone (the invoices it paid are open again) and its entry is reversed by a new entry dated
        today. A payment already cancelled is a 409.
        """
        payment = _get_payment(payment_id)
        with committing(status=409):
            payments.cancel_payment(payment, user_id=api_user().id)
        return _dump_payments([_get_payment(payment_id)])[0]


# Reconciliations


class MatchSchema(ma.Schema):
    id = Integer(dump_only=True)
    debit_line_id = id_field(required=True, metadata={"description": "A receivable debit line (an invoice)."})
    credit_line_id = id_field(
        required=True, metadata={"description": "A credit line of the same account and partner (payment, credit note)."}
    )
    amount = DecimalString(
        metadata={"description": "Default: all that both lines still have open; at most that."},
    )
    auto = Boolean(dump_only=True, metadata={"description": "Made by the software (a named invoice, a credit note)."})
    partner_id = Integer(dump_only=True, allow_none=True)
    debit_reference = String(dump_only=True, metadata={"description": "Invoice number, else the entry's number."})
    credit_reference = String(dump_only=True)
    created_at = UtcDateTime(dump_only=True)


class MatchListArgs(PageArgs):
    partner_id = id_field()
    line_id = id_field(metadata={"description": "Matches of this entry line, on either side."})
    invoice_id = id_field(metadata={"description": "Matches of this invoice's or credit note's receivable lines."})


def _reference(line: EntryLine) -> str:
    return line.entry.reference or line.entry.number


def _dump_matches(rows: Sequence[Match]) -> list[dict[str, Any]]:
    return [
        {
            "id": match.id,
            "debit_line_id": match.debit_line_id,
            "credit_line_id": match.credit_line_id,
            "amount": match.amount,
            "auto": match.auto,
            "partner_id": match.debit_line.partner_id,
            "debit_reference": _reference(match.debit_line),
            "credit_reference": _reference(match.credit_line),
            "created_at": match.created_at,
        }
        for match in rows
    ]


def _matches_query() -> sa.Select:
    return sa.select(Match).options(
        selectinload(Match.debit_line).selectinload(EntryLine.entry),
        selectinload(Match.credit_line).selectinload(EntryLine.entry),
    )


@reconciliations_blp.route("")
class Reconciliations(MethodView):
    @require(VIEW)
    @reconciliations_blp.arguments(MatchListArgs, location="query")
    @reconciliations_blp.response(200, page_schema(MatchSchema))
    def get(self, args: dict[str, Any]):
        """List reconciliations

        Newest first.
        """
        query = _matches_query().order_by(Match.id.desc())
        if "partner_id" in args:
            debit_lines = sa.select(EntryLine.id).where(EntryLine.partner_id == args["partner_id"])
            query = query.where(Match.debit_line_id.in_(debit_lines))
        if "line_id" in args:
            query = query.where(sa.or_(Match.debit_line_id == args["line_id"], Match.credit_line_id == args["line_id"]))
        if "invoice_id" in args:
            lines = sa.select(EntryLine.id).where(EntryLine.invoice_id == args["invoice_id"])
            query = query.where(sa.or_(Match.debit_line_id.in_(lines), Match.credit_line_id.in_(lines)))
        page = paginate(query, args)
        page["items"] = _dump_matches(page["items"])
        return page

    @require(EDIT)
    @reconciliations_blp.arguments(MatchSchema)
    @reconciliations_blp.response(201, MatchSchema)
    @reconciliations_blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, data: dict[str, Any]):
        """Match a debit with a credit

        Both lines on the same reconcilable account and partner; `amount` defaults to all that both still have
        open. A 422 names the field at fault.
        """
        with committing():
            debit = db.session.get(EntryLine, data["debit_line_id"])
            credit = db.session.get(EntryLine, data["credit_line_id"])
            if debit is None or credit is None:
                raise ValidationError(
                    {
                        key: _("No such entry line.")
                        for key, line in (("debit_line_id", debit), ("credit_line_id", credit))
                        if line is None
                    }
                )
            match = reconcile.reconcile(debit, credit, data.get("amount"), user_id=api_user().id)
        return _dump_matches([get_or_404(_matches_query().where(Match.id == match.id))])[0]


@reconciliations_blp.route(f"/<{ID_PATH}:match_id>")
class ReconciliationItem(MethodView):
    @require(VIEW)
    @reconciliations_blp.response(200, MatchSchema)
    @reconciliations_blp.alt_response(404, response="NOT_FOUND")
    def get(self, match_id: int):
        """Read a reconciliation"""
        return _dump_matches([get_or_404(_matches_query().where(Match.id == match_id))])[0]

    @require(EDIT)
    @reconciliations_blp.response(204)
    @reconciliations_blp.alt_response(404, response="NOT_FOUND")
    @reconciliations_blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def delete(self, match_id: int):
        """Undo a reconciliation

        Both lines are open again by its amount; the audit log keeps who undid it. A match inside one entry (split
        payment's VAT) or between an entry and its reversal (a cancelled payment) is a 422 naming `match`.
        """
        match = get_or_404(sa.select(Match).where(Match.id == match_id))
        with committing():
            reconcile.undo(match, user_id=api_user().id)
