"""/api/v1/einvoices: the zip of a period's e-invoices for the intermediary, the SdI receipts uploaded back (staff)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, request
from flask.views import MethodView
from flask_babel import gettext as _

from core.api import require_json_body
from core.api.auth import require
from core.api.blueprint import ApiBlueprint
from core.api.errors import ApiProblem
from core.api.fields import Integer, String
from core.api.helpers import committing
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


def _json_or_upload() -> None:
    """The receipts upload takes a multipart body; anything else of the blueprint takes JSON, as the API does."""
    if request.endpoint == UPLOAD_ENDPOINT and request.method == "POST":
        request.max_content_length = MAX_UPLOAD_BYTES
        if request.mimetype == "multipart/form-data":
            return
    require_json_body()


@blp.record
def _replace_json_rule(state) -> None:
    # register_api has put its JSON-only rule before this blueprint's own functions; the upload is the exception.
    funcs = state.app.before_request_funcs.get(state.name, [])
    state.app.before_request_funcs[state.name] = [
        _json_or_upload if func is require_json_body else func for func in funcs
    ]


class EInvoiceExportArgs(ma.Schema):
    date_from = ma.fields.Date(required=True, metadata={"description": "First issue date of the period."})
    date_to = ma.fields.Date(required=True, metadata={"description": "Last issue date (at most a year after)."})


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
    @blp.arguments(EInvoiceExportArgs, location="query")
    @blp.response(200, content_type="application/zip")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def get(self, args: dict[str, Any]):
        """Download the zip of a period's e-invoices

        Posted invoices and credit notes issued from `date_from` to `date_to` (at most a year) that are not yet
        delivered: one FatturaPA XML each, named as the SdI expects. They become `exported`. A document that cannot
        be an e-invoice (missing data) is left out; the `X-Refused-Documents` header lists their numbers.
        """
        with committing():
            result = einvoice_exchange.export_zip(args["date_from"], args["date_to"])
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
