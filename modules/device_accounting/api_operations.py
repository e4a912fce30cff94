"""/api/v1/device-accounting: identify, authorize, transactions (one or a batch) and refunds, as devices use them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import Response, json, jsonify, request
from flask.views import MethodView
from flask_babel import gettext as _
from webargs import core as webargs_core

from core import clock
from core.api import register_api
from core.api.auth import api_user, require
from core.api.blueprint import ApiBlueprint
from core.api.errors import PROBLEM_MIMETYPE, ApiProblem, ProblemSchema, flatten_messages, problem_response
from core.api.fields import Boolean, DecimalString, Integer, String, UtcDateTime
from core.api.helpers import ID_PATH, answering, committing, get_or_404, id_field
from core.api.pagination import PageArgs, page_schema, paginate
from core.auth.scoping import customer_scoped, scoped_by
from core.context import ModuleContext
from core.db import db
from core.models import User
from core.permissions import has_permission, is_staff
from core.validation import ValidationError
from modules.device_accounting.cost_centers import subtree_ids
from modules.device_accounting.models import (
    FUNCTIONS,
    JOB_STATUSES,
    PAPER_SIZES,
    Balance,
    PrintUser,
    Transaction,
)
from modules.device_accounting.operations import (
    MAX_DEVICE_SEQ,
    MAX_SIDES,
    IdentifyRefused,
    authorize,
    identify,
    record_transaction,
    refund,
)

MAX_BATCH = 1000

blp = ApiBlueprint(
    "device_accounting_operations",
    __name__,
    url_prefix="/device-accounting",
    description="What the devices do: identify a user, authorize a job, record finished jobs, refund them.",
)


def _sides(**kwargs: Any) -> Integer:
    return Integer(validate=ma.validate.Range(min=0, max=MAX_SIDES), **kwargs)


class IdentifyInSchema(ma.Schema):
    device_id = id_field(required=True)
    card = String(
        validate=ma.validate.Length(min=1, max=64),
        metadata={"description": "The card number as the reader sends it, a string: `0004521` is not `4521`."},
    )
    pin = String(
        validate=ma.validate.Length(min=1, max=20),
        metadata={"description": "The PIN typed, alone or with `username`."},
    )
    username = String(validate=ma.validate.Length(min=1, max=100))
    password = String(validate=ma.validate.Length(min=1, max=256))


class IdentityUserSchema(ma.Schema):
    id = Integer()
    username = ma.fields.String()
    full_name = ma.fields.String()
    language = ma.fields.String(allow_none=True)
    default_cost_center_id = Integer(allow_none=True)


class IdentityCostCenterSchema(ma.Schema):
    id = Integer()
    name = ma.fields.String()
    code = ma.fields.String(allow_none=True)
    path = ma.fields.String(metadata={"description": "From the root down: `Amministrazione / Contabilità`."})
    shared = ma.fields.Boolean(metadata={"description": "A shared account: its jobs draw on its own balance."})


class PrivilegesSchema(ma.Schema):
    functions = ma.fields.List(ma.fields.String(metadata={"enum": list(FUNCTIONS)}))
    color_allowed = ma.fields.Boolean()
    max_sides = Integer(allow_none=True, metadata={"description": "Most sides one job may have; null: no limit."})
    duplex_forced = ma.fields.Boolean()


class IdentitySchema(ma.Schema):
    user = ma.fields.Nested(IdentityUserSchema)
    cost_centers = ma.fields.List(
        ma.fields.Nested(IdentityCostCenterSchema), metadata={"description": "The cost centers the user may charge."}
    )
    privileges = ma.fields.Nested(PrivilegesSchema)
    balance = DecimalString(allow_none=True, metadata={"description": "The paying balance; null: no quota."})
    overdraft = DecimalString(allow_none=True, metadata={"description": "How far below zero the balance may go."})


class RefusedSchema(ProblemSchema):
    """A problem; when a device's identification is refused, also why and, for a locked PIN, until when."""

    reason = ma.fields.String(
        metadata={
            "description": "unknown_card, card_disabled, user_disabled, wrong_pin, wrong_password, pin_locked, "
            "directory_unavailable"
        }
    )
    locked_until = UtcDateTime(metadata={"description": "For pin_locked: when PIN entry opens again."})


class JobSchema(ma.Schema):
    function = String(required=True, validate=ma.validate.OneOf(FUNCTIONS))
    sides_bw = _sides(metadata={"description": "Black-and-white sides (a duplex sheet has 2); default 0."})
    sides_color = _sides(metadata={"description": "Colour sides; default 0."})
    paper_size = String(validate=ma.validate.OneOf(PAPER_SIZES), metadata={"description": "Default A4."})
    duplex = Boolean(metadata={"description": "Default false."})


class AuthorizeInSchema(JobSchema):
    device_id = id_field(required=True)
    user_id = id_field(required=True)
    cost_center_id = id_field(
        allow_none=True, metadata={"description": "The cost center chosen at the device; else the user's default."}
    )


class AuthorizationSchema(ma.Schema):
    allowed = ma.fields.Boolean(required=True)
    allowed_sides = Integer(metadata={"description": "When the job is refused but this many of its sides may print."})
    reason = ma.fields.String(
        metadata={
            "description": "Why not: user_disabled, function_not_allowed, color_not_allowed, too_many_sides, "
            "duplex_required, quota_exceeded"
        }
    )
    message = ma.fields.String(metadata={"description": "The reason in words, for the device's display."})
    cost = DecimalString(metadata={"description": "The estimated cost of the job."})
    balance = DecimalString(allow_none=True, metadata={"description": "The paying balance; null: no quota."})


class TransactionInSchema(JobSchema):
    device_id = id_field(required=True)
    device_seq = Integer(
        required=True,
        validate=ma.validate.Range(min=0, max=MAX_DEVICE_SEQ),
        metadata={"description": "The device's own sequence number: the job is stored once per device and number."},
    )
    user_id = id_field(allow_none=True, metadata={"description": "Null for a job nobody identified for."})
    cost_center_id = id_field(
        allow_none=True, metadata={"description": "The cost center chosen at the device; else the user's default."}
    )
    sheets = _sides(metadata={"description": "Sheets used; default worked out from the sides and duplex."})
    status = String(validate=ma.validate.OneOf(JOB_STATUSES), metadata={"description": "Default done."})
    document_name = String(
        allow_none=True,
        validate=ma.validate.Length(max=2000),
        metadata={"description": "Not stored when the customer hides document names."},
    )
    started_at = UtcDateTime(required=True, metadata={"description": "Without a UTC offset, the dealer's local time."})
    ended_at = UtcDateTime(required=True, metadata={"description": "Without a UTC offset, the dealer's local time."})


class TransactionSchema(ma.Schema):
    id = Integer()
    customer_id = Integer()
    device_id = Integer()
    device_seq = Integer()
    user_id = Integer(allow_none=True)
    cost_center_id = Integer(allow_none=True)
    function = ma.fields.String(metadata={"enum": list(FUNCTIONS)})
    sides_bw = Integer()
    sides_color = Integer()
    sheets = Integer()
    paper_size = ma.fields.String(metadata={"enum": list(PAPER_SIZES)})
    duplex = ma.fields.Boolean()
    status = ma.fields.String(metadata={"enum": list(JOB_STATUSES)})
    document_name = ma.fields.String(allow_none=True)
    started_at = UtcDateTime()
    ended_at = UtcDateTime()
    cost = DecimalString()
    price_list_id = Integer(allow_none=True)
    quota_id = Integer(allow_none=True, metadata={"description": "The quota whose balance paid; null: none."})
    balance_after = DecimalString(allow_none=True, metadata={"description": "That balance after the charge."})
    refunded = DecimalString()
    anonymised = ma.fields.Boolean()
    received_at = UtcDateTime()


class FieldErrorSchema(ma.Schema):
    field = ma.fields.String(allow_none=True)
    message = ma.fields.String()


class BatchItemSchema(ma.Schema):
    index = Integer(required=True, metadata={"description": "The position of the item in the list sent, from 0."})
    status = Integer(required=True, metadata={"description": "201 stored now, 200 stored before, 422 refused."})
    transaction = ma.fields.Nested(TransactionSchema, allow_none=True)
    errors = ma.fields.List(ma.fields.Nested(FieldErrorSchema))


class BatchSchema(ma.Schema):
    results = ma.fields.List(ma.fields.Nested(BatchItemSchema), required=True)


class TransactionListArgs(PageArgs):
    customer_id = id_field()
    user_id = id_field()
    cost_center_id = id_field(metadata={"description": "The cost center and everything below it."})
    device_id = id_field()
    function = String(validate=ma.validate.OneOf(FUNCTIONS))
    since = UtcDateTime(metadata={"description": "Jobs that ended at or after this moment."})
    until = UtcDateTime(metadata={"description": "Jobs that ended at or before this moment."})


class RefundInSchema(ma.Schema):
    amount = DecimalString(required=True, metadata={"description": "At most what is left of the job's cost."})
    reason = String(required=True, validate=ma.validate.Length(min=1, max=500))


class RefundSchema(ma.Schema):
    id = Integer()
    transaction_id = Integer()
    amount = DecimalString()
    reason = ma.fields.String()
    actor_id = Integer(allow_none=True)
    created_at = UtcDateTime()
    refunded = DecimalString(metadata={"description": "All refunded of the transaction so far."})
    balance_after = DecimalString(allow_none=True, metadata={"description": "The paying balance after the refund."})


def _refused_response(refused: IdentifyRefused) -> Response:
    response = problem_response(refused.status, refused.message)
    body = json.loads(response.get_data(as_text=True))
    body["reason"] = refused.reason
    if refused.locked_until is not None:
        body["locked_until"] = refused.locked_until.isoformat()
    response.set_data(json.dumps(body))
    response.mimetype = PROBLEM_MIMETYPE
    return response


_REFUSED = {"content": {PROBLEM_MIMETYPE: {"schema": RefusedSchema}}}


@blp.route("/identify")
class Identify(MethodView):
    # Outermost, so these answers replace `require`'s plain 401.
    @blp.doc(
        responses={
            401: {"description": "Not identified (or no valid API token).", **_REFUSED},
            423: {"description": "PIN entry is locked after 5 wrong PINs in 15 minutes.", **_REFUSED},
            503: {"description": "The customer's directory cannot answer now.", **_REFUSED},
        }
    )
    @require("print_accounting.edit")
    @blp.arguments(IdentifyInSchema)
    @blp.response(200, IdentitySchema)
    def post(self, data: dict[str, Any]):
        """Identify a user at a device

        By `card` (the exact string: `0004521` is not `4521`), `pin` (alone, or with `username`), or `username` and
        `password` (checked by the customer's directory for its users). The device's customer is where it is
        installed now. A refusal is `401` (unknown card, disabled card or user, wrong PIN or password) or `423` (a PIN
        locked after 5 wrong tries in 15 minutes, for 15 minutes) with `reason` and, when locked, `locked_until`.
        """
        try:
            with answering():
                found = identify(**data)
                payload = found.as_dict()
        except IdentifyRefused as refused:
            db.session.commit()  # the wrong PIN stays counted
            return _refused_response(refused)
        db.session.commit()
        return payload


@blp.route("/authorize")
class Authorize(MethodView):
    @require("print_accounting.edit")
    @blp.arguments(AuthorizeInSchema)
    @blp.response(200, AuthorizationSchema)
    def post(self, data: dict[str, Any]):
        """Authorize a job before it runs

        Privileges first (functions, colour, most sides per job, duplex forced), then the paying balance: the job is
        allowed when its estimated cost is at most balance + overdraft. A refusal says `reason` and `message`; when
        part of the job fits, `allowed_sides` says how many sides may print.
        """
        with committing():
            answer = authorize(data)
        return answer


def _load_item(item: Any, prefix: str = "") -> dict[str, Any]:
    """One job of the body, checked against its schema; a 422 naming the fields (`3.function` in a list) if wrong."""
    if not isinstance(item, dict):
        message = _("Send a transaction as a JSON object.")
        raise ApiProblem(422, errors=[{"field": prefix.rstrip(".") or None, "message": message}])
    try:
        return TransactionInSchema().load(item)
    except ma.ValidationError as error:
        messages = {prefix.rstrip("."): error.messages} if prefix else error.messages
        raise ApiProblem(422, errors=list(flatten_messages(messages))) from None


def _batch(items: list) -> Response:
    """A list of jobs: refused whole when one is malformed; else each stored or refused on its own (207)."""
    loaded, errors = [], []
    for index, item in enumerate(items):
        try:
            loaded.append(_load_item(item, f"{index}."))
        except ApiProblem as problem:
            errors.extend(problem.errors or ())
    if errors:
        raise ApiProblem(422, errors=errors)
    results = []
    for index, data in enumerate(loaded):
        try:
            with db.session.begin_nested():
                tx, created = record_transaction(data)
        except ValidationError as error:
            refused = [{"field": field, "message": message} for field, message in error.errors.items()]
            results.append({"index": index, "status": 422, "errors": refused})
            continue
        results.append({"index": index, "status": 201 if created else 200, "transaction": tx})
    payload = BatchSchema().dump({"results": results})
    db.session.commit()
    response = jsonify(payload)
    response.status_code = 207
    return response


def _visible_transactions(user: User) -> sa.Select:
    """Staff: every transaction; a customer admin: the customer's; a customer user: their own jobs (the print users
    of their customer with their email)."""
    query = sa.select(Transaction)
    if is_staff(user) or has_permission(user, "portal.print_accounting"):
        return customer_scoped(query, Transaction.customer_id, user)
    email = (user.email or "").strip().lower()
    own = sa.select(PrintUser.id).where(sa.func.lower(PrintUser.email) == email)
    return scoped_by(
        query,
        lambda customer_id: sa.and_(
            Transaction.customer_id == customer_id,
            Transaction.user_id.in_(own.where(PrintUser.customer_id == customer_id)),
        ),
        user,
    )


def _utc(value: dt.datetime) -> dt.datetime:
    """A moment of the query string as UTC: without an offset it is the dealer's local time."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=clock.timezone())
    return value.astimezone(dt.UTC)


@blp.route("/transactions")
class Transactions(MethodView):
    @require("print_accounting.view", "portal.print_accounting", "portal.my_jobs")
    @blp.arguments(TransactionListArgs, location="query")
    @blp.response(200, page_schema(TransactionSchema))
    def get(self, args: dict[str, Any]):
        """List transactions

        Newest first (by end). A customer admin's token lists its customer's jobs, a customer user's only their own
        (the print user with their email). `cost_center_id` includes the cost centers below it.
        """
        query = _visible_transactions(api_user()).order_by(Transaction.ended_at.desc(), Transaction.id.desc())
        for key in ("customer_id", "user_id", "device_id", "function"):
            if args.get(key) is not None:
                query = query.where(getattr(Transaction, key) == args[key])
        if args.get("cost_center_id"):
            query = query.where(Transaction.cost_center_id.in_(subtree_ids(args["cost_center_id"]) or [0]))
        if args.get("since"):
            query = query.where(Transaction.ended_at >= _utc(args["since"]))
        if args.get("until"):
            query = query.where(Transaction.ended_at <= _utc(args["until"]))
        return paginate(query, args)

    @require("print_accounting.edit")
    @blp.response(201, TransactionSchema)
    @blp.alt_response(200, schema=TransactionSchema, description="The same job (device, device_seq) was stored before.")
    @blp.alt_response(207, schema=BatchSchema, description="A list was sent: one result per item, in order.")
    @blp.doc(
        requestBody={
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            TransactionInSchema,
                            {"type": "array", "items": TransactionInSchema, "minItems": 1, "maxItems": MAX_BATCH},
                        ]
                    }
                }
            },
        },
        responses={422: "UNPROCESSABLE_ENTITY"},
    )
    def post(self):
        """Record finished jobs

        One job as an object (`201`, or `200` with the one stored before when the same `device_id` and `device_seq`
        arrive again) or a list of up to 1000. A list with a malformed item is refused whole (`422` naming
        `<index>.<field>`); otherwise it answers `207` with, per item in order, `201`, `200` or `422` and its errors
        (an unknown device, a user of another customer...): the items accepted are stored. Each job is priced on the
        dealer's day it ended and charged to the paying balance of now: a job from a device that was offline lands in
        the current period, below the overdraft if need be. Bad input is `422` naming the field, and nothing of that
        job is written.
        """
        body = ApiBlueprint.ARGUMENTS_PARSER.load_json(request, None)
        if body is webargs_core.missing:
            raise ApiProblem(422, errors=[{"field": None, "message": _("Send a transaction or a list of them.")}])
        if isinstance(body, list):
            if not body or len(body) > MAX_BATCH:
                message = _("Send from 1 to %(max)d transactions in one list.", max=MAX_BATCH)
                raise ApiProblem(422, errors=[{"field": None, "message": message}])
            return _batch(body)
        if not isinstance(body, dict):
            raise ApiProblem(422, errors=[{"field": None, "message": _("Send a transaction or a list of them.")}])
        data = _load_item(body)
        with committing():
            tx, created = record_transaction(data)
        return tx, 201 if created else 200


@blp.route(f"/transactions/<{ID_PATH}:transaction_id>/refunds")
class Refunds(MethodView):
    @require("print_accounting.edit", "portal.print_accounting")
    @blp.arguments(RefundInSchema)
    @blp.response(201, RefundSchema)
    @blp.doc(responses={404: "NOT_FOUND"})
    def post(self, data: dict[str, Any], transaction_id: int):
        """Refund all or part of a transaction

        For staff who edit job accounting, and for a customer admin on its own customer's jobs (another customer's
        answer `404`). Never beyond the job's cost (`422` naming `amount`); the paying balance rises by the amount.
        """
        user = api_user()
        query = sa.select(Transaction).where(Transaction.id == transaction_id)
        tx = get_or_404(customer_scoped(query, Transaction.customer_id, user))
        with committing():
            item = refund(tx, data["amount"], data["reason"], user)
            balance = (
                db.session.scalar(sa.select(Balance.balance).where(Balance.quota_id == tx.quota_id))
                if tx.quota_id is not None
                else None
            )
            result = {
                "id": item.id,
                "transaction_id": tx.id,
                "amount": item.amount,
                "reason": item.reason,
                "actor_id": item.actor_id,
                "created_at": item.created_at,
                "refunded": tx.refunded,
                "balance_after": balance,
            }
        return result


def register(ctx: ModuleContext) -> None:
    """The device operations' API resources."""
    register_api(ctx.app, blp)
