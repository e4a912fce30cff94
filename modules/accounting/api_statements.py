"""/api/v1/bank-statements: upload a bank statement (CSV or CAMT.053), list and read them with their lines, confirm a
line as a customer's payment or ignore it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import request, url_for
from flask.views import MethodView
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import FileStorage

from core.api.auth import api_user, require
from core.api.blueprint import ApiBlueprint
from core.api.errors import ApiProblem
from core.api.fields import Boolean, DecimalString, Integer, String, UtcDateTime
from core.api.helpers import ID_PATH, committing, get_or_404, id_field
from core.api.pagination import PageArgs, page_schema, paginate
from core.api.uploads import allow_upload
from core.db import db
from core.models import Partner
from modules.accounting import statements
from modules.accounting.admin import EDIT, VIEW
from modules.accounting.models import (
    PROPOSAL_REASONS,
    STATEMENT_FORMATS,
    STATEMENT_LINE_STATES,
    BankStatement,
    Journal,
    StatementLine,
)
from modules.accounting.statement_files import FORM_OVERHEAD, MAX_FILE_BYTES, PROFILES
from modules.invoicing.models import Invoice

blp = ApiBlueprint(
    "accounting_api_statements",
    __name__,
    url_prefix="/bank-statements",
    description="Bank statements: imported once per file and line, with a proposed match per line.",
)
BLUEPRINTS = [blp]
UPLOAD_ENDPOINT = f"{blp.name}.Statements"


allow_upload(blp, UPLOAD_ENDPOINT, MAX_FILE_BYTES + FORM_OVERHEAD)


class StatementLineSchema(ma.Schema):
    id = Integer()
    statement_id = Integer()
    date = ma.fields.Date()
    value_date = ma.fields.Date(allow_none=True)
    amount = DecimalString(metadata={"description": "Signed: positive is money in."})
    currency = String()
    counterparty = String()
    counterparty_iban = String()
    remittance = String(metadata={"description": "The remittance text (causale)."})
    bank_reference = String()
    state = String(metadata={"enum": list(STATEMENT_LINE_STATES)})
    proposal_reason = String(
        metadata={"enum": list(PROPOSAL_REASONS), "description": "Why the invoice or customer is proposed."}
    )
    proposed_invoice_id = Integer(allow_none=True)
    proposed_invoice_number = String(allow_none=True)
    proposed_partner_id = Integer(allow_none=True)
    proposed_partner_name = String(allow_none=True)
    payment_id = Integer(allow_none=True, metadata={"description": "The payment recorded when confirmed."})


class StatementSchema(ma.Schema):
    id = Integer()
    journal = String(metadata={"description": "The bank journal's code."})
    filename = String()
    format = String(metadata={"enum": list(STATEMENT_FORMATS)})
    profile = String(allow_none=True, metadata={"enum": list(PROFILES)})
    line_count = Integer()
    open_lines = Integer()
    imported_at = UtcDateTime()


class StatementDetailSchema(StatementSchema):
    lines = ma.fields.List(ma.fields.Nested(StatementLineSchema))


class ImportSchema(ma.Schema):
    statement = ma.fields.Nested(
        StatementDetailSchema,
        allow_none=True,
        metadata={
            "description": "The statement stored, or the one stored before from the same file; null when "
            "every line of the file was imported before from other files."
        },
    )
    added = Integer(metadata={"description": "Lines stored now."})
    skipped = Integer(metadata={"description": "Lines of the file stored before."})


class UploadSchema(ma.Schema):
    file = ma.fields.Raw(
        required=True,
        metadata={"type": "string", "format": "binary", "description": "A CSV export or a CAMT.053 XML file."},
    )
    journal = String(
        validate=ma.validate.Length(min=1, max=10),
        metadata={"description": "A bank journal's code; default the one with the file's IBAN, else the first bank."},
    )
    profile = String(
        validate=ma.validate.OneOf(list(PROFILES)),
        metadata={"description": "The CSV column mapping; default the first whose header the file has."},
    )

    @ma.pre_load
    def _with_the_file(self, data: Any, **_kwargs: Any) -> dict[str, Any]:
        merged = {key: data[key] for key in data}
        if "file" in request.files:
            merged["file"] = request.files["file"]
        return merged


class ConfirmSchema(ma.Schema):
    partner_id = id_field(metadata={"description": "The customer who paid; default the proposed one."})
    invoice_id = id_field(metadata={"description": "The invoice paid; default the proposed one."})
    advance = Boolean(metadata={"description": "Allow more than is due (the rest stays a credit); default false."})


class StatementListArgs(PageArgs):
    journal = String(validate=ma.validate.Length(min=1, max=10))


def _dump_lines(lines: Sequence[StatementLine]) -> list[dict[str, Any]]:
    invoice_ids = {line.proposed_invoice_id for line in lines if line.proposed_invoice_id}
    partner_ids = {line.proposed_partner_id for line in lines if line.proposed_partner_id}
    numbers = dict(db.session.execute(sa.select(Invoice.id, Invoice.number).where(Invoice.id.in_(invoice_ids))).all())
    names = dict(db.session.execute(sa.select(Partner.id, Partner.name).where(Partner.id.in_(partner_ids))).all())
    fields = [name for name in StatementLineSchema._declared_fields if hasattr(StatementLine, name)]
    return [
        {
            **{name: getattr(line, name) for name in fields},
            "proposed_invoice_number": numbers.get(line.proposed_invoice_id),
            "proposed_partner_name": names.get(line.proposed_partner_id),
        }
        for line in lines
    ]


def _dump_statements(rows: Sequence[BankStatement], with_lines: bool = False) -> list[dict[str, Any]]:
    ids = [statement.id for statement in rows]
    open_counts = statements.open_line_counts(ids)
    out = []
    for statement in rows:
        item = {name: getattr(statement, name) for name in ("id", "filename", "format", "profile", "line_count")}
        item.update(
            journal=statement.journal.code,
            imported_at=statement.imported_at,
            open_lines=open_counts.get(statement.id, 0),
        )
        if with_lines:
            item["lines"] = _dump_lines(statement.lines)
        out.append(item)
    return out


def _statements_query() -> sa.Select:
    return sa.select(BankStatement).options(selectinload(BankStatement.journal))


def _file(upload: Any) -> tuple[bytes, str]:
    if not isinstance(upload, FileStorage):
        raise ApiProblem(422, errors=[{"field": "file", "message": _("Send the statement as a file.")}])
    return upload.stream.read(MAX_FILE_BYTES + 1), upload.filename or "statement"


@blp.route("")
class Statements(MethodView):
    @require(VIEW)
    @blp.arguments(StatementListArgs, location="query")
    @blp.response(200, page_schema(StatementSchema))
    def get(self, args: dict[str, Any]):
        """List bank statements

        Newest import first, with how many lines are still open.
        """
        query = _statements_query().order_by(BankStatement.imported_at.desc(), BankStatement.id.desc())
        if args.get("journal"):
            query = query.join(Journal, Journal.id == BankStatement.journal_id).where(Journal.code == args["journal"])
        page = paginate(query, args)
        page["items"] = _dump_statements(page["items"])
        return page

    @require(EDIT)
    @blp.arguments(UploadSchema, location="form", content_type="multipart/form-data")
    @blp.response(201, ImportSchema, headers={"Location": {"schema": {"type": "string"}}})
    @blp.alt_response(200, schema=ImportSchema, description="Nothing new: every line was imported before.")
    @blp.alt_response(413, response="DEFAULT_ERROR")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, form: dict[str, Any]):
        """Import a bank statement

        `multipart/form-data` with the `file`: a CSV export (profiles: `it_movimenti`, the Italian banks' "lista
        movimenti"; `generic`) or an ISO 20022 CAMT.053 XML statement. Each line is stored once per bank journal:
        the same file again, or lines imported before from another file, add nothing (`200`, `added` 0). A
        malformed file is a 422 naming `file` with the line (and element) at fault; nothing is stored.
        """
        raw, filename = _file(form["file"])
        with committing():
            result = statements.import_statement(
                raw, filename, journal=form.get("journal"), profile=form.get("profile"), user_id=api_user().id
            )
        body = {
            "statement": _dump_statements([result.statement], with_lines=True)[0] if result.statement else None,
            "added": result.added,
            "skipped": result.skipped,
        }
        if not result.created:
            return body, 200
        location = url_for(f"{blp.name}.StatementItem", statement_id=result.statement.id)
        return body, 201, {"Location": location}


@blp.route(f"/<{ID_PATH}:statement_id>")
class StatementItem(MethodView):
    @require(VIEW)
    @blp.response(200, StatementDetailSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, statement_id: int):
        """Read a bank statement with its lines and proposals"""
        statement = get_or_404(
            _statements_query().options(selectinload(BankStatement.lines)).where(BankStatement.id == statement_id)
        )
        return _dump_statements([statement], with_lines=True)[0]


def _line(line_id: int) -> StatementLine:
    return get_or_404(sa.select(StatementLine).where(StatementLine.id == line_id))


def _conflict_or_invalid(errors: dict[str, str]) -> int:
    return 409 if "state" in errors else 422


@blp.route(f"/lines/<{ID_PATH}:line_id>/confirm")
class ConfirmLine(MethodView):
    @require(EDIT)
    @blp.arguments(ConfirmSchema, required=False)
    @blp.response(200, StatementLineSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, data: dict[str, Any], line_id: int):
        """Confirm a statement line

        Records the line as the customer's payment in its bank journal, matched with the invoice: the proposed
        customer and invoice, or the `partner_id`/`invoice_id` sent. A line no longer open is a 409; money out, no
        customer, or more than is due without `advance` a 422 naming the field; nothing is written then.
        """
        line = _line(line_id)
        with committing(status=_conflict_or_invalid):
            statements.confirm(
                line,
                partner_id=data.get("partner_id"),
                invoice_id=data.get("invoice_id"),
                advance=data.get("advance", False),
                user_id=api_user().id,
            )
        return _dump_lines([_line(line_id)])[0]


@blp.route(f"/lines/<{ID_PATH}:line_id>/ignore")
class IgnoreLine(MethodView):
    @require(EDIT)
    @blp.response(200, StatementLineSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, line_id: int):
        """Ignore a statement line

        Bank fees, transfers between own accounts: no payment is recorded. A line no longer open is a 409.
        """
        line = _line(line_id)
        with committing(status=409):
            statements.ignore(line)
        return _dump_lines([_line(line_id)])[0]
