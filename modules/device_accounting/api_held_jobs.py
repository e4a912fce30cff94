"""/api/v1/device-accounting/held-jobs: print servers submit held jobs (their own token); staff list and delete them."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import current_app, g, request
from flask.views import MethodView
from flask_babel import gettext as _
from werkzeug.datastructures import FileStorage

from core.api import register_api
from core.api.auth import api_user, require
from core.api.blueprint import ApiBlueprint
from core.api.errors import ApiProblem
from core.api.fields import Boolean, DecimalString, Integer, String, UtcDateTime
from core.api.helpers import ID_PATH, committing, get_or_404, id_field
from core.api.pagination import PageArgs, page_schema, paginate
from core.auth.scoping import customer_scoped
from core.context import ModuleContext
from modules.device_accounting import held_jobs
from modules.device_accounting.models import HELD_JOB_STATES, PAPER_SIZES, HeldJob, PrintServer
from modules.device_accounting.print_servers import print_server_by_token

PATH = "/held-jobs"
# Room for the form fields and the multipart framing around the largest document accepted.
FORM_OVERHEAD = 1024 * 1024
MAX_JOB_KEY = 180

blp = ApiBlueprint(
    "device_accounting_held_jobs",
    __name__,
    url_prefix="/device-accounting",
    description="Held print jobs: listed and deleted by staff.",
)
# The print servers' own door: a print server token, never a staff API token or a session.
submit_blp = ApiBlueprint(
    "device_accounting_held_job_submit",
    __name__,
    url_prefix="/device-accounting",
    description="Held print jobs submitted by a customer's print server (CUPS backend copydesk-hold).",
)


def authenticate_print_server() -> None:
    """before_request of the submit blueprint: g.print_server from `Authorization: Bearer <print server token>`."""
    # Nothing here reads the session cookie: the user stays anonymous whatever the browser sends.
    g._login_user = current_app.login_manager.anonymous_user()
    request.max_content_length = held_jobs.max_document_bytes() + FORM_OVERHEAD
    scheme, _sep, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise ApiProblem(401, headers={"WWW-Authenticate": 'Bearer realm="copydesk print server"'})
    server = print_server_by_token(credentials.strip())
    if server is None:
        raise ApiProblem(
            401,
            _("The print server token is unknown, was replaced, or its print server is disabled."),
            headers={"WWW-Authenticate": 'Bearer realm="copydesk print server", error="invalid_token"'},
        )
    g.print_server = server


class HeldJobSubmitSchema(ma.Schema):
    document = ma.fields.Raw(
        required=True,
        metadata={"type": "string", "format": "binary", "description": "The job as a PDF; pages are counted from it."},
    )
    user = String(
        required=True,
        validate=ma.validate.Length(min=1, max=100),
        metadata={"description": "The CUPS user name: a mapping of the print server, else a print user's username."},
    )
    title = String(
        validate=ma.validate.Length(max=2000),
        metadata={"description": "The document's name; not stored when the customer hides document names."},
    )
    copies = Integer(
        validate=ma.validate.Range(min=1, max=held_jobs.MAX_COPIES), metadata={"description": "Default 1."}
    )
    color = Boolean(metadata={"description": "`true` or `false`; default false."})
    duplex = Boolean(metadata={"description": "`true` or `false`; default false."})
    paper_size = String(validate=ma.validate.OneOf(PAPER_SIZES), metadata={"description": "Default A4."})
    job_key = String(
        validate=ma.validate.Length(min=1, max=MAX_JOB_KEY),
        metadata={
            "description": "The backend's idempotency key (CUPS job id and job-uuid): the same key again stores nothing"
            " new and answers the job stored before."
        },
    )

    @ma.pre_load
    def _with_the_file(self, data: Any, **_kwargs: Any) -> dict[str, Any]:
        # One multipart body: the text fields come from the form, the document from its files.
        merged = {key: data[key] for key in data}
        if "document" in request.files:
            merged["document"] = request.files["document"]
        return merged


class HeldJobSchema(ma.Schema):
    id = Integer()
    customer_id = Integer()
    user_id = Integer()
    user = ma.fields.Function(lambda job: job.user.username, metadata={"description": "The owner's username."})
    title = ma.fields.String(allow_none=True, metadata={"description": "Null when the customer hides names."})
    pages = Integer()
    copies = Integer()
    color = ma.fields.Boolean()
    duplex = ma.fields.Boolean()
    paper_size = ma.fields.String(metadata={"enum": list(PAPER_SIZES)})
    estimated_cost = DecimalString()
    submitted_at = UtcDateTime()
    expires_at = UtcDateTime()
    state = ma.fields.String(metadata={"enum": list(HELD_JOB_STATES)})
    ended_at = UtcDateTime(allow_none=True)
    released_device_id = Integer(allow_none=True)
    transaction_id = Integer(allow_none=True)
    document_size = Integer(metadata={"description": "Bytes."})


class HeldJobListArgs(PageArgs):
    customer_id = id_field()
    user_id = id_field(metadata={"description": "The owner (a print user)."})
    state = String(validate=ma.validate.OneOf(HELD_JOB_STATES))


def _document(upload: Any) -> bytes:
    """The uploaded document, read up to one byte past the limit; 413 naming `document` beyond it."""
    if not isinstance(upload, FileStorage):
        raise ApiProblem(422, errors=[{"field": "document", "message": _("Send the document as a file.")}])
    limit = held_jobs.max_document_bytes()
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise ApiProblem(413, errors=[{"field": "document", "message": held_jobs.too_large_message(limit)}])
    return data


@submit_blp.route(PATH)
class SubmitHeldJob(MethodView):
    @submit_blp.arguments(HeldJobSubmitSchema, location="form", content_type="multipart/form-data")
    @submit_blp.response(201, HeldJobSchema)
    @submit_blp.alt_response(200, schema=HeldJobSchema, description="The same `job_key` was stored before.")
    @submit_blp.doc(
        security=[{"bearerAuth": []}],
        responses={
            401: "UNAUTHORIZED",
            413: "REQUEST_ENTITY_TOO_LARGE",
            422: "UNPROCESSABLE_ENTITY",
        },
    )
    def post(self, form: dict[str, Any]):
        """Submit a held print job (print servers)

        For a customer's print server, with its own token (`Authorization: Bearer <print server token>`; a staff
        API token is refused with `401`). `multipart/form-data` with the `document` (a PDF: pages are counted from it,
        not taken from the client) and the CUPS `user`, mapped to a print user by the print server's mappings or by
        username. The job waits, encrypted at rest, until its user releases it at a device of the customer, and
        expires after the customer's held-job hours. `201` with the job; `200` with the job stored before for a
        repeated `job_key`; `413` for a document above the limit; `422` naming the field (`user`, `document`,
        `copies`, `paper_size`...), nothing stored.
        """
        server: PrintServer = g.print_server
        data = _document(form["document"])
        key = form.get("job_key")
        with committing():
            job, created = held_jobs.submit_held_job(
                server,
                form["user"],
                data,
                title=form.get("title"),
                copies=form.get("copies", 1),
                color=form.get("color", False),
                duplex=form.get("duplex", False),
                paper_size=form.get("paper_size") or "A4",
                submission_key=f"{server.id}:{key}" if key else None,
            )
        return job, 201 if created else 200


def _visible_jobs() -> sa.Select:
    query = sa.select(HeldJob).options(sa.orm.selectinload(HeldJob.user))
    return customer_scoped(query, HeldJob.customer_id, api_user())


@blp.route(PATH)
class HeldJobs(MethodView):
    @require("print_accounting.view", "portal.print_accounting")
    @blp.arguments(HeldJobListArgs, location="query")
    @blp.response(200, page_schema(HeldJobSchema))
    def get(self, args: dict[str, Any]):
        """List held print jobs

        Oldest first. Staff see every customer's; a customer admin's token its own customer's.
        """
        query = _visible_jobs().order_by(HeldJob.submitted_at, HeldJob.id)
        for key in ("customer_id", "user_id", "state"):
            if args.get(key) is not None:
                query = query.where(getattr(HeldJob, key) == args[key])
        return paginate(query, args)


@blp.route(f"{PATH}/<{ID_PATH}:job_id>")
class HeldJobItem(MethodView):
    @require("print_accounting.edit", "portal.print_accounting")
    @blp.response(200, HeldJobSchema)
    @blp.doc(responses={404: "NOT_FOUND", 409: "CONFLICT"})
    def delete(self, job_id: int):
        """Delete a held print job

        Its document is deleted at once; the job stays listed as deleted. Another customer's job answers `404`; a job
        no longer held (released, expired, deleted) `409`.
        """
        job = get_or_404(_visible_jobs().where(HeldJob.id == job_id))
        with committing(status=409):
            job = held_jobs.delete_held_job(job.id, None, staff=True)
        return job


def register(ctx: ModuleContext) -> None:
    """The held jobs' API resources: the staff list and delete, and the print servers' submission."""
    register_api(ctx.app, blp)
    register_api(ctx.app, submit_blp)
    # The print servers' door authenticates print server tokens instead of staff API tokens, and takes a
    # multipart body: register_api's token check and JSON-only rule are replaced for this blueprint alone.
    ctx.app.before_request_funcs[submit_blp.name] = [authenticate_print_server]
