"""Bridge tables: which inventory products fit which device models, and consumable shipments to devices."""

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
from modules.inventory.models import Location, Product, StockMove
from modules.rentals.models import Consumable, Device, DeviceModel

SHIPMENT_STATES = ("requested", "shipped", "cancelled")
COLOURS = ("black", "cyan", "magenta", "yellow")


class ProductFit(db.Model):
    """An inventory product fits a device model; `consumable_id` names the catalogue consumable it is (its yield)."""

    __tablename__ = "rentals_inventory_product_fit"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("inventory_product.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("rentals_device_model.id", ondelete="CASCADE"), index=True)
    consumable_id: Mapped[int | None] = mapped_column(ForeignKey("rentals_consumable.id", ondelete="SET NULL"))

    product: Mapped[Product] = relationship()
    model: Mapped[DeviceModel] = relationship()
    consumable: Mapped[Consumable | None] = relationship()

    __table_args__ = (UniqueConstraint("product_id", "model_id"),)

    def __str__(self) -> str:
        return f"{self.product.code} → {self.model}"


class Shipment(db.Model):
    """Consumables for one device: requested (from the portal, no product yet), shipped (a stock move), cancelled."""

    __tablename__ = "rentals_inventory_shipment"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("rentals_device.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id"), index=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("inventory_product.id"))
    colour: Mapped[str | None] = mapped_column(String(10))
    quantity: Mapped[Decimal] = mapped_column(Numeric(12, 3), default=Decimal("1"))
    state: Mapped[str] = mapped_column(String(10), default="requested")
    billable: Mapped[bool] = mapped_column(Boolean, default=False)
    # Kept by invoicing's lines_billed / lines_released signals, so a billing run no longer asks for it.
    billed: Mapped[bool] = mapped_column(Boolean, default=False)
    move_id: Mapped[int | None] = mapped_column(ForeignKey("inventory_stock_move.id"), unique=True)
    from_location_id: Mapped[int | None] = mapped_column(ForeignKey("inventory_location.id"))
    ship_date: Mapped[dt.date | None] = mapped_column(Date)
    unit_price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    requested_level: Mapped[int | None] = mapped_column(Integer)
    requested_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    shipped_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    device: Mapped[Device] = relationship()
    customer: Mapped[Partner] = relationship()
    product: Mapped[Product | None] = relationship()
    move: Mapped[StockMove | None] = relationship()
    from_location: Mapped[Location | None] = relationship()
    requested_by: Mapped[User | None] = relationship()

    __table_args__ = (
        CheckConstraint("state IN ('requested', 'shipped', 'cancelled')", name="state_known"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("colour IS NULL OR colour IN ('black', 'cyan', 'magenta', 'yellow')", name="colour_known"),
        CheckConstraint("requested_level IS NULL OR requested_level BETWEEN 0 AND 100", name="level_range"),
        CheckConstraint("unit_price IS NULL OR unit_price >= 0", name="unit_price_not_negative"),
        CheckConstraint(
            "state <> 'shipped' OR (product_id IS NOT NULL AND move_id IS NOT NULL AND ship_date IS NOT NULL)",
            name="shipped_has_move",
        ),
        Index("ix_rentals_inventory_shipment_billing", "customer_id", "billable", "billed", "state"),
    )

    def __str__(self) -> str:
        what = self.product.code if self.product else (self.colour or "")
        return f"{what} · {self.device.serial}"
