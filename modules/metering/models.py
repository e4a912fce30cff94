"""Metering tables: meter readings with their counters and toner levels, and meter replacement events."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, Date, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import db, utcnow
from core.models import Partner
from modules.rentals.models import Contract, Device

READING_SOURCES = ("portal", "staff", "api", "csv", "estimate", "email", "snmp", "device")
READING_STATUSES = ("accepted", "pending_review", "rejected", "estimated", "superseded")
# Readings that count as a device's counters: billing closes periods with these.
COUNTING_STATUSES = ("accepted", "estimated")
SUPPLY_COLOURS = ("black", "cyan", "magenta", "yellow")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Reading(db.Model):
    """A device's counters (and optional toner levels) at one moment, from one channel, with its review status."""

    __tablename__ = "metering_reading"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("rentals_device.id", ondelete="CASCADE"), index=True)
    taken_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    source: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    warnings: Mapped[str | None] = mapped_column(Text)
    entered_by: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    # SHA-256 of device, instant and counters: the same reading submitted twice is stored once.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    device: Mapped[Device] = relationship()
    values: Mapped[list[ReadingValue]] = relationship(
        back_populates="reading", cascade="all, delete-orphan", order_by="ReadingValue.meter"
    )
    supplies: Mapped[list[SupplyLevel]] = relationship(
        back_populates="reading", cascade="all, delete-orphan", order_by="SupplyLevel.colour"
    )

    __table_args__ = (
        CheckConstraint(_in("source", READING_SOURCES), name="source_known"),
        CheckConstraint(_in("status", READING_STATUSES), name="status_known"),
    )

    @property
    def counters(self) -> dict[str, int]:
        return {value.meter: value.value for value in self.values}

    @property
    def supply_levels(self) -> dict[str, int]:
        return {level.colour: level.percent for level in self.supplies}

    @property
    def warning_list(self) -> list[str]:
        return self.warnings.splitlines() if self.warnings else []

    def __str__(self) -> str:
        return f"{self.device.serial} {self.taken_at:%Y-%m-%d %H:%M}"


class ReadingValue(db.Model):
    """One meter's counter in a reading."""

    __tablename__ = "metering_reading_value"

    id: Mapped[int] = mapped_column(primary_key=True)
    reading_id: Mapped[int] = mapped_column(ForeignKey("metering_reading.id", ondelete="CASCADE"), index=True)
    meter: Mapped[str] = mapped_column(ForeignKey("rentals_meter_type.code"))
    value: Mapped[int] = mapped_column(BigInteger)

    reading: Mapped[Reading] = relationship(back_populates="values")

    __table_args__ = (
        UniqueConstraint("reading_id", "meter"),
        CheckConstraint("value >= 0", name="value_not_negative"),
    )


class SupplyLevel(db.Model):
    """A toner level in percent (0-100) reported with a reading."""

    __tablename__ = "metering_supply_level"

    id: Mapped[int] = mapped_column(primary_key=True)
    reading_id: Mapped[int] = mapped_column(ForeignKey("metering_reading.id", ondelete="CASCADE"), index=True)
    colour: Mapped[str] = mapped_column(String(10))
    percent: Mapped[int] = mapped_column(Integer)

    reading: Mapped[Reading] = relationship(back_populates="supplies")

    __table_args__ = (
        UniqueConstraint("reading_id", "colour"),
        CheckConstraint("percent >= 0 AND percent <= 100", name="percent_range"),
        CheckConstraint(_in("colour", SUPPLY_COLOURS), name="colour_known"),
    )


class MeterReplacement(db.Model):
    """A meter replaced or reset on `date`: the old meter ended at `old_final`, the new one starts at `new_start`."""

    __tablename__ = "metering_meter_replacement"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("rentals_device.id", ondelete="CASCADE"), index=True)
    date: Mapped[dt.date] = mapped_column(Date)
    meter: Mapped[str] = mapped_column(ForeignKey("rentals_meter_type.code"))
    old_final: Mapped[int] = mapped_column(BigInteger)
    new_start: Mapped[int] = mapped_column(BigInteger)
    notes: Mapped[str | None] = mapped_column(Text)
    entered_by: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    device: Mapped[Device] = relationship()

    __table_args__ = (
        UniqueConstraint("device_id", "meter", "date"),
        CheckConstraint("old_final >= 0", name="old_final_not_negative"),
        CheckConstraint("new_start >= 0", name="new_start_not_negative"),
    )

    def __str__(self) -> str:
        return f"{self.device.serial} {self.meter} {self.date}"


SCHEDULE_RULES = ("last_working_day", "period_end", "days_before_end")
REQUEST_STATUSES = ("pending", "completed", "overdue")


class ReadingSchedule(db.Model):
    """The day of each period a contract's readings are requested; without a row, the last working day."""

    __tablename__ = "metering_schedule"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("rentals_contract.id", ondelete="CASCADE"), unique=True)
    rule: Mapped[str] = mapped_column(String(20), default="last_working_day")
    days: Mapped[int] = mapped_column(Integer, default=0)

    contract: Mapped[Contract] = relationship()

    __table_args__ = (
        CheckConstraint(_in("rule", SCHEDULE_RULES), name="rule_known"),
        CheckConstraint("days >= 0 AND days <= 60", name="days_range"),
    )

    def __str__(self) -> str:
        return f"{self.contract} {self.rule}"


class ReadingRequest(db.Model):
    """One emailed request to a customer for the counters of the devices due on one date."""

    __tablename__ = "metering_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"), index=True)
    due_date: Mapped[dt.date] = mapped_column(Date, index=True)
    # After this day the request is overdue: the latest period end + grace days among its devices.
    deadline: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_sent_on: Mapped[dt.date | None] = mapped_column(Date)
    reminders: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    overdue_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    customer: Mapped[Partner] = relationship()
    items: Mapped[list[ReadingRequestItem]] = relationship(
        back_populates="request", cascade="all, delete-orphan", order_by="ReadingRequestItem.id"
    )

    __table_args__ = (
        UniqueConstraint("customer_id", "due_date"),
        CheckConstraint(_in("status", REQUEST_STATUSES), name="status_known"),
    )

    def __str__(self) -> str:
        return f"{self.customer} {self.due_date}"


class ReadingRequestItem(db.Model):
    """A device a request asks for, for its contract's period ending on `period_end`; `reading_id` once it arrived."""

    __tablename__ = "metering_request_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("metering_request.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("rentals_device.id", ondelete="CASCADE"), index=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("rentals_contract.id", ondelete="CASCADE"))
    period_end: Mapped[dt.date] = mapped_column(Date)
    # A reading taken from this day to the period's end + grace days closes the period.
    since: Mapped[dt.date] = mapped_column(Date)
    reading_id: Mapped[int | None] = mapped_column(ForeignKey("metering_reading.id", ondelete="SET NULL"))

    request: Mapped[ReadingRequest] = relationship(back_populates="items")
    device: Mapped[Device] = relationship()
    contract: Mapped[Contract] = relationship()
    reading: Mapped[Reading | None] = relationship()

    __table_args__ = (UniqueConstraint("request_id", "device_id"),)


class ReadingRequestLink(db.Model):
    """A signed link emailed for a request: each email gets its own nonce, stored only as its SHA-256, and expires."""

    __tablename__ = "metering_request_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("metering_request.id", ondelete="CASCADE"), index=True)
    nonce_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    request: Mapped[ReadingRequest] = relationship()


class BilledClosing(db.Model):
    """A closing invoicing billed: one row per billed line (`source_ref`) and device meter it covers.

    Written and deleted only by the receivers of `core.signals.lines_billed` / `lines_released`, in invoicing's
    transaction. Values are on the cumulative scale of `usage.py`: `opening` is the high-water mark before the period.
    """

    __tablename__ = "metering_billed_closing"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_ref: Mapped[str] = mapped_column(String(200), index=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("rentals_contract.id", ondelete="CASCADE"), index=True)
    period_index: Mapped[int] = mapped_column(Integer)
    device_id: Mapped[int] = mapped_column(ForeignKey("rentals_device.id", ondelete="CASCADE"))
    meter: Mapped[str] = mapped_column(ForeignKey("rentals_meter_type.code"))
    # None for closings that are not a reading: final counters, interpolated values.
    reading_id: Mapped[int | None] = mapped_column(ForeignKey("metering_reading.id", ondelete="SET NULL"))
    opening_value: Mapped[int] = mapped_column(BigInteger)
    opening_on: Mapped[dt.date] = mapped_column(Date)
    closing_value: Mapped[int] = mapped_column(BigInteger)
    closing_on: Mapped[dt.date] = mapped_column(Date)
    closing_counter: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("source_ref", "device_id", "meter"),)
