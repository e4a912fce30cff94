"""Helpers for the consumption check tests: the rules' worked example as real readings, stock and shipments."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from core.db import db
from core.models import Partner
from core.settings import set_setting
from modules.inventory import locations, stock
from modules.inventory.models import Location, Product
from modules.metering.readings import record_reading
from modules.metering.tests import support as s
from modules.rentals.models import Device
from modules.rentals_inventory.models import ProductFit
from modules.rentals_inventory.shipments import ship

D = dt.date.fromisoformat
# The worked example's window: pages from the reading of 31 December to that of 30 November.
START, END = D("2026-01-01"), D("2026-11-30")


def reading(device: Device, day: str, levels: dict[str, int] | None = None, **counters: int) -> None:
    record_reading(device.id, s.at(day), counters, levels or {}, source="staff", now=s.at("2030-01-01"))


def toner(model_id: int, code: str, colour: str = "black", yield_pages: int = 15_000) -> Product:
    product = Product(code=code, description=f"Toner {colour}", colour=colour, yield_pages=yield_pages)
    db.session.add(product)
    db.session.flush()
    db.session.add(ProductFit(product_id=product.id, model_id=model_id))
    db.session.flush()
    return product


def warehouse(product: Product, quantity: int = 50) -> Location:
    store = db.session.query(Location).filter_by(kind="warehouse", name="Magazzino").first()
    if store is None:
        store = Location(name="Magazzino", kind="warehouse")
        db.session.add(store)
        db.session.flush()
    stock.post_move(product.id, Decimal(quantity), locations.virtual("supplier").id, store.id, kind="receipt")
    return store


def worked_example(name: str = "Studio Bianchi", serial: str = "KY1") -> tuple[Partner, Device, Product, Location]:
    """A colour device printing 24,000 bw and 6,000 colour pages in the window, black levels 80% then 20%, and 3
    black cartridges of 15,000 pages shipped: E = 2.0, U = 3.6, R = 1.8, over-consumption."""
    set_setting("metering.jump_min_pages", 10**9)
    customer = s.customer(name)
    device = s.device(serial)
    s.contract(customer.id, [(device, {"bw": 10_000, "color": 2_000})], start_date="2025-06-01")
    reading(device, "2025-12-31", {"black": 80}, bw=20_000, color=5_000)
    reading(device, "2026-11-30", {"black": 20}, bw=44_000, color=11_000)
    product = toner(device.model_id, f"TK-{serial}")
    store = warehouse(product)
    for day in ("2026-02-10", "2026-05-10", "2026-09-10"):
        ship(device.id, product.id, 1, store.id, ship_date=D(day))
    db.session.commit()
    return customer, device, product, store
