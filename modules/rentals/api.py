"""/api/v1/devices and /api/v1/contracts: devices, contracts, their devices and periods, scoped to customers."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import url_for
from flask.views import MethodView
from sqlalchemy import Select
from sqlalchemy.orm import selectinload

from core.api.auth import api_user, require
from core.api.blueprint import ApiBlueprint
from core.api.fields import Boolean, DecimalString, Integer, String, UtcDateTime
from core.api.helpers import ID_PATH, answering, committing, get_or_404, id_field
from core.api.pagination import PageArgs, page_schema, paginate
from core.auth.scoping import customer_scoped
from core.db import contains, db
from core.procurement import ORDER_KINDS
from core.validation import MAX_COUNTER
from modules.rentals.contract_lines import add_device, remove_device, swap_device
from modules.rentals.contracts import (
    CONTRACT_TERMS,
    EINVOICE_TERMS,
    contract_periods,
    create_contract,
    update_contract,
)
from modules.rentals.devices import create_device, normalize_serial, update_device
from modules.rentals.models import (
    CONTRACT_STATES,
    DEVICE_STATUSES,
    Allowance,
    Contract,
    ContractLine,
    Device,
    DeviceModel,
    Manufacturer,
)
from modules.rentals.periods import FEE_TIMINGS, PERIOD_MONTHS
from modules.rentals.validation import MAX_PAGES

devices_blp = ApiBlueprint(
    "rentals_devices", __name__, url_prefix="/devices", description="Devices (copiers, printers)."
)
contracts_blp = ApiBlueprint(
    "rentals_contracts", __name__, url_prefix="/contracts", description="Cost-per-copy contracts and their devices."
)


Counters = ma.fields.Dict(
    keys=String(validate=ma.validate.Length(min=1, max=20)),
    values=Integer(validate=ma.validate.Range(min=0, max=MAX_COUNTER)),
    metadata={"description": 'One counter per meter of the device\'s model, e.g. {"bw": 10000, "color": 2000}.'},
)


# Devices


class DeviceSchema(ma.Schema):
    id = Integer(dump_only=True)
    serial = String(required=True, validate=ma.validate.Length(min=1, max=60))
    manufacturer = String(required=True, validate=ma.validate.Length(min=1, max=100))
    model = String(required=True, validate=ma.validate.Length(min=1, max=100))
    meters = ma.fields.List(
        String(validate=ma.validate.Length(min=1, max=20)),
        validate=ma.validate.Length(max=20),
        metadata={"description": "Meter codes of the model (bw, color, scan, ...); required for a new model."},
    )
    asset_tag = String(allow_none=True, validate=ma.validate.Length(max=60))
    ip_address = String(allow_none=True, validate=ma.validate.Length(max=45))
    status = String(validate=ma.validate.OneOf(DEVICE_STATUSES))
    customer_id = id_field(allow_none=True, metadata={"description": "The customer where the device stands."})
    site = String(allow_none=True, validate=ma.validate.Length(max=200))
    notes = String(allow_none=True, validate=ma.validate.Length(max=10_000))
    contract_id = Integer(dump_only=True, allow_none=True)
    created_at = UtcDateTime(dump_only=True)

    @ma.pre_dump
    def _flatten(self, device: Device, **kwargs: Any) -> dict[str, Any]:
        line = device.open_line
        return {
            **{key: getattr(device, key) for key in ("id", "serial", "asset_tag", "ip_address", "status", "site")},
            **{key: getattr(device, key) for key in ("customer_id", "notes", "created_at")},
            "manufacturer": device.manufacturer.name,
            "model": device.model.name,
            "meters": device.model.meter_codes,
            "contract_id": line.contract_id if line else None,
        }


class DevicePatchSchema(ma.Schema):
    serial = String(validate=ma.validate.Length(min=1, max=60))
    asset_tag = String(allow_none=True, validate=ma.validate.Length(max=60))
    ip_address = String(allow_none=True, validate=ma.validate.Length(max=45))
    status = String(validate=ma.validate.OneOf(DEVICE_STATUSES))
    customer_id = id_field(allow_none=True)
    site = String(allow_none=True, validate=ma.validate.Length(max=200))
    notes = String(allow_none=True, validate=ma.validate.Length(max=10_000))


class DeviceListArgs(PageArgs):
    customer_id = id_field(metadata={"description": "Only the devices standing at this customer."})
    serial = String(validate=ma.validate.Length(max=60), metadata={"description": "Part of the serial number."})


def _visible_devices() -> Select:
    """The devices the token may see, with everything DeviceSchema shows loaded in a few queries for the whole page."""
    query = db.select(Device).options(
        selectinload(Device.manufacturer),
        selectinload(Device.model).selectinload(DeviceModel.meters),
        selectinload(Device.open_line),
    )
    return customer_scoped(query, Device.customer_id, api_user())


def _get_device(device_id: int) -> Device:
    return get_or_404(_visible_devices().where(Device.id == device_id))


@devices_blp.route("")
class Devices(MethodView):
    @require("devices.view", "portal.access")
    @devices_blp.arguments(DeviceListArgs, location="query")
    @devices_blp.response(200, page_schema(DeviceSchema))
    def get(self, args: dict[str, Any]):
        """List devices

        Ordered by manufacturer and serial. A customer's token lists only the devices at its own sites.
        """
        query = _visible_devices().join(Device.manufacturer).order_by(Manufacturer.name, Device.serial, Device.id)
        if args.get("customer_id"):
            query = query.where(Device.customer_id == args["customer_id"])
        if args.get("serial"):
            query = query.where(contains(Device.serial, normalize_serial(args["serial"])))
        return paginate(query, args)

    @require("devices.edit")
    @devices_blp.arguments(DeviceSchema)
    @devices_blp.response(201, DeviceSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, data: dict[str, Any]):
        """Create a device

        The catalogue entry (manufacturer and model) is found by name, any case, or created with `meters`.
        The serial number is unique per manufacturer.
        """
        with committing():
            device = create_device(data)
        return device, 201, {"Location": url_for("rentals_devices.DeviceItem", device_id=device.id)}


@devices_blp.route(f"/<{ID_PATH}:device_id>")
class DeviceItem(MethodView):
    @require("devices.view", "portal.access")
    @devices_blp.response(200, DeviceSchema)
    @devices_blp.alt_response(404, response="NOT_FOUND")
    def get(self, device_id: int):
        """Read a device"""
        return _get_device(device_id)

    @require("devices.edit")
    @devices_blp.arguments(DevicePatchSchema)
    @devices_blp.response(200, DeviceSchema)
    @devices_blp.alt_response(404, response="NOT_FOUND")
    def patch(self, data: dict[str, Any], device_id: int):
        """Update a device

        Only the fields sent change. Moving it to another customer records a new installation.
        """
        device = _get_device(device_id)
        with committing():
            update_device(device, data)
        return device


# Contracts


class BandSchema(ma.Schema):
    up_to = Integer(
        allow_none=True,
        validate=ma.validate.Range(min=1, max=MAX_COUNTER),
        metadata={"description": "Cumulative overage pages this band reaches; null for the last band."},
    )
    price = DecimalString(required=True, metadata={"description": "Price per page, up to 6 decimals."})


class AllowanceSchema(ma.Schema):
    meter = String(required=True, validate=ma.validate.Length(min=1, max=20))
    included = Integer(validate=ma.validate.Range(min=0, max=MAX_PAGES))
    pooled = Boolean(metadata={"description": "Shared by all the contract's devices, else per device."})
    bands = ma.fields.List(ma.fields.Nested(BandSchema), required=True, validate=ma.validate.Length(max=20))


class JoinSchema(ma.Schema):
    device_id = id_field(required=True)
    start_date = ma.fields.Date(metadata={"description": "Defaults to the contract's start date."})
    counters = Counters


class LineSchema(ma.Schema):
    device_id = Integer()
    serial = String()
    start_date = ma.fields.Date()
    end_date = ma.fields.Date(allow_none=True)
    counters = ma.fields.Dict(keys=String(), values=Integer())
    end_counters = ma.fields.Dict(keys=String(), values=Integer(), allow_none=True)


class ContractTermsSchema(ma.Schema):
    customer_id = id_field()
    start_date = ma.fields.Date()
    end_date = ma.fields.Date(allow_none=True)
    period_months = Integer(validate=ma.validate.OneOf(PERIOD_MONTHS))
    fee = DecimalString(metadata={"description": "Fixed fee per period."})
    fee_timing = String(validate=ma.validate.OneOf(FEE_TIMINGS))
    grace_days = Integer(validate=ma.validate.Range(min=0, max=365))
    minimum_charge = DecimalString(allow_none=True)
    escalation_percent = DecimalString(metadata={"description": "Yearly increase of fee and prices."})
    estimate_missing = Boolean()
    vat_rate = DecimalString(
        metadata={"description": "Set from `vat_code` when that is sent; alone, the rate's default code is billed."}
    )
    vat_code = String(
        allow_none=True,
        validate=ma.validate.Length(max=10),
        metadata={
            "description": "An active VAT code (22, 10, N2.1, N6.9, ...): sets `vat_rate`; needed for 0%. Neither "
            "`vat_code` nor `vat_rate` on a new contract (or `vat_code` null): the code proposed for the customer."
        },
    )
    cig = String(
        allow_none=True,
        validate=ma.validate.Length(max=40),
        metadata={"description": "Tender identification code (CIG): 10 letters or digits."},
    )
    cup = String(
        allow_none=True,
        validate=ma.validate.Length(max=40),
        metadata={"description": "Public project code (CUP): 15 letters or digits."},
    )
    order_kind = String(
        validate=ma.validate.OneOf(ORDER_KINDS),
        metadata={"description": "The customer's document the invoices refer to: a contract or a purchase order."},
    )
    order_reference = String(
        allow_none=True,
        validate=ma.validate.Length(max=20),
        metadata={"description": "The customer's contract or order number; null: this contract's number."},
    )
    order_date = ma.fields.Date(allow_none=True, metadata={"description": "The date of the customer's document."})
    auto_renew = Boolean()
    renewal_months = Integer(validate=ma.validate.Range(min=1, max=120))
    notice_days = Integer(validate=ma.validate.Range(min=0, max=3650))
    invoice_notes = String(allow_none=True, validate=ma.validate.Length(max=2000))
    consumables_included = Boolean(metadata={"description": "Toner shipped to the devices is not invoiced."})
    assumed_coverage = DecimalString(metadata={"description": "Page coverage in percent for the consumption check."})
    allowances = ma.fields.List(ma.fields.Nested(AllowanceSchema), validate=ma.validate.Length(max=20))


class ContractCreateSchema(ContractTermsSchema):
    customer_id = id_field(required=True)
    start_date = ma.fields.Date(required=True)
    devices = ma.fields.List(ma.fields.Nested(JoinSchema), validate=ma.validate.Length(max=500))


class ContractPatchSchema(ContractTermsSchema):
    state = String(validate=ma.validate.OneOf(CONTRACT_STATES))


class ContractSchema(ContractTermsSchema):
    id = Integer()
    number = String(metadata={"description": "From the `contract` sequence, e.g. 12/2026."})
    state = String(metadata={"description": "One of: " + ", ".join(CONTRACT_STATES)})
    devices = ma.fields.List(ma.fields.Nested(LineSchema))
    created_at = UtcDateTime()

    @ma.pre_dump
    def _flatten(self, contract: Contract, **kwargs: Any) -> dict[str, Any]:
        data = {key: getattr(contract, key) for key in ("id", "number", "state", "customer_id", "created_at")}
        data |= {key: getattr(contract, key) for key in (*CONTRACT_TERMS, *EINVOICE_TERMS)}
        data["allowances"] = [
            {
                "meter": allowance.meter,
                "included": allowance.included,
                "pooled": allowance.pooled,
                "bands": [{"up_to": band.up_to, "price": band.price} for band in allowance.bands],
            }
            for allowance in contract.allowances
        ]
        data["devices"] = [
            {
                "device_id": line.device_id,
                "serial": line.device.serial,
                "start_date": line.start_date,
                "end_date": line.end_date,
                "counters": line.start_counters,
                "end_counters": line.end_counters,
            }
            for line in contract.lines
        ]
        return data


class ContractListArgs(PageArgs):
    customer_id = id_field()
    state = String(validate=ma.validate.OneOf(CONTRACT_STATES))


class RemoveSchema(ma.Schema):
    end_date = ma.fields.Date(required=True, metadata={"description": "The device's last day on the contract."})
    counters = Counters


class SwapSchema(ma.Schema):
    date = ma.fields.Date(required=True, metadata={"description": "Last day of the old device, first of the new."})
    end_counters = Counters
    new_device_id = id_field(required=True)
    counters = Counters


class PeriodArgs(ma.Schema):
    until = ma.fields.Date(metadata={"description": "List the periods starting on or before this date."})


class BandPriceSchema(ma.Schema):
    up_to = Integer(allow_none=True)
    price = DecimalString()


class DeviceDaysSchema(ma.Schema):
    device_id = Integer()
    serial = String()
    active_days = Integer()


class PeriodSchema(ma.Schema):
    index = Integer()
    start = ma.fields.Date()
    end = ma.fields.Date(metadata={"description": "Clipped to the contract's end date."})
    period_days = Integer(metadata={"description": "Days of the full period, before clipping."})
    active_days = Integer(metadata={"description": "Days the contract is active in the period."})
    fee = DecimalString(metadata={"description": "The period's fee, escalated, then prorated."})
    prices = ma.fields.Dict(
        keys=String(),
        values=ma.fields.List(ma.fields.Nested(BandPriceSchema)),
        metadata={"description": "Per meter, the bands with their escalated prices."},
    )
    devices = ma.fields.List(ma.fields.Nested(DeviceDaysSchema), metadata={"description": "Days each device is on."})


def _visible_contracts() -> Select:
    """The contracts the token may see, with everything ContractSchema shows loaded in a few queries for the page."""
    query = db.select(Contract).options(
        selectinload(Contract.allowances).selectinload(Allowance.bands),
        selectinload(Contract.lines).options(selectinload(ContractLine.counters), selectinload(ContractLine.device)),
    )
    return customer_scoped(query, Contract.customer_id, api_user())


def _get_contract(contract_id: int) -> Contract:
    return get_or_404(_visible_contracts().where(Contract.id == contract_id))


def _contract_location(contract: Contract) -> dict[str, str]:
    return {"Location": url_for("rentals_contracts.ContractItem", contract_id=contract.id)}


@contracts_blp.route("")
class Contracts(MethodView):
    @require("contracts.view", "portal.access")
    @contracts_blp.arguments(ContractListArgs, location="query")
    @contracts_blp.response(200, page_schema(ContractSchema))
    def get(self, args: dict[str, Any]):
        """List contracts

        Newest first (by start date, then id). A customer's token lists only its own contracts.
        """
        query = _visible_contracts().order_by(Contract.start_date.desc(), Contract.id.desc())
        if args.get("customer_id"):
            query = query.where(Contract.customer_id == args["customer_id"])
        if args.get("state"):
            query = query.where(Contract.state == args["state"])
        return paginate(query, args)

    @require("contracts.edit")
    @contracts_blp.arguments(ContractCreateSchema)
    @contracts_blp.response(201, ContractSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, data: dict[str, Any]):
        """Create a contract

        With its allowances and devices; `state` is `active` when it has at least one device, else `draft`.
        Bands must ascend and end with one unbounded band; counters are needed for every meter of each device.
        """
        with committing():
            contract = create_contract(data)
        return contract, 201, _contract_location(contract)


@contracts_blp.route(f"/<{ID_PATH}:contract_id>")
class ContractItem(MethodView):
    @require("contracts.view", "portal.access")
    @contracts_blp.response(200, ContractSchema)
    @contracts_blp.alt_response(404, response="NOT_FOUND")
    def get(self, contract_id: int):
        """Read a contract"""
        return _get_contract(contract_id)

    @require("contracts.edit")
    @contracts_blp.arguments(ContractPatchSchema)
    @contracts_blp.response(200, ContractSchema)
    @contracts_blp.alt_response(404, response="NOT_FOUND")
    def patch(self, data: dict[str, Any], contract_id: int):
        """Update a contract

        Only the fields sent change; `allowances`, when sent, replace all of them. `state` moves draft → active,
        active ⇄ suspended, and to ended once every device has left.
        """
        contract = _get_contract(contract_id)
        with committing():
            update_contract(contract, data)
        return contract


@contracts_blp.route(f"/<{ID_PATH}:contract_id>/devices")
class ContractDevices(MethodView):
    @require("contracts.edit")
    @contracts_blp.arguments(JoinSchema)
    @contracts_blp.response(201, ContractSchema)
    @contracts_blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any], contract_id: int):
        """Add a device to a contract

        The device joins on `start_date` with its counters; a draft contract becomes active.
        """
        contract = _get_contract(contract_id)
        with committing():
            add_device(contract, data["device_id"], data.get("start_date") or contract.start_date, data.get("counters"))
        return contract, 201, _contract_location(contract)


@contracts_blp.route(f"/<{ID_PATH}:contract_id>/devices/<{ID_PATH}:device_id>/remove")
class ContractDeviceRemove(MethodView):
    @require("contracts.edit")
    @contracts_blp.arguments(RemoveSchema)
    @contracts_blp.response(200, ContractSchema)
    @contracts_blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any], contract_id: int, device_id: int):
        """Remove a device from a contract

        `end_date` is its last day on the contract and `counters` its final counters, which close its last period.
        """
        contract = _get_contract(contract_id)
        with committing():
            remove_device(contract, device_id, data["end_date"], data.get("counters"))
        return contract


@contracts_blp.route(f"/<{ID_PATH}:contract_id>/devices/<{ID_PATH}:device_id>/swap")
class ContractDeviceSwap(MethodView):
    @require("contracts.edit")
    @contracts_blp.arguments(SwapSchema)
    @contracts_blp.response(200, ContractSchema)
    @contracts_blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any], contract_id: int, device_id: int):
        """Swap a device

        In one step the device leaves on `date` with `end_counters` and `new_device_id` joins on `date` with `counters`.
        """
        contract = _get_contract(contract_id)
        with committing():
            swap_device(
                contract, device_id, data["new_device_id"], data["date"], data.get("end_counters"), data.get("counters")
            )
        return contract


@contracts_blp.route(f"/<{ID_PATH}:contract_id>/periods")
class ContractPeriods(MethodView):
    @require("contracts.view", "portal.access")
    @contracts_blp.arguments(PeriodArgs, location="query")
    @contracts_blp.response(200, PeriodSchema(many=True))
    @contracts_blp.alt_response(404, response="NOT_FOUND")
    def get(self, args: dict[str, Any], contract_id: int):
        """List a contract's periods

        Every period starting on or before `until` (required for an open-ended contract) and the end date, with the
        fee after escalation and proration, the prices of each meter's bands after escalation, and each device's
        active days.
        """
        contract = _get_contract(contract_id)
        with answering():
            return contract_periods(contract, args.get("until"))
