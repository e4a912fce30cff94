"""Consumption check tables: flags staff explained (with a note) and flags already emailed to the dealer."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import CheckConstraint, Date, DateTime, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import db, utcnow
from core.models import User
from modules.rentals.models import Device

FLAG_COLOURS = ("black", "cyan", "magenta", "yellow")
FLAG_VERDICTS = ("over_consumption", "under_consumption")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ExplainedFlag(db.Model):
    """Staff's explanation of a device's flag for one toner over a window: it no longer alerts (consumption.covers)."""

    __tablename__ = "metering_inventory_explained_flag"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("rentals_device.id", ondelete="CASCADE"))
    colour: Mapped[str] = mapped_column(String(10))
    verdict: Mapped[str] = mapped_column(String(20))
    window_start: Mapped[dt.date] = mapped_column(Date)
    window_end: Mapped[dt.date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    device: Mapped[Device] = relationship()
    user: Mapped[User | None] = relationship()

    __table_args__ = (
        Index("ix_metering_inventory_explained_flag_device", "device_id", "colour"),
        CheckConstraint(_in("colour", FLAG_COLOURS), name="colour_known"),
        CheckConstraint(_in("verdict", FLAG_VERDICTS), name="verdict_known"),
        CheckConstraint("window_end >= window_start", name="window_ordered"),
    )

    def __str__(self) -> str:
        return f"{self.device.serial} {self.colour} {self.window_start}"


class AlertedFlag(db.Model):
    """A flag the periodic job emailed to the dealer, with the figures it had: the next run sends only new ones."""

    __tablename__ = "metering_inventory_alerted_flag"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("rentals_device.id", ondelete="CASCADE"))
    colour: Mapped[str] = mapped_column(String(10))
    verdict: Mapped[str] = mapped_column(String(20))
    window_start: Mapped[dt.date] = mapped_column(Date)
    window_end: Mapped[dt.date] = mapped_column(Date)
    pages: Mapped[int] = mapped_column(Integer)
    expected: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    consumed: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    alerted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    device: Mapped[Device] = relationship()

    __table_args__ = (
        Index("ix_metering_inventory_alerted_flag_device", "device_id", "colour"),
        CheckConstraint(_in("colour", FLAG_COLOURS), name="colour_known"),
        CheckConstraint(_in("verdict", FLAG_VERDICTS), name="verdict_known"),
        CheckConstraint("window_end >= window_start", name="window_ordered"),
    )

    def __str__(self) -> str:
        return f"{self.device.serial} {self.colour} {self.window_start}"
