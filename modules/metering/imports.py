"""CSV import of readings, long (`serial, taken_at, meter, value`) or wide (`serial, taken_at, bw, color, ...`).

Every reading goes through `record_reading` like any other channel, in file order and in one transaction
(core.csv_import.Importer), so a reading sees the ones before it; all readings are written or none. The file's devices
are locked first, in id order, so two imports at once do not deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import sqlalchemy as sa
from flask_babel import format_decimal, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core.csv_files import Errors
from core.csv_import import Column, Importer, ImportResult, Problem, Row, Template, Written, header_problems
from core.db import db
from core.validation import ValidationError
from modules.metering.models import SUPPLY_COLOURS
from modules.metering.readings import record_reading
from modules.rentals.devices import normalize_serial
from modules.rentals.models import Device, Manufacturer, MeterType

LONG_COLUMNS = ("serial", "taken_at", "meter", "value")
TONER_COLUMNS = tuple(f"toner_{colour}" for colour in SUPPLY_COLOURS)
KEY_COLUMNS = ("serial", "taken_at", "manufacturer")
TONER_HELP = _l("Toner level in percent.")


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


class ReadingImporter(Importer):
    """Readings, one row per meter (rows with the same serial and time make one reading) or one row per device."""

    kind = "readings"
    title = _l("Readings")
    permission = "readings.edit"
    description = _l("Rows with the same serial and time make one reading.")
    columns = (
        Column("serial", required=True),
        Column("taken_at", _l("YYYY-MM-DD HH:MM in local time, or YYYY-MM-DD alone (noon)."), required=True),
        Column("manufacturer", _l("Add a manufacturer column when two makers share a serial.")),
        Column("meter", _l("One row per meter: the meter code.")),
        Column("value", _l("One row per meter: the counter.")),
        Column("bw", _l("One row per device: a column for each meter code (bw, color, scan, ...) with its counter.")),
        *(Column(name, TONER_HELP) for name in TONER_COLUMNS),
    )
    templates = (
        Template(
            "long",
            _l("one row per meter"),
            LONG_COLUMNS,
            (
                ("KY1234567", "2026-02-02 09:30", "bw", "11850"),
                ("KY1234567", "2026-02-02 09:30", "color", "2310"),
                ("W8A12345", "2026-02-03", "bw", "40210"),
            ),
            file_name="copydesk-readings-long.csv",
        ),
        Template(
            "wide",
            _l("one row per device"),
            ("serial", "taken_at", "bw", "color", "toner_black"),
            (("KY1234567", "2026-02-02 09:30", "11850", "2310", "40"), ("W8A12345", "2026-02-03", "40210", "", "")),
            file_name="copydesk-readings-wide.csv",
        ),
    )

    @classmethod
    def imported_message(cls, count: int) -> str:
        return ngettext(
            "%(count)s reading imported.", "%(count)s readings imported.", count, count=format_decimal(count)
        )

    @cached_property
    def meters(self) -> set[str]:
        return set(db.session.scalars(sa.select(MeterType.code)))

    def check_header(self, header: list[str]) -> list[Problem]:
        long = _is_long(header)
        required = LONG_COLUMNS if long else ("serial", "taken_at")
        known = set(KEY_COLUMNS) | (set(LONG_COLUMNS) if long else self.meters | set(TONER_COLUMNS))
        return header_problems(
            [name for name in required if name not in header], [name for name in header if name and name not in known]
        )

    def entries(self, header: list[str], rows: list[Row], errors: Errors) -> list[_Pending]:
        long = _is_long(header)
        readings: dict[tuple[str, ...], _Pending] = {}
        for row in rows:
            line, cells = row.line, row.cells
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
                    errors.append((line, "meter", _("This field is required.")))
                elif meter in pending.counters:
                    errors.append((line, "meter", _("The %(meter)s counter is given twice.", meter=meter)))
                else:
                    pending.counters[meter] = cells["value"]
                    pending.places[f"counters.{meter}"] = (line, "value")
                continue
            for column, value in cells.items():
                if column in self.meters and value:
                    pending.counters[column] = value
                    pending.places[f"counters.{column}"] = (line, column)
                elif column in TONER_COLUMNS and value:
                    colour = column.removeprefix("toner_")
                    pending.supplies[colour] = value
                    pending.places[f"supplies.{colour}"] = (line, column)
        entries = list(readings.values())
        _lock_devices(entries)
        return entries

    def write(self, entry: _Pending) -> Written:
        recorded = record_reading(
            _device(entry),
            entry.taken_at,
            entry.counters,
            entry.supplies,
            source="csv",
            entered_by=self.user_id,
        )
        held = recorded.reading.status == "pending_review"
        notes = [_("Held for review: %(reason)s", reason=recorded.reading.reason)] if held else []
        return Written(new=recorded.created, notes=(*notes, *recorded.warnings))

    def place(self, entry: _Pending, name: str, message: str) -> Problem:
        return (*entry.places.get(name, (entry.line, name)), message)


def template_csv(kind: str) -> str:
    """A CSV with the columns of `kind` (long or wide) and example rows."""
    return next(template for template in ReadingImporter.templates if template.name == kind).csv()


def import_readings(text: str, commit: bool, entered_by: int | None = None) -> ImportResult:
    """Check (and with `commit`, write) the readings in a CSV; nothing is written when any row has an error."""
    return ReadingImporter(user_id=entered_by).run(text, commit)


def _is_long(header: list[str]) -> bool:
    return "meter" in header or "value" in header


def _lock_devices(readings: list[_Pending]) -> None:
    """Lock every device the file names, in id order, before the first reading is written.

    record_reading locks its device (FOR UPDATE) as each reading comes, in file order: two imports naming the same
    devices in different orders would each hold one and wait for the other's, a deadlock PostgreSQL ends by failing
    one. Locked all at once and in one order, the second import waits for the first. SQLite has one writer anyway.
    """
    serials = {normalize_serial(reading.serial) for reading in readings if reading.serial}
    if serials and db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.select(Device.id).where(Device.serial.in_(serials)).order_by(Device.id).with_for_update())


def _device(pending: _Pending) -> int:
    """The device of the reading's serial (and manufacturer, when given); a field error naming the serial else."""
    if not pending.serial:
        raise ValidationError({"device_id": _("This field is required.")})
    query = sa.select(Device.id).where(Device.serial == normalize_serial(pending.serial))
    if pending.manufacturer:
        query = query.join(Device.manufacturer).where(sa.func.lower(Manufacturer.name) == pending.manufacturer.lower())
    matches = db.session.scalars(query).all()
    if len(matches) == 1:
        return matches[0]
    raise ValidationError(
        {
            "device_id": _("Several devices have serial %(serial)s: add a manufacturer column.", serial=pending.serial)
            if matches
            else _("No device has serial %(serial)s.", serial=pending.serial)
        }
    )
