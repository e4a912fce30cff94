"""Metering back office: enter a reading, the readings list, the review queue, meter replacements, CSV import."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.orm import selectinload
from wtforms import StringField
from wtforms.validators import InputRequired

from core import csv_import, labels
from core.admin import SecuredModelView, SecuredView
from core.db import contains, db
from core.permissions import has_permission
from core.validation import ValidationError
from modules.metering import campaigns, imports
from modules.metering.history import last_values, meter_label, show_time
from modules.metering.models import READING_SOURCES, READING_STATUSES, SUPPLY_COLOURS, Reading, ReadingRequest
from modules.metering.readings import approve_reading, record_reading, reject_reading
from modules.metering.replacements import record_replacement
from modules.metering.validation import typed_counter
from modules.rentals.devices import normalize_serial
from modules.rentals.models import Device

STATUS_LABELS = {
    "accepted": _l("Accepted"),
    "pending_review": _l("Waiting for review"),
    "rejected": _l("Rejected"),
    "estimated": _l("Estimated"),
    "superseded": _l("Superseded"),
}
SOURCE_LABELS = {
    "portal": _l("Portal"),
    "staff": _l("Staff"),
    "api": _l("API"),
    "csv": _l("CSV import"),
    "estimate": _l("Estimate"),
    "email": _l("Email"),
    "snmp": _l("SNMP"),
    "device": _l("Device"),
}
COLOUR_LABELS = {"black": _l("Black"), "cyan": _l("Cyan"), "magenta": _l("Magenta"), "yellow": _l("Yellow")}


def _label(labels: dict) -> Any:
    return lambda view, context, model, name: labels.get(getattr(model, name), getattr(model, name))


def _find_device(text: str) -> tuple[Device | None, list[Device]]:
    """The device whose serial is `text` (any spacing or case), else the devices whose serial contains it."""
    serial = normalize_serial(text)
    if not serial:
        return None, []
    exact = db.session.scalars(sa.select(Device).where(Device.serial == serial)).all()
    if len(exact) == 1:
        return exact[0], []
    similar = db.session.scalars(
        sa.select(Device).where(contains(Device.serial, serial)).order_by(Device.serial).limit(20)
    ).all()
    return None, list(similar)


class ReadingEntryView(SecuredView):
    """Staff type a device's counters: one field per meter of its model, beside the last value known."""

    permission = "readings.edit"

    def _render(self, device: Device | None, found: list[Device], values: dict, errors: dict, query: str):
        last = last_values(device) if device else {}
        colours = SUPPLY_COLOURS if device and device.model.color else ("black",)
        return self.render(
            "metering/admin/entry.html",
            device=device,
            found=found,
            values=values,
            errors=errors,
            query=query,
            last=last,
            colours=colours,
            colour_labels=COLOUR_LABELS,
            show=show_time,
        )

    @expose("/")
    def index(self):
        query = request.args.get("serial", "").strip()
        device = None
        found: list[Device] = []
        if request.args.get("device_id", "").isdigit():
            device = db.session.get(Device, int(request.args["device_id"]))
        elif query:
            device, found = _find_device(query)
            if device is None and not found:
                flash(_("No device has a serial like %(serial)s.", serial=query), "error")
        return self._render(device, found, {}, {}, query)

    @expose("/", methods=("POST",))
    def save(self):
        device = db.session.get(Device, request.form.get("device_id", type=int) or 0)
        if device is None:
            abort(404)
        counters = {m: request.form.get(f"counter_{m}", "") for m in device.model.meter_codes}
        counters = {meter: value for meter, value in counters.items() if value.strip()}
        supplies = {c: request.form.get(f"toner_{c}", "") for c in SUPPLY_COLOURS}
        supplies = {colour: value.strip() for colour, value in supplies.items() if value.strip()}
        taken_at = request.form.get("taken_at", "")
        typed = {meter: typed_counter(value) for meter, value in counters.items()}
        try:
            recorded = record_reading(device.id, taken_at, typed, supplies, source="staff", entered_by=current_user.id)
        except ValidationError as error:
            db.session.rollback()
            values = {"taken_at": taken_at, **{f"counter_{m}": v for m, v in counters.items()}}
            values |= {f"toner_{c}": v for c, v in supplies.items()}
            return self._render(device, [], values, error.errors, device.serial), 422
        db.session.commit()
        reading = recorded.reading
        if not recorded.created:
            flash(_("This reading was already recorded."), "info")
        elif reading.status == "pending_review":
            flash(_("Reading saved and held for review: %(reason)s", reason=reading.reason), "warning")
        else:
            flash(_("Reading saved for %(serial)s.", serial=device.serial), "success")
        for warning in recorded.warnings:
            flash(warning, "info")
        return redirect(url_for(".index", device_id=device.id))


class ReadingView(SecuredModelView):
    """Every reading, newest first, with filters by serial, customer, status and source; read-only."""

    permission = "readings.view"
    edit_permission = "readings.edit"
    allow_create = False
    allow_edit = False
    can_export = True
    column_list = ("device", "device.customer.name", "taken_at", "counters", "status", "source", "reason")
    column_labels = {
        "device": _l("Device"),
        "device.serial": _l("Serial number"),
        "device.customer.name": _l("Customer"),
        "taken_at": _l("Taken at"),
        "counters": _l("Counters"),
        "status": _l("Status"),
        "source": _l("Source"),
        "reason": _l("Reason"),
        "warnings": _l("Warnings"),
        "created_at": _l("Recorded at"),
    }
    # A spreadsheet keeps the serial and the customer's name in columns of their own.
    column_export_list = (
        "device.serial",
        "device.customer.name",
        "taken_at",
        "counters",
        "status",
        "source",
        "reason",
    )
    column_details_list = (
        "device",
        "device.customer.name",
        "taken_at",
        "counters",
        "supply_levels",
        "status",
        "source",
        "reason",
        "warnings",
        "created_at",
    )
    column_searchable_list = ("device.serial", "device.customer.name")
    column_filters = ("device.serial", "device.customer.name", "status", "source", "taken_at")
    column_default_sort = ("taken_at", True)
    column_formatters = {
        "status": _label(STATUS_LABELS),
        "source": _label(SOURCE_LABELS),
        "counters": lambda view, context, model, name: ", ".join(f"{m} {v:,}" for m, v in model.counters.items()),
        "supply_levels": lambda view, context, model, name: ", ".join(
            f"{COLOUR_LABELS.get(c, c)} {v}%" for c, v in model.supply_levels.items()
        ),
        "taken_at": lambda view, context, model, name: show_time(model.taken_at),
    }
    column_choices = {
        "status": [(s, STATUS_LABELS[s]) for s in READING_STATUSES],
        "source": [(s, SOURCE_LABELS[s]) for s in READING_SOURCES],
    }

    def get_query(self):
        """The listed readings with their counters (device and customer come with core's related columns)."""
        return super().get_query().options(selectinload(Reading.values))


class ReviewView(SecuredView):
    """Readings held because a counter jumped: staff accept or reject each one (audited)."""

    permission = "readings.view"

    @expose("/")
    def index(self):
        readings = db.session.scalars(
            sa.select(Reading).where(Reading.status == "pending_review").order_by(Reading.taken_at, Reading.id)
        ).all()
        return self.render(
            "metering/admin/review.html",
            readings=readings,
            can_edit=has_permission(current_user, "readings.edit"),
            show=show_time,
            meter_label=meter_label,
        )

    def _pending(self, reading_id: int) -> Reading:
        if not has_permission(current_user, "readings.edit"):
            abort(403)
        reading = db.session.get(Reading, reading_id)
        if reading is None:
            abort(404)
        return reading

    @expose("/<int:reading_id>/approve", methods=("POST",))
    def approve(self, reading_id: int):
        reading = self._pending(reading_id)
        self.run_action(
            lambda: approve_reading(reading, current_user.id),
            lambda done: _("Reading of %(serial)s accepted.", serial=done.device.serial),
        )
        return redirect(url_for(".index"))

    @expose("/<int:reading_id>/reject", methods=("POST",))
    def reject(self, reading_id: int):
        reading = self._pending(reading_id)
        answered = campaigns.requests_answered_by(reading.id)
        self.run_action(
            lambda: reject_reading(reading, current_user.id, request.form.get("reason", "")),
            lambda done: _rejected_message(done, [r for r in answered if r.status != "completed"]),
        )
        return redirect(url_for(".index"))


def _rejected_message(reading: Reading, reopened: list[ReadingRequest]) -> str:
    if not reopened:
        return _("Reading of %(serial)s rejected.", serial=reading.device.serial)
    return _(
        "Reading of %(serial)s rejected: %(customer)s is asked for its counters again.",
        serial=reading.device.serial,
        customer=", ".join(dict.fromkeys(r.customer.name for r in reopened)),
    )


class ReplacementView(SecuredModelView):
    """Meter replacements and resets: recorded once, never edited (a wrong one is deleted and entered again)."""

    permission = "readings.view"
    edit_permission = "readings.edit"
    allow_edit = False
    allow_delete = True
    column_list = ("device", "date", "meter", "old_final", "new_start", "notes")
    column_labels = {
        "device": _l("Device"),
        "device.serial": _l("Serial number"),
        "date": _l("Date"),
        "meter": _l("Meter"),
        "old_final": _l("Old meter's final value"),
        "new_start": _l("New meter's start value"),
        "notes": _l("Notes"),
    }
    column_searchable_list = ("device.serial",)
    column_filters = ("device.serial", "meter", "date")
    column_default_sort = ("date", True)
    form_columns = ("device", "date", "meter", "old_final", "new_start", "notes")
    # `meter` is a foreign key, which Flask-Admin leaves out of generated forms: typed as a code instead.
    form_extra_fields = {"meter": StringField(_l("Meter"), validators=[InputRequired()])}
    form_args = {
        "meter": {"description": _l("The meter's code, e.g. bw or color.")},
        "date": {"description": _l("Readings from this day on count from the new start value.")},
    }

    def create_model(self, form):
        device = form.device.data
        return self.save_form(
            form,
            lambda: record_replacement(
                device.id if device else None,
                form.date.data,
                (form.meter.data or "").strip().lower(),
                form.old_final.data,
                form.new_start.data,
                entered_by=current_user.id,
                notes=form.notes.data,
            ),
            {"device_id": "device"},
        )


class ImportView(csv_import.ImportView):
    """Upload a CSV of readings, see every row's errors, then write all readings or none."""

    permission = "readings.edit"
    heading = _l("Import readings from a spreadsheet")
    importers = (imports.ReadingImporter,)


METERING_TABLES = {
    "metering_reading": _l("Reading"),
    "metering_reading_value": _l("Counter of a reading"),
    "metering_supply_level": _l("Toner level"),
    "metering_meter_replacement": _l("Meter replacement"),
    "metering_schedule": _l("Reading schedule"),
    "metering_request": _l("Reading request"),
    "metering_request_item": _l("Device of a reading request"),
    "metering_request_link": _l("Reading request link"),
    "metering_billed_closing": _l("Billed closing counter"),
}
AUDIT_ACTIONS = {"reading.approved": _l("Reading approved"), "reading.rejected": _l("Reading rejected")}


def register_labels(app: Any) -> None:
    """How metering's records are named and its codes read (core/labels.py)."""
    from modules.metering.admin_campaigns import BOARD_LABELS, RULE_LABELS
    from modules.metering.models import ReadingRequest

    labels.register_enum(app, "reading.status", STATUS_LABELS)
    labels.register_enum(app, "reading.source", SOURCE_LABELS)
    labels.register_enum(app, "request.status", BOARD_LABELS)
    labels.register_enum(app, "schedule.rule", RULE_LABELS)
    labels.register_enum(app, "audit.table", METERING_TABLES)
    labels.register_enum(app, "audit.action", AUDIT_ACTIONS)
    labels.register_enum(
        app,
        "job.func",
        {
            "modules.metering.jobs:estimate_due_readings": _l("Estimate the readings that did not come"),
            "modules.metering.jobs:send_reading_requests": _l("Send the reading requests"),
        },
    )
    labels.register_record(
        app,
        Reading,
        lambda reading: f"{reading.device.serial} · {labels.local_datetime(reading.taken_at)}",
        needs=("device",),
    )
    labels.register_record(
        app,
        ReadingRequest,
        lambda request: f"{request.customer.name} · {labels.local_date(request.due_date)}",
        needs=("customer",),
    )
