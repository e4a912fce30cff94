"""The device catalogue: manufacturers, models and their meter types."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from core.db import db
from core.validation import Checker
from modules.rentals.models import DeviceModel, Manufacturer, MeterType

METER_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,19}$")
# Labels of the usual meters; another code gets its code as label until someone edits it in the catalogue.
KNOWN_METERS = {
    "bw": ("Black and white", "Bianco e nero", "Blanco y negro"),
    "color": ("Colour", "Colore", "Color"),
    "scan": ("Scans", "Scansioni", "Escaneos"),
    "fax": ("Fax", "Fax", "Fax"),
    "a3_bw": ("A3 black and white", "A3 bianco e nero", "A3 blanco y negro"),
    "a3_color": ("A3 colour", "A3 colore", "A3 color"),
}


def meter_type(code: str) -> MeterType:
    """The meter type `code`, created with its known labels (or the code as label) when it is new."""
    meter = db.session.get(MeterType, code)
    if meter is None:
        en, it, es = KNOWN_METERS.get(code, (code, code, code))
        meter = MeterType(code=code, label_en=en, label_it=it, label_es=es)
        db.session.add(meter)
    return meter


def check_meter_codes(check: Checker, field: str, codes: Any) -> list[str]:
    """Meter codes from a list or a `bw|color` / `bw color` text; each must look like a code."""
    if isinstance(codes, str):
        codes = [code for code in re.split(r"[|,;\s]+", codes.strip()) if code]
    if not isinstance(codes, list | tuple) or not codes:
        check.fail(field, _("At least one meter is required, e.g. bw."))
        return []
    clean = []
    for code in codes:
        code = str(code).strip().lower()
        if not METER_CODE_RE.match(code):
            check.fail(field, _("%(code)s is not a meter code (lower-case letters, digits, _).", code=code[:40]))
            return []
        if code not in clean:
            clean.append(code)
    return clean


def find_manufacturer(name: str) -> Manufacturer | None:
    return db.session.scalar(sa.select(Manufacturer).where(sa.func.lower(Manufacturer.name) == name.lower()))


def find_model(manufacturer: Manufacturer | None, name: str) -> DeviceModel | None:
    if manufacturer is None or manufacturer.id is None:
        return None
    return db.session.scalar(
        sa.select(DeviceModel).where(
            DeviceModel.manufacturer_id == manufacturer.id, sa.func.lower(DeviceModel.name) == name.lower()
        )
    )


def find_or_create_model(manufacturer_name: str, model_name: str, meters: list[str]) -> DeviceModel:
    """The catalogue entry for make and model, created with `meters` when it does not exist yet."""
    manufacturer = find_manufacturer(manufacturer_name)
    if manufacturer is None:
        manufacturer = Manufacturer(name=manufacturer_name)
        db.session.add(manufacturer)
    model = find_model(manufacturer, model_name)
    if model is None:
        model = DeviceModel(
            manufacturer=manufacturer,
            name=model_name,
            meters=[meter_type(code) for code in meters],
            color=any("color" in code for code in meters),
            paper_format="A3" if any(code.startswith("a3") for code in meters) else "A4",
        )
        db.session.add(model)
    return model
