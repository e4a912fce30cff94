"""Rentals domain logic: catalogue, devices, contracts and their lines, with the validation every entry point shares.

Admin forms, the API and the CSV import all call these functions, so a bad value gets the same message everywhere.
Errors are collected per field (dotted paths such as `allowances.0.bands.1.price`) and raised together as one
`core.validation.ValidationError`; nothing is written when any field is wrong. Scalar values may arrive as strings
(CSV cells, form text) and are converted here, with the same messages.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from core import clock
from core.db import db
from core.models import Partner
from core.sequences import format_number, next_number
from core.validation import MAX_COUNTER, ValidationError, fail
from core.validation import Checker as FieldChecker
from modules.rentals import periods as rules
from modules.rentals.models import (
    DEVICE_STATUSES,
    Allowance,
    Contract,
    ContractLine,
    Device,
    DeviceModel,
    Installation,
    LineCounter,
    Manufacturer,
    MeterType,
    PriceBand,
)

CONTRACT_SEQUENCE = "contract"
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
MAX_PAGES = 2**31 - 1
MAX_PERIODS = 1200
# Dates outside these years are typing mistakes; the bound also keeps period arithmetic far from year 9999.
MIN_YEAR, MAX_YEAR = 1990, 2199
MONEY_LIMIT = Decimal(10) ** 10
PRICE_LIMIT = Decimal(10) ** 6
CONTRACT_TERMS = (
    "start_date",
    "end_date",
    "period_months",
    "fee",
    "fee_timing",
    "grace_days",
    "minimum_charge",
    "escalation_percent",
    "estimate_missing",
    "vat_rate",
    "auto_renew",
    "renewal_months",
    "notice_days",
    "invoice_notes",
)
STATE_CHANGES = {
    "draft": {"active"},
    "active": {"suspended", "ended"},
    "suspended": {"active", "ended"},
    "ended": set(),
}


# The name the API and the CSV import catch: core's ValidationError itself, so every module's errors are caught alike.
RentalsError = ValidationError


class Checker(FieldChecker):
    """Core's checker with the conversions rentals' forms, API and CSV cells need, each with the same messages."""

    def text(self, field: str, value: Any, max_length: int, required: bool = False) -> str | None:
        text = "" if value is None else str(value).strip()
        if not text:
            if required:
                self.fail(field, _("This field is required."))
            return None
        if len(text) > max_length or "\x00" in text:
            self.fail(field, _("At most %(max)d characters, without NUL characters.", max=max_length))
            return None
        return text

    def integer(self, field: str, value: Any, minimum: int, maximum: int, required: bool = True) -> int | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.fail(field, _("This field is required."))
            return None
        if isinstance(value, bool | float):
            self.fail(field, _("Not a whole number: %(value)s", value=value))
            return None
        if isinstance(value, str) and not re.fullmatch(r"\s*[+-]?\d{1,20}\s*", value):
            self.fail(field, _("Not a whole number: %(value)s", value=value[:40]))
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(field, _("Not a whole number: %(value)s", value=str(value)[:40]))
            return None
        if not minimum <= number <= maximum:
            self.fail(field, _("Must be between %(min)d and %(max)d.", min=minimum, max=maximum))
            return None
        return number

    def decimal(
        self, field: str, value: Any, places: int, limit: Decimal, required: bool = True, maximum: Decimal | None = None
    ) -> Decimal | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.fail(field, _("This field is required."))
            return None
        if isinstance(value, bool | float):
            self.fail(field, _("Not a number: %(value)s", value=value))
            return None
        try:
            number = Decimal(value.strip().replace(",", ".")) if isinstance(value, str) else Decimal(value)
        except (InvalidOperation, ValueError, TypeError):
            self.fail(field, _("Not a number: %(value)s", value=value))
            return None
        if not number.is_finite():
            self.fail(field, _("Not a number: %(value)s", value=value))
        elif number < 0:
            self.fail(field, _("Must not be negative."))
        elif number >= (limit if maximum is None else maximum + Decimal("1e-9")):
            self.fail(field, _("Too large: at most %(max)s.", max=maximum if maximum is not None else limit))
        elif number != number.quantize(Decimal(1).scaleb(-places)):
            self.fail(field, _("At most %(places)d decimal places.", places=places))
        else:
            return number.quantize(Decimal(1).scaleb(-places))
        return None

    def date(self, field: str, value: Any, required: bool = True) -> dt.date | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.fail(field, _("This field is required."))
            return None
        if isinstance(value, dt.datetime):
            value = value.date()
        if not isinstance(value, dt.date):
            try:
                value = dt.date.fromisoformat(str(value).strip())
            except ValueError:
                self.fail(field, _("Not a date (YYYY-MM-DD): %(value)s", value=str(value)[:40]))
                return None
        if not MIN_YEAR <= value.year <= MAX_YEAR:
            self.fail(field, _("The year must be between %(min)d and %(max)d.", min=MIN_YEAR, max=MAX_YEAR))
            return None
        return value

    def boolean(self, field: str, value: Any, default: bool = False) -> bool:
        if value is None or (isinstance(value, str) and not value.strip()):
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "y", "si", "sì", "x"):
            return True
        if text in ("0", "false", "no", "n"):
            return False
        self.fail(field, _("Not yes or no: %(value)s", value=value))
        return default

    def choice(self, field: str, value: Any, choices: Iterable[Any], required: bool = True) -> Any:
        choices = tuple(choices)
        if isinstance(value, bool):
            value = str(value)
        if value is None or value == "":
            if required:
                self.fail(field, _("This field is required."))
            return None
        for choice in choices:
            if value == choice or str(value).strip() == str(choice):
                return choice
        self.fail(field, _("Choose one of: %(choices)s", choices=", ".join(str(c) for c in choices)))
        return None


# Catalogue


def normalize_serial(serial: str) -> str:
    """Serial numbers are compared without spaces and in capitals, as printed on the label."""
    return re.sub(r"\s+", "", serial).upper()


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


# Devices


def _check_customer(check: Checker, field: str, customer_id: Any, required: bool) -> Partner | None:
    number = check.integer(field, customer_id, 1, MAX_PAGES, required=required)
    if number is None:
        return None
    customer = db.session.get(Partner, number)
    if customer is None or not customer.is_customer:
        check.fail(field, _("There is no customer with id %(id)s.", id=number))
        return None
    return customer


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
    customer = _check_customer(check, "customer_id", data.get("customer_id"), required=False)
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
        customer = _check_customer(check, "customer_id", data["customer_id"], required=False)
        clean["customer_id"] = customer.id if customer else None
        line = open_line(device)
        if line is not None and clean["customer_id"] != line.contract.customer_id:
            check.fail(
                "customer_id",
                _("The device is on contract %(number)s: remove it from the contract first.", number=line.contract),
            )
    check.raise_if_any()
    if "customer_id" in clean and clean["customer_id"] != device.customer_id:
        _move_device(device, clean["customer_id"], clean.get("site", device.site), clock.today())
    for key, value in clean.items():
        setattr(device, key, value)
    return device


def _move_device(device: Device, customer_id: int | None, site: str | None, on: dt.date) -> None:
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


# Contracts


def _check_terms(check: Checker, data: dict[str, Any], contract: Contract | None) -> dict[str, Any]:
    """Convert and check the contract terms present in `data` (all of them for a new contract)."""
    new = contract is None
    clean: dict[str, Any] = {}

    def given(key: str) -> bool:
        return new or key in data

    if given("start_date"):
        clean["start_date"] = check.date("start_date", data.get("start_date"))
    if given("end_date"):
        clean["end_date"] = check.date("end_date", data.get("end_date"), required=False)
    if given("period_months"):
        clean["period_months"] = check.choice(
            "period_months", _as_int(data.get("period_months", 1)), rules.PERIOD_MONTHS
        )
    if given("fee"):
        clean["fee"] = check.decimal("fee", _default(data.get("fee"), "0"), 2, MONEY_LIMIT)
    if given("fee_timing"):
        clean["fee_timing"] = check.choice("fee_timing", data.get("fee_timing") or "advance", rules.FEE_TIMINGS)
    if given("grace_days"):
        clean["grace_days"] = check.integer("grace_days", _default(data.get("grace_days"), 10), 0, 365)
    if given("minimum_charge"):
        clean["minimum_charge"] = check.decimal("minimum_charge", data.get("minimum_charge"), 2, MONEY_LIMIT, False)
    if given("escalation_percent"):
        value = _default(data.get("escalation_percent"), "0")
        clean["escalation_percent"] = check.decimal("escalation_percent", value, 3, Decimal(100), maximum=Decimal(100))
    if given("estimate_missing"):
        clean["estimate_missing"] = check.boolean("estimate_missing", data.get("estimate_missing"))
    if given("vat_rate"):
        value = _default(data.get("vat_rate"), "22")
        clean["vat_rate"] = check.decimal("vat_rate", value, 2, Decimal(100), maximum=Decimal(100))
    if given("auto_renew"):
        clean["auto_renew"] = check.boolean("auto_renew", data.get("auto_renew"))
    if given("renewal_months"):
        clean["renewal_months"] = check.integer("renewal_months", _default(data.get("renewal_months"), 12), 1, 120)
    if given("notice_days"):
        clean["notice_days"] = check.integer("notice_days", _default(data.get("notice_days"), 90), 0, 3650)
    if given("invoice_notes"):
        clean["invoice_notes"] = check.text("invoice_notes", data.get("invoice_notes"), 2000)
    start = clean.get("start_date", contract.start_date if contract else None)
    end = clean.get("end_date", contract.end_date if contract else None)
    if start and end and end < start:
        check.fail("end_date", _("The end date is before the start date."))
    if contract is not None and start:
        for line in contract.lines:
            if line.start_date < start:
                check.fail("start_date", _("Device %(serial)s joined before this date.", serial=line.device.serial))
                break
    if contract is not None and end:
        for line in contract.lines:
            if (line.end_date or line.start_date) > end:
                check.fail(
                    "end_date", _("Device %(serial)s is on the contract after this date.", serial=line.device.serial)
                )
                break
    return clean


def _as_int(value: Any) -> Any:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _default(value: Any, default: Any) -> Any:
    return default if value is None or (isinstance(value, str) and not value.strip()) else value


def _check_allowances(check: Checker, allowances: Any) -> list[dict[str, Any]]:
    if allowances is None:
        return []
    if not isinstance(allowances, list | tuple):
        check.fail("allowances", _("Not a list of allowances."))
        return []
    clean = []
    seen: set[str] = set()
    for i, allowance in enumerate(allowances):
        prefix = f"allowances.{i}"
        if not isinstance(allowance, dict):
            check.fail(prefix, _("Not an allowance."))
            continue
        meter = check.text(f"{prefix}.meter", allowance.get("meter"), 20, required=True)
        if meter is not None:
            meter = meter.lower()
            if meter not in KNOWN_METERS and db.session.get(MeterType, meter) is None:
                check.fail(f"{prefix}.meter", _("%(code)s is not a meter of any device model.", code=meter))
            elif meter in seen:
                check.fail(f"{prefix}.meter", _("Meter %(code)s has two allowances.", code=meter))
            seen.add(meter)
        included = check.integer(f"{prefix}.included", _default(allowance.get("included"), 0), 0, MAX_PAGES)
        pooled = check.boolean(f"{prefix}.pooled", allowance.get("pooled"))
        bands = _check_bands(check, f"{prefix}.bands", allowance.get("bands"))
        clean.append({"meter": meter, "included": included, "pooled": pooled, "bands": bands})
    return clean


def _check_bands(check: Checker, prefix: str, bands: Any) -> list[tuple[int | None, Decimal]]:
    if not isinstance(bands, list | tuple) or not bands:
        check.fail(prefix, _("At least one price band is required (a single price is one band with no upper bound)."))
        return []
    clean: list[tuple[int | None, Decimal]] = []
    previous = 0
    ok = True
    for j, band in enumerate(bands):
        field = f"{prefix}.{j}"
        if not isinstance(band, dict):
            check.fail(field, _("Not a price band."))
            ok = False
            continue
        up_to = check.integer(f"{field}.up_to", band.get("up_to"), 1, MAX_COUNTER, required=False)
        price = check.decimal(f"{field}.price", band.get("price"), 6, PRICE_LIMIT)
        raw_up_to = band.get("up_to")
        if up_to is None and raw_up_to not in (None, ""):
            ok = False
            continue
        if up_to is None and j != len(bands) - 1:
            check.fail(f"{field}.up_to", _("Only the last band may have no upper bound."))
            ok = False
        elif up_to is not None and up_to <= previous:
            check.fail(
                f"{field}.up_to",
                _(
                    "The upper bounds must be ascending: %(value)s is not above %(previous)s.",
                    value=up_to,
                    previous=previous,
                ),
            )
            ok = False
        elif up_to is not None:
            previous = up_to
        if price is None:
            ok = False
        clean.append((up_to, price))
    if ok and clean and clean[-1][0] is not None:
        check.fail(prefix, _("The last band must have no upper bound, so every overage page has a price."))
    if ok:
        try:
            rules.validate_bands(clean)
        except ValueError as exc:
            check.fail(prefix, str(exc))
    return clean


def _write_allowances(contract: Contract, allowances: list[dict[str, Any]]) -> None:
    contract.allowances.clear()
    db.session.flush()
    for allowance in allowances:
        meter_type(allowance["meter"])
        contract.allowances.append(
            Allowance(
                meter=allowance["meter"],
                included=allowance["included"],
                pooled=allowance["pooled"],
                bands=[
                    PriceBand(position=position, up_to=up_to, price=price)
                    for position, (up_to, price) in enumerate(allowance["bands"])
                ],
            )
        )


def create_contract(data: dict[str, Any]) -> Contract:
    """A new contract with its allowances and devices; `active` when it has a device, else `draft`."""
    check = Checker()
    customer = _check_customer(check, "customer_id", data.get("customer_id"), required=True)
    terms = _check_terms(check, data, None)
    allowances = _check_allowances(check, data.get("allowances"))
    devices = data.get("devices") or []
    if not isinstance(devices, list | tuple):
        check.fail("devices", _("Not a list of devices."))
        devices = []
    # Devices are checked against the terms even when those have errors, so every problem is reported at once.
    probe = Contract(customer_id=customer.id if customer else None, state="draft", **_probe_terms(terms))
    seen: set[int] = set()
    planned = []
    for i, entry in enumerate(devices):
        prefix = f"devices.{i}"
        if not isinstance(entry, dict):
            check.fail(prefix, _("Not a device entry."))
            continue
        start = entry.get("start_date") or terms.get("start_date")
        planned.append(_check_join(check, prefix, probe, entry.get("device_id"), start, entry.get("counters"), seen))
    check.raise_if_any()
    year = clock.today().year
    contract = Contract(
        number=format_number(next_number(CONTRACT_SEQUENCE, year), year),
        customer_id=customer.id,
        state="draft",
        **terms,
    )
    db.session.add(contract)
    _write_allowances(contract, allowances)
    for device, start, counters in planned:
        _join(contract, device, start, counters)
    db.session.flush()
    return contract


def _probe_terms(terms: dict[str, Any]) -> dict[str, Any]:
    return {key: terms.get(key) for key in ("start_date", "end_date")}


def update_contract(contract: Contract, data: dict[str, Any]) -> Contract:
    """Change the terms present in `data`; `allowances`, when present, replace the contract's allowances."""
    check = Checker()
    clean: dict[str, Any] = {}
    if "customer_id" in data:
        customer = _check_customer(check, "customer_id", data["customer_id"], required=True)
        if customer and customer.id != contract.customer_id and contract.lines:
            check.fail("customer_id", _("The contract has devices: its customer cannot change."))
        clean["customer_id"] = customer.id if customer else None
    clean.update(_check_terms(check, data, contract))
    allowances = _check_allowances(check, data["allowances"]) if "allowances" in data else None
    if "allowances" in data and data["allowances"] is None:
        check.fail("allowances", _("Not a list of allowances."))
    if "state" in data and data["state"] != contract.state:
        _check_state_change(check, contract, data["state"], clean.get("end_date", contract.end_date))
    check.raise_if_any()
    for key, value in clean.items():
        setattr(contract, key, value)
    if allowances is not None:
        _write_allowances(contract, allowances)
    if "state" in data:
        contract.state = data["state"]
    db.session.flush()
    return contract


def _check_state_change(check: Checker, contract: Contract, state: Any, end_date: dt.date | None) -> None:
    if state not in STATE_CHANGES:
        check.fail("state", _("Choose one of: %(choices)s", choices=", ".join(STATE_CHANGES)))
    elif state not in STATE_CHANGES[contract.state]:
        check.fail("state", _("A contract cannot go from %(old)s to %(new)s.", old=contract.state, new=state))
    elif state == "active" and not contract.open_lines:
        check.fail("state", _("Add at least one device before activating the contract."))
    elif state == "ended" and contract.open_lines:
        check.fail("state", _("Remove the devices with their final counters before ending the contract."))
    elif state == "ended" and end_date is None:
        check.fail("end_date", _("An ended contract needs its end date."))


def _check_counters(
    check: Checker, field: str, counters: Any, meters: list[str], model: DeviceModel
) -> dict[str, int] | None:
    if not isinstance(counters, dict):
        check.fail(field, _("The counters are required, one per meter: %(meters)s.", meters=", ".join(meters)))
        return None
    clean = {}
    for meter, value in counters.items():
        if meter not in meters:
            check.fail(
                f"{field}.{meter}"[:200],
                _(
                    "%(model)s has no %(meter)s meter (it has %(meters)s).",
                    model=model,
                    meter=str(meter)[:40],
                    meters=", ".join(meters),
                ),
            )
            continue
        number = check.counter(f"{field}.{meter}", value, meter)
        if number is not None:
            clean[meter] = number
    for meter in meters:
        if meter not in counters:
            check.fail(f"{field}.{meter}", _("The %(meter)s counter is missing.", meter=meter))
    return clean if len(clean) == len(meters) else None


def _field(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_join(
    check: Checker,
    prefix: str,
    contract: Contract,
    device_id: Any,
    start: Any,
    counters: Any,
    seen: set[int],
    date_field: str | None = None,
) -> tuple[Device, dt.date, dict[str, int]]:
    device_field = _field(prefix, "device_id")
    date_field = date_field or _field(prefix, "start_date")
    number = check.integer(device_field, device_id, 1, MAX_PAGES)
    device = db.session.get(Device, number) if number is not None else None
    if number is not None and device is None:
        check.fail(device_field, _("There is no device with id %(id)s.", id=number))
    start_date = check.date(date_field, start)
    if contract.state == "ended":
        check.fail(device_field, _("The contract has ended."))
    if start_date and contract.start_date and start_date < contract.start_date:
        check.fail(date_field, _("The device cannot join before the contract starts."))
    if start_date and contract.end_date and start_date > contract.end_date:
        check.fail(date_field, _("The device cannot join after the contract ends."))
    clean_counters = None
    if device is not None:
        if device.id in seen:
            check.fail(device_field, _("The device is listed twice."))
        seen.add(device.id)
        current = open_line(device)
        if current is not None:
            check.fail(
                device_field,
                _(
                    "Device %(serial)s is already on contract %(number)s.",
                    serial=device.serial,
                    number=current.contract.number,
                ),
            )
        elif start_date:
            last_end = db.session.scalar(
                sa.select(sa.func.max(ContractLine.end_date)).where(ContractLine.device_id == device.id)
            )
            if last_end is not None and start_date <= last_end:
                check.fail(
                    date_field,
                    _("Device %(serial)s was on a contract until %(date)s.", serial=device.serial, date=last_end),
                )
        if device.status == "retired":
            check.fail(device_field, _("Device %(serial)s is retired.", serial=device.serial))
        counters_field = _field(prefix, "counters")
        clean_counters = _check_counters(check, counters_field, counters, device.model.meter_codes, device.model)
    return device, start_date, clean_counters


def _join(contract: Contract, device: Device, start: dt.date, counters: dict[str, int]) -> ContractLine:
    line = ContractLine(
        device=device,
        start_date=start,
        counters=[LineCounter(meter=meter, start_value=value) for meter, value in sorted(counters.items())],
    )
    contract.lines.append(line)
    if device.customer_id != contract.customer_id:
        _move_device(device, contract.customer_id, device.site, start)
    elif not any(i.end_date is None for i in device.installations):
        device.installations.append(Installation(customer_id=contract.customer_id, site=device.site, start_date=start))
    device.status = "installed"
    if contract.state == "draft":
        contract.state = "active"
    return line


def add_device(contract: Contract, device_id: Any, start_date: Any, counters: Any) -> ContractLine:
    """A device joins the contract on `start_date` with its counters; a draft contract becomes active."""
    check = Checker()
    device, start, clean = _check_join(check, "", contract, device_id, start_date, counters, set())
    check.raise_if_any()
    line = _join(contract, device, start, clean)
    db.session.flush()
    return line


def _check_leave(
    check: Checker,
    prefix: str,
    contract: Contract,
    device_id: Any,
    end_date: Any,
    counters: Any,
    date_field: str | None = None,
) -> tuple[ContractLine | None, dt.date | None, dict[str, int] | None]:
    date_field = date_field or _field(prefix, "end_date")
    counters_field = _field(prefix, "counters")
    line = next((line for line in contract.open_lines if line.device_id == _as_int(device_id)), None)
    if line is None:
        check.fail(_field(prefix, "device_id"), _("The device is not on this contract."))
        return None, None, None
    end = check.date(date_field, end_date)
    if end and end < line.start_date:
        check.fail(date_field, _("The device joined on %(date)s, after this date.", date=line.start_date))
    if end and contract.end_date and end > contract.end_date:
        check.fail(date_field, _("The contract ends on %(date)s.", date=contract.end_date))
    meters = [counter.meter for counter in line.counters]
    clean = _check_counters(check, counters_field, counters, meters, line.device.model)
    if clean:
        for counter in line.counters:
            if clean[counter.meter] < counter.start_value:
                check.fail(
                    f"{counters_field}.{counter.meter}",
                    _("Lower than when the device joined (%(value)s).", value=counter.start_value),
                )
    return line, end, clean


def _leave(line: ContractLine, end: dt.date, counters: dict[str, int]) -> None:
    line.end_date = end
    for counter in line.counters:
        counter.end_value = counters[counter.meter]
    _move_device(line.device, None, None, end)
    line.device.status = "in_stock"


def remove_device(contract: Contract, device_id: Any, end_date: Any, counters: Any) -> ContractLine:
    """The device leaves the contract: `end_date` is its last day, `counters` its final counters."""
    check = Checker()
    line, end, clean = _check_leave(check, "", contract, device_id, end_date, counters)
    check.raise_if_any()
    _leave(line, end, clean)
    db.session.flush()
    return line


def swap_device(
    contract: Contract, old_device_id: Any, new_device_id: Any, on: Any, end_counters: Any, counters: Any
) -> ContractLine:
    """One step: the old device leaves on `on` (its last day) with `end_counters`; the new one joins on `on`.

    Errors name `date`, `end_counters.<meter>` and `new_device_id` / `counters.<meter>` of the new device.
    """
    check = Checker()
    leave = Checker()
    line, end, final = _check_leave(leave, "", contract, old_device_id, on, end_counters, date_field="date")
    for field, message in leave.errors.items():
        check.fail(field.replace("counters", "end_counters", 1), message)
    join = Checker()
    device, start, clean = _check_join(join, "", contract, new_device_id, on, counters, set(), date_field="date")
    for field, message in join.errors.items():
        check.fail("new_device_id" if field == "device_id" else field, message)
    check.raise_if_any()
    _leave(line, end, final)
    db.session.flush()
    new_line = _join(contract, device, start, clean)
    db.session.flush()
    return new_line


def contract_periods(contract: Contract, until: dt.date | None) -> list[dict[str, Any]]:
    """The contract's periods up to `until` with escalated, prorated fee, escalated prices and each device's days."""
    check = Checker()
    until = check.date("until", until, required=contract.end_date is None)
    check.raise_if_any()
    last = min(d for d in (until, contract.end_date) if d is not None)
    months = (last.year - contract.start_date.year) * 12 + last.month - contract.start_date.month
    if months // contract.period_months >= MAX_PERIODS:
        fail("until", _("At most %(max)d periods at a time.", max=MAX_PERIODS))
    result = []
    for period in rules.periods(contract.start_date, contract.period_months, contract.end_date, until):
        years = rules.escalation_years(contract.start_date, period.start)
        result.append(
            {
                "index": period.index,
                "start": period.start,
                "end": period.end,
                "period_days": period.period_days,
                "active_days": period.active_days,
                "fee": rules.period_fee(contract.fee, contract.escalation_percent, contract.start_date, period),
                "prices": {
                    allowance.meter: [
                        {
                            "up_to": band.up_to,
                            "price": rules.escalate_price(band.price, contract.escalation_percent, years),
                        }
                        for band in allowance.bands
                    ]
                    for allowance in contract.allowances
                },
                "devices": [
                    {
                        "device_id": line.device_id,
                        "serial": line.device.serial,
                        "active_days": days,
                    }
                    for line in contract.lines
                    if (days := rules.device_active_days(period, line.start_date, line.end_date)) > 0
                ],
            }
        )
    return result
