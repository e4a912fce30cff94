"""CSV import of readings, long (`serial, taken_at, meter, value`) or wide (`serial, taken_at, bw, color, ...`).

Every reading goes through `services.record_reading` like any other channel, in file order and in one transaction,
so a reading sees the ones before it. Errors are reported by row and column; the transaction is rolled back when any
row fails or when only a preview was asked, and committed otherwise: all rows or none.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask_babel import gettext as _

from core.csv_files import read_rows
from core.db import db
from modules.metering import services
from modules.metering.models import SUPPLY_COLOURS
from modules.rentals.models import Device, Manufacturer, MeterType
from modules.rentals.services import normalize_serial

MAX_ROWS = 5000
LONG_COLUMNS = ("serial", "taken_at", "meter", "value")
TONER_COLUMNS = tuple(f"toner_{colour}" for colour in SUPPLY_COLOURS)
KEY_COLUMNS = ("serial", "taken_at", "manufacturer")
TEMPLATES = {
    "long": (
        LONG_COLUMNS,
        [
            ("KY1234567", "2026-02-02 09:30", "bw", "11850"),
            ("KY1234567", "2026-02-02 09:30", "color", "2310"),
            ("W8A12345", "2026-02-03", "bw", "40210"),
        ],
    ),
    "wide": (
        ("serial", "taken_at", "bw", "color", "toner_black"),
        [("KY1234567", "2026-02-02 09:30", "11850", "2310", "40"), ("W8A12345", "2026-02-03", "40210", "", "")],
    ),
}


@dataclass
class ReadingImport:
    """What an import found: rows read, readings written (0 unless committed), errors and notes by row and column."""

    rows: int = 0
    written: int = 0
    held: int = 0
    errors: list[tuple[int, str, str]] = field(default_factory=list)
    notes: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class _Pending:
    """One reading gathered from the file, with the row (and column) each of its values came from."""

    line: int
    serial: str
    manufacturer: str
    taken_at: str
    counters: dict[str, str] = field(default_factory=dict)
    supplies: dict[str, str] = field(default_factory=dict)
    places: dict[str, tuple[int, str]] = field(default_factory=dict)


def template_csv(kind: str) -> str:
    """A CSV with the columns of `kind` (long or wide) and example rows."""
    columns, rows = TEMPLATES[kind]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


def import_readings(text: str, commit: bool, entered_by: int | None = None) -> ReadingImport:
    """Check (and with `commit`, write) the readings in a CSV; nothing is written when any row has an error."""
    result = ReadingImport()
    readings = _gather(text, result)
    for pending in readings:
        device_id = _device(pending, result)
        if device_id is None:
            continue
        try:
            recorded = services.record_reading(
                device_id,
                pending.taken_at,
                pending.counters,
                pending.supplies,
                source="csv",
                entered_by=entered_by,
            )
        except services.MeteringError as error:
            for name, message in error.errors.items():
                result.errors.append((*pending.places.get(name, (pending.line, name)), message))
            continue
        if recorded.created:
            result.written += 1
        if recorded.reading.status == "pending_review":
            result.held += 1
            result.notes.append((pending.line, "", _("Held for review: %(reason)s", reason=recorded.reading.reason)))
        for warning in recorded.warnings:
            result.notes.append((pending.line, "", warning))
    if commit and result.ok:
        db.session.commit()
    else:
        db.session.rollback()
        result.written = 0
    return result


def _gather(text: str, result: ReadingImport) -> list[_Pending]:
    header, rows = read_rows(text, result.errors)
    long = "meter" in header or "value" in header
    required = LONG_COLUMNS if long else ("serial", "taken_at")
    missing = [name for name in required if name not in header]
    if missing:
        result.errors.append((1, ", ".join(missing), _("Required columns are missing.")))
    meters = set(db.session.scalars(sa.select(MeterType.code)))
    known = set(KEY_COLUMNS) | (set(LONG_COLUMNS) if long else meters | set(TONER_COLUMNS))
    unknown = [name for name in header if name and name not in known]
    if unknown:
        result.errors.append((1, ", ".join(unknown), _("Unknown columns (see the template).")))
    if result.errors:
        return []
    readings: dict[tuple[str, str, str], _Pending] = {}
    for line, cells in rows:
        if result.rows >= MAX_ROWS:
            result.errors.append((line, "", _("At most %(max)d rows per file.", max=MAX_ROWS)))
            break
        result.rows += 1
        key = (cells.get("manufacturer", "").lower(), normalize_serial(cells["serial"]), cells["taken_at"])
        pending = readings.get(key) if long else None
        if pending is None:
            pending = _Pending(line, cells["serial"], cells.get("manufacturer", ""), cells["taken_at"])
            pending.places = {
                "device_id": (line, "serial"),
                "taken_at": (line, "taken_at"),
                "counters": (line, "value" if long else "serial"),
            }
            readings[key if long else (*key, str(line))] = pending
        if long:
            meter = cells["meter"].lower()
            if not meter:
                result.errors.append((line, "meter", _("This field is required.")))
            elif meter in pending.counters:
                result.errors.append((line, "meter", _("The %(meter)s counter is given twice.", meter=meter)))
            else:
                pending.counters[meter] = cells["value"]
                pending.places[f"counters.{meter}"] = (line, "value")
            continue
        for column, value in cells.items():
            if column in meters and value:
                pending.counters[column] = value
                pending.places[f"counters.{column}"] = (line, column)
            elif column in TONER_COLUMNS and value:
                colour = column.removeprefix("toner_")
                pending.supplies[colour] = value
                pending.places[f"supplies.{colour}"] = (line, column)
    return list(readings.values())


def _device(pending: _Pending, result: ReadingImport) -> int | None:
    if not pending.serial:
        result.errors.append((pending.line, "serial", _("This field is required.")))
        return None
    query = sa.select(Device.id).where(Device.serial == normalize_serial(pending.serial))
    if pending.manufacturer:
        query = query.join(Device.manufacturer).where(sa.func.lower(Manufacturer.name) == pending.manufacturer.lower())
    matches = db.session.scalars(query).all()
    if len(matches) == 1:
        return matches[0]
    message = (
        _("Several devices have serial %(serial)s: add a manufacturer column.", serial=pending.serial)
        if matches
        else _("No device has serial %(serial)s.", serial=pending.serial)
    )
    result.errors.append((pending.line, "serial", message))
    return None
