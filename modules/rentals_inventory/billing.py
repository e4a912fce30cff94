"""The consumable sales BillableSource: every billable shipped shipment once, and the billed state kept from
invoicing's signals."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from flask_babel import format_date
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from core.db import db
from core.extension_points import BillableLine
from modules.rentals.models import ContractLine, Device
from modules.rentals_inventory.models import Shipment
from modules.rentals_inventory.shipments import not_returned

SOURCE = "rentals_inventory"
REF_PREFIX = "shipment:"


def source_ref(shipment_id: int) -> str:
    return f"{REF_PREFIX}{shipment_id}"


class ConsumableSalesSource:
    """Billable shipments shipped by `as_of` and not yet billed, as consumable sales at the product's sale price."""

    name = SOURCE

    def billable_lines(self, customer_id: int, as_of: dt.date) -> list[BillableLine]:
        shipments = db.session.scalars(
            sa.select(Shipment)
            .options(selectinload(Shipment.product), selectinload(Shipment.device).selectinload(Device.model))
            .where(
                Shipment.customer_id == customer_id,
                Shipment.state == "shipped",
                not_returned(),
                Shipment.billable.is_(True),
                Shipment.billed.is_(False),
                Shipment.ship_date <= as_of,
            )
            .order_by(Shipment.ship_date, Shipment.id)
        ).all()
        contracts = _contracts_on_ship_dates(shipments)
        return [_line(shipment, contracts.get(shipment.id)) for shipment in shipments]


def _contracts_on_ship_dates(shipments: list[Shipment]) -> dict[int, int]:
    """Shipment id -> the contract its device was on when it shipped (its invoice goes with that contract's)."""
    device_ids = {shipment.device_id for shipment in shipments}
    if not device_ids:
        return {}
    lines = db.session.scalars(sa.select(ContractLine).where(ContractLine.device_id.in_(device_ids))).all()
    found = {}
    for shipment in shipments:
        for line in lines:
            if (
                line.device_id == shipment.device_id
                and line.start_date <= shipment.ship_date
                and (line.end_date is None or line.end_date >= shipment.ship_date)
            ):
                found[shipment.id] = line.contract_id
                break
    return found


def _line(shipment: Shipment, contract_id: int | None) -> BillableLine:
    product = shipment.product
    return BillableLine(
        source=SOURCE,
        source_ref=source_ref(shipment.id),
        description=_(
            "%(product)s for %(device)s, shipped %(date)s",
            product=f"{product.code} {product.description}",
            device=str(shipment.device),
            date=format_date(shipment.ship_date, "short"),
        ),
        quantity=Decimal(shipment.quantity),
        unit_price=Decimal(shipment.unit_price if shipment.unit_price is not None else product.sale_price),
        vat_rate=Decimal(product.vat_rate),
        kind="consumable",
        contract_id=contract_id,
        period_start=shipment.ship_date,
        period_end=shipment.ship_date,
        device_id=shipment.device_id,
        unit=product.unit,
        extra={"shipment_id": shipment.id},
    )


def _shipment_ids(source_refs: list[str]) -> list[int]:
    return [int(ref[len(REF_PREFIX) :]) for ref in source_refs if ref.startswith(REF_PREFIX)]


def record_billed(sender: object, source: str, lines: list[tuple[str, dict]], **_kwargs: object) -> None:
    """`lines_billed` receiver: the shipments are on an invoice now (in invoicing's transaction)."""
    if source != SOURCE:
        return
    ids = _shipment_ids([ref for ref, _extra in lines])
    if ids:
        db.session.execute(sa.update(Shipment).where(Shipment.id.in_(ids)).values(billed=True))


def release_billed(sender: object, source: str, source_refs: list[str], **_kwargs: object) -> None:
    """`lines_released` receiver: the invoice was cancelled or credited, so the shipments bill again."""
    if source != SOURCE:
        return
    ids = _shipment_ids(source_refs)
    if ids:
        db.session.execute(sa.update(Shipment).where(Shipment.id.in_(ids)).values(billed=False))
