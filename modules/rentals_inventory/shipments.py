"""Consumable shipments to devices: ship from a dealer location, portal toner requests, confirm, cancel, and what
was shipped to a device (for the consumption check)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from core import clock
from core.db import db, utcnow
from core.models import User
from core.outbox import queue_email
from core.validation import Checker, ValidationError
from modules.inventory import locations, stock
from modules.inventory.models import REAL_KINDS, Location, Product, StockMove
from modules.inventory.validation import MAX_QUANTITY
from modules.rentals.models import Consumable, ContractLine, Device, DeviceModel
from modules.rentals.validation import MAX_PAGES
from modules.rentals_inventory.models import COLOURS, ProductFit, Shipment

MONO_COLOURS = frozenset({"black"})
# The stock move's fields by the shipment's names.
MOVE_FIELDS = {"move_date": "ship_date", "partner": "device", "to_location": "device"}
COLOUR_COLOURS = frozenset(COLOURS)


@dataclass(frozen=True)
class ShippedCartridge:
    """One shipped line of a colour: its date, how many cartridges and the pages each yields at 5% coverage."""

    ship_date: dt.date
    quantity: Decimal
    yield_pages: int | None  # None: neither the product nor its fitted consumable says


def device_colours(device_id: int) -> set[str]:
    """The toner colours a device uses: black for a mono model, the four process colours for a colour model."""
    model = db.session.scalar(
        sa.select(DeviceModel).join(Device, Device.model_id == DeviceModel.id).where(Device.id == device_id)
    )
    if model is None:
        return set()
    return set(COLOUR_COLOURS if model.color else MONO_COLOURS)


def contract_line_on(device_id: int, day: dt.date) -> ContractLine | None:
    """The contract line the device was on that day, if any."""
    return db.session.scalar(
        sa.select(ContractLine)
        .options(selectinload(ContractLine.contract))
        .where(
            ContractLine.device_id == device_id,
            ContractLine.start_date <= day,
            sa.or_(ContractLine.end_date.is_(None), ContractLine.end_date >= day),
        )
        .order_by(ContractLine.start_date.desc())
        .limit(1)
    )


def billable_by_contract(device_id: int, day: dt.date) -> bool:
    """Billable unless the device's contract on that day includes consumables; a device on no contract pays."""
    line = contract_line_on(device_id, day)
    return line is None or not line.contract.consumables_included


def fit_of(product_id: int, model_id: int) -> ProductFit | None:
    return db.session.scalar(
        sa.select(ProductFit)
        .options(selectinload(ProductFit.consumable))
        .where(ProductFit.product_id == product_id, ProductFit.model_id == model_id)
    )


def yield_of(product: Product, fit: ProductFit | None) -> int | None:
    """The product's own yield, else the rated yield of the catalogue consumable it is fitted as."""
    if product.yield_pages:
        return product.yield_pages
    if fit is not None and fit.consumable is not None:
        return fit.consumable.rated_yield
    return None


def _device(check: Checker, device_id: Any) -> Device | None:
    number = check.integer("device", device_id, 1, MAX_PAGES)
    device = db.session.get(Device, number) if number is not None else None
    if number is not None and device is None:
        check.fail("device", _("There is no device with id %(id)s.", id=number))
    elif device is not None and device.customer_id is None:
        check.fail("device", _("Device %(serial)s is not at a customer.", serial=device.serial))
    return device


def _product(check: Checker, product_id: Any, device: Device | None) -> Product | None:
    number = check.integer("product", product_id, 1, MAX_PAGES)
    product = db.session.get(Product, number) if number is not None else None
    if number is not None and product is None:
        check.fail("product", _("There is no product with id %(id)s.", id=number))
        return None
    if product is not None and not product.active:
        check.fail("product", _("%(product)s is no longer active.", product=product.code))
    elif product is not None and device is not None and fit_of(product.id, device.model_id) is None:
        check.fail(
            "product",
            _(
                "%(product)s does not fit %(model)s: add the product fit first.",
                product=product.code,
                model=device.model,
            ),
        )
    return product


def _from_location(check: Checker, location_id: Any) -> Location | None:
    number = check.integer("from_location", location_id, 1, MAX_PAGES)
    location = db.session.get(Location, number) if number is not None else None
    if number is not None and location is None:
        check.fail("from_location", _("There is no location with id %(id)s.", id=number))
    elif location is not None and location.kind not in REAL_KINDS:
        check.fail("from_location", _("Ship from a warehouse, a shelf or a van."))
    return location


def _post(shipment: Shipment, device: Device, product: Product, location: Location, serials: Sequence[str], user: Any):
    """The stock move from the dealer location to `customer`, tagged with the device's customer and serial."""
    try:
        moves = stock.post_move(
            product.id,
            shipment.quantity,
            location.id,
            locations.virtual("customer").id,
            kind="delivery",
            move_date=shipment.ship_date,
            reference=str(device)[:100],
            serials=serials,
            partner_id=device.customer_id,
            user=user,
            note=shipment.note,
        )
    except ValidationError as error:
        raise ValidationError({MOVE_FIELDS.get(key, key): message for key, message in error.errors.items()}) from None
    shipment.move_id = moves[0].id
    shipment.product_id = product.id
    shipment.colour = product.colour
    shipment.from_location_id = location.id
    shipment.state = "shipped"
    shipment.shipped_at = utcnow()
    if shipment.billable:
        shipment.unit_price = product.sale_price


def _quantity(check: Checker, value: Any) -> Decimal | None:
    amount = check.decimal("quantity", value, 3, MAX_QUANTITY)
    if amount is not None and amount <= 0:
        check.fail("quantity", _("The quantity must be more than zero."))
        return None
    return amount


def ship(
    device_id: int,
    product_id: int,
    quantity: Any,
    from_location_id: int,
    *,
    ship_date: dt.date | None = None,
    billable: bool | None = None,
    user: Any = None,
    serials: Sequence[str] = (),
    note: str | None = None,
) -> Shipment:
    """Ship consumables to a device now: a delivery move from `from_location_id` to the customer location.

    `billable` None follows the device's contract on the ship date (not billable when it includes consumables).
    Errors name `device`, `product`, `quantity`, `from_location`, `ship_date` (and the stock move's own fields).
    """
    check = Checker()
    device = _device(check, device_id)
    product = _product(check, product_id, device)
    amount = _quantity(check, quantity)
    location = _from_location(check, from_location_id)
    day = check.date("ship_date", ship_date, required=False) or clock.today()
    text = check.text("note", note, 2000)
    check.raise_if_any()
    shipment = Shipment(
        device_id=device.id,
        customer_id=device.customer_id,
        quantity=amount,
        ship_date=day,
        billable=billable_by_contract(device.id, day) if billable is None else bool(billable),
        note=text,
    )
    _post(shipment, device, product, location, serials, user)
    db.session.add(shipment)
    db.session.flush()
    return shipment


def request_toner(device_id: int, colour: Any, level: Any, contact: User, note: str | None = None) -> Shipment:
    """A customer contact asks for toner of `colour` for a device at its customer, reporting the current `level` (%).

    A pending shipment for the dealer to confirm. Errors name `device`, `colour` (not one the model uses), `level`.
    """
    check = Checker()
    device = _device(check, device_id)
    if (
        device is not None
        and contact is not None
        and getattr(contact, "customer_id", None)
        not in (
            None,
            device.customer_id,
        )
    ):
        check.fail("device", _("There is no device with id %(id)s.", id=device_id))
    colours = device_colours(device.id) if device is not None else set(COLOURS)
    chosen = check.choice("colour", colour, [c for c in COLOURS if c in colours])
    percent = check.integer("level", level, 0, 100)
    text = check.text("note", note, 2000)
    check.raise_if_any()
    shipment = Shipment(
        device_id=device.id,
        customer_id=device.customer_id,
        colour=chosen,
        quantity=Decimal(1),
        state="requested",
        billable=billable_by_contract(device.id, clock.today()),
        requested_by_id=contact.id if contact is not None else None,
        requested_level=percent,
        requested_at=utcnow(),
        note=text,
    )
    db.session.add(shipment)
    db.session.flush()
    return shipment


def _requested(shipment_id: Any) -> Shipment:
    shipment = db.session.get(Shipment, shipment_id) if isinstance(shipment_id, int) else None
    if shipment is None:
        raise ValidationError({"shipment": _("There is no such shipment.")})
    if shipment.state != "requested":
        raise ValidationError({"shipment": _("This shipment is not waiting to be confirmed.")})
    return shipment


def confirm(
    shipment_id: int,
    product_id: int,
    from_location_id: int,
    ship_date: dt.date | None = None,
    user: Any = None,
    *,
    quantity: Any = None,
    serials: Sequence[str] = (),
) -> Shipment:
    """Ship a requested shipment: posts the stock move and emails the contact who asked that the toner has shipped.

    The product must fit the device and be of the requested colour. Errors name `shipment`, `product`,
    `from_location`, `ship_date`, `quantity`.
    """
    shipment = _requested(shipment_id)
    check = Checker()
    device = shipment.device
    product = _product(check, product_id, device)
    if product is not None and shipment.colour and product.colour != shipment.colour:
        check.fail("product", _("%(product)s is not %(colour)s toner.", product=product.code, colour=shipment.colour))
    location = _from_location(check, from_location_id)
    day = check.date("ship_date", ship_date, required=False) or clock.today()
    amount = shipment.quantity
    if quantity is not None:
        amount = _quantity(check, quantity)
    if device.customer_id != shipment.customer_id:
        check.fail("shipment", _("Device %(serial)s has moved to another customer.", serial=device.serial))
    check.raise_if_any()
    shipment.quantity = amount
    shipment.ship_date = day
    shipment.billable = billable_by_contract(device.id, day)
    _post(shipment, device, product, location, serials, user)
    db.session.flush()
    _email_shipped(shipment)
    return shipment


def _email_shipped(shipment: Shipment) -> None:
    contact = shipment.requested_by
    if contact is None or not contact.email or not contact.active:
        return
    queue_email(
        [contact.email],
        "rentals_inventory/toner_shipped",
        contact.language or shipment.customer.language,
        {"contact": contact, "shipment": shipment, "device": shipment.device, "product": shipment.product},
        dedupe_key=f"toner-shipped:{shipment.id}",
    )


def cancel(shipment_id: int, user: Any = None, note: str | None = None) -> Shipment:
    """Cancel a requested shipment (nothing moved yet). A shipped one is undone in inventory by a return move."""
    shipment = _requested(shipment_id)
    check = Checker()
    text = check.text("note", note, 2000)
    check.raise_if_any()
    shipment.state = "cancelled"
    if text:
        shipment.note = text
    db.session.flush()
    return shipment


def not_returned() -> sa.ColumnElement[bool]:
    """A shipment whose stock move no reverse move undid: the toner did not come back to stock."""
    return ~sa.exists().where(StockMove.reverses_id == Shipment.move_id)


def shipped(device_id: int, colour: str, start: dt.date, end: dt.date) -> list[ShippedCartridge]:
    """The cartridges of `colour` shipped to the device from `start` to `end` (inclusive), oldest first.

    Each line's yield is the product's, else its fitted consumable's rated yield, else None (the cartridges still
    count as shipped). A shipment whose stock move was reversed (the toner came back) is not counted.
    """
    rows = db.session.execute(
        sa.select(Shipment.ship_date, Shipment.quantity, Product.yield_pages, Consumable.rated_yield)
        .join(Product, Product.id == Shipment.product_id)
        .join(Device, Device.id == Shipment.device_id)
        .outerjoin(ProductFit, sa.and_(ProductFit.product_id == Product.id, ProductFit.model_id == Device.model_id))
        .outerjoin(Consumable, Consumable.id == ProductFit.consumable_id)
        .where(
            Shipment.device_id == device_id,
            Shipment.state == "shipped",
            not_returned(),
            Shipment.colour == colour,
            Shipment.ship_date >= start,
            Shipment.ship_date <= end,
        )
        .order_by(Shipment.ship_date, Shipment.id)
    ).all()
    return [ShippedCartridge(day, Decimal(quantity), own or rated) for day, quantity, own, rated in rows]


def device_shipments(device_id: int, limit: int | None = None) -> list[Shipment]:
    """The device's shipments, newest first, with what their rows show."""
    query = (
        sa.select(Shipment)
        .options(
            selectinload(Shipment.product),
            selectinload(Shipment.from_location),
            selectinload(Shipment.requested_by),
            selectinload(Shipment.device),
        )
        .where(Shipment.device_id == device_id)
        .order_by(Shipment.created_at.desc(), Shipment.id.desc())
    )
    if limit:
        query = query.limit(limit)
    return list(db.session.scalars(query))
