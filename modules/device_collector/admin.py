"""Device collector back office: enrolled devices and their certificates, enrolment codes (shown once), revoking;
labels of its records and codes; registers its views (the live view and refused jobs: admin_live.py) and panels."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import abort, current_app, flash, make_response, redirect, request, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.filters import BaseSQLAFilter, FilterLike
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy.orm import selectinload

from core import labels
from core.admin import SecuredModelView, arg_id, model_view
from core.context import ModuleContext
from core.db import contains, db
from core.models import Partner
from core.permissions import has_permission
from core.validation import ValidationError
from modules.device_collector import enrolment, pki
from modules.device_collector.enrolment import (
    code_condition,
    code_state,
    current_certificate,
    device_state,
    state_condition,
)
from modules.device_collector.models import (
    CollectorDevice,
    DeviceCertificate,
    EnrolmentCode,
    RefusedTransaction,
)
from modules.rentals.models import Device, DeviceModel

VIEW = "print_accounting.view"
# Enrolling and revoking: the technician who installs the device, or the back office who answers for it.
MANAGE = ("devices.edit", "print_accounting.edit")

STATE_LABELS = {
    "enrolled": _l("Enrolled, seen in the last day"),
    "never": _l("Enrolled, waiting for its first connection"),
    "stale": _l("Not seen for a day"),
    "revoked": _l("Revoked"),
}
CODE_STATE_LABELS = {"open": _l("Open"), "used": _l("Used"), "expired": _l("Expired")}
LOGIN_METHOD_LABELS = {"card": _l("Card"), "pin": _l("PIN"), "password": _l("Username and password")}
TABLES = {
    "device_collector_ca": _l("Device certificate authority"),
    "device_collector_server_certificate": _l("Collector server certificate"),
    "device_collector_device": _l("Device enrolled with the collector"),
    "device_collector_certificate": _l("Device certificate"),
    "device_collector_enrolment_code": _l("Enrolment code"),
    "device_collector_refused_transaction": _l("Job refused by the collector"),
}


def can_manage(user: Any = None) -> bool:
    user = current_user if user is None else user
    return any(has_permission(user, permission) for permission in MANAGE)


def register_labels(app: Any) -> None:
    """How the collector's records are named and its codes read (core/labels.py)."""
    labels.register_enum(app, "device_collector.state", STATE_LABELS)
    labels.register_enum(app, "device_collector.code_state", CODE_STATE_LABELS)
    labels.register_enum(app, "device_collector.login_method", LOGIN_METHOD_LABELS)
    labels.register_enum(app, "audit.table", TABLES)
    device_needs = ("device", "device.model", "device.model.manufacturer")
    labels.register_record(
        app, CollectorDevice, lambda enrolled: labels.record_label(enrolled.device), needs=device_needs
    )
    labels.register_record(
        app,
        DeviceCertificate,
        lambda certificate: _("Certificate %(serial)s", serial=certificate.serial[:16].upper()),
        lambda certificate: labels.record_url(certificate.collector_device),
        needs=("collector_device",),
    )
    labels.register_record(
        app,
        EnrolmentCode,
        lambda code: _(
            "Enrolment code for %(device)s, %(created)s",
            device=labels.record_label(code.device),
            created=labels.local_datetime(code.created_at),
        ),
        needs=device_needs,
    )
    labels.register_record(
        app,
        RefusedTransaction,
        lambda refused: _(
            "Job %(number)s of %(device)s",
            number=refused.device_seq,
            device=labels.record_label(refused.collector_device.device),
        ),
        needs=("collector_device", *(f"collector_device.{need}" for need in device_needs)),
    )


def register(ctx: ModuleContext) -> None:
    """Labels first (other pages name these records), then the views, the record panel and the dashboard card."""
    from core.extension_points import DASHBOARD, RECORD_PANELS
    from modules.device_collector import admin_live, admin_panels

    register_labels(ctx.app)
    add = ctx.add_admin_view
    add(model_view(CollectorDeviceView, CollectorDevice, _l("Enrolled devices"), "device_collector_device"))
    add(model_view(EnrolmentCodeView, EnrolmentCode, _l("Enrolment codes"), "device_collector_code"))
    add(admin_live.LiveView(name=_l("Live jobs"), endpoint="device_collector_live"))
    add(model_view(admin_live.RefusedView, RefusedTransaction, _l("Refused jobs"), "device_collector_refused"))
    ctx.register(RECORD_PANELS, admin_panels.CollectorPanels())
    ctx.register(DASHBOARD, admin_panels.CollectorDashboard())


def collector_address() -> tuple[str, int]:
    """Where devices reach the collector: COPYDESK_COLLECTOR_PUBLIC_HOST, else the address it listens on unless that
    is every interface, else the host of BASE_URL; the port COPYDESK_COLLECTOR_PORT (core/config.py)."""
    config = current_app.config
    host = (config.get("COPYDESK_COLLECTOR_PUBLIC_HOST") or "").strip()
    if not host:
        listening = (config.get("COPYDESK_COLLECTOR_HOST") or "").strip()
        host = listening if listening not in ("", "0.0.0.0", "::", "[::]") else ""
    if not host:
        host = urlsplit(config.get("BASE_URL") or "").hostname or "127.0.0.1"
    return host, int(config["COPYDESK_COLLECTOR_PORT"])


def read_json(text: str | None) -> Any:
    """A JSON column's value; None when empty or not JSON."""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


# Enrolled devices.


class StateFilter(BaseSQLAFilter):
    """Devices in one state (enrolled, not seen for a day, revoked...)."""

    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        return query.filter(state_condition(value)) if value in STATE_LABELS else query

    def operation(self) -> Any:
        return _l("is")


class CustomerFilter(BaseSQLAFilter):
    """Devices standing at a customer whose name contains the text."""

    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        at = sa.select(Device.id).join(Partner, Partner.id == Device.customer_id).where(contains(Partner.name, value))
        return query.filter(CollectorDevice.device_id.in_(at))

    def operation(self) -> Any:
        return _l("contains")


class SerialFilter(BaseSQLAFilter):
    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        return query.filter(CollectorDevice.device_id.in_(sa.select(Device.id).where(contains(Device.serial, value))))

    def operation(self) -> Any:
        return _l("contains")


def _state_column(view: Any, context: Any, model: CollectorDevice, name: str) -> str:
    return labels.enum_label("device_collector.state", device_state(model))


def _expiry_column(view: Any, context: Any, model: CollectorDevice, name: str) -> str:
    certificate = current_certificate(model) if model.revoked_at is None else None
    return labels.local_datetime(certificate.not_after) if certificate else ""


def _login_methods(view: Any, context: Any, model: CollectorDevice, name: str) -> str:
    codes = [code for code in (model.login_methods or "").split(",") if code]
    return ", ".join(labels.enum_label("device_collector.login_method", code) for code in codes)


def _capabilities(view: Any, context: Any, model: CollectorDevice, name: str) -> Markup:
    found = read_json(model.capabilities) or []
    return Markup(" ").join(Markup("<code>{}</code>").format(item) for item in found if isinstance(item, str))


class CollectorDeviceView(SecuredModelView):
    """The devices enrolled with the collector: state, last contact, firmware, certificate; a device's page lists its
    certificates and open codes, and revokes it (stolen, replaced)."""

    permission = VIEW
    allow_create = False
    allow_edit = False
    list_template = "device_collector/admin/device_list.html"
    details_template = "device_collector/admin/device_details.html"
    column_list = ("device", "device.customer", "state", "last_seen_at", "firmware", "certificate", "enrolled_at")
    column_details_list = (
        "device",
        "device.customer",
        "state",
        "enrolled_at",
        "last_seen_at",
        "last_address",
        "firmware",
        "protocol_version",
        "capabilities",
        "login_methods",
        "offline_max_jobs",
        "offline_max_hours",
        "certificate",
        "revoked_at",
        "revoked_reason",
        "revoked_by",
    )
    column_export_list = (
        "device.serial",
        "device.customer.name",
        "state",
        "last_seen_at",
        "last_address",
        "firmware",
        "certificate",
        "enrolled_at",
        "revoked_at",
    )
    column_labels = {
        "device": _l("Device"),
        "device_id": _l("Device"),
        "device.serial": _l("Serial number"),
        "device.customer": _l("Customer"),
        "device.customer.name": _l("Customer"),
        "state": _l("State"),
        "enrolled_at": _l("Enrolled"),
        "last_seen_at": _l("Last seen"),
        "last_address": _l("Last address"),
        "firmware": _l("Firmware"),
        "protocol_version": _l("Protocol version"),
        "capabilities": _l("Capabilities"),
        "login_methods": _l("Login methods"),
        "offline_max_jobs": _l("Jobs kept while offline"),
        "offline_max_hours": _l("Hours kept while offline"),
        "certificate": _l("Certificate expires"),
        "revoked_at": _l("Revoked"),
        "revoked_reason": _l("Reason for revoking"),
        "revoked_by": _l("Revoked by"),
        "revoked_by_id": _l("Revoked by"),
    }
    column_formatters = {
        "state": _state_column,
        "certificate": _expiry_column,
        "login_methods": _login_methods,
        "capabilities": _capabilities,
        "protocol_version": lambda view, context, model, name: (
            labels.number(model.protocol_version) if model.protocol_version is not None else ""
        ),
    }
    column_formatters_export = {"state": _state_column, "certificate": _expiry_column}
    column_filters = (
        StateFilter(CollectorDevice.id, _l("State"), options=list(STATE_LABELS.items())),
        SerialFilter(CollectorDevice.device_id, _l("Serial number")),
        CustomerFilter(CollectorDevice.device_id, _l("Customer")),
        FilterLike(CollectorDevice.firmware, _l("Firmware")),
    )
    column_sortable_list = ("last_seen_at", "enrolled_at", "firmware")
    column_default_sort = ("last_seen_at", False)

    def _narrowed(self, query: Any) -> Any:
        """The dashboard's link: `?state=stale`."""
        state = request.args.get("state")
        return query.filter(state_condition(state)) if state in STATE_LABELS else query

    def get_query(self):
        return self._narrowed(
            super()
            .get_query()
            .options(
                selectinload(CollectorDevice.device).options(
                    selectinload(Device.model).selectinload(DeviceModel.manufacturer),
                    selectinload(Device.customer),
                ),
                selectinload(CollectorDevice.certificates),
            )
        )

    def get_count_query(self):
        return self._narrowed(super().get_count_query())

    def _can_edit(self) -> bool:
        return can_manage()

    @expose("/")
    def index_view(self):
        state = request.args.get("state")
        self._template_args["narrowed"] = (
            labels.enum_label("device_collector.state", state) if state in STATE_LABELS else None
        )
        return super().index_view()

    @expose("/details/")
    def details_view(self):
        enrolled = self.get_one(request.args.get("id", ""))
        if enrolled is None:
            abort(404)
        codes = db.session.scalars(
            sa.select(EnrolmentCode)
            .where(EnrolmentCode.device_id == enrolled.device_id)
            .options(selectinload(EnrolmentCode.created_by))
            .order_by(EnrolmentCode.created_at.desc())
            .limit(10)
        ).all()
        self._template_args.update(
            state=device_state(enrolled),
            current=current_certificate(enrolled),
            codes=codes,
            code_state=code_state,
            can_manage=can_manage(),
        )
        return super().details_view()

    def _enrolled(self) -> CollectorDevice:
        if not can_manage():
            abort(403)
        enrolled = self.get_one(request.args.get("id", ""))
        if enrolled is None:
            abort(404)
        return enrolled

    @expose("/revoke/", methods=("GET", "POST"))
    def revoke(self):
        """Revoke a device and all its certificates: its next request, on any collector, is refused."""
        enrolled = self._enrolled()
        if request.method == "GET" or enrolled.revoked_at is not None:
            if enrolled.revoked_at is not None:
                flash(_("%(device)s is already revoked.", device=labels.record_label(enrolled)), "info")
                return redirect(url_for(".details_view", id=enrolled.id))
            return self.render("device_collector/admin/revoke.html", enrolled=enrolled, errors={})
        reason = (request.form.get("reason") or "").strip()
        errors = {}
        if not reason:
            errors["reason"] = _("Say why the device is revoked (stolen, replaced, sold...).")
        elif len(reason) > 200:
            errors["reason"] = _("At most 200 characters.")
        if request.form.get("confirm") != "yes":
            errors["confirm"] = _("Tick the box to confirm: the device stops working with Copydesk at once.")
        if errors:
            return self.render("device_collector/admin/revoke.html", enrolled=enrolled, errors=errors), 422
        self.run_action(
            lambda: enrolment.revoke(enrolled, reason, current_user),
            _(
                "%(device)s is revoked: the collector refuses it from now on. Create an enrolment code to bring it "
                "back.",
                device=labels.record_label(enrolled),
            ),
        )
        return redirect(url_for(".details_view", id=enrolled.id))


# Enrolment codes.


def _code_state_column(view: Any, context: Any, model: EnrolmentCode, name: str) -> str:
    return labels.enum_label("device_collector.code_state", code_state(model))


class CodeStateFilter(BaseSQLAFilter):
    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        return query.filter(code_condition(value)) if value in CODE_STATE_LABELS else query

    def operation(self) -> Any:
        return _l("is")


class EnrolmentCodeView(SecuredModelView):
    """The enrolment codes made, whose and by whom, open, used or expired; never the code itself, which is shown
    once, on the page that creates it."""

    permission = VIEW
    allow_create = False
    allow_edit = False
    list_template = "device_collector/admin/code_list.html"
    column_list = ("device", "device.customer", "state", "created_by", "created_at", "expires_at", "used_at")
    column_details_list = (
        "device",
        "device.customer",
        "state",
        "created_by",
        "created_at",
        "expires_at",
        "used_at",
        "used_address",
    )
    column_export_list = ("device.serial", "state", "created_by", "created_at", "expires_at", "used_at")
    column_labels = {
        "device": _l("Device"),
        "device_id": _l("Device"),
        "device.serial": _l("Serial number"),
        "device.customer": _l("Customer"),
        "state": _l("State"),
        "created_by": _l("Created by"),
        "created_by_id": _l("Created by"),
        "created_at": _l("Created"),
        "expires_at": _l("Expires"),
        "used_at": _l("Used"),
        "used_address": _l("Used from"),
        "code_digest": _l("Code (kept only as a digest)"),
    }
    column_formatters = {"state": _code_state_column}
    column_formatters_export = {"state": _code_state_column}
    column_filters = (CodeStateFilter(EnrolmentCode.id, _l("State"), options=list(CODE_STATE_LABELS.items())),)
    column_sortable_list = ("created_at", "expires_at", "used_at")
    column_default_sort = ("created_at", True)

    def get_query(self):
        return (
            super()
            .get_query()
            .options(
                selectinload(EnrolmentCode.device).options(
                    selectinload(Device.model).selectinload(DeviceModel.manufacturer),
                    selectinload(Device.customer),
                ),
                selectinload(EnrolmentCode.created_by),
            )
        )

    def _can_edit(self) -> bool:
        return can_manage()

    @expose("/enrol/", methods=("GET", "POST"))
    def enrol(self):
        """GET: what creating a code does, for the device chosen; POST: a new code, shown on this page only."""
        if not can_manage():
            abort(403)
        device_id = arg_id("device_id") or (
            int(request.form["device_id"]) if request.form.get("device_id", "").isdigit() else None
        )
        device = db.session.get(Device, device_id) if device_id and device_id < 2**31 else None
        if request.method == "GET" or device is None:
            if device_id and device is None:
                abort(404)
            return self.render(
                "device_collector/admin/enrol.html",
                device=device,
                enrolled=_enrolled_of(device),
                devices=_enrollable_devices() if device is None else [],
            )
        ca = pki.ensure_ca()  # before any write: a first CA commits on its own connection
        try:
            code, plain = enrolment.create_code(device, current_user)
        except enrolment.EnrolmentRefused as refused:
            db.session.rollback()
            flash(str(refused.message), "error")
            return redirect(url_for(".enrol", device_id=device.id))
        except ValidationError as error:
            db.session.rollback()
            flash(error.messages(), "error")
            return redirect(url_for(".enrol", device_id=device.id))
        expires_at, fingerprint = code.expires_at, ca.fingerprint
        db.session.commit()
        host, port = collector_address()
        page = self.render(
            "device_collector/admin/enrolment_code.html",
            device=device,
            code=plain,
            expires_at=expires_at,
            host=host,
            port=port,
            fingerprint=pki.display_fingerprint(fingerprint),
        )
        response = make_response(page)
        response.headers["Cache-Control"] = "no-store"  # the code must not be kept by the browser or a proxy
        return response


def _enrolled_of(device: Device | None) -> CollectorDevice | None:
    if device is None:
        return None
    return db.session.scalar(sa.select(CollectorDevice).where(CollectorDevice.device_id == device.id))


def _enrollable_devices() -> list[Device]:
    """The devices a code may be made for: every device not retired, by serial number."""
    return list(
        db.session.scalars(
            sa.select(Device)
            .where(Device.status != "retired")
            .options(selectinload(Device.model).selectinload(DeviceModel.manufacturer), selectinload(Device.customer))
            .order_by(Device.serial)
        )
    )
