"""SNMP back office: the devices polled over SNMP (credentials write-only), "Poll now", the on-site agent's token,
the poll log, and on a device's page its last polls with their errors. (The SNMP job's label is in admin.py, beside
the mailbox job's: jobs.poll_snmp_devices is the one scheduled.)"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import PasswordField, SelectField
from wtforms.validators import Optional

from core import labels
from core.admin import SecuredModelView, model_view
from core.context import ModuleContext
from core.db import db
from core.extension_points import RECORD_PANELS, RecordLink, RecordPanel
from core.labels import local_datetime
from core.models import Partner, User
from core.permissions import has_permission
from modules.metering_channels import api, snmp
from modules.metering_channels.models import SnmpDevice, SnmpPoll

VIEW = "readings.view"
EDIT = "readings.edit"
MANAGE = "settings.manage"  # addresses and credentials
SHOWN = 10

OUTCOME_LABELS = {
    "read": _l("Read"),
    "pending_review": _l("Waiting for review"),
    "refused": _l("Refused"),
    "unreachable": _l("No answer"),
    "auth_failed": _l("Wrong community or credentials"),
    "serial_mismatch": _l("Another serial number"),
    "bad_answer": _l("No usable counters"),
}
VERSION_LABELS = {"2c": _l("SNMPv2c (community)"), "3": _l("SNMPv3 (user and keys)")}
SECRET_HELP = _l("Stored encrypted and never shown; leave empty to keep the current one.")


def register_labels(app: Any) -> None:
    labels.register_enum(app, "metering_channels_snmp_poll.outcome", OUTCOME_LABELS)
    labels.register_enum(app, "metering_channels_snmp_device.last_outcome", OUTCOME_LABELS)
    labels.register_record(app, SnmpDevice, lambda row: row.device.serial, needs=("device",))
    labels.register_record(
        app, SnmpPoll, lambda poll: f"{poll.device.serial} {local_datetime(poll.at)}", needs=("device",)
    )


def _customer_choices() -> list[tuple[str, str]]:
    customers = db.session.scalars(sa.select(Partner).where(Partner.is_customer.is_(True)).order_by(Partner.name))
    return [("", _("— the server polls it —"))] + [(str(customer.id), customer.name) for customer in customers]


class SnmpDeviceView(SecuredModelView):
    """The devices read over SNMP: where, how (v2c community or v3 user, never shown again), and the last poll."""

    permission = VIEW
    edit_permission = MANAGE
    allow_delete = True
    list_template = "metering_channels/admin/snmp/device_list.html"
    column_list = (
        "device",
        "host",
        "port",
        "version",
        "active",
        "agent_customer_id",
        "last_polled_at",
        "last_outcome",
        "last_error",
    )
    column_details_exclude_list = ("community_sealed", "v3_auth_key_sealed", "v3_priv_key_sealed")
    column_export_exclude_list = column_details_exclude_list
    column_enums = {"last_outcome": "metering_channels_snmp_device.last_outcome"}
    # Not a registered enum: codes as short as "3" would be taken for this one on every page.
    column_formatters = {"version": lambda view, context, model, name: VERSION_LABELS.get(model.version, model.version)}
    column_formatters_detail = column_formatters
    column_labels = {
        "device": _l("Device"),
        "host": _l("Address"),
        "port": _l("Port"),
        "version": _l("SNMP version"),
        "community": _l("Community"),
        "v3_user": _l("SNMPv3 user"),
        "v3_auth_protocol": _l("Authentication"),
        "v3_auth_key": _l("Authentication key"),
        "v3_priv_protocol": _l("Encryption"),
        "v3_priv_key": _l("Encryption key"),
        "active": _l("Active"),
        "agent_customer_id": _l("Polled by the on-site agent of"),
        "agent_customer": _l("Polled by the on-site agent of"),
        "last_polled_at": _l("Last poll"),
        "last_ok_at": _l("Last reading"),
        "last_outcome": _l("Last outcome"),
        "last_error": _l("Last error"),
    }
    column_searchable_list = ("host", "device.serial")
    column_filters = ("last_outcome", "active")
    form_columns = (
        "device",
        "host",
        "port",
        "version",
        "community",
        "v3_user",
        "v3_auth_protocol",
        "v3_auth_key",
        "v3_priv_protocol",
        "v3_priv_key",
        "active",
        "agent_customer",
    )
    form_extra_fields = {
        "version": SelectField(_l("SNMP version"), choices=list(VERSION_LABELS.items()), default="2c"),
        "community": PasswordField(_l("Community"), validators=[Optional()], description=SECRET_HELP),
        "v3_auth_protocol": SelectField(_l("Authentication"), choices=[(p, p) for p in snmp.AUTH_PROTOCOLS]),
        "v3_auth_key": PasswordField(_l("Authentication key"), validators=[Optional()], description=SECRET_HELP),
        "v3_priv_protocol": SelectField(_l("Encryption"), choices=[(p, p) for p in snmp.PRIV_PROTOCOLS]),
        "v3_priv_key": PasswordField(_l("Encryption key"), validators=[Optional()], description=SECRET_HELP),
        "agent_customer": SelectField(_l("Polled by the on-site agent of"), choices=[], default=""),
    }
    form_args = {
        "host": {"description": _l("Leave empty to use the device's IP address.")},
        "port": {"default": 161},
    }
    FIELDS = {"device_id": "device", "agent_customer_id": "agent_customer"}

    @property
    def can_poll(self) -> bool:
        return has_permission(current_user, EDIT)

    def _prepare(self, form, obj: SnmpDevice | None):
        form.agent_customer.choices = _customer_choices()
        if obj is not None and request.method == "GET":
            form.agent_customer.data = str(obj.agent_customer_id or "")
            form.v3_auth_protocol.data = obj.v3_auth_protocol or "SHA"
            form.v3_priv_protocol.data = obj.v3_priv_protocol or "AES"
        return form

    def create_form(self, obj=None):
        return self._prepare(super().create_form(obj), None)

    def edit_form(self, obj=None):
        form = self._prepare(super().edit_form(obj), obj)
        del form.device  # the settings belong to one device
        return form

    def _data(self, form) -> dict[str, Any]:
        data = {
            name: form[name].data
            for name in ("host", "port", "version", "community", "v3_user", "v3_auth_protocol", "v3_priv_protocol")
        }
        data |= {"v3_auth_key": form.v3_auth_key.data, "v3_priv_key": form.v3_priv_key.data}
        data["active"] = form.active.data
        data["agent_customer_id"] = int(form.agent_customer.data) if form.agent_customer.data else None
        return data

    def create_model(self, form):
        data = self._data(form) | {"device_id": form.device.data.id if form.device.data else None}
        return self.save_form(form, lambda: snmp.save_device(None, data), self.FIELDS)

    def update_model(self, form, model: SnmpDevice) -> bool:
        return self.save_form(form, lambda: snmp.save_device(model, self._data(form)), self.FIELDS) is not False

    @property
    def can_issue_agent_token(self) -> bool:
        return has_permission(current_user, MANAGE)

    @expose("/agent-token", methods=("GET", "POST"))
    def agent_token(self):
        """Issue the on-site agent's token for one of a customer's users (GET: choose the user; POST: the token,
        shown once). Only these tokens reach the agent API: a customer user's own tokens do not."""
        if not has_permission(current_user, MANAGE):
            abort(403)
        users = db.session.scalars(
            sa.select(User)
            .join(Partner, Partner.id == User.customer_id)
            .where(User.customer_id.is_not(None), User.active.is_(True))
            .order_by(Partner.name, User.name)
        ).all()
        plaintext = chosen = None
        if request.method == "POST":
            chosen = next((user for user in users if str(user.id) == request.form.get("user_id")), None)
            if chosen is None:
                flash(_("Choose the customer user the agent runs as."), "error")
            else:
                plaintext = api.issue_agent_token(chosen)
        return self.render(
            "metering_channels/admin/snmp/agent_token.html", users=users, plaintext=plaintext, chosen=chosen
        )

    @expose("/<int:device_id>/poll", methods=("GET", "POST"))
    def poll_now(self, device_id: int):
        """Poll one device now (device_id: the rentals device); GET asks, POST polls."""
        if not has_permission(current_user, EDIT):
            abort(403)
        snmp_device = db.session.scalar(sa.select(SnmpDevice).where(SnmpDevice.device_id == device_id))
        if snmp_device is None:
            abort(404)
        if request.method == "GET":
            return self.render("metering_channels/admin/snmp/poll_now.html", snmp_device=snmp_device)
        [poll] = snmp.poll_devices([device_id])
        db.session.commit()
        outcome = OUTCOME_LABELS.get(poll.outcome, poll.outcome)
        category = "success" if poll.outcome == "read" else "warning" if poll.outcome == "pending_review" else "error"
        flash(f"{snmp_device.device.serial}: {outcome}. {poll.message or ''}", category)
        if request.form.get("next") == "device":
            return redirect(url_for("rentals_device.details_view", id=device_id))
        return redirect(url_for(".index_view"))


class SnmpPollView(SecuredModelView):
    """Every SNMP poll: when, which device, how it went and why, the reading it made; read-only."""

    permission = VIEW
    can_create = False
    can_edit = False
    can_delete = False
    column_list = ("at", "device", "outcome", "message", "reading_id")
    column_details_list = column_list
    column_export_list = column_list
    column_enums = {"outcome": "metering_channels_snmp_poll.outcome"}
    column_labels = {
        "at": _l("When"),
        "device": _l("Device"),
        "outcome": _l("Outcome"),
        "message": _l("What happened"),
        "reading_id": _l("Reading"),
    }
    column_searchable_list = ("device.serial",)
    column_filters = ("outcome", "at")
    column_default_sort = ("at", True)


class SnmpPanels:
    """On a device's page: its last SNMP polls, errors included, and "Poll now"."""

    def record_panels(self, kind: str, record_id: int) -> list[RecordPanel]:
        if kind != "device" or not has_permission(current_user, VIEW):
            return []
        snmp_device = db.session.scalar(sa.select(SnmpDevice).where(SnmpDevice.device_id == record_id))
        if snmp_device is None:
            return []
        polls = db.session.scalars(
            sa.select(SnmpPoll)
            .where(SnmpPoll.device_id == record_id)
            .order_by(SnmpPoll.at.desc(), SnmpPoll.id.desc())
            .limit(SHOWN)
        ).all()
        actions = ()
        if has_permission(current_user, EDIT):
            actions = (
                RecordLink(_("Poll now"), url_for("metering_channels_snmp_device.poll_now", device_id=record_id)),
            )
        return [
            RecordPanel(
                _("SNMP polls"),
                tuple(
                    RecordLink(
                        local_datetime(poll.at),
                        url_for("metering_channels_snmp_poll.details_view", id=poll.id),
                        f"{OUTCOME_LABELS.get(poll.outcome, poll.outcome)} · {poll.message or ''}",
                    )
                    for poll in polls
                ),
                more=RecordLink(
                    _("All SNMP polls of %(serial)s", serial=snmp_device.device.serial),
                    url_for("metering_channels_snmp_poll.index_view", search=snmp_device.device.serial),
                ),
                actions=actions,
                empty=_("Not polled yet."),
            )
        ]


def register(ctx: ModuleContext) -> None:
    register_labels(ctx.app)
    ctx.add_admin_view(model_view(SnmpDeviceView, SnmpDevice, _l("SNMP devices"), "metering_channels_snmp_device"))
    ctx.add_admin_view(model_view(SnmpPollView, SnmpPoll, _l("SNMP polls"), "metering_channels_snmp_poll"))
    ctx.register(RECORD_PANELS, SnmpPanels())
