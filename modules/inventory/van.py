"""The technician's van: what a scanned or typed code is (a product's barcode or code, or a serial number), the van's
stock, receiving a transfer into it and delivering from it (into a device through core's DEVICE_DELIVERY)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from core.db import db
from core.extension_points import DEVICE_DELIVERY, DeliveryTarget, DeviceDelivery, implementations
from core.models import Partner
from core.validation import Checker, ValidationError, fail
from modules.inventory import forms, locations, products, stock
from modules.inventory.models import Location, Product, SerialNumber, StockMove, StockQuant

MAX_SCAN = 60


@dataclass(frozen=True)
class ScannedItem:
    """What a scanned code named: a product, and the unit's serial number when it was a serial."""

    product: Product
    serial: str | None = None


def device_delivery() -> DeviceDelivery | None:
    """The enabled bridge's delivery into devices (core's DEVICE_DELIVERY), or None: deliveries then go to a
    customer."""
    return next(iter(implementations(DEVICE_DELIVERY)), None)


def find_item(text: str | None, location_id: int | None = None, field: str = "item") -> ScannedItem:
    """The product (and serial) a scanned or typed code names (products.lookup: a barcode, a product code, or a
    serial number, the one at `location_id` when several products share it). Refused with `field` otherwise."""
    code = (text or "").strip()
    if not code:
        fail(field, _("Scan or type a barcode, product code or serial number."))
    found = products.lookup(code[:MAX_SCAN], location_id)
    if found is None:
        fail(
            field, _("Nothing has the code %(code)s: no barcode, product code or serial number.", code=code[:MAX_SCAN])
        )
    if not found.product.active:
        fail(field, _("%(product)s is no longer in use.", product=found.product.code))
    return ScannedItem(found.product, found.serial)


@dataclass
class VanLine:
    """A product in the van: how many, and which serial numbers."""

    product: Product
    quantity: Decimal
    serials: list[str] = field(default_factory=list)


def van_stock(van_id: int) -> list[VanLine]:
    """Every product the van holds (or owes, with negative stock allowed), by product code."""
    quants = db.session.scalars(
        sa.select(StockQuant)
        .where(StockQuant.location_id == van_id, StockQuant.quantity != 0)
        .options(selectinload(StockQuant.product))
    ).all()
    serials: dict[int, list[str]] = {}
    for unit in db.session.scalars(
        sa.select(SerialNumber).where(SerialNumber.location_id == van_id).order_by(SerialNumber.serial)
    ):
        serials.setdefault(unit.product_id, []).append(unit.serial)
    lines = [VanLine(quant.product, quant.quantity, serials.get(quant.product_id, [])) for quant in quants]
    return sorted(lines, key=lambda line: line.product.code)


def recent_moves(van_id: int, limit: int = 5) -> list[StockMove]:
    """The van's last moves in or out, newest first, with what their lines show."""
    return list(
        db.session.scalars(
            sa.select(StockMove)
            .where(sa.or_(StockMove.from_location_id == van_id, StockMove.to_location_id == van_id))
            .options(
                selectinload(StockMove.product),
                selectinload(StockMove.from_location),
                selectinload(StockMove.to_location),
                selectinload(StockMove.partner),
            )
            .order_by(StockMove.created_at.desc(), StockMove.id.desc())
            .limit(limit)
        )
    )


def sources(van: Location) -> list[Location]:
    """Where a van is loaded from: the active warehouses and shelves (a transfer between vans goes through them)."""
    return list(
        db.session.scalars(
            sa.select(Location)
            .where(Location.kind.in_(("warehouse", "shelf")), Location.active.is_(True))
            .order_by(Location.name)
        )
    )


def customers() -> list[Partner]:
    return list(
        db.session.scalars(
            sa.select(Partner).where(Partner.is_customer.is_(True), Partner.active.is_(True)).order_by(Partner.name)
        )
    )


def _amount(item: ScannedItem, quantity_text: str | None, check: Checker) -> tuple[Decimal | None, list[str]]:
    """A serial moves alone (one unit); otherwise the quantity typed (1 when left empty)."""
    if item.serial is not None:
        return Decimal(1), [item.serial]
    if item.product.serial_tracked:
        check.fail("item", _("%(product)s moves by serial number: scan the unit's serial.", product=item.product.code))
        return None, []
    try:
        return forms.parse_quantity(quantity_text or "1"), []
    except ValidationError as error:
        check.errors.update({k: v for k, v in error.errors.items() if k not in check.errors})
        return None, []


def receive(
    van: Location, from_location_id: str | int | None, item_text: str | None, quantity_text: str | None, user: Any
) -> tuple[ScannedItem, Decimal]:
    """Take stock into the van from a warehouse or shelf: a transfer posted now (there is no stock in transit)."""
    check = Checker()
    source = None
    try:
        source_id = forms.parse_id(str(from_location_id or ""), "from_location")
        source = db.session.get(Location, source_id)
        if source is None or source.kind not in ("warehouse", "shelf") or not source.active:
            check.fail("from_location", _("Choose the warehouse or shelf the stock comes from."))
    except ValidationError:
        check.fail("from_location", _("Choose the warehouse or shelf the stock comes from."))
    item = None
    try:
        item = find_item(item_text, source.id if source is not None else None)
    except ValidationError as error:
        check.errors.update(error.errors)
    quantity, serials = _amount(item, quantity_text, check) if item is not None else (None, [])
    check.raise_if_any()
    stock.post_move(item.product.id, quantity, source.id, van.id, kind="transfer", serials=serials, user=user)
    return item, quantity


@dataclass(frozen=True)
class Delivered:
    item: ScannedItem
    quantity: Decimal
    to: str


def deliver(
    van: Location,
    item_text: str | None,
    quantity_text: str | None,
    *,
    device_text: str | None = None,
    customer_id: str | int | None = None,
    reference: str | None = None,
    user: Any = None,
) -> Delivered:
    """Deliver from the van: into a device through the bridge when one is enabled (the device scanned or typed by
    its serial), else to a customer chosen by name (a move to the customer location tagged with the partner)."""
    check = Checker()
    item = None
    try:
        item = find_item(item_text, van.id)
    except ValidationError as error:
        check.errors.update(error.errors)
    quantity, serials = _amount(item, quantity_text, check) if item is not None else (None, [])
    bridge = device_delivery()
    target: DeliveryTarget | None = None
    customer: Partner | None = None
    if bridge is not None:
        text = (device_text or "").strip()[:MAX_SCAN]
        if not text:
            check.fail("device", _("Scan or type the device's serial number."))
        else:
            target = bridge.find_device(text)
            if target is None:
                check.fail("device", _("No device has the serial number %(serial)s.", serial=text))
    else:
        try:
            customer = db.session.get(Partner, forms.parse_id(str(customer_id or ""), "customer"))
        except ValidationError:
            customer = None
        if customer is None or not customer.is_customer:
            check.fail("customer", _("Choose the customer."))
    check.raise_if_any()
    if target is not None:
        bridge.deliver(target.device_id, item.product.id, quantity, van.id, serials, user)
        to = target.label
    else:
        stock.post_move(
            item.product.id,
            quantity,
            van.id,
            locations.virtual("customer").id,
            kind="delivery",
            serials=serials,
            partner_id=customer.id,
            reference=forms.optional_text(reference, 100),
            user=user,
        )
        to = customer.name
    return Delivered(item, quantity, to)
