"""Device accounting back office for held print jobs and print servers: their labels, the held jobs (narrowed by
customer, device, user or server; delete), the print servers (token shown once, rotation, user and queue mappings,
"Import page log now")."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, make_response, redirect, request, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.fields import QuerySelectField
from flask_admin.contrib.sqla.filters import DateTimeBetweenFilter, FilterEqual, FilterLike
from flask_admin.form import BaseForm
from flask_babel import format_timedelta, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import selectinload
from wtforms import BooleanField, StringField

from core import clock, labels
from core.admin import arg_id, model_view
from core.auth.services import base_url
from core.context import ModuleContext
from core.db import db, utcnow
from core.labels import record_label
from core.models import Partner
from core.validation import ValidationError
from modules.device_accounting import held_jobs, print_servers
from modules.device_accounting.admin import (
    COLOUR_LABELS,
    HELD_JOB_STATE_LABELS,
    PAPER_SIZE_LABELS,
    AccountingView,
    customers,
)
from modules.device_accounting.admin_money import money
from modules.device_accounting.models import (
    HeldJob,
    PrintDelegate,
    PrintServer,
    PrintServerPrinter,
    PrintServerUser,
    PrintUser,
)
from modules.rentals.models import Device, DeviceModel

# The tables admin.py's TABLES does not name yet (it names the print servers, their mappings and the delegates).
TABLES = {
    "device_accounting_held_job": _l("Held print job"),
    "device_accounting_held_document": _l("Document of a held print job"),
    "device_accounting_page_log_cursor": _l("Page log read so far"),
    "device_accounting_page_log_job": _l("Job read from a page log"),
}
# Page log problems listed in the flash message after "Import page log now"; the rest are counted.
PROBLEMS_SHOWN = 5


def held_job_label(job: HeldJob) -> str:
    """A held job by its owner and when it was sent (its title may be hidden, and two may share one)."""
    return f"{record_label(job.user)} · {labels.local_datetime(job.submitted_at)}"


def register_labels(app: Any) -> None:
    """How held jobs, the print servers' mappings and delegations are named (core/labels.py); admin.register_labels
    names the print servers, the held job states and the periodic jobs."""
    labels.register_enum(app, "audit.table", TABLES)
    labels.register_record(app, HeldJob, held_job_label, needs=("user",))
    labels.register_record(
        app,
        PrintServerUser,
        lambda mapped: f"{mapped.cups_user} → {record_label(mapped.print_user)}",
        lambda mapped: labels.record_url(mapped.print_server),
        needs=("print_user", "print_server"),
    )
    labels.register_record(
        app,
        PrintServerPrinter,
        lambda mapped: f"{mapped.queue} → {record_label(mapped.device)}",
        lambda mapped: labels.record_url(mapped.print_server),
        needs=("device", "device.model", "device.model.manufacturer", "print_server"),
    )
    labels.register_record(
        app,
        PrintDelegate,
        lambda delegate: _(
            "%(delegate)s releases the jobs of %(owner)s",
            delegate=record_label(delegate.delegate),
            owner=record_label(delegate.owner),
        ),
        lambda delegate: labels.record_url(delegate.owner),
        needs=("owner", "delegate"),
    )


def register(ctx: ModuleContext) -> None:
    """Called by admin.register: the labels, then the held jobs and print servers views."""
    register_labels(ctx.app)
    ctx.add_admin_view(model_view(HeldJobView, HeldJob, _l("Held print jobs"), "device_accounting_held_job"))
    ctx.add_admin_view(model_view(PrintServerView, PrintServer, _l("Print servers"), "device_accounting_print_server"))


def held_age(job: HeldJob, now: dt.datetime | None = None) -> str:
    """How long the job has waited (until it ended, for one released, deleted or expired): "3 ore"."""
    end = clock.as_utc(job.ended_at) if job.ended_at is not None else (now or utcnow())
    return format_timedelta(end - clock.as_utc(job.submitted_at), granularity="minute", threshold=1.5)


def held_title(job: HeldJob) -> str:
    return job.title or _("Name hidden")


# Held jobs.


NARROWED_BY = {
    "customer_id": (HeldJob.customer_id, Partner, _l("Customer")),
    "user_id": (HeldJob.user_id, PrintUser, _l("Print user")),
    "device_id": (HeldJob.released_device_id, Device, _l("Released at")),
    "print_server_id": (HeldJob.print_server_id, PrintServer, _l("Print server")),
}


def _narrow_held(query: Any) -> Any:
    for name, (column, _model, _title) in NARROWED_BY.items():
        if (ident := arg_id(name)) is not None:
            query = query.filter(column == ident)
    if request.args.get("state") in HELD_JOB_STATE_LABELS:
        query = query.filter(HeldJob.state == request.args["state"])
    return query


def held_narrowing() -> list[str]:
    """What the list of held jobs is narrowed to by its links, said in words (the list's banner)."""
    said = []
    for name, (_column, model, title) in NARROWED_BY.items():
        if (ident := arg_id(name)) is not None:
            record = db.session.get(model, ident)
            said.append(f"{title}: {record_label(record) if record else '—'}")
    if request.args.get("state") in HELD_JOB_STATE_LABELS:
        said.append(str(HELD_JOB_STATE_LABELS[request.args["state"]]))
    return said


class HeldJobView(AccountingView):
    """Every held print job, newest first: whose, what, how long it has waited, its state; never edited, a waiting
    one deleted (with its document) from its page."""

    allow_create = False
    allow_edit = False
    list_template = "device_accounting/admin/held_job_list.html"
    details_template = "device_accounting/admin/held_job_details.html"
    column_list = (
        "submitted_at",
        "customer",
        "user",
        "title",
        "pages",
        "copies",
        "color",
        "age",
        "state",
        "expires_at",
        "estimated_cost",
    )
    column_details_list = (
        "submitted_at",
        "customer",
        "user",
        "print_server",
        "title",
        "pages",
        "copies",
        "color",
        "duplex",
        "paper_size",
        "estimated_cost",
        "state",
        "age",
        "expires_at",
        "ended_at",
        "released_device",
        "released_by",
        "transaction",
        "document_size",
        "mime_type",
    )
    column_export_list = (
        "submitted_at",
        "customer.name",
        "user.username",
        "title",
        "pages",
        "copies",
        "color",
        "duplex",
        "paper_size",
        "estimated_cost",
        "state",
        "expires_at",
        "ended_at",
        "released_device.serial",
    )
    column_labels = {
        "submitted_at": _l("Sent"),
        "customer": _l("Customer"),
        "customer.name": _l("Customer"),
        "user": _l("Owner"),
        "user.username": _l("Username"),
        "user.full_name": _l("Owner"),
        "print_server": _l("Print server"),
        "submission_key": _l("Submission key"),
        "title": _l("Document"),
        "pages": _l("Pages"),
        "copies": _l("Copies"),
        "color": _l("Colour"),
        "duplex": _l("Duplex"),
        "paper_size": _l("Paper size"),
        "estimated_cost": _l("Estimated cost"),
        "state": _l("State"),
        "age": _l("Waiting for"),
        "expires_at": _l("Expires"),
        "ended_at": _l("Ended"),
        "released_device": _l("Released at"),
        "released_device.serial": _l("Released at"),
        "released_by": _l("Released by (delegate)"),
        "transaction": _l("Device job"),
        "document_size": _l("Document size (bytes)"),
        "document_digest": _l("Document digest"),
        "mime_type": _l("Document type"),
    }
    column_enums = {"state": "held_job.state", "paper_size": "device_accounting.paper_size"}
    column_formatters = {
        "title": lambda view, context, model, name: held_title(model),
        "color": lambda view, context, model, name: str(COLOUR_LABELS["color" if model.color else "bw"]),
        "age": lambda view, context, model, name: held_age(model),
        "estimated_cost": lambda view, context, model, name: money(model.estimated_cost),
        "pages": lambda view, context, model, name: labels.number(model.pages),
        "copies": lambda view, context, model, name: labels.number(model.copies),
        "document_size": lambda view, context, model, name: labels.number(model.document_size),
    }
    column_formatters_export = {
        "estimated_cost": lambda view, context, model, name: model.estimated_cost,
        "color": lambda view, context, model, name: str(COLOUR_LABELS["color" if model.color else "bw"]),
    }
    column_filters = (
        FilterLike("customer.name", _l("Customer")),
        FilterLike("user.username", _l("Username")),
        FilterLike("user.full_name", _l("Owner")),
        FilterEqual(HeldJob.state, _l("State"), options=list(HELD_JOB_STATE_LABELS.items())),
        FilterEqual(HeldJob.paper_size, _l("Paper size"), options=list(PAPER_SIZE_LABELS.items())),
        DateTimeBetweenFilter(HeldJob.submitted_at, _l("Sent")),
    )
    column_searchable_list = ("title", "user.username", "user.full_name", "customer.name")
    column_sortable_list = ("submitted_at", "expires_at", "pages", "state")
    column_default_sort = ("submitted_at", True)

    def get_query(self):
        return _narrow_held(
            super()
            .get_query()
            .options(
                selectinload(HeldJob.customer),
                selectinload(HeldJob.user),
                selectinload(HeldJob.print_server),
                selectinload(HeldJob.released_device).selectinload(Device.model).selectinload(DeviceModel.manufacturer),
            )
        )

    def get_count_query(self):
        return _narrow_held(super().get_count_query())

    @expose("/")
    def index_view(self):
        self._template_args["narrowed"] = held_narrowing()
        return super().index_view()

    @expose("/details/")
    def details_view(self):
        job = self.get_one(request.args.get("id", ""))
        if job is None:
            abort(404)
        self._template_args.update(
            can_discard=self._can_edit() and job.state == "held",
            delegates=_delegates_of(job.user_id),
        )
        return super().details_view()

    @expose("/discard/", methods=("POST",))
    def discard(self):
        """Delete a waiting job and its document (staff may delete anyone's)."""
        if not self._can_edit():
            abort(403)
        job = self.get_one(request.args.get("id", ""))
        if job is None:
            abort(404)
        name = held_job_label(job)
        self.run_action(
            lambda: held_jobs.delete_held_job(job.id, None, staff=True),
            _("The held job of %(job)s is deleted, and its document with it.", job=name),
            {"job": _("Held job")},
        )
        return redirect(url_for(".details_view", id=job.id))


def _delegates_of(owner_id: int) -> list[PrintUser]:
    """The print users who may release this owner's jobs, by name."""
    found = db.session.scalars(
        sa.select(PrintUser)
        .join(PrintDelegate, PrintDelegate.delegate_id == PrintUser.id)
        .where(PrintDelegate.owner_id == owner_id)
    ).all()
    return sorted(found, key=lambda user: str(user).casefold())


# Print servers.


class PrintServerForm(BaseForm):
    name = StringField(_l("Name"))
    page_log_path = StringField(
        _l("Page log file"),
        description=_l(
            "The server's CUPS page_log as Copydesk reads it (a copy or a mounted share), e.g. "
            "/var/log/cups/page_log; the scheduled import reads it. Empty: imported only on demand."
        ),
    )
    active = BooleanField(_l("Active"), default=True, description=_l("An inactive server's token is refused."))


class NewPrintServerForm(PrintServerForm):
    customer = QuerySelectField(_l("Customer"), query_factory=customers, allow_blank=False)


def _server_data(form: Any) -> dict[str, Any]:
    return {
        "name": (form.name.data or "").strip(),
        "page_log_path": (form.page_log_path.data or "").strip() or None,
        "active": bool(form.active.data),
    }


class PrintServerView(AccountingView):
    """The customers' CUPS print servers: the token the backend sends (shown once, at creation and rotation; only
    its digest is kept), which CUPS user is which print user, which queue prints at which device, the page log."""

    # Never deleted (its held jobs and page-log jobs keep naming it): made inactive, its token refused.
    form = PrintServerForm
    details_template = "device_accounting/admin/print_server_details.html"
    column_list = ("name", "customer", "active", "page_log_path", "last_seen_at", "token_hint")
    column_details_list = ("name", "customer", "active", "page_log_path", "token_hint", "created_at", "last_seen_at")
    column_export_list = ("name", "customer.name", "active", "page_log_path", "last_seen_at")
    column_labels = {
        "name": _l("Name"),
        "customer": _l("Customer"),
        "customer.name": _l("Customer"),
        "active": _l("Active"),
        "page_log_path": _l("Page log file"),
        "token_hint": _l("Token ends with"),
        "token_digest": _l("Token (kept only as a digest)"),
        "last_seen_at": _l("Last seen"),
        "users": _l("CUPS users"),
        "printers": _l("CUPS queues"),
    }
    column_formatters = {
        "token_hint": lambda view, context, model, name: f"…{model.token_hint}",
        "page_log_path": lambda view, context, model, name: model.page_log_path or _("Only on demand"),
    }
    column_searchable_list = ("name", "customer.name")
    column_default_sort = ("name", False)

    def get_query(self):
        return super().get_query().options(selectinload(PrintServer.customer))

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        """The form; once saved, the token on this page only (not kept by the browser)."""
        if not self.can_create:
            abort(403)
        form = NewPrintServerForm(request.form if request.method == "POST" else None)
        status = 200
        if request.method == "POST":
            customer = form.customer.data
            data = _server_data(form)
            try:
                server, token = print_servers.create_print_server(
                    customer.id if customer else None, data["name"], data["page_log_path"]
                )
            except ValidationError as error:
                db.session.rollback()
                self.show_errors(form, error, {"customer_id": "customer"})
                status = 422
            else:
                db.session.commit()
                return _token_page(self, server, token, created=True)
        return self.render("device_accounting/admin/print_server_new.html", form=form), status

    def update_model(self, form, model: PrintServer) -> bool:
        saved = self.save_form(form, lambda: print_servers.update_print_server(model, _server_data(form)))
        return saved is not False

    @expose("/details/")
    def details_view(self):
        server = self.get_one(request.args.get("id", ""))
        if server is None:
            abort(404)
        users = db.session.scalars(
            sa.select(PrintServerUser)
            .where(PrintServerUser.print_server_id == server.id)
            .options(selectinload(PrintServerUser.print_user))
            .order_by(PrintServerUser.cups_user)
        ).all()
        printers = db.session.scalars(
            sa.select(PrintServerPrinter)
            .where(PrintServerPrinter.print_server_id == server.id)
            .options(
                selectinload(PrintServerPrinter.device)
                .selectinload(Device.model)
                .selectinload(DeviceModel.manufacturer)
            )
            .order_by(PrintServerPrinter.queue)
        ).all()
        can_edit = self._can_edit()
        self._template_args.update(
            mapped_users=users,
            mapped_printers=printers,
            can_manage=can_edit,
            print_users=_print_users_of(server.customer_id) if can_edit else [],
            devices=_devices_of(server.customer_id) if can_edit else [],
            held_url=url_for("device_accounting_held_job.index_view", print_server_id=server.id),
        )
        return super().details_view()

    def _editable(self) -> PrintServer:
        if not self._can_edit():
            abort(403)
        server = self.get_one(request.args.get("id", ""))
        if server is None:
            abort(404)
        return server

    def _back(self, server: PrintServer):
        return redirect(url_for(".details_view", id=server.id))

    @expose("/rotate/", methods=("POST",))
    def rotate(self):
        """A new token, shown once; the old one stops working at once."""
        server = self._editable()
        token = self.run_action(lambda: print_servers.rotate_token(server))
        if token is None:
            return self._back(server)
        return _token_page(self, server, token, created=False)

    @expose("/users/map/", methods=("POST",))
    def map_user(self):
        server = self._editable()
        cups_user = request.form.get("cups_user", "").strip()
        print_user_id = _form_id("print_user_id")
        self.run_action(
            lambda: print_servers.map_user(server, cups_user, print_user_id),
            lambda mapped: _(
                "Jobs of CUPS user %(cups_user)s go to %(user)s.",
                cups_user=mapped.cups_user,
                user=record_label(mapped.print_user),
            ),
            {"cups_user": _("CUPS user"), "print_user_id": _("Print user"), "user": _("Print user")},
        )
        return self._back(server)

    @expose("/users/unmap/", methods=("POST",))
    def unmap_user(self):
        server = self._editable()
        cups_user = request.form.get("cups_user", "").strip()
        self.run_action(
            lambda: print_servers.unmap_user(server, cups_user),
            _(
                "CUPS user %(cups_user)s is now the print user of the same username, if there is one.",
                cups_user=cups_user,
            ),
            {"cups_user": _("CUPS user")},
        )
        return self._back(server)

    @expose("/printers/map/", methods=("POST",))
    def map_printer(self):
        server = self._editable()
        queue = request.form.get("queue", "").strip()
        device_id = _form_id("device_id")
        self.run_action(
            lambda: print_servers.map_printer(server, queue, device_id),
            lambda mapped: _(
                "Jobs of queue %(queue)s are charged at %(device)s.",
                queue=mapped.queue,
                device=record_label(mapped.device),
            ),
            {"queue": _("CUPS queue"), "device": _("Device"), "device_id": _("Device")},
        )
        return self._back(server)

    @expose("/printers/unmap/", methods=("POST",))
    def unmap_printer(self):
        server = self._editable()
        queue = request.form.get("queue", "").strip()
        self.run_action(
            lambda: print_servers.unmap_printer(server, queue),
            _("Queue %(queue)s is no longer charged at a device.", queue=queue),
            {"queue": _("CUPS queue")},
        )
        return self._back(server)

    @expose("/page-log/", methods=("POST",))
    def import_page_log(self):
        """Read the server's page log now (what was read before is not imported again)."""
        from modules.device_accounting import page_log

        server = self._editable()
        if not server.page_log_path:
            flash(_("Set the page log file of %(server)s first.", server=server.name), "error")
            return self._back(server)
        if not print_servers.page_log_allowed(server.page_log_path):
            flash(print_servers.page_log_refusal(), "error")
            return self._back(server)
        try:
            result = self.run_action(lambda: page_log.import_page_log(server, server.page_log_path))
        except OSError as error:
            db.session.rollback()
            flash(
                _(
                    "The page log %(path)s could not be read: %(error)s",
                    path=server.page_log_path,
                    error=error.strerror,
                ),
                "error",
            )
            return self._back(server)
        if result is not None:
            _flash_page_log(result)
        return self._back(server)


def _flash_page_log(result: Any) -> None:
    """What an import did (page_log.PageLogResult), and the lines it skipped with their numbers."""
    said = [
        ngettext("%(num)d job imported.", "%(num)d jobs imported.", result.imported),
        ngettext("%(num)d already imported before.", "%(num)d already imported before.", result.repeated),
    ]
    if result.held:
        said.append(
            ngettext(
                "%(num)d held job left to its release, where it is charged.",
                "%(num)d held jobs left to their release, where they are charged.",
                result.held,
            )
        )
    flash(" ".join(said), "success")
    if result.errors:
        lines = [
            _("Line %(line)s: %(problem)s", line=labels.number(line), problem=message)
            for line, message in result.errors[:PROBLEMS_SHOWN]
        ]
        more = len(result.errors) - PROBLEMS_SHOWN
        if more > 0:
            lines.append(ngettext("and %(num)d more line.", "and %(num)d more lines.", more))
        flash(
            ngettext(
                "%(num)d line was skipped: %(lines)s",
                "%(num)d lines were skipped: %(lines)s",
                len(result.errors),
                lines=" · ".join(lines),
            ),
            "warning",
        )


def _token_page(view: PrintServerView, server: PrintServer, token: str, created: bool):
    page = view.render(
        "device_accounting/admin/print_server_token.html",
        server=server,
        token=token,
        created=created,
        base_url=base_url(),
    )
    response = make_response(page)
    response.headers["Cache-Control"] = "no-store"  # the token must not be kept by the browser or a proxy
    return response


def _form_id(name: str) -> int | None:
    value = request.form.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) < 2**31 else None


def _print_users_of(customer_id: int) -> list[PrintUser]:
    found = db.session.scalars(
        sa.select(PrintUser).where(PrintUser.customer_id == customer_id, PrintUser.active.is_(True))
    ).all()
    return sorted(found, key=lambda user: str(user).casefold())


def _devices_of(customer_id: int) -> list[Device]:
    return list(
        db.session.scalars(
            sa.select(Device)
            .where(Device.customer_id == customer_id)
            .options(selectinload(Device.model).selectinload(DeviceModel.manufacturer))
            .order_by(Device.serial)
        )
    )
