"""CSV import of devices and contracts: every row checked by the services, errors by row and column, all or nothing.

Rows go through the same service functions as the admin and the API, one after the other in one transaction, so a
row sees the rows before it (a serial twice in the file is caught). A row with errors writes nothing; at the end the
whole transaction is rolled back when any row failed or when only a preview was asked, and committed otherwise.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from core.csv_files import read_rows
from core.db import db
from core.models import Partner
from modules.rentals import services
from modules.rentals.models import Device

MAX_ROWS = 5000
DEVICE_COLUMNS = ("serial", "manufacturer", "model", "meters", "asset_tag", "ip_address", "status", "customer", "site")
DEVICE_OPTIONAL = ("notes",)
DEVICE_REQUIRED = ("serial", "manufacturer", "model")
CONTRACT_COLUMNS = (
    "customer",
    *services.CONTRACT_TERMS,
    "allowances",
    "devices",
)
CONTRACT_REQUIRED = ("customer", "start_date")
TEMPLATES = {
    "devices": (
        DEVICE_COLUMNS + DEVICE_OPTIONAL,
        [
            (
                *("KY1234567", "Kyocera", "ECOSYS P2040dn", "bw", "A-001", "192.168.1.50", "installed"),
                *("12345670157", "Reception", ""),
            ),
            ("W8A12345", "Canon", "imageRUNNER ADVANCE DX C3826i", "bw|color|scan", "", "", "in_stock", "", "", ""),
        ],
    ),
    "contracts": (
        CONTRACT_COLUMNS,
        [
            (
                "12345670157",
                "2026-01-01",
                "",
                "1",
                "50.00",
                "advance",
                "10",
                "",
                "0",
                "no",
                "22",
                "yes",
                "12",
                "90",
                "Canone mensile",
                "bw 1000 0.012; color 200 0.09",
                "KY1234567 bw=10000",
            ),
        ],
    ),
}
FIELD_COLUMNS = {"customer_id": "customer"}


@dataclass
class ImportResult:
    """What an import found: rows read, rows written (0 unless committed) and errors as (row, column, message)."""

    rows: int = 0
    written: int = 0
    errors: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def template_csv(kind: str) -> str:
    """A CSV with the columns of `kind` and example rows, for dealers to fill in."""
    columns, rows = TEMPLATES[kind]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


def _read(text: str, known: tuple[str, ...], required: tuple[str, ...], result: ImportResult) -> list[dict[str, str]]:
    header, cells = read_rows(text, result.errors)
    missing = [name for name in required if name not in header]
    unknown = [name for name in header if name and name not in known]
    if missing:
        result.errors.append((1, ", ".join(missing), _("Required columns are missing.")))
    if unknown:
        result.errors.append((1, ", ".join(unknown), _("Unknown columns (see the template).")))
    if result.errors:
        return []
    rows = []
    for line, row in cells:
        if len(rows) >= MAX_ROWS:
            result.errors.append((line, "", _("At most %(max)d rows per file.", max=MAX_ROWS)))
            break
        rows.append({"_line": line, **row})
    return rows


def _customer_id(value: str) -> int | str | None:
    """A customer by VAT number, fiscal code or exact name; the cell itself when none matches (the service says so)."""
    if not value:
        return None
    compact = re.sub(r"\s+", "", value).upper().removeprefix("IT")
    partner = db.session.scalar(
        sa.select(Partner.id)
        .where(Partner.is_customer.is_(True))
        .where(
            sa.or_(
                Partner.vat_number == compact,
                Partner.fiscal_code == compact,
                sa.func.lower(Partner.name) == value.lower(),
            )
        )
        .order_by(Partner.id)
    )
    return partner if partner is not None else value


def _unknown_customer(value: str) -> dict[str, str]:
    return {"customer": _("No customer has the VAT number, fiscal code or name %(value)s.", value=value)}


def _finish(result: ImportResult, commit: bool, created: int) -> ImportResult:
    if commit and result.ok:
        db.session.commit()
        result.written = created
    else:
        db.session.rollback()
    return result


def import_devices(text: str, commit: bool) -> ImportResult:
    """Check (and with `commit`, write) the devices in a CSV; nothing is written when any row has an error."""
    result = ImportResult()
    rows = _read(text, DEVICE_COLUMNS + DEVICE_OPTIONAL, DEVICE_REQUIRED, result)
    result.rows = len(rows)
    created = 0
    for row in rows:
        data = dict(row)
        customer = _customer_id(data.pop("customer", ""))
        try:
            if isinstance(customer, str):
                raise services.RentalsError(_unknown_customer(customer))
            services.create_device({**data, "customer_id": customer})
            created += 1
        except services.RentalsError as error:
            _add_errors(result, row["_line"], error)
    return _finish(result, commit, created)


def import_contracts(text: str, commit: bool) -> ImportResult:
    """Check (and with `commit`, write) the contracts in a CSV, one per row; nothing is written when any row fails."""
    result = ImportResult()
    rows = _read(text, CONTRACT_COLUMNS, CONTRACT_REQUIRED, result)
    result.rows = len(rows)
    created = 0
    for row in rows:
        data = dict(row)
        customer = _customer_id(data.pop("customer", ""))
        errors: dict[str, str] = {}
        try:
            if isinstance(customer, str):
                errors |= _unknown_customer(customer)
            data["allowances"] = _parse_allowances(data.get("allowances", ""), errors)
            data["devices"] = _parse_devices(data.get("devices", ""), errors)
            # Checked even when a cell could not be read, so the row's other errors show too; a row with any error
            # fails the import, and the rollback at the end removes what this call may have written.
            services.create_contract({**data, "customer_id": None if isinstance(customer, str) else customer})
            if errors:
                raise services.RentalsError(errors)
            created += 1
        except services.RentalsError as error:
            merged = errors | error.errors
            if "customer" in errors:
                merged.pop("customer_id", None)
            _add_errors(result, row["_line"], services.RentalsError(merged))
    return _finish(result, commit, created)


def _add_errors(result: ImportResult, line: int, error: services.RentalsError) -> None:
    for path, message in error.errors.items():
        top, _sep, rest = path.partition(".")
        column = FIELD_COLUMNS.get(top, top)
        result.errors.append((line, column, f"{_describe(top, rest)}{message}"))


def _describe(top: str, rest: str) -> str:
    """`allowances.0.bands.1.price` becomes "allowance 1, band 2, price: " so the user finds the spot in the cell."""
    if not rest:
        return ""
    parts = rest.split(".")
    words = []
    names = {"allowances": _("allowance"), "devices": _("device"), "bands": _("band")}
    previous = top
    for part in parts:
        if part.isdigit():
            words.append(f"{names.get(previous, previous)} {int(part) + 1}")
        elif part not in names:
            words.append(part)
        previous = part
    return ", ".join(words) + ": "


def _parse_allowances(cell: str, errors: dict[str, str]) -> list[dict[str, Any]]:
    """`bw 1000 pooled 5000@0.010 0.008; color 200 0.09`: meter, included pages, `pooled`, then the bands."""
    allowances = []
    for i, part in enumerate(p for p in cell.split(";") if p.strip()):
        tokens = part.split()
        if len(tokens) < 2:
            errors[f"allowances.{i}"] = _("Write: meter, included pages, optionally pooled, then the prices.")
            continue
        meter, included, *rest = tokens
        pooled = bool(rest) and rest[0].lower() in ("pooled", "pool", "condiviso")
        bands = []
        for token in rest[1:] if pooled else rest:
            up_to, _sep, price = token.rpartition("@")
            bands.append({"up_to": up_to or None, "price": price})
        allowances.append({"meter": meter, "included": included, "pooled": pooled, "bands": bands})
    return allowances


def _parse_devices(cell: str, errors: dict[str, str]) -> list[dict[str, Any]]:
    """`KY1234567 bw=10000 color=2000; W8A12345 bw=500`: each device by serial with its counters."""
    devices = []
    for i, part in enumerate(p for p in cell.split(";") if p.strip()):
        serial, *counters = part.split()
        matches = db.session.scalars(
            sa.select(Device.id).where(Device.serial == services.normalize_serial(serial))
        ).all()
        if len(matches) != 1:
            errors[f"devices.{i}"] = (
                _("Several devices have serial %(serial)s.", serial=serial)
                if matches
                else _("No device has serial %(serial)s.", serial=serial)
            )
            continue
        values: dict[str, str] = {}
        for counter in counters:
            meter, _sep, value = counter.partition("=")
            values[meter.lower()] = value
        devices.append({"device_id": matches[0], "counters": values})
    return devices
