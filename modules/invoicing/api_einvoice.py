"""/api/v1/einvoices: the zip of a period's e-invoices for the intermediary, the SdI receipts uploaded back (staff)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, request
from flask.views import MethodView
from flask_babel import gettext as _

from core.api.auth import require
from core.api.blueprint import ApiBlueprint
from core.api.errors import ApiProblem
from core.api.fields import Boolean, Integer, String
from core.api.helpers import committing
from core.api.uploads import allow_upload
from core.db import db
from modules.invoicing import einvoice_exchange

# Room for several receipts or a zip of a month's receipts, and the multipart framing around them.
MAX_UPLOAD_BYTES = 50 * 1024 * 1024

blp = ApiBlueprint(
    "invoicing_einvoices",
    __name__,
    url_prefix="/einvoices",
    description="E-invoices and the exchange system (SdI): export for the intermediary, import its receipts.",
)
UPLOAD_ENDPOINT = f"{blp.name}.Receipts"


allow_upload(blp, UPLOAD_ENDPOINT, MAX_UPLOAD_BYTES)


class EInvoiceExportArgs(ma.Schema):
    date_from = ma.fields.Date(required=True, metadata={"description": "First issue date of the period."})
    date_to = ma.fields.Date(required=True, metadata={"description": "Last issue date (at most a year after)."})
    resend = Boolean(
        load_default=False,
        metadata={"description": "Also the documents exported before and still without a receipt (default false)."},
    )


class ReceiptsUploadSchema(ma.Schema):
    files = ma.fields.List(
        ma.fields.Raw(metadata={"type": "string", "format": "binary"}),
        required=True,
        metadata={"description": "SdI receipt XML files, or zips of them."},
    )

    @ma.pre_load
    def _with_the_files(self, data: Any, **_kwargs: Any) -> dict[str, Any]:
        merged = {key: data[key] for key in data if key != "files"}
        if request.files.getlist("files"):
            merged["files"] = request.files.getlist("files")
        return merged


class ReceiptOutcomeSchema(ma.Schema):
    file_name = String(required=True)
    status = String(required=True, metadata={"enum": ["imported", "duplicate", "error"]})
    message = String(required=True)
    invoice_id = Integer(allow_none=True)
    einvoice_state = String(allow_none=True)


class ReceiptOutcomesSchema(ma.Schema):
    outcomes = ma.fields.List(ma.fields.Nested(ReceiptOutcomeSchema), required=True)


@blp.route("/export")
class Export(MethodView):
    @require("billing.manage")
    @blp.arguments(EInvoiceExportArgs)
    @blp.response(200, content_type="application/zip")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, args: dict[str, Any]):
        """Export the zip of a period's e-invoices

        JSON `{date_from, date_to, resend}`. Posted invoices and credit notes issued from `date_from` to `date_to`
        (at most a year) not sent yet (with `resend: true`, also those exported before and without a receipt): one
        FatturaPA XML each, named as the SdI expects. They become `exported`. Credit notes of rejected invoices are
        internal and never sent. A document that cannot be an e-invoice (missing data) is left out; the
        `X-Refused-Documents` header lists their numbers.
        """
        with committing():
            result = einvoice_exchange.export_zip(args["date_from"], args["date_to"], resend=args["resend"])
        response = Response(result.content, mimetype="application/zip")
        response.headers["Content-Disposition"] = f'attachment; filename="{result.file_name}"'
        response.headers["X-Exported-Documents"] = str(len(result.invoices))
        if result.refused:
            response.headers["X-Refused-Documents"] = ", ".join(result.refused)
        return response


@blp.route("/receipts")
class Receipts(MethodView):
    @require("billing.manage")
    @blp.arguments(ReceiptsUploadSchema, location="form", content_type="multipart/form-data")
    @blp.response(200, ReceiptOutcomesSchema)
    @blp.alt_response(413, response="DEFAULT_ERROR")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, form: dict[str, Any]):
        """Import SdI receipts

        `multipart/form-data` with one or more `files`: RicevutaConsegna (delivered), NotificaScarto (rejected, with
        its error codes), NotificaMancataConsegna (not delivered), NotificaEsito (public body: EC01 accepted, EC02
        refused), NotificaDecorrenzaTermini (deadline passed), or zips of them. Each file answers `imported`,
        `duplicate` (imported before: nothing changed) or `error` with the reason.
        """
        files = []
        for upload in form["files"]:
            if not hasattr(upload, "stream"):
                raise ApiProblem(422, errors=[{"field": "files", "message": _("Send the receipts as files.")}])
            files.append((upload.filename or "receipt.xml", upload.stream.read()))
        outcomes = einvoice_exchange.import_receipts(files)
        db.session.commit()
        return {
            "outcomes": [
                {
                    "file_name": outcome.file_name,
                    "status": outcome.status,
                    "message": outcome.message,
                    "invoice_id": outcome.invoice.id if outcome.invoice else None,
                    "einvoice_state": outcome.invoice.einvoice_state if outcome.invoice else None,
                }
                for outcome in outcomes
            ]
        }
