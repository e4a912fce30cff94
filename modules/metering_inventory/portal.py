"""The portal's toner requests: beside each device's counters, a customer contact asks for toner (colour, level).

The request goes through `rentals_inventory.shipments.request_toner`: it reaches the dealer as a shipment to confirm,
and the contact is emailed when it ships. A colour the device does not use is refused there (field `colour`).
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.orm import selectinload

from core.auth.scoping import customer_or_404
from core.auth.views import csrf_failed
from core.clock import local_date
from core.db import db
from core.portal import portal_view
from core.validation import ValidationError
from modules.metering import scoping
from modules.metering.history import devices_last_values, meter_label
from modules.metering.models import Reading
from modules.metering.portal import customer_devices
from modules.metering_inventory.consumption import device_colours
from modules.rentals_inventory import shipments
from modules.rentals_inventory.models import Shipment

bp = Blueprint("metering_inventory_portal", __name__, url_prefix="/portal/toner")
bp.register_error_handler(CSRFError, csrf_failed)

COLOUR_LABELS = {"black": _l("Black"), "cyan": _l("Cyan"), "magenta": _l("Magenta"), "yellow": _l("Yellow")}
COLOUR_ORDER = ("black", "cyan", "magenta", "yellow")
OPEN_SHOWN = 20


def latest_levels(customer_id: int, device_ids: list[int]) -> dict[int, dict[str, int]]:
    """Each device's last reported toner levels while it was the customer's (accepted readings of its tenure)."""
    if not device_ids:
        return {}
    readings = db.session.scalars(
        sa.select(Reading)
        .where(scoping.tenure(customer_id, device_ids), Reading.status == "accepted")
        .options(selectinload(Reading.supplies))
        .order_by(Reading.taken_at, Reading.id)
    )
    levels: dict[int, dict[str, int]] = {device_id: {} for device_id in device_ids}
    for reading in readings:
        levels[reading.device_id].update(reading.supply_levels)
    return levels


def _page(customer_id: int, errors: dict[int, dict[str, str]] | None = None, posted: dict | None = None):
    devices = customer_devices(customer_id)
    device_ids = [device.id for device in devices]
    # The model's toners, as request_toner checks them (rentals_inventory.shipments.device_colours), read from the
    # models loaded with the devices rather than one query each.
    colours = {device.id: list(device_colours(device)) for device in devices}
    requested = db.session.scalars(
        sa.select(Shipment)
        .where(Shipment.customer_id == customer_id, Shipment.state == "requested")
        .order_by(Shipment.requested_at.desc(), Shipment.id.desc())
        .limit(OPEN_SHOWN)
    ).all()
    serials = {device.id: device.serial for device in devices}
    return render_template(
        "metering_inventory/portal/toner.html",
        devices=devices,
        colours=colours,
        last=devices_last_values(devices, customer_id),
        levels=latest_levels(customer_id, device_ids),
        requested=requested,
        serials=serials,
        errors=errors or {},
        posted=posted or {},
        colour_labels=COLOUR_LABELS,
        meter_label=meter_label,
        show_date=lambda value: local_date(value),
    )


def _check_colour(device_id: int, colour: str) -> None:
    """A colour the device's model does not use is refused, naming the ones it does."""
    uses = [c for c in COLOUR_ORDER if c in shipments.device_colours(device_id)]
    if colour in COLOUR_LABELS and colour not in uses:
        raise ValidationError(
            {
                "colour": _(
                    "This device does not use %(colour)s toner: it takes %(colours)s.",
                    colour=str(COLOUR_LABELS[colour]).lower(),
                    colours=", ".join(str(COLOUR_LABELS[c]).lower() for c in uses),
                )
            }
        )


@bp.route("/")
@portal_view("portal.readings")
def index():
    return _page(customer_or_404())


@bp.route("/<int:device_id>", methods=("POST",))
@portal_view("portal.readings")
def ask(device_id: int):
    customer_id = customer_or_404()
    if device_id not in {device.id for device in customer_devices(customer_id)}:
        abort(404)
    colour = request.form.get("colour", "")
    try:
        _check_colour(device_id, colour)
        shipment = shipments.request_toner(
            device_id, colour, request.form.get("level", "").strip().rstrip("%").strip(), current_user
        )
    except ValidationError as error:
        db.session.rollback()
        posted = {device_id: {"colour": colour, "level": request.form.get("level", "")[:10]}}
        return _page(customer_id, {device_id: error.errors}, posted), 422
    db.session.commit()
    flash(
        _(
            "Your request for %(colour)s toner has reached your dealer: you will get an email when it ships.",
            colour=str(COLOUR_LABELS.get(shipment.colour, shipment.colour)).lower(),
        ),
        "success",
    )
    return redirect(url_for(".index"))
