"""Devices and stock: a device installed from stock moves its serial out of the warehouse, and the van page's
delivery into a device it finds by serial or asset tag.

Rentals knows nothing of inventory, so the installation is seen from outside: a Session listener notes every new
open `Installation` at flush and, just before the transaction commits, moves the device's serial from the real
location holding it to the customer location. No rentals code changes and no signal is needed; a rolled-back
installation moves nothing (the note is dropped with the transaction).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import Session, selectinload

from core.db import db
from core.extension_points import DeliveryTarget
from core.validation import ValidationError
from modules.inventory import locations, stock
from modules.inventory.models import REAL_KINDS, Location, SerialNumber, StockMove
from modules.rentals.devices import normalize_serial
from modules.rentals.models import Device, Installation
from modules.rentals_inventory import shipments
from modules.rentals_inventory.models import ProductFit

log = logging.getLogger(__name__)
PENDING = "rentals_inventory.installed"


def _normalized(column: Any) -> Any:
    return sa.func.upper(sa.func.replace(column, " ", ""))


def note_installations(session: Session, _flush_context: Any) -> None:
    """after_flush: remember the new open installations of this transaction."""
    new = [obj.id for obj in session.new if isinstance(obj, Installation) and obj.end_date is None]
    if new:
        session.info.setdefault(PENDING, set()).update(new)


def move_installed_serials(session: Session) -> None:
    """before_commit: every installation noted moves its device's serial out of stock (when it is in stock)."""
    session.flush()  # so installations added since the last flush are noted too
    pending = session.info.pop(PENDING, None)
    for installation_id in sorted(pending or ()):
        installation = session.get(Installation, installation_id)
        if installation is not None and installation.end_date is None:
            move_serial_out(session, installation)
    session.info.pop(PENDING, None)  # the moves flushed above are no installations


def forget_installations(session: Session, transaction: Any) -> None:
    """after_transaction_end: a transaction that ends (committed or rolled back) takes its notes with it."""
    if transaction.parent is None:
        session.info.pop(PENDING, None)


def serial_in_stock(session: Session, device: Device) -> SerialNumber | None:
    """The stock unit that is this device: its serial at a warehouse, shelf or van; when products of several kinds
    carry that serial, the one fitted to the device's model; None when not found or still ambiguous."""
    candidates = session.scalars(
        sa.select(SerialNumber)
        .join(Location, Location.id == SerialNumber.location_id)
        .where(Location.kind.in_(REAL_KINDS), SerialNumber.serial == normalize_serial(device.serial))
    ).all()
    if len(candidates) > 1:
        fitted = set(
            session.scalars(
                sa.select(ProductFit.product_id).where(
                    ProductFit.model_id == device.model_id,
                    ProductFit.product_id.in_([c.product_id for c in candidates]),
                )
            )
        )
        candidates = [c for c in candidates if c.product_id in fitted]
    return candidates[0] if len(candidates) == 1 else None


def move_serial_out(session: Session, installation: Installation) -> StockMove | None:
    """Deliver the device's stock unit to the customer location on the installation's first day."""
    device = installation.device
    unit = serial_in_stock(session, device)
    if unit is None:
        return None
    try:
        with session.begin_nested():
            moves = stock.post_move(
                unit.product_id,
                Decimal(1),
                unit.location_id,
                locations.virtual("customer").id,
                kind="delivery",
                move_date=installation.start_date,
                reference=str(device)[:100],
                serials=[unit.serial],
                partner_id=installation.customer_id,
                note=_("Installed at %(customer)s", customer=installation.customer.name),
            )
    except ValidationError as error:
        # The installation stands; the warehouse staff fix the stock by hand.
        log.warning("device %s installed but its serial stays in stock: %s", device.id, error.errors)
        return None
    return moves[0]


class VanDelivery:
    """core's DEVICE_DELIVERY: inventory's van page delivers into a device as a shipment."""

    def find_device(self, text: str) -> DeliveryTarget | None:
        key = normalize_serial(text)
        device = db.session.scalar(
            sa.select(Device)
            .options(selectinload(Device.customer), selectinload(Device.model))
            .where(sa.or_(Device.serial == key, _normalized(Device.asset_tag) == key))
            .order_by(Device.id)
            .limit(1)
        )
        if device is None:
            return None
        return DeliveryTarget(
            device_id=device.id,
            label=str(device),
            customer_id=device.customer_id,
            customer_name=device.customer.name if device.customer else _("not at a customer"),
        )

    def deliver(
        self,
        device_id: int,
        product_id: int,
        quantity: Decimal,
        from_location_id: int,
        serials: Sequence[str],
        user: Any,
    ) -> None:
        shipments.ship(device_id, product_id, quantity, from_location_id, user=user, serials=serials)
