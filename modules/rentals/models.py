"""Rentals tables: manufacturers, device models with their meters, and devices."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import db, utcnow
from core.models import Partner


class Manufacturer(db.Model):
    __tablename__ = "rentals_manufacturer"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)

    def __str__(self) -> str:
        return self.name


class DeviceModel(db.Model):
    """A catalogue entry: make and model with the meters it counts (`bw`, `color`, ...)."""

    __tablename__ = "rentals_device_model"

    id: Mapped[int] = mapped_column(primary_key=True)
    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("rentals_manufacturer.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    meters: Mapped[list] = mapped_column(JSON, default=lambda: ["bw"])

    manufacturer: Mapped[Manufacturer] = relationship()

    __table_args__ = (UniqueConstraint("manufacturer_id", "name"),)

    def __str__(self) -> str:
        return f"{self.manufacturer} {self.name}"


class Device(db.Model):
    """One machine, by serial number, and the customer it stands at."""

    __tablename__ = "rentals_device"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("rentals_device_model.id"), index=True)
    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("rentals_manufacturer.id"))
    serial: Mapped[str] = mapped_column(String(60))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("core_partner.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), default="in_stock")
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    model: Mapped[DeviceModel] = relationship()
    customer: Mapped[Partner | None] = relationship()

    __table_args__ = (UniqueConstraint("manufacturer_id", "serial"),)

    def __str__(self) -> str:
        return f"{self.model} #{self.serial}"
