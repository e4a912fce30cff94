"""The consumption check in the back office: flagged devices with their figures and charts, a device's shipments and
readings side by side, "mark explained" with a note, and the check's settings (tolerance, window)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import abort, redirect, request, url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.orm import selectinload

from core import labels
from core.admin import SecuredView, arg_id
from core.clock import day_start
from core.db import db
from core.models import Partner
from core.permissions import has_permission
from core.validation import ValidationError
from modules.metering.history import local_time, meter_label
from modules.metering.models import Reading
from modules.metering_inventory import consumption
from modules.metering_inventory.charts import chart
from modules.metering_inventory.models import ExplainedFlag
from modules.rentals.models import Device
from modules.rentals_inventory.models import Shipment

COLOUR_LABELS = {"black": _l("Black"), "cyan": _l("Cyan"), "magenta": _l("Magenta"), "yellow": _l("Yellow")}
VERDICT_LABELS = {
    consumption.OVER: _l("Over-consumption"),
    consumption.UNDER: _l("Under-consumption"),
    consumption.NORMAL: _l("Normal"),
    consumption.UNKNOWN: _l("Not enough data"),
}
FIELD_LABELS = {
    "note": _l("Notes"),
    "colour": _l("Toner"),
    "to": _l("To"),
    "tolerance": _l("Tolerance"),
    "window_months": _l("Window in months"),
}


def register_labels(app) -> None:
    labels.register_enum(app, "metering_inventory.colour", COLOUR_LABELS)
    labels.register_enum(app, "metering_inventory.verdict", VERDICT_LABELS)
    labels.register_enum(
        app,
        "audit.table",
        {"metering_inventory_explained_flag": _l("Explained consumption flag")},
    )
    labels.register_enum(
        app, "job.func", {"modules.metering_inventory.jobs:email_new_flags": _l("Email the new consumption flags")}
    )
    labels.register_record(
        app,
        ExplainedFlag,
        lambda flag: f"{flag.device.serial} · {COLOUR_LABELS.get(flag.colour, flag.colour)}",
        url=lambda flag: url_for("metering_inventory_check.device", device_id=flag.device_id),
        needs=("device",),
    )


def _date_arg(name: str) -> dt.date | None:
    text = request.values.get(name, "").strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


class ConsumptionView(SecuredView):
    """Flagged devices (or every device) of the window, with E, U, R, the verdict and a chart each."""

    permission = "inventory.view"

    def _window(self) -> tuple[dt.date, dt.date, str | None]:
        start, end = _date_arg("from"), _date_arg("to")
        try:
            start, end = consumption.check_window(start, end)
        except ValidationError as error:
            start, end = consumption.default_window()
            return start, end, error.messages(FIELD_LABELS)
        return start, end, None

    @expose("/")
    def index(self):
        start, end, problem = self._window()
        customer_id = arg_id("customer_id")
        show_all = request.args.get("show") == "all"
        rows = consumption.consumption_check(customer_id, None, start, end)
        shown = rows if show_all else [row for row in rows if row.flagged]
        customers = db.session.execute(
            sa.select(Partner.id, Partner.name).where(Partner.is_customer.is_(True)).order_by(Partner.name)
        ).all()
        return self.render(
            "metering_inventory/admin/check.html",
            rows=[(row, chart(row) if row.verdict in consumption.FLAGGED else None) for row in shown],
            counted=len(rows),
            flagged=sum(1 for row in rows if row.flagged),
            explained=sum(1 for row in rows if row.explained is not None),
            start=start,
            end=end,
            problem=problem,
            customer_id=customer_id,
            customers=customers,
            show_all=show_all,
            tolerance=consumption.tolerance(),
            window_months=consumption.window_months(),
            can_configure=has_permission(current_user, "settings.manage"),
        )

    @expose("/device/<int:device_id>")
    def device(self, device_id: int):
        device = db.session.get(Device, device_id) if device_id < 2**31 else None
        if device is None:
            abort(404)
        start, end, problem = self._window()
        rows = consumption.consumption_check(None, device_id, start, end)
        first = min((row.start for row in rows), default=start)
        last = max((row.end for row in rows), default=end)
        readings = db.session.scalars(
            sa.select(Reading)
            .where(
                Reading.device_id == device_id,
                Reading.taken_at >= day_start(first),
                Reading.taken_at < day_start(last + dt.timedelta(days=1)),
            )
            .options(selectinload(Reading.values), selectinload(Reading.supplies))
            .order_by(Reading.taken_at.desc(), Reading.id.desc())
        ).all()
        shipped = db.session.scalars(
            sa.select(Shipment)
            .where(
                Shipment.device_id == device_id,
                Shipment.state == "shipped",
                Shipment.ship_date >= first,
                Shipment.ship_date <= last,
            )
            .options(selectinload(Shipment.product))
            .order_by(Shipment.ship_date.desc(), Shipment.id.desc())
        ).all()
        explanations = db.session.scalars(
            sa.select(ExplainedFlag)
            .where(ExplainedFlag.device_id == device_id)
            .options(selectinload(ExplainedFlag.user))
            .order_by(ExplainedFlag.created_at.desc())
        ).all()
        return self.render(
            "metering_inventory/admin/device.html",
            device=device,
            rows=[(row, chart(row)) for row in rows],
            readings=readings,
            shipments=shipped,
            explanations=explanations,
            start=start,
            end=end,
            problem=problem,
            can_explain=has_permission(current_user, "inventory.edit"),
            show_time=local_time,
            meter_label=meter_label,
        )

    @expose("/device/<int:device_id>/explain", methods=("POST",))
    def explain(self, device_id: int):
        if not has_permission(current_user, "inventory.edit"):
            abort(403)
        if device_id >= 2**31 or db.session.get(Device, device_id) is None:
            abort(404)
        start, end = _date_arg("from"), _date_arg("to")
        colour = request.form.get("colour", "")
        self.run_action(
            lambda: consumption.mark_explained(
                device_id, colour, request.form.get("note", ""), current_user.id, start, end
            ),
            lambda done: _(
                "The %(colour)s toner of %(serial)s is marked explained.",
                colour=str(COLOUR_LABELS.get(done.colour, done.colour)).lower(),
                serial=done.device.serial,
            ),
            FIELD_LABELS,
        )
        window = {"from": start.isoformat() if start else None, "to": end.isoformat() if end else None}
        return redirect(url_for(".device", device_id=device_id, **{k: v for k, v in window.items() if v}))

    @expose("/settings", methods=("POST",))
    def settings(self):
        if not has_permission(current_user, "settings.manage"):
            abort(403)
        self.run_action(
            lambda: consumption.save_settings(request.form.get("tolerance", ""), request.form.get("window_months", "")),
            _("The consumption check's settings are saved."),
            FIELD_LABELS,
        )
        return redirect(url_for(".index"))
