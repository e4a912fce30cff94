"""Helpers for the inventory tests: products, a warehouse with a shelf, vans, users, stock from the supplier."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from core.db import db
from core.models import Partner, User
from modules.inventory import locations, products, stock
from modules.inventory.models import Location, Product, StockMove, StockQuant


def product(code: str = "TK-5240K", **fields) -> Product:
    values = {"code": code, "description": f"Toner {code}", "cost": "48.50", "sale_price": "79.00", **fields}
    made = products.save_product(None, **values)
    db.session.commit()
    return made


def location(name: str, kind: str = "warehouse", parent: Location | None = None, technician: User | None = None):
    made = locations.save_location(
        None,
        name=name,
        kind=kind,
        parent_id=parent.id if parent else None,
        technician_id=technician.id if technician else None,
    )
    db.session.commit()
    return made


def user(role: str, email: str | None = None, customer: Partner | None = None) -> User:
    made = User(
        email=email or f"{role}@example.com",
        name=role.replace("_", " ").title(),
        role=role,
        customer_id=customer.id if customer else None,
        language="en",
    )
    db.session.add(made)
    db.session.commit()
    return made


def customer(name: str = "Studio Bianchi") -> Partner:
    made = Partner(name=name, is_customer=True)
    db.session.add(made)
    db.session.commit()
    return made


def receive(item: Product, quantity, to: Location, serials=()) -> list[StockMove]:
    moves = stock.post_move(
        item.id,
        Decimal(str(quantity)),
        locations.virtual("supplier").id,
        to.id,
        kind="receipt",
        reference="DDT 12/2026",
        serials=serials,
    )
    db.session.commit()
    return moves


@dataclass
class Place:
    """A warehouse with one shelf, a technician with a van, and a customer."""

    warehouse: Location
    shelf: Location
    technician: User
    van: Location
    customer: Partner


def place() -> Place:
    warehouse = location("Main warehouse")
    shelf = location("Shelf A", "shelf", warehouse)
    technician = user("technician", "tech@example.com")
    van = location("Van Rossi", "van", technician=technician)
    return Place(warehouse, shelf, technician, van, customer())


def moves_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(StockMove))


def quant(item: Product, where: Location) -> Decimal:
    value = db.session.scalar(
        sa.select(StockQuant.quantity).where(StockQuant.product_id == item.id, StockQuant.location_id == where.id)
    )
    return Decimal(value or 0)
