"""Devices: creating and changing them, their installations at customers, and the contract line they are on."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from core import clock
from core.db import db
from core.validation import Checker
from modules.rentals.catalogue import check_meter_codes, find_manufacturer, find_model, find_or_create_model
from modules.rentals.models import DEVICE_STATUSES, ContractLine, Device, Installation
from modules.rentals.validation import check_customer


def normalize_serial(serial: str) -> str:
    """Serial numbers are compared without spaces and in capitals, as printed on the label."""
    return re.sub(r"\s+", "", serial).upper()


def _check_ip(check: Checker, value: Any) -> str | None:
    text = check.text("ip_address", value, 45)
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        check.fail("ip_address", _("%(value)s is not an IP address.", value=text))
        return None


def check_new_device(data: dict[str, Any]) -> dict[str, Any]:
    """Validate a new device's fields without writing anything."""
    check = Checker()
    serial = check.text("serial", data.get("serial"), 60, required=True)
    serial = normalize_serial(serial) if serial else None
    manufacturer_name = check.text("manufacturer", data.get("manufacturer"), 100, required=True)
    model_name = check.text("model", data.get("model"), 100, required=True)
    meters_given = data.get("meters") not in (None, "", [])
    meters = check_meter_codes(check, "meters", data.get("meters")) if meters_given else []
    clean: dict[str, Any] = {
        "serial": serial,
        "manufacturer": manufacturer_name,
        "model": model_name,
        "meters": meters,
        "asset_tag": check.text("asset_tag", data.get("asset_tag"), 60),
        "ip_address": _check_ip(check, data.get("ip_address")),
        "status": check.choice("status", data.get("status") or "in_stock", DEVICE_STATUSES),
        "site": check.text("site", data.get("site"), 200),
        "notes": check.text("notes", data.get("notes"), 10_000),
    }
    customer = check_customer(check, "customer_id", data.get("customer_id"), required=False)
    clean["customer_id"] = customer.id if customer else None
    if manufacturer_name and model_name:
        manufacturer = find_manufacturer(manufacturer_name)
        model = find_model(manufacturer, model_name)
        if model is None and not meters_given:
            check.fail("meters", _("A new model needs its meters, e.g. bw, color."))
        elif model is not None and meters_given and set(meters) != set(model.meter_codes):
            check.fail(
                "meters",
                _(
                    "%(model)s counts %(meters)s in the catalogue.",
                    model=model,
                    meters=", ".join(model.meter_codes),
                ),
            )
        if serial and manufacturer is not None and _serial_taken(manufacturer.id, serial):
            check.fail(
                "serial", _("%(maker)s already has a device with serial %(serial)s.", maker=manufacturer, serial=serial)
            )
    check.raise_if_any()
    return clean


def _serial_taken(manufacturer_id: int, serial: str, except_id: int | None = None) -> bool:
    query = sa.select(Device.id).where(Device.manufacturer_id == manufacturer_id, Device.serial == serial)
    if except_id is not None:
        query = query.where(Device.id != except_id)
    return db.session.scalar(query) is not None


def create_device(data: dict[str, Any]) -> Device:
    """A new device; its catalogue entry is found or created. Raises ValidationError before writing anything."""
    clean = check_new_device(data)
    model = find_or_create_model(clean["manufacturer"], clean["model"], clean["meters"])
    device = Device(
        manufacturer=model.manufacturer,
        model=model,
        **{key: clean[key] for key in ("serial", "asset_tag", "ip_address", "status", "customer_id", "site", "notes")},
    )
    db.session.add(device)
    db.session.flush()
    if device.customer_id is not None and device.status == "installed":
        db.session.add(
            Installation(device=device, customer_id=device.customer_id, site=device.site, start_date=clock.today())
        )
    return device


def update_device(device: Device, data: dict[str, Any]) -> Device:
    """Change the fields present in `data` (serial, asset tag, IP, status, customer, site, notes)."""
    check = Checker()
    clean: dict[str, Any] = {}
    if "serial" in data:
        serial = check.text("serial", data["serial"], 60, required=True)
        if serial:
            clean["serial"] = normalize_serial(serial)
            if _serial_taken(device.manufacturer_id, clean["serial"], except_id=device.id):
                check.fail(
                    "serial",
                    _(
                        "%(maker)s already has a device with serial %(serial)s.",
                        maker=device.manufacturer,
                        serial=clean["serial"],
                    ),
                )
    for key, length in (("asset_tag", 60), ("site", 200), ("notes", 10_000)):
        if key in data:
            clean[key] = check.text(key, data[key], length)
    if "ip_address" in data:
        clean["ip_address"] = _check_ip(check, data["ip_address"])
    if "status" in data:
        clean["status"] = check.choice("status", data["status"], DEVICE_STATUSES)
    if "customer_id" in data:
        customer = check_customer(check, "customer_id", data["customer_id"], required=False)
        clean["customer_id"] = customer.id if customer else None
        line = open_line(device)
        if line is not None and clean["customer_id"] != line.contract.customer_id:
            check.fail(
                "customer_id",
                _("The device is on contract %(number)s: remove it from the contract first.", number=line.contract),
            )
    check.raise_if_any()
    if "customer_id" in clean and clean["customer_id"] != device.customer_id:
        move_device(device, clean["customer_id"], clean.get("site", device.site), clock.today())
    for key, value in clean.items():
        setattr(device, key, value)
    return device


def move_device(device: Device, customer_id: int | None, site: str | None, on: dt.date) -> None:
    """Close the device's current installation and open one at `customer_id` (none: back to the warehouse)."""
    for installation in device.installations:
        if installation.end_date is None:
            installation.end_date = max(on, installation.start_date)
    if customer_id is not None:
        device.installations.append(Installation(customer_id=customer_id, site=site, start_date=on))
    device.customer_id = customer_id


def open_line(device: Device) -> ContractLine | None:
    """The contract line the device is on now, if any."""
    return db.session.scalar(
        sa.select(ContractLine).where(ContractLine.device_id == device.id, ContractLine.end_date.is_(None))
    )
