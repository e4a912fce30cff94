"""CSV import of devices and contracts: every row checked as in the admin, errors by row and column, all or nothing.

Rows go through the same functions (devices.py, contracts.py) as the admin and the API, one after the other in one
transaction (core.csv_import.Importer), so a row sees the rows before it (a serial twice in the file is caught).
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core.csv_import import Column, Importer, ImportResult, Problem, Row, Template
from core.db import db
from core.models import Partner
from core.procurement import ORDER_KINDS
from core.validation import ValidationError
from modules.rentals.contracts import CONTRACT_TERMS, EINVOICE_TERMS, create_contract
from modules.rentals.devices import create_device, normalize_serial
from modules.rentals.models import DEVICE_STATUSES, Device
from modules.rentals.periods import FEE_TIMINGS, PERIOD_MONTHS

FIELD_COLUMNS = {"customer_id": "customer"}
CUSTOMER_HELP = _l("The customer's VAT number, fiscal code or exact name.")
DATE_HELP = _l("A date as YYYY-MM-DD.")


def _choices(values: tuple[Any, ...]) -> Any:
    return _l("Choose one of: %(choices)s", choices=", ".join(map(str, values)))


class _RentalsImporter(Importer):
    def place(self, entry: Row, name: str, message: str) -> Problem:
        top, _sep, rest = name.partition(".")
        return entry.line, FIELD_COLUMNS.get(top, top), f"{_describe(top, rest)}{message}"


class DeviceImporter(_RentalsImporter):
    """One device per row, created like in the admin (a new model with its meters); `customer` is where it stands."""

    kind = "devices"
    title = _l("Devices")
    permission = "devices.edit"
    columns = (
        Column("serial", required=True),
        Column("manufacturer", required=True),
        Column("model", required=True),
        Column("meters", _l("For a new model: the meter codes, separated by | or spaces."), example="bw|color|scan"),
        Column("asset_tag"),
        Column("ip_address"),
        Column("status", _choices(DEVICE_STATUSES)),
        Column("customer", CUSTOMER_HELP),
        Column("site"),
        Column("notes"),
    )
    templates = (
        Template(
            "devices",
            _l("Download the template"),
            tuple(column.name for column in columns),
            (
                (
                    *("KY1234567", "Kyocera", "ECOSYS P2040dn", "bw", "A-001", "192.168.1.50", "installed"),
                    *("12345670157", "Reception", ""),
                ),
                ("W8A12345", "Canon", "imageRUNNER ADVANCE DX C3826i", "bw|color|scan", "", "", "in_stock", "", "", ""),
            ),
        ),
    )

    def write(self, entry: Row) -> None:
        data = dict(entry.cells)
        customer = _customer_id(data.pop("customer", ""))
        if isinstance(customer, str):
            raise ValidationError(_unknown_customer(customer))
        create_device({**data, "customer_id": customer})


CONTRACT_HELP = {
    "start_date": DATE_HELP,
    "end_date": DATE_HELP,
    "period_months": _choices(PERIOD_MONTHS),
    "fee_timing": _choices(FEE_TIMINGS),
    "vat_code": _l(
        "A VAT code (22, N2.1, ...); empty: the code of the VAT rate, or the one proposed for the customer."
    ),
    "cig": _l("Public administration: the tender's CIG, 10 letters or digits."),
    "cup": _l("Public administration: the project's CUP, 15 letters or digits."),
    "order_kind": _choices(ORDER_KINDS),
    "order_reference": _l("The customer's own contract or order number (empty: the contract number)."),
    "order_date": DATE_HELP,
}


class ContractImporter(_RentalsImporter):
    """One contract per row, with its allowances and bands and its devices with their installation counters."""

    kind = "contracts"
    title = _l("Contracts")
    permission = "contracts.edit"
    columns = (
        Column("customer", CUSTOMER_HELP, required=True),
        *(Column(name, CONTRACT_HELP.get(name, ""), required=name == "start_date") for name in CONTRACT_TERMS),
        Column(
            "allowances",
            _l(
                'One per meter, separated by ";": meter, included pages, "pooled" when shared, then the bands as '
                "UP_TO@PRICE and a last PRICE."
            ),
            example="bw 9000 pooled 5000@0.010 0.008; color 200 0.09",
        ),
        Column(
            "devices",
            _l('Each device\'s serial and installation counters, separated by ";".'),
            example="KY1234567 bw=10000 color=2000; W8A12345 bw=500",
        ),
        *(Column(name, CONTRACT_HELP.get(name, "")) for name in EINVOICE_TERMS),
    )
    templates = (
        Template(
            "contracts",
            _l("Download the template"),
            tuple(column.name for column in columns),
            (
                (
                    *("12345670157", "2026-01-01", "", "1", "50.00", "advance", "10", "", "0", "no", "22", "yes"),
                    *("12", "90", "Canone mensile", "yes", "5"),
                    *("bw 1000 0.012; color 200 0.09", "KY1234567 bw=10000"),
                    *("22", "", "", "contract", "", ""),
                ),
            ),
        ),
    )

    def write(self, entry: Row) -> None:
        data = dict(entry.cells)
        customer = _customer_id(data.pop("customer", ""))
        errors: dict[str, str] = {}
        try:
            if isinstance(customer, str):
                errors |= _unknown_customer(customer)
            data["allowances"] = _parse_allowances(data.get("allowances", ""), errors)
            data["devices"] = _parse_devices(data.get("devices", ""), errors)
            # Checked even when a cell could not be read, so the row's other errors show too; a row with any error
            # fails the import, and the rollback at the end removes what this call may have written.
            create_contract({**data, "customer_id": None if isinstance(customer, str) else customer})
            if errors:
                raise ValidationError(errors)
        except ValidationError as error:
            merged = errors | error.errors
            if "customer" in errors:
                merged.pop("customer_id", None)
            raise ValidationError(merged) from None


IMPORTERS = {importer.kind: importer for importer in (DeviceImporter, ContractImporter)}
DEVICE_COLUMNS = DeviceImporter.templates[0].header
CONTRACT_COLUMNS = ContractImporter.templates[0].header


def template_csv(kind: str) -> str:
    """A CSV with the columns of `kind` and example rows, for dealers to fill in."""
    return IMPORTERS[kind].templates[0].csv()


def import_devices(text: str, commit: bool) -> ImportResult:
    """Check (and with `commit`, write) the devices in a CSV; nothing is written when any row has an error."""
    return DeviceImporter().run(text, commit)


def import_contracts(text: str, commit: bool) -> ImportResult:
    """Check (and with `commit`, write) the contracts in a CSV, one per row; nothing is written when any row fails."""
    return ContractImporter().run(text, commit)


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
        matches = db.session.scalars(sa.select(Device.id).where(Device.serial == normalize_serial(serial))).all()
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
