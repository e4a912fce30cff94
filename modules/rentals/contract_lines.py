"""Contract lines: a device joins, leaves or is swapped on a contract, with its counters."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from core.db import db
from core.validation import Checker
from modules.rentals.devices import move_device, open_line
from modules.rentals.models import Contract, ContractLine, Device, DeviceModel, Installation, LineCounter
from modules.rentals.validation import MAX_PAGES, as_int


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


def check_join(
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


def join_contract(contract: Contract, device: Device, start: dt.date, counters: dict[str, int]) -> ContractLine:
    line = ContractLine(
        device=device,
        start_date=start,
        counters=[LineCounter(meter=meter, start_value=value) for meter, value in sorted(counters.items())],
    )
    contract.lines.append(line)
    if device.customer_id != contract.customer_id:
        move_device(device, contract.customer_id, device.site, start)
    elif not any(i.end_date is None for i in device.installations):
        device.installations.append(Installation(customer_id=contract.customer_id, site=device.site, start_date=start))
    device.status = "installed"
    if contract.state == "draft":
        contract.state = "active"
    return line


def add_device(contract: Contract, device_id: Any, start_date: Any, counters: Any) -> ContractLine:
    """A device joins the contract on `start_date` with its counters; a draft contract becomes active."""
    check = Checker()
    device, start, clean = check_join(check, "", contract, device_id, start_date, counters, set())
    check.raise_if_any()
    line = join_contract(contract, device, start, clean)
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
    line = next((line for line in contract.open_lines if line.device_id == as_int(device_id)), None)
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
    move_device(line.device, None, None, end)
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
    device, start, clean = check_join(join, "", contract, new_device_id, on, counters, set(), date_field="date")
    for field, message in join.errors.items():
        check.fail("new_device_id" if field == "device_id" else field, message)
    check.raise_if_any()
    _leave(line, end, final)
    db.session.flush()
    new_line = join_contract(contract, device, start, clean)
    db.session.flush()
    return new_line
