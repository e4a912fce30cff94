"""Consumption check demo: one demo customer clearly over-consumes (extra black cartridges shipped to one device)."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import sqlalchemy as sa

from core import clock
from core.db import db
from core.models import Partner
from modules.inventory import locations, stock
from modules.inventory.models import Location, Product
from modules.metering_inventory.consumption import consumption_check
from modules.rentals.models import Contract, ContractLine, Device
from modules.rentals_inventory.models import ProductFit, Shipment
from modules.rentals_inventory.shipments import ship

OVER_CONSUMER = "Studio Legale Bianchi"
# Cartridges used against those the pages need: well beyond 1 + the default tolerance.
TARGET_RATIO = Decimal("1.8")
MIN_EXTRA = 3
NOTE = "Demo: toner beyond what the pages need"


def load_demo() -> None:
    """Extra black cartridges over the last months to the over-consumer's first device, enough for R to reach 1.8;
    idempotent (the extra shipments carry NOTE)."""
    device = db.session.scalar(
        sa.select(Device)
        .join(ContractLine, ContractLine.device_id == Device.id)
        .join(Contract, Contract.id == ContractLine.contract_id)
        .join(Partner, Partner.id == Contract.customer_id)
        .where(Partner.name == OVER_CONSUMER, Contract.state == "active", ContractLine.end_date.is_(None))
        .order_by(Device.serial)
        .limit(1)
    )
    if device is None:
        return
    if db.session.scalar(sa.select(Shipment.id).where(Shipment.device_id == device.id, Shipment.note == NOTE).limit(1)):
        return
    product = db.session.scalar(
        sa.select(Product)
        .join(ProductFit, ProductFit.product_id == Product.id)
        .where(ProductFit.model_id == device.model_id, Product.colour == "black")
        .order_by(Product.id)
        .limit(1)
    )
    warehouse = db.session.scalar(
        sa.select(Location)
        .where(Location.kind == "warehouse", Location.active.is_(True))
        .order_by(Location.id)
        .limit(1)
    )
    if product is None or warehouse is None:
        return
    black = [row for row in consumption_check(None, device.id) if row.colour == "black"]
    extra = MIN_EXTRA
    if black and black[0].expected is not None:
        extra = max(MIN_EXTRA, math.ceil(TARGET_RATIO * black[0].expected - black[0].consumed))
    stock.post_move(
        product.id,
        Decimal(extra),
        locations.virtual("supplier").id,
        warehouse.id,
        kind="receipt",
        reference="DEMO-TONER-EXTRA",
    )
    today = clock.today()
    for index in range(extra):
        day = today - dt.timedelta(days=10 + (300 * index) // extra)
        shipment = ship(device.id, product.id, 1, warehouse.id, ship_date=day, billable=False)
        shipment.note = NOTE
    db.session.commit()
