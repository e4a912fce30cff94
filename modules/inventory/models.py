"""Inventory tables: products, the locations tree, stock moves, on-hand quants, serials, reorder rules, receipts due."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import db, utcnow
from core.models import Partner, User

COLOURS = ("black", "cyan", "magenta", "yellow")
LOCATION_KINDS = ("warehouse", "shelf", "van", "supplier", "customer", "scrap", "loss")
REAL_KINDS = ("warehouse", "shelf", "van")
VIRTUAL_KINDS = ("supplier", "customer", "scrap", "loss")
MOVE_KINDS = ("receipt", "transfer", "delivery", "return", "scrap", "count")

MONEY = Numeric(12, 2)
QUANTITY = Numeric(12, 3)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class Product(db.Model):
    """Something the dealer stocks: a toner, a drum, a spare part or a device, by its code (SKU)."""

    __tablename__ = "inventory_product"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    description: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(10), default="pz")
    barcode: Mapped[str | None] = mapped_column(String(20), unique=True)
    cost: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0"))
    sale_price: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0"))
    vat_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal("22"))
    serial_tracked: Mapped[bool] = mapped_column(Boolean, default=False)
    colour: Mapped[str | None] = mapped_column(String(10))
    yield_pages: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        CheckConstraint("cost >= 0", name="cost_not_negative"),
        CheckConstraint("sale_price >= 0", name="sale_price_not_negative"),
        CheckConstraint("vat_rate >= 0 AND vat_rate <= 100", name="vat_rate_range"),
        CheckConstraint("yield_pages IS NULL OR yield_pages > 0", name="yield_pages_positive"),
        CheckConstraint(f"colour IS NULL OR {_in('colour', COLOURS)}", name="colour_known"),
    )

    def __str__(self) -> str:
        return f"{self.code} {self.description}"


class Location(db.Model):
    """A place stock is at: a warehouse, a shelf in it, a technician's van, or a virtual location.

    Virtual locations (supplier, customer, scrap, loss) exist once each: `virtual_kind` repeats their kind, unique,
    so `locations.virtual(kind)` creates the row on first use without ever making two.
    """

    __tablename__ = "inventory_location"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("inventory_location.id"), index=True)
    technician_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"), unique=True)
    virtual_kind: Mapped[str | None] = mapped_column(String(10), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    parent: Mapped[Location | None] = relationship(remote_side=[id])
    technician: Mapped[User | None] = relationship()

    __table_args__ = (
        CheckConstraint(_in("kind", LOCATION_KINDS), name="kind_known"),
        CheckConstraint("virtual_kind IS NULL OR virtual_kind = kind", name="virtual_kind_is_kind"),
        CheckConstraint("technician_id IS NULL OR kind = 'van'", name="technician_only_van"),
    )

    @property
    def is_virtual(self) -> bool:
        return self.kind in VIRTUAL_KINDS

    def __str__(self) -> str:
        return self.name


class StockMove(db.Model):
    """One change of stock, posted once and never updated or deleted; a mistake is undone by its reverse move."""

    __tablename__ = "inventory_stock_move"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("inventory_product.id"), index=True)
    quantity: Mapped[Decimal] = mapped_column(QUANTITY)
    from_location_id: Mapped[int] = mapped_column(ForeignKey("inventory_location.id"), index=True)
    to_location_id: Mapped[int] = mapped_column(ForeignKey("inventory_location.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    move_date: Mapped[dt.date] = mapped_column(Date, index=True)
    reference: Mapped[str | None] = mapped_column(String(100))
    serial: Mapped[str | None] = mapped_column(String(60), index=True)
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("core_partner.id"), index=True)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("inventory_stock_move.id"), unique=True)
    note: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    product: Mapped[Product] = relationship()
    from_location: Mapped[Location] = relationship(foreign_keys=[from_location_id])
    to_location: Mapped[Location] = relationship(foreign_keys=[to_location_id])
    partner: Mapped[Partner | None] = relationship()
    reverses: Mapped[StockMove | None] = relationship(remote_side=[id])
    created_by: Mapped[User | None] = relationship()

    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("from_location_id <> to_location_id", name="locations_differ"),
        CheckConstraint(_in("kind", MOVE_KINDS), name="kind_known"),
        CheckConstraint("serial IS NULL OR quantity = 1", name="serial_one_unit"),
    )

    def __str__(self) -> str:
        return f"{self.kind} {self.product} {self.move_date.isoformat()}"


class StockQuant(db.Model):
    """On-hand of a product at a location: the sum of its moves in minus its moves out, kept by `stock.post_move`."""

    __tablename__ = "inventory_stock_quant"

    product_id: Mapped[int] = mapped_column(ForeignKey("inventory_product.id"), primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("inventory_location.id"), primary_key=True, index=True)
    quantity: Mapped[Decimal] = mapped_column(QUANTITY, default=Decimal("0"))

    product: Mapped[Product] = relationship()
    location: Mapped[Location] = relationship()


class SerialNumber(db.Model):
    """Where one unit of a serial-tracked product is: exactly one location at any time."""

    __tablename__ = "inventory_serial"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("inventory_product.id"))
    serial: Mapped[str] = mapped_column(String(60), index=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("inventory_location.id"), index=True)

    product: Mapped[Product] = relationship()
    location: Mapped[Location] = relationship()

    __table_args__ = (UniqueConstraint("product_id", "serial"),)

    def __str__(self) -> str:
        return self.serial


class ReorderRule(db.Model):
    """When on-hand + incoming at a warehouse falls to `min_quantity`, order up to `max_quantity` in `multiple`s."""

    __tablename__ = "inventory_reorder_rule"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("inventory_product.id", ondelete="CASCADE"))
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("inventory_location.id", ondelete="CASCADE"), index=True)
    min_quantity: Mapped[Decimal] = mapped_column(QUANTITY)
    max_quantity: Mapped[Decimal] = mapped_column(QUANTITY)
    multiple: Mapped[Decimal] = mapped_column(QUANTITY, default=Decimal("1"))

    product: Mapped[Product] = relationship()
    warehouse: Mapped[Location] = relationship()

    __table_args__ = (
        UniqueConstraint("product_id", "warehouse_id"),
        CheckConstraint("min_quantity >= 0", name="min_not_negative"),
        CheckConstraint("max_quantity >= min_quantity", name="max_at_least_min"),
        CheckConstraint("multiple > 0", name="multiple_positive"),
    )

    def __str__(self) -> str:
        return f"{self.product} @ {self.warehouse}"


class ExpectedReceipt(db.Model):
    """Stock ordered from a supplier and not yet received: the "incoming" of the reorder rules."""

    __tablename__ = "inventory_expected_receipt"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("inventory_product.id", ondelete="CASCADE"))
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("inventory_location.id", ondelete="CASCADE"))
    quantity: Mapped[Decimal] = mapped_column(QUANTITY)
    expected_date: Mapped[dt.date | None] = mapped_column(Date)
    reference: Mapped[str | None] = mapped_column(String(100))
    received: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    product: Mapped[Product] = relationship()
    warehouse: Mapped[Location] = relationship()

    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_inventory_expected_receipt_open", "product_id", "warehouse_id", "received"),
    )

    def __str__(self) -> str:
        return self.reference or f"{self.product} @ {self.warehouse}"
