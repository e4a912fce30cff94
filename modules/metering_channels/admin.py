"""Meter channels back office: mailboxes (password write-only) and their state, uploading a counter report .eml, the
queue of emails no device was found for (assign each to a device), the channel of a device's readings on its page;
how the module's records are named and its codes read. The SNMP views are admin_snmp.py's."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Response, abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import PasswordField, SelectField, TextAreaField
from wtforms.validators import InputRequired, Optional

from core import labels
from core.admin import SecuredModelView, SecuredView, model_view
from core.context import ModuleContext
from core.db import db
from core.extension_points import RECORD_PANELS, RecordLink, RecordPanel
from core.labels import local_datetime, number
from core.permissions import has_permission
from modules.metering.admin import COLOUR_LABELS, SOURCE_LABELS
from modules.metering.models import Reading
from modules.metering_channels import emails, imap_poll
from modules.metering_channels.models import CounterEmail, Mailbox
from modules.rentals.devices import normalize_serial
from modules.rentals.models import Device

VIEW = "readings.view"
EDIT = "readings.edit"
MANAGE = "settings.manage"  # a mailbox's server and password
SHOWN = 10
QUEUE_PAGE = 50
MAX_UPLOAD = 10 * 1024 * 1024

STATE_LABELS = {
    "read": _l("Read"),
    "pending_review": _l("Waiting for review"),
    "refused": _l("Refused"),
    "unmatched": _l("No device found"),
    "assigned": _l("Assigned to a device"),
    "discarded": _l("Discarded"),
}
SECURITY_LABELS = {"ssl": _l("TLS (port 993)"), "starttls": _l("STARTTLS (port 143)")}
TABLES = {
    "metering_channels_mailbox": _l("Counter report mailbox"),
    "metering_channels_email": _l("Counter report email"),
    "metering_channels_snmp_device": _l("SNMP device"),
    "metering_channels_snmp_poll": _l("SNMP poll"),
}
AUDIT_ACTIONS = {
    "counter_email.assigned": _l("Counter report email assigned to a device"),
    "counter_email.discarded": _l("Counter report email discarded"),
}
JOBS = {
    "modules.metering_channels.jobs:poll_mailboxes": _l("Read the counter report mailboxes"),
    "modules.metering_channels.jobs:poll_snmp_devices": _l("Poll the devices over SNMP"),
}


def email_label(counter_email: CounterEmail) -> str:
    return " · ".join(part for part in (counter_email.subject or _("(no subject)"), counter_email.sender) if part)


def register_labels(app: Any) -> None:
    labels.register_enum(app, "metering_channels_email.state", STATE_LABELS)
    labels.register_enum(app, "metering_channels_mailbox.security", SECURITY_LABELS)
    labels.register_enum(app, "audit.table", TABLES)
    labels.register_enum(app, "audit.action", AUDIT_ACTIONS)
    labels.register_enum(app, "job.func", JOBS)
    labels.register_record(app, Mailbox, lambda mailbox: mailbox.name)
    labels.register_record(app, CounterEmail, email_label)


class MailboxView(SecuredModelView):
    """The IMAP mailboxes the devices send their counter reports to; the password is never shown again."""

    permission = VIEW
    edit_permission = MANAGE
    allow_delete = True
    column_list = (
        "name",
        "host",
        "username",
        "folder",
        "active",
        "last_polled_at",
        "processed_count",
        "unmatched_count",
        "last_error",
    )
    column_details_exclude_list = ("password_sealed", "uidvalidity", "last_uid")
    column_export_exclude_list = ("password_sealed",)
    column_enums = {"security": "metering_channels_mailbox.security"}
    column_labels = {
        "name": _l("Name"),
        "host": _l("IMAP server"),
        "port": _l("Port"),
        "security": _l("Encryption"),
        "username": _l("User name"),
        "password": _l("Password"),
        "folder": _l("Folder read"),
        "processed_folder": _l("Folder for the read reports"),
        "unmatched_folder": _l("Folder for the reports with no device"),
        "allowed_senders": _l("Allowed senders"),
        "active": _l("Active"),
        "last_polled_at": _l("Last poll"),
        "last_error": _l("Last error"),
        "processed_count": _l("Readings made"),
        "unmatched_count": _l("Unmatched"),
    }
    column_searchable_list = ("name", "host", "username")
    form_columns = (
        "name",
        "host",
        "port",
        "security",
        "username",
        "password",
        "folder",
        "processed_folder",
        "unmatched_folder",
        "allowed_senders",
        "active",
    )
    form_extra_fields = {
        "security": SelectField(_l("Encryption"), choices=list(SECURITY_LABELS.items()), default="ssl"),
        "password": PasswordField(
            _l("Password"),
            validators=[Optional()],
            description=_l("Stored encrypted and never shown; leave empty to keep the current one."),
        ),
        "allowed_senders": TextAreaField(
            _l("Allowed senders"),
            validators=[Optional()],
            description=_l(
                "Addresses (printer@customer.it) or domains (customer.it), one a line: a report from anyone else "
                "waits in the queue. Empty: anyone may send."
            ),
        ),
    }
    form_args = {
        "port": {"description": _l("993 for TLS, 143 for STARTTLS.")},
        "processed_folder": {"description": _l("Created when missing; use / between folder levels.")},
    }
    list_template = "metering_channels/admin/mailbox_list.html"

    @property
    def can_poll(self) -> bool:
        return has_permission(current_user, EDIT)

    def create_form(self, obj=None):
        form = super().create_form(obj)
        form.password.validators = [InputRequired()]
        form.password.flags.required = True
        return form

    def on_model_change(self, form, model: Mailbox, is_created: bool) -> None:
        """The password typed is sealed; an empty one keeps the stored password."""
        vars(model).pop("password", None)  # the form's field, copied onto the model by populate_obj
        if form.password.data:
            imap_poll.set_password(model, form.password.data)

    @expose("/<int:mailbox_id>/poll", methods=("POST",))
    def poll_now(self, mailbox_id: int):
        if not has_permission(current_user, EDIT):
            abort(403)
        mailbox = db.session.get(Mailbox, mailbox_id)
        if mailbox is None:
            abort(404)
        result = imap_poll.poll(mailbox)
        read = result.fetched
        mailbox = db.session.get(Mailbox, mailbox_id)
        if result.busy:
            flash(_("%(mailbox)s is being read right now: try again in a minute.", mailbox=mailbox.name), "info")
        elif mailbox.last_error:
            flash(_("%(mailbox)s: %(error)s", mailbox=mailbox.name, error=mailbox.last_error), "error")
        else:
            flash(_("%(mailbox)s read: %(count)s new messages.", mailbox=mailbox.name, count=number(read)), "success")
        return redirect(url_for(".index_view"))


class CounterEmailView(SecuredModelView):
    """Every counter report email received: where it came from, what was read, the reading it became; read-only."""

    permission = VIEW
    edit_permission = EDIT
    allow_create = False
    allow_edit = False
    column_list = ("received_at", "mailbox", "sender", "subject", "serial", "state", "device", "reading", "reason")
    column_details_list = (
        "received_at",
        "mailbox",
        "sender",
        "subject",
        "profile",
        "serial",
        "taken_at",
        "counters",
        "supplies",
        "state",
        "reason",
        "device",
        "reading",
        "handled_at",
        "handler",
    )
    column_export_list = column_list
    column_enums = {"state": "metering_channels_email.state"}
    column_labels = {
        "received_at": _l("Received"),
        "mailbox": _l("Mailbox"),
        "sender": _l("From"),
        "subject": _l("Subject"),
        "profile": _l("Make's report"),
        "serial": _l("Serial number"),
        "taken_at": _l("Taken at"),
        "counters": _l("Counters in the report"),
        "supplies": _l("Toner levels"),
        "state": _l("State"),
        "reason": _l("Why"),
        "device": _l("Device"),
        "reading": _l("Reading"),
        "handled_at": _l("Assigned at"),
        "handler": _l("Assigned by"),
    }
    column_searchable_list = ("serial", "subject", "sender")
    column_filters = ("state", "serial", "received_at")
    column_default_sort = ("received_at", True)
    column_formatters = {
        "counters": lambda view, context, model, name: counters_text(model.counters),
        "profile": lambda view, context, model, name: profile_make(model.profile),
        "supplies": lambda view, context, model, name: supplies_text(model.supplies),
    }
    column_formatters_detail = column_formatters


def counters_text(counters: dict | None) -> str:
    return ", ".join(f"{label} {number(value)}" for label, value in (counters or {}).items())


def supplies_text(supplies: dict | None) -> str:
    return ", ".join(
        f"{COLOUR_LABELS.get(colour, colour)} {number(value)}%" for colour, value in (supplies or {}).items()
    )


def profile_make(name: str | None) -> str:
    from modules.metering_channels.email_profiles import by_name

    profile = by_name(name)
    return profile.make if profile else ""


class UploadView(SecuredView):
    """Staff upload a counter report saved from their mail program (.eml): it is read as if it came by mail."""

    permission = EDIT

    @expose("/")
    def index(self):
        return self.render("metering_channels/admin/upload.html", max_mb=MAX_UPLOAD // (1024 * 1024))

    @expose("/", methods=("POST",))
    def upload(self):
        file = request.files.get("file")
        raw = file.read(MAX_UPLOAD + 1) if file else b""
        if not raw:
            flash(_("Choose the .eml file of the counter report."), "error")
            return self.render("metering_channels/admin/upload.html", max_mb=MAX_UPLOAD // (1024 * 1024)), 422
        if len(raw) > MAX_UPLOAD:
            flash(_("The file is larger than %(size)s MB.", size=MAX_UPLOAD // (1024 * 1024)), "error")
            return self.render("metering_channels/admin/upload.html", max_mb=MAX_UPLOAD // (1024 * 1024)), 422
        counter_email, created = emails.receive(raw, user_id=current_user.id)
        db.session.commit()
        if not created:
            flash(_("This email had already been received."), "info")
        elif counter_email.state == "read":
            flash(_("Reading recorded for %(serial)s.", serial=counter_email.serial), "success")
        elif counter_email.state == "pending_review":
            flash(_("Reading recorded and held for review: %(reason)s", reason=counter_email.reason), "warning")
        else:
            flash(_("No reading recorded: %(reason)s", reason=counter_email.reason), "error")
        if counter_email.state in emails.QUEUE_STATES:
            return redirect(url_for("metering_channels_queue.index"))
        return redirect(url_for("metering_channels_email.details_view", id=counter_email.id))


class QueueView(SecuredView):
    """Counter report emails that became no reading, with the reason; staff assign each to the device it is from."""

    permission = VIEW

    @expose("/")
    def index(self):
        page = db.paginate(emails.queue_query(), per_page=QUEUE_PAGE, error_out=False)
        return self.render(
            "metering_channels/admin/queue.html",
            page=page,
            waiting=page.items,
            can_edit=has_permission(current_user, EDIT),
            state_labels=STATE_LABELS,
            counters_text=counters_text,
            profile_make=profile_make,
            show=local_datetime,
        )

    @expose("/<int:email_id>/assign", methods=("POST",))
    def assign(self, email_id: int):
        if not has_permission(current_user, EDIT):
            abort(403)
        counter_email = db.session.get(CounterEmail, email_id)
        if counter_email is None:
            abort(404)
        serial = normalize_serial(request.form.get("serial", ""))
        device, reason = emails.find_device(serial, emails.profile_make(counter_email))
        if device is None:
            flash(f"{_('Serial number')}: {reason}", "error")
            return redirect(url_for(".index", page=request.args.get("page")), 303)
        self.run_action(
            lambda: emails.assign(counter_email, device.id, current_user.id),
            lambda done: _("Reading recorded for %(serial)s.", serial=device.serial),
            {"device_id": _("Serial number"), "taken_at": _("Taken at"), "state": _("State")},
        )
        return redirect(url_for(".index", page=request.args.get("page")), 303)

    @expose("/<int:email_id>/discard", methods=("POST",))
    def discard(self, email_id: int):
        if not has_permission(current_user, EDIT):
            abort(403)
        counter_email = db.session.get(CounterEmail, email_id)
        if counter_email is None:
            abort(404)
        self.run_action(
            lambda: emails.discard(counter_email, current_user.id),
            lambda done: _("Discarded: %(email)s.", email=email_label(done)),
            {"state": _("State")},
        )
        return redirect(url_for(".index", page=request.args.get("page")), 303)

    @expose("/<int:email_id>/eml")
    def download(self, email_id: int):
        """The email as received (header only when it was too large to read), to open in a mail program."""
        counter_email = db.session.get(CounterEmail, email_id)
        if counter_email is None:
            abort(404)
        name = f"counter-report-{counter_email.id}.eml"
        return Response(
            counter_email.raw,
            mimetype="message/rfc822",
            headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Content-Type-Options": "nosniff"},
        )


class DeviceChannelPanels:
    """On a device's page: which channel its last readings came by, and its last counter report emails."""

    def record_panels(self, kind: str, record_id: int) -> list[RecordPanel]:
        if kind != "device" or not has_permission(current_user, VIEW):
            return []
        device = db.session.get(Device, record_id)
        if device is None:
            return []
        readings = db.session.scalars(
            sa.select(Reading)
            .where(Reading.device_id == record_id)
            .order_by(Reading.taken_at.desc(), Reading.id.desc())
            .limit(SHOWN)
        ).all()
        channels = RecordPanel(
            _("Channels of the last readings"),
            tuple(
                RecordLink(
                    local_datetime(reading.taken_at),
                    labels.record_url(reading) or url_for("metering_reading.details_view", id=reading.id),
                    str(SOURCE_LABELS.get(reading.source, reading.source)),
                )
                for reading in readings
            ),
            empty=_("No readings yet."),
        )
        received = db.session.scalars(
            sa.select(CounterEmail)
            .where(CounterEmail.device_id == record_id)
            .order_by(CounterEmail.received_at.desc(), CounterEmail.id.desc())
            .limit(SHOWN)
        ).all()
        mails = RecordPanel(
            _("Counter report emails"),
            tuple(
                RecordLink(
                    local_datetime(counter_email.received_at),
                    url_for("metering_channels_email.details_view", id=counter_email.id),
                    " · ".join(
                        part
                        for part in (str(STATE_LABELS.get(counter_email.state, "")), counter_email.reason or "")
                        if part
                    ),
                )
                for counter_email in received
            ),
            more=RecordLink(
                _("All counter report emails of %(serial)s", serial=device.serial),
                url_for("metering_channels_email.index_view", search=device.serial),
            ),
            empty=_("No counter report email from this device yet."),
        )
        return [channels, mails]


def register(ctx: ModuleContext) -> None:
    """Labels first (other pages name these records), then the views, the device panel, then the SNMP views."""
    from modules.metering_channels import admin_snmp

    register_labels(ctx.app)
    add = ctx.add_admin_view
    add(model_view(MailboxView, Mailbox, _l("Counter report mailboxes"), "metering_channels_mailbox"))
    add(QueueView(name=_l("Counter reports with no device"), endpoint="metering_channels_queue"))
    add(UploadView(name=_l("Upload a counter report"), endpoint="metering_channels_upload"))
    add(model_view(CounterEmailView, CounterEmail, _l("Counter report emails"), "metering_channels_email"))
    ctx.register(RECORD_PANELS, DeviceChannelPanels())
    admin_snmp.register(ctx)
